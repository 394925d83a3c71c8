/*
 * once.c - goro_once_do, Go's sync.Once.
 *
 * Design. One state word: NEW (0, so a zero-filled goro_once is ready),
 * RUNNING while the first caller runs fn, DONE after. The fast path of
 * every later call is one acquire load of DONE. The first caller wins the
 * CAS NEW -> RUNNING and runs fn on its own stack, without any lock held
 * (fn may block, spawn, take other locks). Callers that come while it runs
 * queue their G records on a FIFO (linked through G.schedlink, free while a
 * G is parked, as the WaitGroup does) under a small spinlock and park; the
 * runner, when fn returns, stores DONE under that lock and readies the
 * whole list.
 *
 * No record lives on a goroutine stack: the queue links G records, which
 * never move, so the stack rule (stack_fault.c) has nothing to check here.
 *
 * Invariants (lock held):
 *  - waiters are queued only while state == RUNNING; state becomes DONE
 *    only under the lock, and the list is emptied in the same critical
 *    section, so a waiter that saw RUNNING under the lock is always woken.
 *  - state moves NEW -> RUNNING -> DONE and never back.
 *
 * Rejected: a goro_mutex around fn (Go's slow path does that: every waiter
 * would wake and take the mutex in turn only to see done; the list wakes
 * them all at once); spinning waiters (fn may block for long).
 */
#include "internal.h"
#include "spin.h"

enum { ONCE_NEW = 0, ONCE_RUNNING = 1, ONCE_DONE = 2 };

struct once {
    volatile AO_t state;   /* ONCE_*: see above */
    goro__spin lock;       /* protects head, tail and the RUNNING -> DONE step */
    G *head, *tail;        /* parked callers, FIFO */
};
_Static_assert(sizeof(struct once) <= sizeof(goro_once), "goro_once too small");

static bool once_park_commit(G *g, void *arg)
{
    (void)g;
    goro__spin_unlock(arg);
    return true;
}

/* Out of line: the fast path (DONE) saves no registers. */
static __attribute__((noinline)) int once_slow(struct once *o, goro_fn fn, void *arg,
                                                goro_once *pub)
{
    /* acquire on success: nothing to order (we write, then publish with
     * the release below); full CAS keeps it simple and it runs once */
    if (AO_compare_and_swap_full(&o->state, ONCE_NEW, ONCE_RUNNING)) {
        fn(arg);
        goro__spin_lock(&o->lock);
        /* release: fn's writes happen-before any caller that sees DONE
         * (the fast path's acquire load, or the lock) */
        AO_store_release(&o->state, ONCE_DONE);
        G *list = o->head;
        o->head = o->tail = NULL;
        goro__spin_unlock(&o->lock);
        while (list) {
            G *next = list->schedlink;   /* read before it may run */
            goro__ready(list, false);
            list = next;
        }
        return 0;
    }
    G *self = goro__self();
    goro__spin_lock(&o->lock);
    /* acquire: pairs with the release store of DONE */
    if (AO_load_acquire(&o->state) == ONCE_DONE) {
        goro__spin_unlock(&o->lock);
        return 0;
    }
    if (self == NULL) {
        goro__spin_unlock(&o->lock);
        return -EPERM;
    }
    self->schedlink = NULL;
    if (o->tail)
        o->tail->schedlink = self;
    else
        o->head = self;
    o->tail = self;
    goro__park(once_park_commit, (void *)&o->lock, W_ONCE, pub);
    /* readied after DONE was stored under the lock: fn's writes are
     * visible (goro__ready's full barrier) */
    return 0;
}

int goro_once_do(goro_once *pub, goro_fn fn, void *arg)
{
    struct once *o = (struct once *)(void *)pub;
    if (unlikely(fn == NULL))
        return -EINVAL;
    /* acquire: fn's writes happen-before our return */
    if (likely(AO_load_acquire(&o->state) == ONCE_DONE))
        return 0;
    return once_slow(o, fn, arg, pub);
}
