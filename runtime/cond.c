/*
 * cond.c - goro_cond, Go's sync.Cond over a goro_mutex, with timeouts.
 *
 * Design. Waiters queue FIFO on the cond under a small spinlock. A waiter's
 * record (and its timeout timer) lives on its own stack. goro_cond_wait
 * takes the cond lock and parks; the park commit, which runs after the
 * switch away, links the record, arms the timer, drops the cond lock and
 * only then unlocks the user's mutex. So "unlock mu and sleep" is atomic:
 * a signal sent by anyone who took mu after us finds our record queued.
 * (Go needs notifyList tickets to get the same, because it unlocks before
 * it parks; tickets cannot skip a waiter that gave up on a timeout.)
 *
 * Waking. Whoever unlinks a record under the cond lock owns the wake-up:
 * signal/broadcast (the waiter returns 0) or the timer callback (the waiter
 * returns -ETIMEDOUT). Exactly one of them does, so a signal is never
 * spent on a waiter that is timing out: it goes to the next in line.
 * A signaller that took a record with a timer deletes the timer before it
 * readies the goroutine (goro__timer_del waits for a callback that is
 * already running; that callback finds the record unlinked and leaves).
 *
 * The stack rule (stack_fault.c, "Invariants"): the record is published
 * only in the park commit, and every waker unlinks it, and removes its
 * timer from the heap, before goro__ready: nothing outside the stack
 * points into it once the goroutine runs again. tests/test_window.c checks
 * it at every depth of a growing stack.
 *
 * Lock order: cond lock > the mutex's queue lock (the commit unlocks mu
 * after dropping the cond lock, so the two are never held together in fact)
 * and cond lock > timer heap lock (the commit arms the timer under the cond
 * lock; the timer callback runs without the heap lock and takes the cond
 * lock). goro__timer_del is never called with the cond lock held: it may
 * wait for a callback that wants it.
 *
 * Invariants (cond lock held):
 *  - a record is on the queue iff its `linked` is set;
 *  - a linked record's goroutine is WAITING and nobody has readied it.
 */
#include "internal.h"
#include "spin.h"
#include "sync.h"

struct cwaiter {
    struct cwaiter *next, *prev;   /* in the queue, under the cond lock */
    G *g;
    struct cond *c;
    goro_mutex *mu;                /* unlocked by the park commit */
    struct goro__timer timer;      /* the timeout, when has_timer */
    bool has_timer;
    bool linked;                   /* on the queue (under the cond lock) */
    bool timedout;                 /* set by the timer callback that unlinked it */
};

struct cond {
    goro__spin lock;               /* protects head, tail, every linked record */
    struct cwaiter *head, *tail;   /* waiters, oldest first */
};
_Static_assert(sizeof(struct cond) <= sizeof(goro_cond), "goro_cond too small");

static inline struct cond *cond_of(goro_cond *c)
{
    return (struct cond *)(void *)c;
}

void goro_cond_init(goro_cond *pub)
{
    struct cond *c = cond_of(pub);
    c->lock = 0;
    c->head = c->tail = NULL;
}

/* cond lock held. */
static void cond_unlink(struct cond *c, struct cwaiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        __atomic_store_n(&c->head, w->next, __ATOMIC_RELAXED); /* peeked by signal */
    if (w->next)
        w->next->prev = w->prev;
    else
        c->tail = w->prev;
    w->next = w->prev = NULL;
    w->linked = false;
}

/* Timer callback (poller thread, no heap lock). w is on a parked stack:
 * nobody can ready its goroutine without deleting this timer first, which
 * waits for us, so w stays put while we look at it. */
static void cond_timeout(struct goro__timer *t)
{
    struct cwaiter *w = t->arg;
    struct cond *c = w->c;
    goro__spin_lock(&c->lock);
    if (!w->linked) {
        goro__spin_unlock(&c->lock);    /* a signal took it first */
        return;
    }
    cond_unlink(c, w);
    w->timedout = true;
    G *g = w->g;
    goro__spin_unlock(&c->lock);
    goro__ready(g, false);               /* w may be gone after this */
}

/* Park commit: queue the record, arm its timer, drop the cond lock, then
 * unlock the user's mutex. Nothing of w is touched after the cond unlock. */
static bool cond_park_commit(G *g, void *arg)
{
    struct cwaiter *w = arg;   /* W.unlockarg: moved with the stack if it grew */
    struct cond *c = w->c;
    goro_mutex *mu = w->mu;
    w->next = NULL;
    w->prev = c->tail;
    if (c->tail)
        c->tail->next = w;
    else
        __atomic_store_n(&c->head, w, __ATOMIC_RELAXED); /* peeked by signal */
    c->tail = w;
    w->linked = true;
    if (w->has_timer) {
        w->timer.arg = w;
        goro__timer_add(&w->timer);   /* lock order: cond lock > timer heap */
    }
    goro__spin_unlock(&c->lock);
    goro_mutex_unlock(mu);
    return true;
}

int goro_cond_wait(goro_cond *pub, goro_mutex *mu, int64_t timeout_ns)
{
    struct cond *c = cond_of(pub);
    if (mu == NULL)
        return -EINVAL;
    G *self = goro__self();
    if (self == NULL)
        return -EPERM;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    struct cwaiter w = { .g = self, .c = c, .mu = mu, .has_timer = timeout_ns > 0 };
    if (w.has_timer) {
        w.timer.when = goro__deadline_after(timeout_ns);
        w.timer.fn = cond_timeout;
    }
    goro__spin_lock(&c->lock);
    goro__park(cond_park_commit, &w, W_COND, pub);
    /* the waker unlinked w and deleted its timer before readying us */
    int rc = w.timedout ? -ETIMEDOUT : 0;
    goro_mutex_lock(mu);
    return rc;
}

/* A record just unlinked by us: delete its timer, then wake it. */
static void cond_wake(struct cwaiter *w)
{
    G *g = w->g;
    if (w->has_timer)
        goro__timer_del(&w->timer);   /* waits for a running callback */
    goro__ready(g, false);             /* w may be gone after this */
}

void goro_cond_signal(goro_cond *pub)
{
    struct cond *c = cond_of(pub);
    /* Relaxed peek, without the lock: a waiter that unlocked mu before
     * our caller locked it was queued before that unlock (its commit), so
     * the mutex's release/acquire makes the queued record visible here;
     * one that queues later waits for a later signal, as in Go.
     * (__atomic on the pointer itself, as sched.c reads W.curg.) */
    if (__atomic_load_n(&c->head, __ATOMIC_RELAXED) == NULL)
        return;
    goro__spin_lock(&c->lock);
    struct cwaiter *w = c->head;
    if (w)
        cond_unlink(c, w);
    goro__spin_unlock(&c->lock);
    if (w)
        cond_wake(w);
}

void goro_cond_broadcast(goro_cond *pub)
{
    struct cond *c = cond_of(pub);
    goro__spin_lock(&c->lock);
    struct cwaiter *list = c->head;
    for (struct cwaiter *w = list; w; w = w->next)
        w->linked = false;   /* next stays: our private list now */
    __atomic_store_n(&c->head, NULL, __ATOMIC_RELAXED); /* peeked by signal */
    c->tail = NULL;
    goro__spin_unlock(&c->lock);
    while (list) {
        struct cwaiter *next = list->next;   /* read before it may run */
        cond_wake(list);
        list = next;
    }
}

int goro__cond_waiters(goro_cond *pub)
{
    struct cond *c = cond_of(pub);
    int n = 0;
    goro__spin_lock(&c->lock);
    for (struct cwaiter *w = c->head; w; w = w->next)
        n++;
    goro__spin_unlock(&c->lock);
    return n;
}
