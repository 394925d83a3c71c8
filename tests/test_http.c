/*
 * test_http.c - examples/http against well-formed, malformed and hostile
 * clients: keep-alive, pipelining, HTTP/1.0, bodies (Content-Length and
 * chunked), bad request lines and headers, header floods, huge
 * Content-Length, slow byte-by-byte clients, half-closed sockets, 10,000
 * connections opened and dropped, static files and escapes from the root,
 * graceful stop; and the binary itself under SIGTERM.
 *
 * The server runs in this process (the test links examples/http's files
 * but main.c), so each test ends by checking that every goroutine and fd
 * the server took came back: goro_stats and /proc/self/fd against the
 * counts taken before it started.
 */
#include "servers.h"

#include "../examples/http/http.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- a server in this process -------------------------------------------- */

struct run {
    struct http_server s;
    goro_wg done;
    uint64_t base_g;
    int base_fd;
};

static void serve_g(void *arg)
{
    struct run *r = arg;
    http_serve(&r->s);
    goro_wg_done(&r->done);
}

static struct run *start(void (*cfg)(struct http_server *))
{
    struct run *r = calloc(1, sizeof *r);
    r->base_g = alive_now();
    r->base_fd = count_fds();
    http_server_init(&r->s);
    r->s.port = 0;
    if (cfg != NULL)
        cfg(&r->s);
    if (r->s.root != NULL)
        CHECK(http_root_open(&r->s) == 0, "root %s", r->s.root);
    int rc = http_listen(&r->s);
    CHECK(rc == 0, "listen: %s", strerror(-rc));
    goro_wg_init(&r->done);
    goro_wg_add(&r->done, 1);
    goro_go(serve_g, r);
    return r;
}

/* Wait (2 s at most) until the server has no connection left, and check
 * that it holds nothing but its serving goroutine and its listener. */
static void check_idle(struct run *r)
{
    int want_fd = r->base_fd + 1 + (r->s.root_fd >= 0); /* the listener, the root */
    settle_at(r->base_g + 1, want_fd, &r->s.nconns, "idle");
}

/* Stop it and check that everything came back. */
static void stop(struct run *r)
{
    http_shutdown(&r->s);
    goro_wg_wait(&r->done);
    settle_at(r->base_g, r->base_fd, NULL, "after stop");
    free(r);
}

/* ---- a client -------------------------------------------------------------- */

struct resp {
    int status;
    long clen;
    bool close;        /* Connection: close */
    bool keep;         /* Connection: keep-alive */
    char head[2048];
    char *body;        /* malloc'd, clen bytes */
};

#define dial(r) dial_port((r)->s.port)

static void send_str(struct client *c, const char *s)
{
    ssize_t n = goro_write(c->fd, s, strlen(s));
    CHECK(n == (ssize_t)strlen(s), "write: %zd", n);
}

/* More bytes into c->buf: false at EOF or error. */
static bool more(struct client *c)
{
    if (c->len == sizeof c->buf)
        return false;
    ssize_t n = goro_read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

static void take(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Read one response (no body for HEAD). 0, or -1 at EOF before it. */
static int read_resp(struct client *c, struct resp *r, bool head_req)
{
    memset(r, 0, sizeof *r);
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (!more(c))
            return -1;
    size_t hl = (size_t)(end - c->buf) + 4;
    memcpy(r->head, c->buf, hl < sizeof r->head ? hl : sizeof r->head - 1);
    take(c, hl);
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    r->clen = cl ? strtol(cl + 18, NULL, 10) : 0;
    r->close = strcasestr(r->head, "\r\nConnection: close\r\n") != NULL;
    r->keep = strcasestr(r->head, "\r\nConnection: keep-alive\r\n") != NULL;
    if (head_req)
        return 0;
    r->body = malloc((size_t)r->clen + 1);
    size_t got = 0;
    while (got < (size_t)r->clen) {
        if (c->len == 0 && !more(c))
            return -1;
        size_t d = c->len < (size_t)r->clen - got ? c->len : (size_t)r->clen - got;
        memcpy(r->body + got, c->buf, d);
        take(c, d);
        got += d;
    }
    r->body[got] = 0;
    return 0;
}

/* The server closed the connection (EOF or reset), within 2 s. */

/* One request on a new connection: the response's status, and whether the
 * server then closed. */
static int one_shot(struct run *r, const char *req, bool *closed)
{
    struct client *c = dial(r);
    send_str(c, req);
    struct resp rs;
    int st = read_resp(c, &rs, false) == 0 ? rs.status : -1;
    free(rs.body);
    if (closed != NULL)
        *closed = at_eof(c);
    hangup(c);
    return st;
}

#define GET_ROOT "GET / HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- keep-alive, HEAD, 404, 405, HTTP/1.0 ------------------------------- */

static void basics_main(void *arg)
{
    struct run *r = start(NULL);
    struct client *c = dial(r);
    struct resp rs;
    for (int i = 0; i < 3; i++) {
        send_str(c, GET_ROOT);
        CHECK(read_resp(c, &rs, false) == 0, "response %d", i);
        CHECK(rs.status == 200 && rs.clen == 17 && strcmp(rs.body, "Hello from goro!\n") == 0,
              "GET /: %d %s", rs.status, rs.body);
        CHECK(!rs.close, "keep-alive by default in HTTP/1.1");
        free(rs.body);
    }
    send_str(c, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(read_resp(c, &rs, true) == 0 && rs.status == 200 && rs.clen == 17, "HEAD");
    send_str(c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 404, "404: %d", rs.status);
    free(rs.body);
    send_str(c, "DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 405 &&
          strstr(rs.head, "\r\nAllow: GET, HEAD\r\n") != NULL, "405: %d", rs.status);
    free(rs.body);
    /* the connection survived all of that; HEAD sent no body */
    send_str(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200 && rs.close, "close asked");
    free(rs.body);
    CHECK(at_eof(c), "open after Connection: close");
    hangup(c);

    /* HTTP/1.0: close unless asked; with keep-alive asked, said back */
    c = dial(r);
    send_str(c, "GET / HTTP/1.0\r\n\r\n");
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200 && rs.close, "1.0");
    free(rs.body);
    CHECK(at_eof(c), "HTTP/1.0 left open");
    hangup(c);
    c = dial(r);
    send_str(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200 && rs.keep, "1.0 keep-alive");
    free(rs.body);
    send_str(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200, "1.0 keep-alive, second");
    free(rs.body);
    hangup(c);
    check_idle(r);
    stop(r);
}

Test(http, keepalive_head_404_405_http10, .timeout = 20)
{
    run_on(2, basics_main, NULL);
    CHECKS_PASSED();
}

/* ---- pipelining: 200 requests in one write, answers in order ------------ */

static void pipeline_main(void *arg)
{
    struct run *r = start(NULL);
    struct client *c = dial(r);
    char *batch = malloc(200 * 64);
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(batch + n, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", i % 3 == 2 ? "/x" : "/");
    CHECK(goro_write(c->fd, batch, n) == (ssize_t)n, "write batch");
    for (int i = 0; i < 200; i++) {
        struct resp rs;
        CHECK(read_resp(c, &rs, false) == 0, "response %d", i);
        CHECK(rs.status == (i % 3 == 2 ? 404 : 200), "response %d: %d", i, rs.status);
        free(rs.body);
    }
    free(batch);
    hangup(c);
    check_idle(r);
    stop(r);
}

Test(http, pipelining_200_in_order, .timeout = 20)
{
    run_on(2, pipeline_main, NULL);
    CHECKS_PASSED();
}

/* ---- bodies ---------------------------------------------------------------- */

static void bodies_main(void *arg)
{
    struct run *r = start(NULL);
    struct resp rs;
    /* a Content-Length body and a chunked one are dropped, and the request
     * after each is still found */
    struct client *c = dial(r);
    send_str(c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world" GET_ROOT);
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 405, "POST: %d", rs.status);
    free(rs.body);
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200, "after a body: %d", rs.status);
    free(rs.body);
    send_str(c, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n" GET_ROOT);
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 405, "chunked POST: %d", rs.status);
    free(rs.body);
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200, "after chunked: %d", rs.status);
    free(rs.body);
    /* a body that arrives in pieces */
    send_str(c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
    goro_sleep(20 * MS);
    send_str(c, "56789" GET_ROOT);
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 405, "split body");
    free(rs.body);
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200, "after split body");
    free(rs.body);
    hangup(c);

    bool closed;
    CHECK(one_shot(r, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &closed) == 400 && closed,
          "CL and TE together");
    CHECK(one_shot(r, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "zz\r\nhello\r\n0\r\n\r\n", &closed) == 400 && closed, "bad chunk size");
    CHECK(one_shot(r, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhelloXX0\r\n\r\n", &closed) == 400 && closed, "no CRLF after chunk");
    CHECK(one_shot(r, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999\r\n\r\n",
                   &closed) == 413 && closed, "huge Content-Length");
    CHECK(one_shot(r, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n", &closed) == 413,
          "Content-Length one past the limit");
    CHECK(one_shot(r, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "FFFFFFFFFFFFFFFF\r\n", &closed) == 413 && closed, "huge chunk");
    CHECK(one_shot(r, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", &closed) == 501,
          "TE gzip");

    /* a chunked body that passes the limit piece by piece */
    c = dial(r);
    send_str(c, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *chunk = malloc(70000);
    memset(chunk, 'a', 70000);
    memcpy(chunk, "10000\r\n", 7);
    int sent = 0;
    for (; sent < 20; sent++) { /* 20 x 64 KiB > 1 MiB */
        memcpy(chunk + 7 + 65536, "\r\n", 2);
        if (goro_write(c->fd, chunk, 7 + 65536 + 2) < 0)
            break;
    }
    free(chunk);
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 413, "chunked over the limit: %d", rs.status);
    free(rs.body);
    hangup(c);
    check_idle(r);
    stop(r);
}

Test(http, bodies_length_chunked_limits, .timeout = 20)
{
    run_on(2, bodies_main, NULL);
    CHECKS_PASSED();
}

/* ---- malformed heads: status, then the connection closes ---------------- */

static const struct {
    const char *req;
    int status;
} bad[] = {
    { "GARBAGE\r\n\r\n", 400 },
    { "GET\r\n\r\n", 400 },
    { "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400 },
    { "GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400 },
    { "GET / FTP/1.1\r\nHost: t\r\n\r\n", 400 },
    { "G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400 },
    { "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505 },
    { "GET / HTTP/1.1\r\n\r\n", 400 },                           /* no Host */
    { "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },      /* two */
    { "GET / HTTP/1.1\nHost: t\r\n\r\n", 400 },                  /* bare LF */
    { "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400 },               /* space before colon */
    { "GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400 },     /* obs-fold */
    { "GET / HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400 },
    { "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
    { "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501 },
};

static void malformed_main(void *arg)
{
    struct run *r = start(NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool closed = false;
        int st = one_shot(r, bad[i].req, &closed);
        CHECK(st == bad[i].status && closed, "request %zu: %d (want %d), closed %d", i, st,
              bad[i].status, closed);
    }
    /* a target over 2 KiB: 414 */
    char *req = malloc(4000);
    strcpy(req, "GET /");
    memset(req + 5, 'a', 2100);
    strcpy(req + 2105, " HTTP/1.1\r\nHost: t\r\n\r\n");
    bool closed;
    CHECK(one_shot(r, req, &closed) == 414 && closed, "long target");
    free(req);
    /* a header flood: 101 header lines (431), and a head over 8 KiB (431) */
    req = malloc(64 << 10);
    size_t n = (size_t)sprintf(req, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t)sprintf(req + n, "X-%d: y\r\n", i);
    strcpy(req + n, "\r\n");
    CHECK(one_shot(r, req, &closed) == 431 && closed, "101 headers");
    n = (size_t)sprintf(req, "GET / HTTP/1.1\r\nHost: t\r\n");
    while (n < 40000)
        n += (size_t)sprintf(req + n, "X-Flood: %0100d\r\n", 7);
    strcpy(req + n, "\r\n");
    CHECK(one_shot(r, req, &closed) == 431 && closed, "40 KB head");
    free(req);
    /* binary junk with NULs */
    struct client *c = dial(r);
    char junk[600];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7919 % 256);
    memcpy(junk + sizeof junk - 4, "\r\n\r\n", 4);
    goro_write(c->fd, junk, sizeof junk);
    struct resp rs;
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 400, "junk: %d", rs.status);
    free(rs.body);
    CHECK(at_eof(c), "junk: not closed");
    hangup(c);
    /* and the server still answers */
    CHECK(one_shot(r, GET_ROOT, NULL) == 200, "alive after the abuse");
    check_idle(r);
    stop(r);
}

Test(http, malformed_and_floods, .timeout = 30)
{
    run_on(2, malformed_main, NULL);
    CHECKS_PASSED();
}

/* ---- slow clients, deadlines, half-closed sockets ---------------------- */

/* read_ns well below idle_ns, so that a slow request is cut by its own
 * deadline and not by the idle one left from before its first byte */
static void short_deadlines(struct http_server *s)
{
    s->idle_ns = 1200 * MS;
    s->read_ns = 300 * MS;
}

static void slow_main(void *arg)
{
    struct run *r = start(short_deadlines);
    /* byte by byte, 2 ms apart (~60 ms): within read_ns, answered */
    struct client *c = dial(r);
    const char *req = GET_ROOT;
    for (const char *p = req; *p; p++) {
        CHECK(goro_write(c->fd, p, 1) == 1, "byte");
        goro_sleep(2 * MS);
    }
    struct resp rs;
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200, "byte by byte: %d", rs.status);
    free(rs.body);
    /* the same connection idles past idle_ns: closed */
    int64_t t0 = goro_now();
    CHECK(at_eof(c), "idle connection not closed");
    int64_t idle = goro_now() - t0;
    CHECK(idle >= 900 * MS && idle < 2500 * MS, "idle close after %lld ms", (long long)(idle / MS));
    hangup(c);

    /* slowloris: a header byte every 50 ms never completes within read_ns */
    c = dial(r);
    send_str(c, "GET / HTTP/1.1\r\n");
    t0 = goro_now();
    bool cut = false;
    for (int i = 0; i < 100 && !cut; i++) {
        if (goro_write(c->fd, "X", 1) < 0)
            cut = true;
        char b[256];
        if (goro_wait_fd(c->fd, GORO_READABLE, 50 * MS) == 0 && goro_read(c->fd, b, sizeof b) <= 0)
            cut = true;
    }
    int64_t took = goro_now() - t0;
    CHECK(cut && took < 900 * MS, "slowloris held on for %lld ms", (long long)(took / MS));
    hangup(c);

    /* half-closed: request, then SHUT_WR; the answer comes, then EOF */
    c = dial(r);
    send_str(c, GET_ROOT);
    shutdown(c->fd, SHUT_WR);
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200, "half-closed: %d", rs.status);
    free(rs.body);
    CHECK(at_eof(c), "half-closed: not closed");
    hangup(c);
    /* half-closed with nothing sent, and mid-head */
    c = dial(r);
    shutdown(c->fd, SHUT_WR);
    CHECK(at_eof(c), "empty half-close");
    hangup(c);
    c = dial(r);
    send_str(c, "GET / HTTP/1.1\r\nHo");
    shutdown(c->fd, SHUT_WR);
    CHECK(at_eof(c), "mid-head half-close");
    hangup(c);
    check_idle(r);
    stop(r);
}

Test(http, slow_clients_deadlines_half_close, .timeout = 20)
{
    run_on(2, slow_main, NULL);
    CHECKS_PASSED();
}

/* ---- 10,000 connections opened and dropped ----------------------------- */

/* each a client and a server goroutine alive at once: fewer under
 * ThreadSanitizer (util.h, TSAN_ALIVE) */
#define WAVE (TSAN_ALIVE(10000) / 2)
#define WAVES 2

struct dropper {
    struct run *r;
    goro_wg *opened, *go, *done;
    int kind;
};

static void dropper(void *arg)
{
    struct dropper *d = arg;
    int fd = goro_dial_tcp("127.0.0.1", d->r->s.port, 10 * SEC);
    goro_wg_done(d->opened);
    goro_wg_wait(d->go); /* all open at once, then all dropped */
    if (fd >= 0) {
        switch (d->kind % 4) {
        case 0: break;                                                 /* nothing */
        case 1: goro_write(fd, "GET / HTTP/1.1\r\nHo", 18); break;      /* half a head */
        case 2: goro_write(fd, GET_ROOT, sizeof GET_ROOT - 1); break;  /* never read */
        case 3: { /* reset instead of FIN */
            struct linger l = { 1, 0 };
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            goro_write(fd, "GET /", 5);
            break;
        }
        }
        goro_close(fd);
    }
    goro_wg_done(d->done);
}

static void many_main(void *arg)
{
    struct run *r = start(NULL);
    /* static: goroutines must not point into a stack that may move (README rule 5) */
    static struct dropper ds[WAVE];
    static goro_wg opened, go, done;
    int64_t t0 = goro_now();
    for (int w = 0; w < WAVES; w++) {
        goro_wg_init(&opened);
        goro_wg_init(&go);
        goro_wg_init(&done);
        goro_wg_add(&opened, WAVE);
        goro_wg_add(&go, 1);
        goro_wg_add(&done, WAVE);
        for (int i = 0; i < WAVE; i++) {
            ds[i] = (struct dropper){ r, &opened, &go, &done, i };
            CHECK(goro_go(dropper, &ds[i]) == 0, "spawn");
        }
        goro_wg_wait(&opened);
        goro_wg_done(&go);
        goro_wg_wait(&done);
    }
    test_note("http: %d connections opened and dropped in %lld ms", WAVE * WAVES,
              (long long)((goro_now() - t0) / MS));
    CHECK(one_shot(r, GET_ROOT, NULL) == 200, "alive after 10,000 drops");
    check_idle(r);
    CHECK(r->s.accepted >= WAVE * WAVES, "accepted %ld", r->s.accepted);
    stop(r);
}

Test(http, ten_thousand_connections_dropped, .timeout = 60)
{
    run_on(2, many_main, NULL);
    CHECKS_PASSED();
}

/* ---- static files ---------------------------------------------------------- */

static char root_dir[64], outside[64];

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fwrite(data, 1, n, f);
    fclose(f);
}

static void make_tree(void)
{
    char p[256];
    strcpy(root_dir, "/tmp/goro-http-root-XXXXXX");
    cr_assert_not_null(mkdtemp(root_dir));
    strcpy(outside, "/tmp/goro-http-out-XXXXXX");
    cr_assert_not_null(mkdtemp(outside));
    snprintf(p, sizeof p, "%s/secret.txt", outside);
    write_file(p, "top secret\n", 11);
    snprintf(p, sizeof p, "%s/index.html", root_dir);
    write_file(p, "<p>root</p>\n", 12);
    snprintf(p, sizeof p, "%s/sub", root_dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/a b.txt", root_dir);
    write_file(p, "spaced\n", 7);
    char *big = malloc(3 << 20);
    for (int i = 0; i < 3 << 20; i++)
        big[i] = (char)('a' + i % 26);
    snprintf(p, sizeof p, "%s/big.bin", root_dir);
    write_file(p, big, 3 << 20);
    free(big);
    char t[256];
    snprintf(p, sizeof p, "%s/in.txt", root_dir);
    cr_assert_eq(symlink("sub/a b.txt", p), 0);               /* stays inside */
    snprintf(p, sizeof p, "%s/out.txt", root_dir);
    snprintf(t, sizeof t, "%s/secret.txt", outside);
    cr_assert_eq(symlink(t, p), 0);                           /* absolute, out */
    snprintf(p, sizeof p, "%s/up", root_dir);
    snprintf(t, sizeof t, "../%s", outside + 5);
    cr_assert_eq(symlink(t, p), 0);                           /* relative dir, out */
}

static void remove_tree(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", root_dir, outside);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed: %s\n", cmd);
}

static void with_root(struct http_server *s)
{
    s->root = root_dir;
}

static const struct {
    const char *target;
    int status;
    const char *body; /* NULL: not checked */
} files[] = {
    { "/", 200, "<p>root</p>\n" },
    { "/index.html", 200, "<p>root</p>\n" },
    { "/sub/a%20b.txt", 200, "spaced\n" },
    { "/sub/./a%20b.txt?x=1", 200, "spaced\n" },
    { "//sub//a%20b.txt", 200, "spaced\n" },
    { "/in.txt", 200, "spaced\n" },
    { "/nope", 404, NULL },
    { "/sub/", 404, NULL },          /* a directory without index.html */
    { "/../secret.txt", 400, NULL },
    { "/sub/../../secret.txt", 400, NULL },
    { "/%2e%2e/secret.txt", 400, NULL },
    { "/%2E%2e%2fsecret.txt", 400, NULL },
    { "/sub/..%2f..%2fsecret.txt", 400, NULL },
    { "/out.txt", 403, NULL },       /* symlinks that leave the root */
    { "/up/secret.txt", 403, NULL },
    { "/a%00b", 400, NULL },
    { "/bad%zz", 400, NULL },
    { "/sub\\..\\x", 400, NULL },
};

/* arg non-NULL: openat2 is refused (ENOSYS), so the server walks paths
 * itself (static.c, open_walk), which refuses every symlink */
static void static_main(void *arg)
{
    bool walk = arg != NULL;
    struct run *r = start(with_root);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int want = files[i].status;
        const char *want_body = files[i].body;
        if (walk && strcmp(files[i].target, "/in.txt") == 0)
            want = 403, want_body = NULL;
        struct client *c = dial(r);
        char req[512];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", files[i].target);
        send_str(c, req);
        struct resp rs;
        CHECK(read_resp(c, &rs, false) == 0, "%s: no response", files[i].target);
        CHECK(rs.status == want, "%s: %d, want %d", files[i].target, rs.status, want);
        CHECK(want_body == NULL || (rs.body && strcmp(rs.body, want_body) == 0),
              "%s: body %s", files[i].target, rs.body ? rs.body : "(none)");
        CHECK(rs.body == NULL || strstr(rs.body, "secret") == NULL, "%s leaked the secret",
              files[i].target);
        free(rs.body);
        hangup(c);
    }
    /* 3 MiB through 64 KiB pieces, then HEAD of it, on one connection */
    struct client *c = dial(r);
    send_str(c, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\nHEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    struct resp rs;
    CHECK(read_resp(c, &rs, false) == 0 && rs.status == 200 && rs.clen == 3 << 20, "big: %d %ld",
          rs.status, rs.clen);
    bool same = rs.body != NULL;
    for (long i = 0; same && i < rs.clen; i++)
        same = rs.body[i] == (char)('a' + i % 26);
    CHECK(same, "big.bin came back different");
    free(rs.body);
    CHECK(read_resp(c, &rs, true) == 0 && rs.status == 200 && rs.clen == 3 << 20, "HEAD big");
    CHECK(strstr(rs.head, "application/octet-stream") != NULL, "type: %.200s", rs.head);
    hangup(c);
    check_idle(r);
    stop(r);
}

Test(http, static_files_and_escapes, .timeout = 30)
{
    make_tree();
    run_on(2, static_main, NULL);
    remove_tree();
    CHECKS_PASSED();
}

/* openat2 made to fail with ENOSYS for every thread of this test's
 * process (a seccomp filter), as on kernels before 5.6 and under
 * Valgrind 3.19: the same files, the same escapes refused. */
static void refuse_openat2(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    cr_assert_eq(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog),
                 0, "seccomp: %s", strerror(errno));
    struct open_how how = { .flags = O_RDONLY };
    cr_assert(syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how) < 0 && errno == ENOSYS);
}

Test(http, static_files_and_escapes_without_openat2, .timeout = 30)
{
    make_tree();
    refuse_openat2();
    run_on(2, static_main, (void *)1);
    remove_tree();
    CHECKS_PASSED();
}

/* ---- graceful stop: in-flight requests finish, idle connections go ---- */

static void graceful_main(void *arg)
{
    struct run *r = start(NULL);
    struct client *idle = dial(r), *busy = dial(r);
    struct resp rs;
    send_str(idle, GET_ROOT);
    CHECK(read_resp(idle, &rs, false) == 0 && rs.status == 200, "idle's first");
    free(rs.body);
    send_str(busy, "GET / HTTP/1.1\r\nHo"); /* a request in flight */
    goro_sleep(50 * MS);
    http_shutdown(&r->s);
    int64_t t0 = goro_now();
    CHECK(at_eof(idle), "idle connection kept after stop");
    CHECK(goro_now() - t0 < 500 * MS, "idle cut after %lld ms", (long long)((goro_now() - t0) / MS));
    goro_sleep(100 * MS);
    CHECK(goro_dial_tcp("127.0.0.1", r->s.port, SEC) < 0, "still accepting after stop");
    send_str(busy, "st: t\r\n\r\n");
    CHECK(read_resp(busy, &rs, false) == 0 && rs.status == 200 && rs.close,
          "in-flight request: %d, close %d", rs.status, rs.close);
    free(rs.body);
    CHECK(at_eof(busy), "busy connection kept after its answer");
    hangup(idle);
    hangup(busy);
    goro_wg_wait(&r->done);
    http_shutdown(&r->s); /* idempotent */
    stop(r);
}

Test(http, graceful_stop, .timeout = 20)
{
    run_on(2, graceful_main, NULL);
    CHECKS_PASSED();
}

/* ---- the binary: listening line, a request, SIGTERM, exit 0 ------------ */

Test(http, binary_sigterm_exits_0, .timeout = 20)
{
    struct binary bin = binary_start(EXAMPLES_DIR "/http/http", "http");
    int port = bin.port;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && "
                              "grep -q 'Hello from goro' <&3", port);
    char *argv[] = { "bash", "-c", cmd, NULL };
    pid_t sh = fork();
    if (sh == 0) {
        execv("/bin/bash", argv);
        _exit(127);
    }
    int st;
    waitpid(sh, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "GET / through bash failed");
    binary_stop(&bin, "answered 1 requests");
}
