/*
 * resp.c - RESP2 in and out.
 *
 * A command is a multibulk ("*<n>\r\n" then n times "$<len>\r\n<len
 * bytes>\r\n") or an inline line ("PING\r\n", words split on blanks), as
 * Redis reads them. The parser is stateless: it looks at the unconsumed
 * input from the start of the command each time more arrives, and says
 * "need more" until the whole command is there. Only lengths are scanned,
 * never the bulk data, so a large value arriving in many reads costs one
 * header parse per read.
 *
 * Errors follow Redis's words and its rule: the reply is the error, then
 * the connection closes (it cannot know where the next command begins).
 * Stricter than Redis in one place: the two bytes after a bulk's data must
 * be CRLF (Redis skips them unseen).
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal line "<digits>\r\n" (optionally "-<digits>") from p, before
 * end: returns the bytes of the line with its CRLF, 0 if the CRLF has not
 * come yet, -1 if malformed. maxline bounds how long we wait for it. */
static ssize_t number_line(const char *p, const char *end, long long *v, size_t maxline)
{
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    if (cr == NULL)
        return (size_t)(end - p) > maxline ? -1 : 0;
    if (cr + 1 == end)
        return 0;
    if (cr[1] != '\n' || cr == p)
        return -1;
    bool neg = *p == '-';
    const char *q = p + neg;
    if (q == cr || cr - q > 18)
        return -1;
    long long n = 0;
    for (; q < cr; q++) {
        if (*q < '0' || *q > '9')
            return -1;
        n = n * 10 + (*q - '0');
    }
    *v = neg ? -n : n;
    return cr + 2 - p;
}

static bool grow_args(struct kv_arg **argv, size_t *argcap, size_t want)
{
    if (want <= *argcap)
        return true;
    size_t cap = *argcap ? *argcap : 16;
    while (cap < want)
        cap *= 2;
    struct kv_arg *a = realloc(*argv, cap * sizeof *a);
    if (a == NULL)
        return false;
    *argv = a;
    *argcap = cap;
    return true;
}

static ssize_t parse_inline(const struct kv_limits *lim, const char *buf, size_t len,
                            struct kv_arg **argv, size_t *argcap, size_t *argc, const char **err)
{
    const char *nl = memchr(buf, '\n', len);
    if (nl == NULL) {
        if (len > lim->inline_max) {
            *err = "ERR Protocol error: too big inline request";
            return -1;
        }
        return 0;
    }
    const char *end = nl > buf && nl[-1] == '\r' ? nl - 1 : nl;
    size_t n = 0;
    for (const char *p = buf; p < end;) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            break;
        const char *w = p;
        while (p < end && *p != ' ' && *p != '\t')
            p++;
        if (n >= lim->args_max || !grow_args(argv, argcap, n + 1)) {
            *err = "ERR Protocol error: invalid multibulk length";
            return -1;
        }
        (*argv)[n].p = w;
        (*argv)[n].len = (size_t)(p - w);
        n++;
    }
    *argc = n;
    return nl + 1 - buf;
}

ssize_t kv_parse(const struct kv_limits *lim, const char *buf, size_t len,
                 struct kv_arg **argv, size_t *argcap, size_t *argc, const char **err,
                 char *errbuf)
{
    if (len == 0)
        return 0;
    if (buf[0] != '*')
        return parse_inline(lim, buf, len, argv, argcap, argc, err);
    const char *p = buf + 1, *end = buf + len;
    long long n;
    ssize_t k = number_line(p, end, &n, 32);
    if (k <= 0) {
        if (k < 0)
            *err = "ERR Protocol error: invalid multibulk length";
        return k;
    }
    p += k;
    if (n > (long long)lim->args_max) {
        *err = "ERR Protocol error: invalid multibulk length";
        return -1;
    }
    if (n <= 0) { /* Redis skips "*0" and "*-1" */
        *argc = 0;
        return p - buf;
    }
    if (!grow_args(argv, argcap, (size_t)n)) {
        *err = "ERR Protocol error: invalid multibulk length";
        return -1;
    }
    for (long long i = 0; i < n; i++) {
        if (p == end)
            return 0;
        if (*p != '$') {
            snprintf(errbuf, KV_ERRBUF, "ERR Protocol error: expected '$', got '%c'", *p);
            *err = errbuf;
            return -1;
        }
        long long bl;
        k = number_line(p + 1, end, &bl, 32);
        if (k <= 0) {
            if (k < 0)
                *err = "ERR Protocol error: invalid bulk length";
            return k;
        }
        if (bl < 0 || (unsigned long long)bl > lim->bulk_max) {
            *err = "ERR Protocol error: invalid bulk length";
            return -1;
        }
        p += 1 + k;
        if ((size_t)(end - p) < (size_t)bl + 2)
            return 0;
        if (p[bl] != '\r' || p[bl + 1] != '\n') {
            *err = "ERR Protocol error: expected CRLF after bulk data";
            return -1;
        }
        (*argv)[i].p = p;
        (*argv)[i].len = (size_t)bl;
        p += bl + 2;
    }
    *argc = (size_t)n;
    return p - buf;
}

/* ---- replies ---------------------------------------------------------------- */

static bool reserve(struct kv_out *o, size_t n)
{
    if (o->len + n <= o->cap)
        return true;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n)
        cap *= 2;
    char *b = realloc(o->buf, cap);
    if (b == NULL) {
        o->oom = true;
        return false;
    }
    o->buf = b;
    o->cap = cap;
    return true;
}

void kv_out_raw(struct kv_out *o, const char *s, size_t n)
{
    if (!reserve(o, n))
        return;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* type byte, a decimal, CRLF */
static void out_num(struct kv_out *o, char type, int64_t v)
{
    if (!reserve(o, 24))
        return;
    char *p = o->buf + o->len, tmp[20];
    *p++ = type;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (v < 0)
        *p++ = '-';
    int i = 0;
    do {
        tmp[i++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (i > 0)
        *p++ = tmp[--i];
    *p++ = '\r';
    *p++ = '\n';
    o->len = (size_t)(p - o->buf);
}

void kv_out_simple(struct kv_out *o, const char *s)
{
    kv_out_raw(o, "+", 1);
    kv_out_raw(o, s, strlen(s));
    kv_out_raw(o, "\r\n", 2);
}

void kv_out_error(struct kv_out *o, const char *s)
{
    kv_out_raw(o, "-", 1);
    kv_out_raw(o, s, strlen(s));
    kv_out_raw(o, "\r\n", 2);
}

void kv_out_int(struct kv_out *o, int64_t v)
{
    out_num(o, ':', v);
}

void kv_out_bulk(struct kv_out *o, const char *s, size_t n)
{
    out_num(o, '$', (int64_t)n);
    if (!reserve(o, n + 2))
        return;
    memcpy(o->buf + o->len, s, n);
    memcpy(o->buf + o->len + n, "\r\n", 2);
    o->len += n + 2;
}

void kv_out_nil(struct kv_out *o)
{
    kv_out_raw(o, "$-1\r\n", 5);
}

void kv_out_array(struct kv_out *o, size_t n)
{
    out_num(o, '*', (int64_t)n);
}
