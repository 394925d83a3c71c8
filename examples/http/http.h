/*
 * examples/http/http.h - the pieces of the HTTP/1.1 server and how they fit.
 *
 *   main.c     options, signals, goro_run
 *   server.c   the listener, the set of open connections, graceful stop
 *   conn.c     one goroutine per connection: read, parse, answer, repeat
 *   parse.c    the request head (RFC 9112) and chunked bodies, no I/O
 *   static.c   files under a root directory, read on goro_blocking helpers
 *
 * Nothing here is global: a struct http_server holds the settings and the
 * state, so tests can run several servers in one process and check that
 * each one gave back every goroutine and fd it took.
 */
#ifndef EXAMPLES_HTTP_H
#define EXAMPLES_HTTP_H

#include <goro.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_SEC ((int64_t)1000000000)

struct http_conn;

struct http_server {
    /* settings: http_server_init fills in defaults, change before listen */
    const char *addr;   /* listen address (default 127.0.0.1) */
    int port;           /* 0: a free one; http_listen stores the bound one */
    const char *root;   /* static files under this directory; NULL: only GET / */
    size_t head_max;    /* request line + headers: 431 beyond (default 8 KiB) */
    size_t target_max;  /* request target: 414 beyond (default 2 KiB) */
    int headers_max;    /* header lines: 431 beyond (default 100) */
    uint64_t body_max;  /* request body, either framing: 413 beyond (1 MiB) */
    int64_t idle_ns;    /* keep-alive wait for a next request (30 s) */
    int64_t read_ns;    /* a started request must arrive whole in this (10 s) */
    int64_t write_ns;   /* one response's write (30 s) */
    int64_t grace_ns;   /* stop: in-flight requests get this long (10 s) */

    /* state */
    int listen_fd;
    int root_fd;             /* O_PATH fd of root, or -1 */
    int stopping;            /* __atomic, seq_cst: see server.c */
    goro_mutex mu;           /* protects conns, nconns */
    goro_cond drained;       /* signalled when nconns reaches 0 */
    struct http_conn *conns; /* open connections, a doubly-linked list */
    long nconns;
    long requests;           /* answered, __atomic relaxed: a statistic */
    long accepted;           /* __atomic relaxed */
};

/* Per-connection record; conn.c owns it, server.c links it. */
struct http_conn {
    struct http_conn *prev, *next; /* in server->conns, under server->mu */
    struct http_server *srv;
    int fd;
    int idle;                /* __atomic seq_cst: parked waiting for a next request */
    int64_t deadline;        /* the read deadline last given to goro_fd_deadline */
    int64_t req_start;       /* when the request being read began */
    size_t start, len;       /* unconsumed input is in[start, len) */
    size_t olen;             /* buffered output */
    char date[40];           /* "Date: ...\r\n" for date_sec */
    int64_t date_sec;
    char *in;                /* head_max bytes */
    char out[16 << 10];
};

/* server.c */
void http_server_init(struct http_server *s);
int http_listen(struct http_server *s);        /* 0 or -errno (open the root first) */
int http_serve(struct http_server *s);         /* accept until http_shutdown, then drain */
void http_shutdown(struct http_server *s);     /* any goroutine; idempotent */
bool http_stopping(struct http_server *s);
int http_conn_enter(struct http_server *s, struct http_conn *c); /* 0, or -ECANCELED when stopping */
void http_conn_leave(struct http_server *s, struct http_conn *c);
void http_conn_busy_again(struct http_server *s, struct http_conn *c);

/* conn.c */
void http_conn_serve(void *arg); /* arg: (void *)(intptr_t)fd with the server in a struct */
struct http_accept { struct http_server *srv; int fd; };

/* parse.c */
enum http_method { HTTP_GET, HTTP_HEAD, HTTP_OTHER };

struct http_req {
    enum http_method method;
    const char *target;      /* into the input buffer: valid until the next read */
    size_t target_len;
    int minor;               /* HTTP/1.minor: 0 or 1 */
    bool keep_alive;         /* what the client asked for (RFC 9112 9.3) */
    bool chunked;            /* Transfer-Encoding: chunked */
    int64_t content_length;  /* -1: none */
};

/* Parse the head in buf[0, len), which ends with the blank line. 0, or the
 * HTTP status to refuse it with (400, 414, 431, 501, 505). */
int http_parse_head(const struct http_server *s, const char *buf, size_t len,
                    struct http_req *r);

struct http_chunked {
    int state;
    uint64_t left;   /* bytes left in this chunk's data */
    uint64_t total;  /* data bytes so far */
    size_t line;     /* length of the size or trailer line so far */
    bool done;
};
/* Feed body bytes; returns how many were consumed (all of them unless the
 * body ended), or -400 (malformed) or -413 (over body_max). */
ssize_t http_chunked_feed(struct http_chunked *c, const char *p, size_t n, uint64_t body_max);

/* static.c */
int http_root_open(struct http_server *s);  /* s->root_fd from s->root: 0 or -errno;
                                               http_serve closes it when it returns */
/* Answer GET or HEAD of target from the root: false means the connection
 * must close (a write failed). */
bool http_static(struct http_conn *c, const struct http_req *r, const char *target,
                 size_t target_len, bool keep);

/* conn.c, for static.c */
bool http_flush(struct http_conn *c);
bool http_respond(struct http_conn *c, int status, const char *ctype, const char *body,
                  size_t blen, uint64_t content_length, bool head_only, bool keep);
const char *http_reason(int status);

#endif
