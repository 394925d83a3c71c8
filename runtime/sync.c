/*
 * sync.c - WaitGroup (and Mutex, below it).
 *
 * WaitGroup: the counter is one atomic word, so Add/Done never take a lock
 * unless the counter reaches zero. Waiters queue on a list (linked through
 * G.schedlink, free while a G is parked) under a small spinlock; a waiter
 * re-checks the counter under that lock before it parks, and the goroutine
 * whose Add brings the counter to zero takes the lock after the decrement,
 * so it either finds the waiter on the list or the waiter saw zero: no lost
 * wakeup. Holders of the spinlock never park while holding it (the waiter's
 * lock is released by park's unlock function, after the switch).
 */
#include "internal.h"

struct wg {
    volatile AO_t count;   /* the counter (as int64) */
    volatile AO_TS_t lock; /* protects head/tail */
    G *head, *tail;        /* parked waiters, FIFO */
};
_Static_assert(sizeof(struct wg) <= sizeof(goro_wg), "goro_wg too small");

static inline void spin_lock(volatile AO_TS_t *l)
{
    /* acquire: the protected fields are read after we own the lock */
    while (AO_test_and_set_acquire(l) == AO_TS_SET)
        __asm__ __volatile__("pause");
}

static inline void spin_unlock(volatile AO_TS_t *l)
{
    AO_CLEAR(l); /* release */
}

void goro_wg_init(goro_wg *wg)
{
    struct wg *w = (struct wg *)(void *)wg;
    w->count = 0;
    w->lock = AO_TS_INITIALIZER;
    w->head = w->tail = NULL;
}

void goro_wg_add(goro_wg *wg, int64_t delta)
{
    struct wg *w = (struct wg *)(void *)wg;
    /* full: the work done before Done must be visible to whoever sees the
     * counter reach zero (the waiter, through the lock or its fast path) */
    int64_t now = (int64_t)AO_fetch_and_add_full(&w->count, (AO_t)delta) + delta;
    if (now < 0)
        goro__fatal("sync: negative WaitGroup counter");
    if (now != 0)
        return;
    spin_lock(&w->lock);
    G *list = w->head;
    w->head = w->tail = NULL;
    spin_unlock(&w->lock);
    while (list) {
        G *next = list->schedlink;
        goro__ready(list, false);
        list = next;
    }
}

void goro_wg_done(goro_wg *wg)
{
    goro_wg_add(wg, -1);
}

static bool wg_unlock(G *g, void *arg)
{
    (void)g;
    spin_unlock(arg);
    return true;
}

int goro_wg_wait(goro_wg *wg)
{
    struct wg *w = (struct wg *)(void *)wg;
    G *g = goro__self();
    if (g == NULL)
        return -EPERM;
    /* acquire: pairs with the full fetch-and-add of the last Done */
    if (AO_load_acquire(&w->count) == 0)
        return 0;
    spin_lock(&w->lock);
    if (AO_load_acquire(&w->count) == 0) {
        spin_unlock(&w->lock);
        return 0;
    }
    g->schedlink = NULL;
    if (w->tail)
        w->tail->schedlink = g;
    else
        w->head = g;
    w->tail = g;
    goro__park(wg_unlock, (void *)&w->lock, W_WAITGROUP, wg);
    return 0;
}
