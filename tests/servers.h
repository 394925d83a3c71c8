/* tests/servers.h - what test_http and test_kv share: counting this
 * process's fds, waiting for goroutines and fds to come back to a
 * baseline, a plain TCP client, and an example binary run with -p 0 that
 * prints "NAME: listening on 127.0.0.1 port N" and stops on SIGTERM. */
#ifndef GORO_TEST_SERVERS_H
#define GORO_TEST_SERVERS_H

#include "goro_check.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS ((int64_t)1000000)
#define SEC ((int64_t)1000000000)

static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own fd */
}

/* Wait (2 s at most) until `goroutines` are alive and `fds` open, and
 * *busy (may be NULL) is 0; then check all three. */
static inline void settle_at(uint64_t goroutines, int fds, volatile long *busy, const char *when)
{
    int64_t until = goro_now() + 2 * SEC;
    while (goro_now() < until &&
           (alive_now() != goroutines || count_fds() != fds || (busy && *busy != 0)))
        goro_sleep(5 * MS);
    if (busy)
        CHECK(*busy == 0, "%s: %ld connections still open", when, *busy);
    CHECK(alive_now() == goroutines, "%s: %llu goroutines, want %llu", when,
          (unsigned long long)alive_now(), (unsigned long long)goroutines);
    CHECK(count_fds() == fds, "%s: %d fds, want %d", when, count_fds(), fds);
}

/* ---- a client ------------------------------------------------------------ */

struct client {
    int fd;
    size_t len;
    char buf[1 << 16];
};

static inline struct client *dial_port(int port)
{
    struct client *c = calloc(1, sizeof *c);
    c->fd = goro_dial_tcp("127.0.0.1", port, 2 * SEC);
    CHECK(c->fd >= 0, "dial: %s", strerror(-c->fd));
    if (c->fd >= 0)
        goro_fd_deadline(c->fd, goro_now() + 10 * SEC, goro_now() + 10 * SEC);
    return c;
}

static inline void hangup(struct client *c)
{
    if (c->fd >= 0)
        goro_close(c->fd);
    free(c);
}

/* The server closed (or reset) the connection within 2 s. */
static inline bool at_eof(struct client *c)
{
    goro_fd_deadline(c->fd, goro_now() + 2 * SEC, 0);
    char b[256];
    for (;;) {
        ssize_t n = goro_read(c->fd, b, sizeof b);
        if (n == 0 || n == -ECONNRESET)
            return true;
        if (n < 0)
            return false;
    }
}

/* ---- an example binary --------------------------------------------------- */

struct binary {
    pid_t pid;
    FILE *out; /* its standard output, after the listening line */
    int port;
};

static inline struct binary binary_start(const char *path, const char *name)
{
    struct binary b = { -1, NULL, 0 };
    int po[2];
    cr_assert_eq(pipe(po), 0);
    b.pid = fork();
    cr_assert_geq(b.pid, 0);
    if (b.pid == 0) {
        dup2(po[1], 1);
        close(po[0]);
        execl(path, name, "-p", "0", (char *)NULL);
        _exit(127);
    }
    close(po[1]);
    b.out = fdopen(po[0], "r");
    char line[256] = "", want[64];
    cr_assert_not_null(fgets(line, sizeof line, b.out), "%s printed nothing", path);
    snprintf(want, sizeof want, "%s: listening on 127.0.0.1 port ", name);
    cr_assert(strncmp(line, want, strlen(want)) == 0, "line: %s", line);
    b.port = atoi(line + strlen(want));
    cr_assert_gt(b.port, 0, "line: %s", line);
    return b;
}

/* SIGTERM; it must exit 0 and its last words must contain `bye`. */
static inline void binary_stop(struct binary *b, const char *bye)
{
    kill(b->pid, SIGTERM);
    int st;
    cr_assert_eq(waitpid(b->pid, &st, 0), b->pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    char rest[1024] = "";
    size_t n = fread(rest, 1, sizeof rest - 1, b->out);
    rest[n] = 0;
    cr_assert_not_null(strstr(rest, bye), "%s", rest);
    fclose(b->out);
}

#endif
