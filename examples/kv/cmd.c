/*
 * cmd.c - the commands, with Redis's replies and error texts:
 * PING, ECHO, GET, SET [EX s|PX ms] [NX|XX], DEL, EXISTS, INCR, MGET, MSET,
 * EXPIRE, TTL, FLUSHALL, DBSIZE, QUIT, and CONFIG GET for the two
 * parameters redis-benchmark asks about (we keep nothing on disk: save is
 * "", appendonly is "no"). An unknown command or a wrong argument count is
 * an error reply and the connection stays open, as in Redis.
 */
#include "kv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ARG_IS(a, lit) ((a).len == sizeof(lit) - 1 && strncasecmp((a).p, lit, sizeof(lit) - 1) == 0)

static const char not_int[] = "ERR value is not an integer or out of range";

static void wrong_args(struct kv_out *o, const struct kv_arg *name)
{
    char lower[33], msg[96];
    size_t n = name->len < 32 ? name->len : 32;
    for (size_t i = 0; i < n; i++) /* Redis names the command in lower case */
        lower[i] = (char)(name->p[i] >= 'A' && name->p[i] <= 'Z' ? name->p[i] - 'A' + 'a' : name->p[i]);
    lower[n] = 0;
    snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", lower);
    kv_out_error(o, msg);
}

static void cmd_set(struct kv_db *db, struct kv_arg *a, size_t n, struct kv_out *o)
{
    int64_t expire = 0;
    bool nx = false, xx = false, has_ttl = false;
    for (size_t i = 3; i < n; i++) {
        if ((ARG_IS(a[i], "EX") || ARG_IS(a[i], "PX")) && i + 1 < n && !has_ttl) {
            int64_t v;
            if (!kv_parse_i64(a[i + 1].p, a[i + 1].len, &v)) {
                kv_out_error(o, not_int);
                return;
            }
            int64_t unit = ARG_IS(a[i], "EX") ? 1000 * KV_MS : KV_MS;
            if (v <= 0 || v > INT64_MAX / unit / 2) {
                kv_out_error(o, "ERR invalid expire time in 'set' command");
                return;
            }
            expire = goro_now() + v * unit;
            has_ttl = true;
            i++;
        } else if (ARG_IS(a[i], "NX") && !xx) {
            nx = true;
        } else if (ARG_IS(a[i], "XX") && !nx) {
            xx = true;
        } else {
            kv_out_error(o, "ERR syntax error");
            return;
        }
    }
    int rc = kv_db_set(db, a[1].p, a[1].len, a[2].p, a[2].len, expire,
                       nx ? KV_IF_ABSENT : xx ? KV_IF_PRESENT : KV_ALWAYS);
    if (rc < 0)
        o->oom = true;
    else if (rc == 0)
        kv_out_nil(o);
    else
        kv_out_simple(o, "OK");
}

int kv_exec(struct kv_db *db, struct kv_arg *a, size_t n, struct kv_out *o)
{
    const struct kv_arg *c = &a[0];
    switch (c->len) {
    case 3:
        if (ARG_IS(*c, "GET")) {
            if (n != 2)
                goto arity;
            kv_db_get(db, a[1].p, a[1].len, o);
            return KV_KEEP;
        }
        if (ARG_IS(*c, "SET")) {
            if (n < 3)
                goto arity;
            cmd_set(db, a, n, o);
            return KV_KEEP;
        }
        if (ARG_IS(*c, "DEL")) {
            if (n < 2)
                goto arity;
            int64_t k = 0;
            for (size_t i = 1; i < n; i++)
                k += kv_db_del(db, a[i].p, a[i].len);
            kv_out_int(o, k);
            return KV_KEEP;
        }
        if (ARG_IS(*c, "TTL")) {
            if (n != 2)
                goto arity;
            int64_t t = kv_db_ttl(db, a[1].p, a[1].len);
            kv_out_int(o, t < 0 ? t : (t / KV_MS + 500) / 1000);
            return KV_KEEP;
        }
        break;
    case 4:
        if (ARG_IS(*c, "PING")) {
            if (n > 2)
                goto arity;
            if (n == 2)
                kv_out_bulk(o, a[1].p, a[1].len);
            else
                kv_out_raw(o, "+PONG\r\n", 7);
            return KV_KEEP;
        }
        if (ARG_IS(*c, "ECHO")) {
            if (n != 2)
                goto arity;
            kv_out_bulk(o, a[1].p, a[1].len);
            return KV_KEEP;
        }
        if (ARG_IS(*c, "INCR")) {
            if (n != 2)
                goto arity;
            int64_t v;
            int rc = kv_db_incr(db, a[1].p, a[1].len, 1, &v);
            if (rc == -EINVAL)
                kv_out_error(o, not_int);
            else if (rc == -ERANGE)
                kv_out_error(o, "ERR increment or decrement would overflow");
            else if (rc < 0)
                o->oom = true;
            else
                kv_out_int(o, v);
            return KV_KEEP;
        }
        if (ARG_IS(*c, "MGET")) {
            if (n < 2)
                goto arity;
            kv_out_array(o, n - 1);
            for (size_t i = 1; i < n; i++)
                kv_db_get(db, a[i].p, a[i].len, o);
            return KV_KEEP;
        }
        if (ARG_IS(*c, "MSET")) {
            if (n < 3 || n % 2 != 1)
                goto arity;
            for (size_t i = 1; i < n; i += 2)
                if (kv_db_set(db, a[i].p, a[i].len, a[i + 1].p, a[i + 1].len, 0, KV_ALWAYS) < 0) {
                    o->oom = true;
                    return KV_KEEP;
                }
            kv_out_simple(o, "OK");
            return KV_KEEP;
        }
        if (ARG_IS(*c, "QUIT")) {
            kv_out_simple(o, "OK");
            return KV_CLOSE;
        }
        break;
    case 6:
        if (ARG_IS(*c, "EXISTS")) {
            if (n < 2)
                goto arity;
            int64_t k = 0;
            for (size_t i = 1; i < n; i++)
                k += kv_db_exists(db, a[i].p, a[i].len);
            kv_out_int(o, k);
            return KV_KEEP;
        }
        if (ARG_IS(*c, "EXPIRE")) {
            if (n != 3)
                goto arity;
            int64_t s;
            if (!kv_parse_i64(a[2].p, a[2].len, &s) || s > INT64_MAX / 1000000000 / 2 ||
                s < INT64_MIN / 1000000000 / 2) {
                kv_out_error(o, not_int);
                return KV_KEEP;
            }
            kv_out_int(o, kv_db_expire(db, a[1].p, a[1].len, goro_now() + s * 1000 * KV_MS));
            return KV_KEEP;
        }
        if (ARG_IS(*c, "DBSIZE")) {
            if (n != 1)
                goto arity;
            kv_out_int(o, (int64_t)kv_db_size(db));
            return KV_KEEP;
        }
        if (ARG_IS(*c, "CONFIG")) {
            if (n != 3 || !ARG_IS(a[1], "GET")) {
                kv_out_error(o, "ERR only CONFIG GET save|appendonly is supported");
                return KV_KEEP;
            }
            if (ARG_IS(a[2], "save")) {
                kv_out_array(o, 2);
                kv_out_bulk(o, "save", 4);
                kv_out_bulk(o, "", 0);
            } else if (ARG_IS(a[2], "appendonly")) {
                kv_out_array(o, 2);
                kv_out_bulk(o, "appendonly", 10);
                kv_out_bulk(o, "no", 2);
            } else {
                kv_out_array(o, 0);
            }
            return KV_KEEP;
        }
        break;
    case 8:
        if (ARG_IS(*c, "FLUSHALL")) {
            if (n > 2 || (n == 2 && !ARG_IS(a[1], "SYNC") && !ARG_IS(a[1], "ASYNC"))) {
                kv_out_error(o, "ERR syntax error");
                return KV_KEEP;
            }
            kv_db_flush(db);
            kv_out_simple(o, "OK");
            return KV_KEEP;
        }
        break;
    }
    /* Redis: -ERR unknown command 'x', with args beginning with: 'a' 'b' */
    char msg[256];
    int len = snprintf(msg, sizeof msg, "ERR unknown command '%.*s', with args beginning with: ",
                       c->len > 64 ? 64 : (int)c->len, c->p);
    for (size_t i = 1; i < n && len < (int)sizeof msg - 72; i++)
        len += snprintf(msg + len, sizeof msg - (size_t)len, "'%.*s' ",
                        a[i].len > 64 ? 64 : (int)a[i].len, a[i].p);
    for (char *p = msg; *p; p++) /* no CR or LF inside a simple error */
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    kv_out_error(o, msg);
    return KV_KEEP;
arity:
    wrong_args(o, c);
    return KV_KEEP;
}
