/*
 * examples/kv/kv.h - a Redis-protocol (RESP2) key-value server on goro.
 *
 *   main.c     options, signals, goro_run
 *   server.c   the listener, one goroutine per connection, stop
 *   resp.c     parsing commands (multibulk and inline) and writing replies
 *   cmd.c      the commands
 *   db.c       the sharded hash table and key expiry
 *
 * As in examples/http, a struct holds everything, so a test can run a
 * server inside its own process and check what it gives back.
 */
#ifndef EXAMPLES_KV_H
#define EXAMPLES_KV_H

#include <goro.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KV_MS ((int64_t)1000000)
#define KV_SHARDS 64

/* ---- db.c ---------------------------------------------------------------- */

struct kv_entry {
    struct kv_entry *next; /* bucket chain */
    uint64_t hash;
    int64_t expire;        /* goro_now() time it expires, 0: never */
    uint32_t klen, vlen;
    char data[];           /* key, then value */
};

struct kv_shard {
    goro_mutex mu;             /* protects everything below */
    struct kv_entry **buckets; /* nbuckets, a power of two */
    size_t nbuckets, count;
    size_t sweep;              /* the expiry sweep's next bucket */
    /* a cache line between two shards' fields, so that workers locking
     * neighbouring shards do not share a line; padding, not alignment,
     * so a struct kv_server may live in any malloc'd memory */
    char pad[64];
};

struct kv_db {
    struct kv_shard shard[KV_SHARDS];
};

int kv_db_init(struct kv_db *db);           /* 0 or -ENOMEM */
void kv_db_free(struct kv_db *db);
struct kv_out;
/* Append key's value as a bulk string (or a nil) to out. */
int kv_db_get(struct kv_db *db, const char *k, size_t kl, struct kv_out *out);
/* expire: absolute goro_now() ns, 0: none. when: KV_ALWAYS, KV_IF_ABSENT
 * (NX) or KV_IF_PRESENT (XX), checked under the same lock as the write.
 * 1 set, 0 not set (the condition failed), or -ENOMEM. */
enum { KV_ALWAYS, KV_IF_ABSENT, KV_IF_PRESENT };
int kv_db_set(struct kv_db *db, const char *k, size_t kl, const char *v, size_t vl, int64_t expire,
              int when);
int kv_db_del(struct kv_db *db, const char *k, size_t kl);       /* 1 deleted, 0 absent */
int kv_db_exists(struct kv_db *db, const char *k, size_t kl);    /* 1 or 0 */
/* *val += by: 0, -EINVAL (not an integer), -ERANGE (overflow), -ENOMEM */
int kv_db_incr(struct kv_db *db, const char *k, size_t kl, int64_t by, int64_t *val);
/* Set key's expiry (absolute; <= now deletes it): 1, or 0 when absent. */
int kv_db_expire(struct kv_db *db, const char *k, size_t kl, int64_t when);
/* ns left: -2 absent, -1 no expiry */
int64_t kv_db_ttl(struct kv_db *db, const char *k, size_t kl);
void kv_db_flush(struct kv_db *db);
size_t kv_db_size(struct kv_db *db);
/* A Redis integer: '-'?digits, no '+', blanks or leading zeros, int64. */
bool kv_parse_i64(const char *p, size_t n, int64_t *v);
/* Free the expired keys in the next 1/divisor of every shard's buckets;
 * returns how many. */
size_t kv_db_sweep(struct kv_db *db, size_t divisor);

/* ---- resp.c -------------------------------------------------------------- */

struct kv_arg {
    const char *p;
    size_t len;
};

/* Replies are appended here and written when the connection would read. */
struct kv_out {
    char *buf;
    size_t len, cap;
    bool oom; /* an append failed: close the connection */
};

struct kv_limits {
    size_t bulk_max;    /* one argument (default 8 MiB; Redis: 512 MB) */
    size_t args_max;    /* arguments of one command (default 65,536) */
    size_t inline_max;  /* an inline command line (64 KiB, as Redis) */
};

/* Parse one command from buf[0, len): argv (grown as needed) points into
 * buf. Returns bytes consumed (> 0) with *argc set (0: an empty command to
 * skip), 0 when more input is needed, or -1 on a protocol error with *err
 * set to Redis's message (the connection then replies and closes). */
#define KV_ERRBUF 64
ssize_t kv_parse(const struct kv_limits *lim, const char *buf, size_t len,
                 struct kv_arg **argv, size_t *argcap, size_t *argc, const char **err,
                 char *errbuf /* KV_ERRBUF bytes, for messages that quote the input */);

void kv_out_raw(struct kv_out *o, const char *s, size_t n);
void kv_out_simple(struct kv_out *o, const char *s);   /* +s */
void kv_out_error(struct kv_out *o, const char *s);    /* -s (s includes "ERR ...") */
void kv_out_int(struct kv_out *o, int64_t v);          /* :v */
void kv_out_bulk(struct kv_out *o, const char *s, size_t n);
void kv_out_nil(struct kv_out *o);                     /* $-1 */
void kv_out_array(struct kv_out *o, size_t n);         /* *n */

/* ---- cmd.c --------------------------------------------------------------- */

enum { KV_KEEP = 0, KV_CLOSE = 1 };
/* Run one command, appending its reply. KV_CLOSE after QUIT. */
int kv_exec(struct kv_db *db, struct kv_arg *argv, size_t argc, struct kv_out *out);

/* ---- server.c ------------------------------------------------------------ */

struct kv_conn;

struct kv_server {
    const char *addr;          /* default 127.0.0.1 */
    int port;                  /* default 6380; 0: a free one, then the bound one */
    struct kv_limits lim;
    int64_t sweep_ns;          /* expiry sweep period (100 ms) */

    struct kv_db db;
    int listen_fd;
    int stopping;              /* __atomic seq_cst */
    goro_mutex mu;             /* protects conns, nconns */
    goro_cond drained;
    struct kv_conn *conns;
    long nconns;
    goro_chan *quit;           /* closed by kv_shutdown: stops the sweeper */
    goro_wg sweeper;
    long commands;             /* __atomic relaxed, a statistic */
};

int kv_server_init(struct kv_server *s);  /* 0 or -ENOMEM */
int kv_listen(struct kv_server *s);       /* 0 or -errno */
int kv_serve(struct kv_server *s);        /* until kv_shutdown and every connection closed */
void kv_shutdown(struct kv_server *s);    /* any goroutine; idempotent */
void kv_server_free(struct kv_server *s); /* after kv_serve returned */

#endif
