/*
 * local.c - goroutine-local storage: goro_key_create/delete,
 * goro_local_get/set, and the destructors at goroutine exit.
 *
 * Why. A worker thread's TLS is shared by every goroutine that runs on it,
 * and a goroutine may resume on another worker after any blocking call
 * (README rule 2). A value that belongs to the goroutine has to hang off
 * its G record, which follows it everywhere.
 *
 * Design. A process-wide table of GORO_KEYS slots (the API promises at
 * least 128). A key is its slot in the low 7 bits and a generation above
 * them, so a deleted key never names the slot's next owner, and 0 is never
 * a key. Each G that has called goro_local_set has G.locals: a small array
 * indexed by slot, each entry holding the key it was set under and the
 * value; it grows to the highest slot used (a goroutine using keys 0 and 1
 * carries 2 entries, not 128). goro_local_get is two checks and a load:
 * the entry's key equals the caller's (set under this key, not under a
 * deleted key of the same slot), and the slot still holds that key (the
 * key was not deleted since). About 5 ns here, loop included (make bench:
 * local_get).
 *
 * Destructors. When a goroutine's function returns, goro__g_main calls
 * goro__local_exit on that goroutine, before it leaves: for each non-NULL
 * value under a live key, the entry is cleared and the key's destructor
 * called with the value. A destructor may set values again; as POSIX does
 * for pthread keys, up to LOCAL_DTOR_ROUNDS passes are made. Values under
 * deleted keys are dropped without a call (pthread_key_delete does the
 * same). Goroutines discarded when goro_run returns (still alive when main
 * returned) run no destructors, as their functions never return either.
 * The G record keeps a small array for its next goroutine (cleared);
 * goro__g_free_all frees it with the record.
 *
 * Locks and atomics: key_lock (a mutex) serialises create and delete. A
 * slot's key word is published with a release store after its destructor
 * is written, and read with acquire by get, set and the exit path; a
 * goroutine's array is touched only by that goroutine (and by g.c's
 * clean-up once no goroutine runs), so it needs no lock.
 *
 * Rejected: one array of 128 entries per goroutine (2 KiB per goroutine
 * that sets one value: a parked goroutine costs one page plus 256 bytes
 * of runtime state, DESIGN.md); a hash map keyed by (goroutine, key) (a
 * lock or a lock-free map on every get, tens of ns); the worker's TLS
 * swapped on every switch (a cost on every switch for every goroutine,
 * whether it uses keys or not).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define GORO_KEYS 128               /* slots; the low 7 bits of a key */
#define KEY_SLOT(k) ((k) & (GORO_KEYS - 1))
#define LOCAL_DTOR_ROUNDS 4         /* PTHREAD_DESTRUCTOR_ITERATIONS */
#define LOCAL_KEEP 16               /* arrays up to this many entries stay with the G */

struct lentry {
    goro_key key;                   /* the key the value was set under */
    void *value;
};

struct locals {
    uint32_t cap;                   /* entries: slots 0 .. cap-1 */
    struct lentry e[];
};

static struct {
    volatile AO_t key;              /* the live key in this slot, 0: free */
    void (*dtor)(void *);           /* written before key (release) */
} slots[GORO_KEYS];
static unsigned slot_gen[GORO_KEYS]; /* under key_lock: next generation */
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;

static inline bool key_live(goro_key key)
{
    /* acquire: pairs with the release store in goro_key_create, so the
     * destructor read after it is that key's */
    return key != 0 && AO_load_acquire(&slots[KEY_SLOT(key)].key) == (AO_t)key;
}

int goro_key_create(goro_key *key, void (*destructor)(void *value))
{
    if (key == NULL)
        return -EINVAL;
    pthread_mutex_lock(&key_lock);
    for (unsigned s = 0; s < GORO_KEYS; s++) {
        if (AO_load(&slots[s].key) != 0)   /* relaxed: written under key_lock, held */
            continue;
        unsigned gen = ++slot_gen[s];
        if (gen > (~0u >> 7))
            gen = slot_gen[s] = 1;   /* wrapped after 33 million deletes */
        goro_key k = gen << 7 | s;
        slots[s].dtor = destructor;
        /* release: the destructor before the key that names it */
        AO_store_release(&slots[s].key, (AO_t)k);
        pthread_mutex_unlock(&key_lock);
        *key = k;
        return 0;
    }
    pthread_mutex_unlock(&key_lock);
    return -EAGAIN;
}

int goro_key_delete(goro_key key)
{
    pthread_mutex_lock(&key_lock);
    if (!key_live(key)) {
        pthread_mutex_unlock(&key_lock);
        return -EINVAL;
    }
    /* release: ordering against a later create of the slot, which writes
     * the destructor under key_lock anyway */
    AO_store_release(&slots[KEY_SLOT(key)].key, 0);
    pthread_mutex_unlock(&key_lock);
    return 0;
}

void *goro_local_get(goro_key key)
{
    G *g = goro__self();
    if (unlikely(g == NULL))
        return NULL;
    struct locals *l = g->locals;
    unsigned s = KEY_SLOT(key);
    if (l == NULL || s >= l->cap || l->e[s].key != key || !key_live(key))
        return NULL;
    return l->e[s].value;
}

int goro_local_set(goro_key key, void *value)
{
    G *g = goro__self();
    if (g == NULL)
        return -EPERM;
    if (!key_live(key))
        return -EINVAL;
    struct locals *l = g->locals;
    unsigned s = KEY_SLOT(key);
    if (l == NULL || s >= l->cap) {
        if (value == NULL)
            return 0;   /* unset is NULL already */
        uint32_t cap = l ? l->cap : 0, ncap = 4;
        while (ncap <= s)
            ncap *= 2;
        struct locals *nl = realloc(l, sizeof *nl + ncap * sizeof nl->e[0]);
        if (nl == NULL)
            return -ENOMEM;
        memset(&nl->e[cap], 0, (ncap - cap) * sizeof nl->e[0]);
        nl->cap = ncap;
        g->locals = l = nl;
    }
    l->e[s].key = key;
    l->e[s].value = value;
    return 0;
}

void goro__local_exit(G *g)
{
    struct locals *l;
    for (int round = 0; round < LOCAL_DTOR_ROUNDS; round++) {
        bool called = false;
        /* re-read g->locals each time: a destructor may have grown it */
        for (uint32_t s = 0; (l = g->locals) != NULL && s < l->cap; s++) {
            struct lentry *e = &l->e[s];
            void *v = e->value;
            goro_key k = e->key;
            if (v == NULL)
                continue;
            e->value = NULL;
            e->key = 0;
            if (!key_live(k))
                continue;   /* deleted key: dropped, as pthread_key_delete */
            void (*dtor)(void *) = slots[s].dtor;
            /* the key may have been deleted and recreated in between */
            if (dtor == NULL || !key_live(k))
                continue;
            dtor(v);
            called = true;
        }
        if (!called)
            break;
    }
    l = g->locals;
    if (l == NULL)
        return;
    if (l->cap > LOCAL_KEEP) {
        free(l);
        g->locals = NULL;
    } else {
        memset(l->e, 0, l->cap * sizeof l->e[0]);   /* for the record's next goroutine */
    }
}

void goro__local_free(G *g)
{
    free(g->locals);
    g->locals = NULL;
}
