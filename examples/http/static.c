/*
 * static.c - GET and HEAD of files under a root directory (-r DIR).
 *
 * Nothing outside the root is served. The target's path is
 * percent-decoded first (so "%2e%2e" is ".."), and then a ".." segment, a
 * NUL or a backslash is 400 before any file system call. The file is
 * opened relative to the root's fd with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS): the kernel refuses every resolution that leaves
 * the root, through a symlink (absolute or relative) as much as through
 * "..", and we answer 403. Symlinks that stay inside the root work.
 * Where openat2 is missing (ENOSYS: kernels before 5.6, Valgrind 3.19),
 * the path is walked a segment at a time instead, each opened with
 * O_NOFOLLOW relative to the one before: nothing resolves outside the
 * root either, and every symlink is 403, even one that stays inside.
 *
 * Disks block the thread (the netpoller cannot wait for a regular file),
 * so open, fstat and every read run on a goro_blocking helper; the file
 * goes out in 64 KiB pieces, never whole in memory. "/" and a directory
 * mean its index.html. A request for anything but a regular file is 404.
 */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK (64 << 10)

int http_root_open(struct http_server *s)
{
    int fd = open(s->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    s->root_fd = fd;
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The target's path (before any '?'), decoded, as a path relative to the
 * root ("a/b/c", "." for the root itself) in out (at least tlen + 2 bytes).
 * 0, or 400. */
static int root_path(const char *t, size_t tlen, char *out)
{
    if (tlen == 0 || t[0] != '/')
        return 400; /* absolute-form and "*" are not for files */
    size_t o = 0, seg = 0; /* seg: where the current segment began in out */
    for (size_t i = 1; i <= tlen; i++) {
        char ch = i < tlen ? t[i] : '/';
        if (ch == '?' || ch == '#')
            ch = '/', tlen = i; /* end of the path */
        if (ch == '%') {
            int hi = i + 2 < tlen ? hexval(t[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(t[i + 2]) : -1;
            if (lo < 0)
                return 400;
            ch = (char)(hi * 16 + lo);
            i += 2;
            if (ch == '/')
                return 400; /* an encoded slash: refuse rather than guess */
            if (ch == 0)
                return 400;
        } else if (ch == '/') {
            size_t len = o - seg;
            if (len == 0) {
                /* empty segment: "//" */
            } else if (len == 1 && out[seg] == '.') {
                o = seg;
            } else if (len == 2 && out[seg] == '.' && out[seg + 1] == '.') {
                return 400;
            } else {
                out[o++] = '/';
            }
            seg = o;
            continue;
        }
        if (ch == '\\')
            return 400;
        out[o++] = ch;
    }
    if (o > 0 && out[o - 1] == '/')
        o--;
    if (o == 0)
        out[o++] = '.';
    out[o] = 0;
    return 0;
}

struct open_job {
    int root_fd;
    const char *path;
    int fd;     /* out */
    off_t size; /* out */
    bool index; /* out: a directory's index.html */
};

/* Without openat2: open path ("a/b/c", no "." or ".." segment but a lone
 * "." for the root itself: root_path) one segment at a time under dir_fd,
 * following no symlink. A symlink on the way fails with ELOOP, as the last
 * segment's O_NOFOLLOW does (the caller's 403). */
static int open_walk(int dir_fd, const char *path)
{
    int dfd = dir_fd;
    for (;;) {
        const char *slash = strchr(path, '/');
        size_t len = slash ? (size_t)(slash - path) : strlen(path);
        char seg[NAME_MAX + 1];
        int fd = -1, e = ENAMETOOLONG;
        if (len <= NAME_MAX) {
            memcpy(seg, path, len);
            seg[len] = 0;
            fd = openat(dfd, seg, slash ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
                                        : O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
            e = errno;
            struct stat st;
            if (fd < 0 && e == ENOTDIR && fstatat(dfd, seg, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(st.st_mode))
                e = ELOOP; /* a symlink where a directory was wanted */
        }
        if (dfd != dir_fd)
            close(dfd);
        if (fd < 0) {
            errno = e;
            return -1;
        }
        if (slash == NULL)
            return fd;
        dfd = fd;
        path = slash + 1;
    }
}

static int no_openat2; /* atomic: openat2 said ENOSYS once */

static int open_beneath(int root_fd, const char *path)
{
    if (!__atomic_load_n(&no_openat2, __ATOMIC_RELAXED)) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        int fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS)
            return fd;
        __atomic_store_n(&no_openat2, 1, __ATOMIC_RELAXED);
    }
    return open_walk(root_fd, path);
}

/* On a helper: open path under the root, index.html for a directory.
 * Returns 0, or the HTTP status. */
static intptr_t open_fn(void *arg)
{
    struct open_job *j = arg;
    int fd = open_beneath(j->root_fd, j->path);
    struct stat st;
    for (int tries = 0; tries < 2; tries++) {
        if (fd < 0) {
            switch (errno) {
            case ENOENT: case ENOTDIR: case ENAMETOOLONG: return 404;
            case EXDEV: case ELOOP: case EACCES: case EPERM: return 403;
            default: return 500;
            }
        }
        if (fstat(fd, &st) < 0) {
            close(fd);
            return 500;
        }
        if (S_ISREG(st.st_mode)) {
            j->fd = fd;
            j->size = st.st_size;
            return 0;
        }
        if (!S_ISDIR(st.st_mode) || tries == 1)
            break;
        int dfd = fd; /* a directory: its index.html */
        fd = open_beneath(dfd, "index.html");
        int e = errno; /* a successful close may change it */
        j->index = true;
        close(dfd);
        errno = e;
    }
    if (fd >= 0)
        close(fd);
    return 404;
}

struct read_job {
    int fd;
    char *buf;
    size_t len;
    off_t off;
};

static intptr_t read_fn(void *arg)
{
    struct read_job *j = arg;
    ssize_t n = pread(j->fd, j->buf, j->len, j->off);
    return n < 0 ? -errno : n;
}

static intptr_t close_fn(void *arg)
{
    return close((int)(intptr_t)arg);
}

static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".htm", "text/html; charset=utf-8" },
        { ".txt", "text/plain; charset=utf-8" }, { ".css", "text/css" },
        { ".js", "text/javascript" },            { ".json", "application/json" },
        { ".png", "image/png" },                 { ".jpg", "image/jpeg" },
        { ".gif", "image/gif" },                 { ".svg", "image/svg+xml" },
    };
    const char *dot = strrchr(path, '.');
    if (dot != NULL && strchr(dot, '/') == NULL)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

bool http_static(struct http_conn *c, const struct http_req *r, const char *target,
                 size_t tlen, bool keep)
{
    bool head = r->method == HTTP_HEAD;
    char *path = malloc(tlen + 2);
    if (path == NULL)
        return false;
    int st = root_path(target, tlen, path);
    struct open_job oj = { .root_fd = c->srv->root_fd, .path = path, .fd = -1 };
    if (st == 0)
        st = (int)goro_blocking(open_fn, &oj);
    if (st != 0) {
        char b[64];
        int n = snprintf(b, sizeof b, "%s\n", http_reason(st));
        free(path);
        /* a path we refuse closes the connection; a missing file does not */
        bool k = keep && st == 404;
        return http_respond(c, st, "text/plain", b, (size_t)n, (uint64_t)n, head, k) && k;
    }
    const char *ctype = oj.index ? "text/html; charset=utf-8" : content_type(path);
    bool ok = http_respond(c, 200, ctype, NULL, 0, (uint64_t)oj.size, true, keep);
    free(path);
    char *buf = NULL;
    if (ok && !head && oj.size > 0) {
        buf = malloc(CHUNK);
        ok = buf != NULL && http_flush(c);
        /* the response as a whole gets write_ns from now */
        if (ok)
            goro_fd_deadline(c->fd, c->deadline, goro_now() + c->srv->write_ns);
        for (off_t off = 0; ok && off < oj.size;) {
            struct read_job rj = { oj.fd, buf, CHUNK, off };
            intptr_t n = goro_blocking(read_fn, &rj);
            if (n <= 0) { /* the file shrank or failed: the length is a lie now */
                ok = false;
                break;
            }
            ok = goro_write(c->fd, buf, (size_t)n) >= 0;
            off += n;
        }
    }
    free(buf);
    goro_blocking(close_fn, (void *)(intptr_t)oj.fd);
    return ok && keep;
}
