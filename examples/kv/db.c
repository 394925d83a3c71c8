/*
 * db.c - the key space: 64 shards, each a chained hash table under its own
 * goro_mutex, and key expiry.
 *
 * Why mutexes and not shards owned by goroutines behind channels: a
 * command is a few hundred nanoseconds of work, and a connection runs a
 * pipelined batch of them in a row. An uncontended goro_mutex is a CAS to
 * lock and one to unlock (~20 ns); a request and a reply over channels are
 * two goroutine switches and two channel operations per command (several
 * hundred ns on two workers), and the batch could not stay on one worker's
 * cache. With 64 shards, two workers rarely want the same lock; when they
 * do, the loser parks its goroutine, never its worker.
 *
 * Invariants (per shard, under its mu): every entry in buckets[h &
 * (nbuckets - 1)] has that hash; count is the number of entries; nbuckets
 * is a power of two and doubles when count passes it. The shard of a key
 * is the top 6 bits of its hash, the bucket the low bits, so growing a
 * shard never moves a key to another shard.
 *
 * Expiry, as Redis does it: a key past its time is deleted when a command
 * touches it (lazily), and a sweeper goroutine driven by a goro ticker
 * (server.c) calls kv_db_sweep every 100 ms, which frees the expired keys
 * of a sixteenth of each shard's buckets (a whole pass every 1.6 s, one
 * shard lock at a time), so memory held by keys nobody reads
 * again comes back too. DBSIZE, as Redis's, may count expired keys the
 * sweep has not reached yet.
 */
#include "kv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 256

/* 64-bit hash: 8 bytes at a time, multiply and fold (a wyhash-like mix,
 * written for this file). */
static uint64_t hash_key(const char *k, size_t n)
{
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    uint64_t h = n * m;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, k, 8);
        __uint128_t r = (__uint128_t)(h ^ w) * (m ^ 0x5bd1e995);
        h = (uint64_t)r ^ (uint64_t)(r >> 64);
        k += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, k, n);
    __uint128_t r = (__uint128_t)(h ^ w ^ 0xa0761d6478bd642full) * m;
    h = (uint64_t)r ^ (uint64_t)(r >> 64);
    return h ^ (h >> 29);
}

static struct kv_shard *shard_of(struct kv_db *db, uint64_t h)
{
    return &db->shard[h >> 58];
}

int kv_db_init(struct kv_db *db)
{
    for (int i = 0; i < KV_SHARDS; i++) {
        struct kv_shard *s = &db->shard[i];
        goro_mutex_init(&s->mu);
        s->nbuckets = INITIAL_BUCKETS;
        s->count = s->sweep = 0;
        s->buckets = calloc(INITIAL_BUCKETS, sizeof *s->buckets);
        if (s->buckets == NULL) {
            while (--i >= 0)
                free(db->shard[i].buckets);
            return -ENOMEM;
        }
    }
    return 0;
}

static void free_chains(struct kv_shard *s)
{
    for (size_t b = 0; b < s->nbuckets; b++) {
        for (struct kv_entry *e = s->buckets[b], *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
        s->buckets[b] = NULL;
    }
    s->count = 0;
}

void kv_db_free(struct kv_db *db)
{
    for (int i = 0; i < KV_SHARDS; i++) {
        free_chains(&db->shard[i]);
        free(db->shard[i].buckets);
        db->shard[i].buckets = NULL;
    }
}

/* The link that points at key's entry (or the NULL at its chain's end).
 * Needs s->mu. An expired entry found on the way is unlinked and freed. */
static struct kv_entry **find(struct kv_shard *s, uint64_t h, const char *k, size_t kl)
{
    struct kv_entry **pp = &s->buckets[h & (s->nbuckets - 1)], *e;
    while ((e = *pp) != NULL) {
        if (e->hash == h && e->klen == kl && memcmp(e->data, k, kl) == 0) {
            if (e->expire != 0 && e->expire <= goro_now()) {
                *pp = e->next;
                free(e);
                s->count--;
                break; /* *pp now is the rest of the chain: not this key */
            }
            return pp;
        }
        pp = &e->next;
    }
    /* not found: point at the chain's end */
    while (*pp != NULL)
        pp = &(*pp)->next;
    return pp;
}

static void grow(struct kv_shard *s)
{
    size_t n = s->nbuckets * 2;
    struct kv_entry **b = calloc(n, sizeof *b);
    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct kv_entry *e = s->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            struct kv_entry **to = &b[e->hash & (n - 1)];
            e->next = *to;
            *to = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    s->sweep = 0;
}

/* Replace or add key's entry with value v (expire as given). Needs s->mu. */
static int put(struct kv_shard *s, uint64_t h, const char *k, size_t kl, const char *v, size_t vl,
               int64_t expire)
{
    struct kv_entry **pp = find(s, h, k, kl), *old = *pp;
    struct kv_entry *e;
    if (old != NULL && old->vlen == vl) {
        e = old; /* same size: overwrite in place */
    } else {
        e = malloc(sizeof *e + kl + vl);
        if (e == NULL)
            return -ENOMEM;
        e->hash = h;
        e->klen = (uint32_t)kl;
        e->vlen = (uint32_t)vl;
        memcpy(e->data, k, kl);
        if (old != NULL) {
            e->next = old->next;
            free(old);
        } else {
            e->next = NULL;
            s->count++;
        }
        *pp = e;
    }
    e->expire = expire;
    memmove(e->data + kl, v, vl);
    if (s->count > s->nbuckets)
        grow(s);
    return 0;
}

int kv_db_get(struct kv_db *db, const char *k, size_t kl, struct kv_out *out)
{
    uint64_t h = hash_key(k, kl);
    struct kv_shard *s = shard_of(db, h);
    goro_mutex_lock(&s->mu);
    struct kv_entry *e = *find(s, h, k, kl);
    if (e != NULL)
        kv_out_bulk(out, e->data + e->klen, e->vlen);
    else
        kv_out_nil(out);
    goro_mutex_unlock(&s->mu);
    return e != NULL;
}

int kv_db_set(struct kv_db *db, const char *k, size_t kl, const char *v, size_t vl, int64_t expire,
              int when)
{
    uint64_t h = hash_key(k, kl);
    struct kv_shard *s = shard_of(db, h);
    goro_mutex_lock(&s->mu);
    int rc = 1;
    if (when != KV_ALWAYS && (*find(s, h, k, kl) != NULL) != (when == KV_IF_PRESENT))
        rc = 0;
    else if (put(s, h, k, kl, v, vl, expire) < 0)
        rc = -ENOMEM;
    goro_mutex_unlock(&s->mu);
    return rc;
}

int kv_db_del(struct kv_db *db, const char *k, size_t kl)
{
    uint64_t h = hash_key(k, kl);
    struct kv_shard *s = shard_of(db, h);
    goro_mutex_lock(&s->mu);
    struct kv_entry **pp = find(s, h, k, kl), *e = *pp;
    if (e != NULL) {
        *pp = e->next;
        free(e);
        s->count--;
    }
    goro_mutex_unlock(&s->mu);
    return e != NULL;
}

int kv_db_exists(struct kv_db *db, const char *k, size_t kl)
{
    uint64_t h = hash_key(k, kl);
    struct kv_shard *s = shard_of(db, h);
    goro_mutex_lock(&s->mu);
    bool found = *find(s, h, k, kl) != NULL;
    goro_mutex_unlock(&s->mu);
    return found;
}

/* Redis's rule for integers: optional '-', digits, no leading zeros, no
 * '+', no blanks, fits in int64. */
static bool parse_i64(const char *p, size_t n, int64_t *v)
{
    if (n == 0 || n > 20)
        return false;
    bool neg = p[0] == '-';
    size_t i = neg;
    if (i == n || (p[i] == '0' && n > i + 1) || (neg && p[i] == '0'))
        return false;
    uint64_t u = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        if (u > (UINT64_MAX - 9) / 10)
            return false;
        u = u * 10 + (uint64_t)(p[i] - '0');
    }
    if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX)
        return false;
    *v = neg ? (int64_t)(0 - u) : (int64_t)u;
    return true;
}

bool kv_parse_i64(const char *p, size_t n, int64_t *v)
{
    return parse_i64(p, n, v);
}

int kv_db_incr(struct kv_db *db, const char *k, size_t kl, int64_t by, int64_t *val)
{
    uint64_t h = hash_key(k, kl);
    struct kv_shard *s = shard_of(db, h);
    goro_mutex_lock(&s->mu);
    struct kv_entry *e = *find(s, h, k, kl);
    int64_t cur = 0, expire = 0;
    int rc = 0;
    if (e != NULL) {
        expire = e->expire; /* INCR keeps the key's time to live */
        if (!parse_i64(e->data + e->klen, e->vlen, &cur))
            rc = -EINVAL;
    }
    if (rc == 0 && ((by > 0 && cur > INT64_MAX - by) || (by < 0 && cur < INT64_MIN - by)))
        rc = -ERANGE;
    if (rc == 0) {
        char buf[24];
        cur += by;
        int n = 0;
        uint64_t u = cur < 0 ? (uint64_t)0 - (uint64_t)cur : (uint64_t)cur;
        char tmp[20];
        int t = 0;
        do {
            tmp[t++] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (cur < 0)
            buf[n++] = '-';
        while (t > 0)
            buf[n++] = tmp[--t];
        rc = put(s, h, k, kl, buf, (size_t)n, expire);
        *val = cur;
    }
    goro_mutex_unlock(&s->mu);
    return rc;
}

int kv_db_expire(struct kv_db *db, const char *k, size_t kl, int64_t when)
{
    uint64_t h = hash_key(k, kl);
    struct kv_shard *s = shard_of(db, h);
    goro_mutex_lock(&s->mu);
    struct kv_entry **pp = find(s, h, k, kl), *e = *pp;
    if (e != NULL) {
        if (when <= goro_now()) {
            *pp = e->next;
            free(e);
            s->count--;
        } else {
            e->expire = when;
        }
    }
    goro_mutex_unlock(&s->mu);
    return e != NULL;
}

int64_t kv_db_ttl(struct kv_db *db, const char *k, size_t kl)
{
    uint64_t h = hash_key(k, kl);
    struct kv_shard *s = shard_of(db, h);
    goro_mutex_lock(&s->mu);
    struct kv_entry *e = *find(s, h, k, kl);
    int64_t left = e == NULL ? -2 : e->expire == 0 ? -1 : e->expire - goro_now();
    goro_mutex_unlock(&s->mu);
    if (left == 0)
        left = 1; /* find() has just seen it alive */
    return left;
}

void kv_db_flush(struct kv_db *db)
{
    for (int i = 0; i < KV_SHARDS; i++) {
        struct kv_shard *s = &db->shard[i];
        goro_mutex_lock(&s->mu);
        free_chains(s);
        goro_mutex_unlock(&s->mu);
    }
}

size_t kv_db_size(struct kv_db *db)
{
    size_t n = 0;
    for (int i = 0; i < KV_SHARDS; i++) {
        struct kv_shard *s = &db->shard[i];
        goro_mutex_lock(&s->mu);
        n += s->count;
        goro_mutex_unlock(&s->mu);
    }
    return n;
}

size_t kv_db_sweep(struct kv_db *db, size_t divisor)
{
    size_t freed = 0;
    int64_t now = goro_now();
    for (int i = 0; i < KV_SHARDS; i++) {
        struct kv_shard *s = &db->shard[i];
        goro_mutex_lock(&s->mu);
        size_t slice = s->nbuckets / divisor + 1;
        for (size_t n = 0; n < slice && n < s->nbuckets; n++) {
            size_t b = s->sweep++ & (s->nbuckets - 1);
            for (struct kv_entry **pp = &s->buckets[b], *e; (e = *pp) != NULL;) {
                if (e->expire != 0 && e->expire <= now) {
                    *pp = e->next;
                    free(e);
                    s->count--;
                    freed++;
                } else {
                    pp = &e->next;
                }
            }
        }
        goro_mutex_unlock(&s->mu);
    }
    return freed;
}
