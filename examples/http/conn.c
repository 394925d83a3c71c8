/*
 * conn.c - one goroutine per connection: read a request head, parse it,
 * discard its body, answer, repeat.
 *
 * Buffers. Input goes to c->in (head_max bytes); a head that does not fit
 * is 431 and the connection closes, so memory per connection is bounded
 * whatever the client sends. Bodies are never buffered: they are read
 * through c->in and dropped (no handler here takes a body), at most
 * body_max bytes (413 beyond). Responses are appended to c->out and
 * written when the goroutine is about to read again: a pipelined batch
 * that arrived in one read is answered with one write.
 *
 * Deadlines (goro_fd_deadline). Waiting for the first byte of a request:
 * idle_ns. From that byte the whole head and body must arrive within
 * read_ns (slow clients cannot hold a goroutine longer). The write
 * deadline is write_ns past the read deadline. Setting a deadline costs a
 * timer update in the netpoller, so a deadline that is at most 1/8 of its
 * span earlier than wanted is left as it is: with a request every few
 * microseconds, the idle deadline moves about once per idle_ns / 8.
 *
 * HTTP/1.0 (RFC 9112 9.3): the connection closes after the response unless
 * the client sent "Connection: keep-alive", and then the response says
 * "Connection: keep-alive". HTTP/1.1 keeps it unless either side says
 * "close". A stopping server answers the request in flight with
 * "Connection: close".
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static const char hello[] = "Hello from goro!\n";

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

bool http_flush(struct http_conn *c)
{
    if (c->olen == 0)
        return true;
    ssize_t n = goro_write(c->fd, c->out, c->olen);
    c->olen = 0;
    return n >= 0;
}

/* The Date header, formatted once a second per connection. */
static const char *date_header(struct http_conn *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != c->date_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(c->date, sizeof c->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        c->date_sec = ts.tv_sec;
    }
    return c->date;
}

/* Copy n bytes to o; where they end. */
static inline char *put(char *o, const char *src, size_t n)
{
    memcpy(o, src, n);
    return o + n;
}

/* Append a response: the head, and body[0, blen) unless head_only. The
 * head says content_length (for HEAD, the length a GET would have). A body
 * too large for the buffer is written straight after the head. */
bool http_respond(struct http_conn *c, int status, const char *ctype, const char *body,
                  size_t blen, uint64_t content_length, bool head_only, bool keep)
{
    if (c->olen + 512 > sizeof c->out && !http_flush(c))
        return false;
    /* The head by hand: snprintf took 5% of the server's CPU under wrk
     * (its format parsing and stdio's string sink, per request). */
    const char *reason = http_reason(status), *date = date_header(c);
    const char *conn = keep ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    char num[24], *q = num + sizeof num;
    uint64_t v = content_length;
    do
        *--q = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    size_t lr = strlen(reason), ld = strlen(date), lt = strlen(ctype), lc = strlen(conn);
    size_t ln = (size_t)(num + sizeof num - q);
    if (status < 100 || status > 999 || lr + lt > 256)
        return false; /* never: the statuses and types are ours */
    char *o = c->out + c->olen;
    o = put(o, "HTTP/1.1 ", 9);
    o[0] = (char)('0' + status / 100);
    o[1] = (char)('0' + status / 10 % 10);
    o[2] = (char)('0' + status % 10);
    o[3] = ' ';
    o = put(o + 4, reason, lr);
    o = put(o, "\r\nServer: goro\r\n", 16);
    o = put(o, date, ld);
    o = put(o, "Content-Type: ", 14);
    o = put(o, ctype, lt);
    o = put(o, "\r\nContent-Length: ", 18);
    o = put(o, q, ln);
    o = put(o, "\r\n", 2);
    o = put(o, conn, lc);
    c->olen = (size_t)(o - c->out);
    if (head_only || blen == 0)
        return true;
    if (c->olen + blen <= sizeof c->out) {
        memcpy(c->out + c->olen, body, blen);
        c->olen += blen;
        return true;
    }
    return http_flush(c) && goro_write(c->fd, body, blen) >= 0;
}

/* An error answer, plain text; the connection closes after it. */
static void refuse(struct http_conn *c, int status)
{
    char b[64];
    int n = snprintf(b, sizeof b, "%s\n", http_reason(status));
    http_respond(c, status, "text/plain", b, (size_t)n, (uint64_t)n, false, false);
}

/* Give the fd read deadline `want` (and write deadline want + write_ns),
 * unless the one it has is at most slack earlier (see the top). */
static void arm(struct http_conn *c, int64_t want, int64_t span)
{
    if (c->deadline <= want && c->deadline >= want - span / 8)
        return;
    c->deadline = want;
    goro_fd_deadline(c->fd, want, want + c->srv->write_ns);
}

/* Read more input after what is there. idle: no byte of a request yet
 * (wait up to idle_ns, or not at all when the server is stopping);
 * otherwise the request that began at c->req_start must come whole within
 * read_ns. Writes what is buffered first. false: EOF, error, timeout, or
 * no room (the caller checks for a full buffer first). */
static bool fill(struct http_conn *c, bool idle)
{
    struct http_server *s = c->srv;
    if (!http_flush(c))
        return false;
    if (c->start == c->len) {
        c->start = c->len = 0;
    } else if (c->start > 0) {
        memmove(c->in, c->in + c->start, c->len - c->start);
        c->len -= c->start;
        c->start = 0;
    }
    ssize_t n;
    if (idle) {
        arm(c, goro_now() + s->idle_ns, s->idle_ns);
        /* the Dekker pair with http_shutdown (server.c) */
        __atomic_store_n(&c->idle, 1, __ATOMIC_SEQ_CST);
        if (http_stopping(s))
            return false;
        n = goro_read(c->fd, c->in + c->len, s->head_max - c->len);
        __atomic_store_n(&c->idle, 0, __ATOMIC_SEQ_CST);
        if (n > 0 && http_stopping(s))
            http_conn_busy_again(s, c);
        c->req_start = goro_now();
    } else {
        arm(c, c->req_start + s->read_ns, s->read_ns);
        n = goro_read(c->fd, c->in + c->len, s->head_max - c->len);
    }
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

/* Read and drop the request body. 0, or the status to refuse with (400,
 * 413), or -1 when the connection failed. */
static int drop_body(struct http_conn *c, const struct http_req *r)
{
    struct http_server *s = c->srv;
    if (r->chunked) {
        struct http_chunked ch = { 0 };
        for (;;) {
            ssize_t k = http_chunked_feed(&ch, c->in + c->start, c->len - c->start, s->body_max);
            if (k < 0)
                return (int)-k;
            c->start += (size_t)k;
            if (ch.done)
                return 0;
            if (!fill(c, false))
                return -1;
        }
    }
    uint64_t left = (uint64_t)r->content_length;
    if (left > s->body_max)
        return 413;
    for (;;) {
        size_t have = c->len - c->start;
        size_t d = have < left ? have : (size_t)left;
        c->start += d;
        left -= d;
        if (left == 0)
            return 0;
        if (!fill(c, false))
            return -1;
    }
}

/* Answer one parsed request; target is a private copy. false: close. */
static bool answer(struct http_conn *c, const struct http_req *r, const char *target,
                   size_t tlen, bool keep)
{
    struct http_server *s = c->srv;
    bool head = r->method == HTTP_HEAD;
    if (r->method == HTTP_OTHER) {
        static const char b[] = "Method Not Allowed\n";
        if (c->olen + 512 > sizeof c->out && !http_flush(c))
            return false;
        c->olen += (size_t)snprintf(c->out + c->olen, sizeof c->out - c->olen,
                                    "HTTP/1.1 405 Method Not Allowed\r\nServer: goro\r\n%s"
                                    "Allow: GET, HEAD\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: %zu\r\n%s\r\n%s",
                                    date_header(c), sizeof b - 1,
                                    keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n", b);
        return keep;
    }
    if (s->root_fd >= 0)
        return http_static(c, r, target, tlen, keep) && keep;
    if (tlen == 1 && target[0] == '/')
        return http_respond(c, 200, "text/plain", hello, sizeof hello - 1, sizeof hello - 1,
                            head, keep) && keep;
    static const char nf[] = "Not Found\n";
    return http_respond(c, 404, "text/plain", nf, sizeof nf - 1, sizeof nf - 1, head, keep) &&
           keep;
}

/* Before closing after a response, let the client read it: closing with
 * unread input makes the kernel send a reset, which can destroy the
 * response in flight (a client still sending a body we refused with 413
 * would see "connection reset" instead). So: no more output, then read and
 * drop what comes, up to LINGER_BYTES or LINGER_NS or the client's close. */
#define LINGER_NS (HTTP_SEC / 2)
#define LINGER_BYTES (1 << 20)
static void linger(struct http_conn *c)
{
    if (shutdown(c->fd, SHUT_WR) < 0)
        return;
    goro_fd_deadline(c->fd, goro_now() + LINGER_NS, 0);
    for (size_t got = 0; got < LINGER_BYTES;) {
        ssize_t n = goro_read(c->fd, c->in, c->srv->head_max);
        if (n <= 0)
            return;
        got += (size_t)n;
    }
}

void http_conn_serve(void *arg)
{
    struct http_accept *a = arg;
    struct http_server *s = a->srv;
    int fd = a->fd;
    free(a);
    struct http_conn *c = malloc(sizeof *c);
    char *in = malloc(s->head_max);
    char *target = malloc(s->target_max + 1);
    if (c == NULL || in == NULL || target == NULL) {
        free(c);
        free(in);
        free(target);
        goro_close(fd);
        goro_mutex_lock(&s->mu);
        if (--s->nconns == 0)
            goro_cond_broadcast(&s->drained);
        goro_mutex_unlock(&s->mu);
        return;
    }
    memset(c, 0, offsetof(struct http_conn, out));
    c->srv = s;
    c->fd = fd;
    c->in = in;
    if (http_conn_enter(s, c) < 0)
        goto out_leave;

    for (;;) {
        /* a whole head: up to the blank line */
        char *hend;
        if (c->start == c->len) {
            if (!fill(c, true))
                goto out_leave;
        } else {
            c->req_start = goro_now(); /* pipelined: it began by now */
        }
        size_t scanned = c->start;
        while ((hend = memmem(c->in + scanned, c->len - scanned, "\r\n\r\n", 4)) == NULL) {
            if (c->len - c->start >= s->head_max) {
                refuse(c, 431);
                goto out_flush;
            }
            scanned = c->len > c->start + 3 ? c->len - 3 : c->start;
            size_t off = scanned - c->start;
            if (!fill(c, false))
                goto out_leave;
            scanned = c->start + off;
        }
        size_t hlen = (size_t)(hend - (c->in + c->start)) + 4;
        struct http_req r;
        int st = http_parse_head(s, c->in + c->start, hlen, &r);
        if (st != 0) {
            refuse(c, st);
            goto out_flush;
        }
        c->start += hlen;
        size_t tlen = r.target_len;
        memcpy(target, r.target, tlen); /* the body's reads move the buffer */
        target[tlen] = 0;
        if (r.chunked || r.content_length > 0) {
            st = drop_body(c, &r);
            if (st < 0)
                goto out_leave;
            if (st != 0) {
                refuse(c, st);
                goto out_flush;
            }
        }
        bool keep = r.keep_alive && !http_stopping(s);
        __atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
        if (!answer(c, &r, target, tlen, keep))
            goto out_flush;
    }

out_flush:
    if (http_flush(c))
        linger(c);
out_leave:
    http_conn_leave(s, c);
    goro_close(fd);
    free(target);
    free(in);
    free(c);
}
