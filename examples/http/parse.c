/*
 * parse.c - the request head and chunked bodies (RFC 9112), no I/O.
 *
 * Strict where leniency lets two parsers disagree about where a request
 * ends (request smuggling): a bare LF, whitespace before a colon, a folded
 * header line, a Content-Length that is not all digits or is given twice
 * with different values, and Content-Length together with
 * Transfer-Encoding are all 400. Transfer-Encoding other than "chunked" is
 * 501 (we cannot find the end of such a body). HTTP/1.1 needs exactly one
 * Host header. Versions other than 1.0 and 1.1 are 505.
 */
#include "http.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 tchar */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Does the comma-separated list [v, end) hold the token tok (any case)? */
static bool list_has(const char *v, const char *end, const char *tok)
{
    size_t tl = strlen(tok);
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *e = v;
        while (e < end && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == tl && strncasecmp(v, tok, tl) == 0)
            return true;
        v = e;
    }
    return false;
}

static bool name_is(const char *n, size_t nl, const char *want)
{
    return strlen(want) == nl && strncasecmp(n, want, nl) == 0;
}

int http_parse_head(const struct http_server *s, const char *buf, size_t len,
                    struct http_req *r)
{
    const char *end = buf + len, *p = buf;
    const char *eol = memchr(p, '\n', len);
    if (eol == NULL || eol == p || eol[-1] != '\r')
        return 400;

    /* request-line = method SP request-target SP HTTP-version */
    const char *m = p;
    while (p < eol && is_tchar((unsigned char)*p))
        p++;
    if (p == m || *p != ' ')
        return 400;
    size_t mlen = (size_t)(p - m);
    r->method = mlen == 3 && memcmp(m, "GET", 3) == 0    ? HTTP_GET
                : mlen == 4 && memcmp(m, "HEAD", 4) == 0 ? HTTP_HEAD
                                                         : HTTP_OTHER;
    const char *t = ++p;
    while (p < eol && (unsigned char)*p > ' ' && *p != 0x7f)
        p++;
    if (p == t || *p != ' ')
        return 400;
    r->target = t;
    r->target_len = (size_t)(p - t);
    p++;
    if (eol - 1 - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' ||
        p[6] != '.' || p[7] < '0' || p[7] > '9')
        return 400;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return 505;
    if (r->target_len > s->target_max)
        return 414;
    r->minor = p[7] - '0';

    bool conn_close = false, conn_keep = false, te = false;
    int hosts = 0, nheaders = 0;
    r->chunked = false;
    r->content_length = -1;
    for (p = eol + 1; p < end;) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL || eol[-1] != '\r' || eol - 1 < p)
            return 400;
        if (eol - 1 == p)
            break; /* the blank line */
        if (++nheaders > s->headers_max)
            return 431;
        const char *n = p;
        while (p < eol && is_tchar((unsigned char)*p))
            p++;
        if (p == n || *p != ':') /* also a folded line (starts with SP) */
            return 400;
        size_t nl = (size_t)(p - n);
        const char *v = p + 1, *ve = eol - 1;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++)
            if ((unsigned char)*q < ' ' && *q != '\t')
                return 400; /* a CR or NUL inside a value */
        switch (nl) {
        case 4:
            if (name_is(n, nl, "host"))
                hosts++;
            break;
        case 10:
            if (name_is(n, nl, "connection")) {
                conn_close |= list_has(v, ve, "close");
                conn_keep |= list_has(v, ve, "keep-alive");
            }
            break;
        case 14:
            if (name_is(n, nl, "content-length")) {
                if (v == ve || ve - v > 18)
                    return 400;
                int64_t cl = 0;
                for (const char *q = v; q < ve; q++) {
                    if (*q < '0' || *q > '9')
                        return 400;
                    cl = cl * 10 + (*q - '0');
                }
                if (r->content_length >= 0 && r->content_length != cl)
                    return 400;
                r->content_length = cl;
            }
            break;
        case 17:
            if (name_is(n, nl, "transfer-encoding")) {
                /* exactly one "chunked": other codings we cannot undo */
                if (te)
                    return 400;
                if (ve - v != 7 || strncasecmp(v, "chunked", 7) != 0)
                    return 501;
                te = true;
            }
            break;
        }
        p = eol + 1;
    }
    if (te && (r->content_length >= 0 || r->minor == 0))
        return 400;
    r->chunked = te;
    if (r->minor == 1 && hosts != 1)
        return 400;
    if (hosts > 1)
        return 400;
    r->keep_alive = r->minor == 1 ? !conn_close : conn_keep && !conn_close;
    return 0;
}

/* ---- chunked bodies: chunk-size [ext] CRLF data CRLF ... 0 CRLF trailers CRLF */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF,
       CH_LAST_LF };
#define CH_LINE_MAX 4096

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

ssize_t http_chunked_feed(struct http_chunked *c, const char *p, size_t n, uint64_t body_max)
{
    size_t i = 0;
    while (i < n && !c->done) {
        char ch = p[i];
        switch (c->state) {
        case CH_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                if (c->left > (body_max >> 4) + 1)
                    return -413;
                c->left = c->left * 16 + (uint64_t)h;
                if (++c->line > CH_LINE_MAX)
                    return -400;
            } else if (c->line == 0) {
                return -400; /* no digits */
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CH_EXT;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else {
                return -400;
            }
            if (c->left > body_max - c->total)
                return -413;
            i++;
            break;
        }
        case CH_EXT: /* chunk extensions: ignored, but bounded */
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (ch == '\n' || ++c->line > CH_LINE_MAX)
                return -400;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return -400;
            i++;
            c->line = 0;
            c->state = c->left == 0 ? CH_TRAILER : CH_DATA;
            break;
        case CH_DATA: {
            size_t d = n - i;
            if (d > c->left)
                d = (size_t)c->left;
            c->left -= d;
            c->total += d;
            i += d;
            if (c->left == 0)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch != '\r')
                return -400;
            c->state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return -400;
            c->state = CH_SIZE;
            c->line = 0;
            i++;
            break;
        case CH_TRAILER: /* at the start of a trailer line, or the end */
            if (ch == '\r') {
                c->state = c->line == 0 ? CH_LAST_LF : CH_TRAILER_LF;
            } else if (ch == '\n' || ++c->line > CH_LINE_MAX) {
                return -400;
            }
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                return -400;
            c->line = 0;
            c->state = CH_TRAILER;
            i++;
            break;
        case CH_LAST_LF:
            if (ch != '\n')
                return -400;
            c->done = true;
            i++;
            break;
        }
    }
    return (ssize_t)i;
}
