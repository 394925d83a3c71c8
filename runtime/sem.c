/*
 * sem.c - goro_sem, a weighted semaphore with the semantics of
 * golang.org/x/sync/semaphore.
 *
 * Design. size units, cur of them taken; waiters queue FIFO, each with the
 * number of units it wants. An acquire takes its units at once only when
 * they are free AND nobody waits (no barging: a newcomer never overtakes a
 * waiter, so a big request cannot be starved by a stream of small ones).
 * A release gives units back and then serves the queue from the front, in
 * order, stopping at the first waiter that does not fit (even if a smaller
 * one behind it would: x/sync's notifyWaiters does the same, for the same
 * reason). A waiter that gives up on its timeout leaves the queue; if it
 * was at the front, the waiters behind it may now fit, and the timer
 * callback serves them (x/sync does that on context cancellation).
 *
 * Records and the stack rule: as in cond.c. A waiter's record and timer
 * live on its stack; the park commit links the record and arms the timer;
 * whoever unlinks a record under the lock (a release, or the timer
 * callback) owns the wake-up, and deletes the record's timer (waiting for
 * a running callback) before goro__ready. So nothing points into a stack
 * whose goroutine runs. tests/test_window.c checks it.
 *
 * Lock order: sem lock > timer heap lock. goro__timer_del is never called
 * with the sem lock held (a running callback may be waiting for it). Timer
 * callbacks all run on the poller thread, one at a time, so the callback's
 * own goro__timer_del of other waiters' timers never waits for itself.
 *
 * Invariants (sem lock held):
 *  - 0 <= cur <= size;
 *  - a record is queued iff `linked`; a queued record's goroutine is WAITING;
 *  - when the queue is non-empty, its front does not fit (size - cur <
 *    front->n) except transiently inside a release or a timeout.
 */
#include "internal.h"
#include "spin.h"
#include "sync.h"

struct swaiter {
    struct swaiter *next, *prev;   /* in the queue, under the sem lock */
    G *g;
    struct sem *s;
    int64_t n;                     /* units wanted */
    struct goro__timer timer;      /* the timeout, when has_timer */
    bool has_timer;
    bool linked;                   /* queued (under the sem lock) */
    bool timedout;                 /* set by the callback that unlinked it */
};

struct sem {
    goro__spin lock;               /* protects cur, head, tail, linked records */
    int64_t size;                  /* immutable after init */
    int64_t cur;                   /* units taken */
    struct swaiter *head, *tail;   /* waiters, oldest first */
};
_Static_assert(sizeof(struct sem) <= sizeof(goro_sem), "goro_sem too small");

static inline struct sem *sem_of(goro_sem *s)
{
    return (struct sem *)(void *)s;
}

void goro_sem_init(goro_sem *pub, int64_t size)
{
    struct sem *s = sem_of(pub);
    s->lock = 0;
    s->size = size < 0 ? 0 : size;
    s->cur = 0;
    s->head = s->tail = NULL;
}

/* sem lock held. */
static void sem_unlink(struct sem *s, struct swaiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        s->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        s->tail = w->prev;
    w->next = w->prev = NULL;
    w->linked = false;
}

/* sem lock held: give units to the waiters at the front that fit, in
 * order; return them on a private list (through next) to be woken after
 * the unlock by sem_wake_list. */
static struct swaiter *sem_serve(struct sem *s)
{
    struct swaiter *list = NULL, **tail = &list;
    while (s->head && s->size - s->cur >= s->head->n) {
        struct swaiter *w = s->head;
        s->cur += w->n;
        sem_unlink(s, w);
        *tail = w;
        tail = &w->next;
    }
    return list;
}

static void sem_wake_list(struct swaiter *list)
{
    while (list) {
        struct swaiter *next = list->next;   /* read before it may run */
        G *g = list->g;
        if (list->has_timer)
            goro__timer_del(&list->timer);   /* waits for a running callback */
        goro__ready(g, false);                /* list may be gone after this */
        list = next;
    }
}

/* Timer callback (poller thread): the waiter gives up, unless a release
 * took it first. w stays put while we look (see cond.c's callback). */
static void sem_timeout(struct goro__timer *t)
{
    struct swaiter *w = t->arg;
    struct sem *s = w->s;
    goro__spin_lock(&s->lock);
    if (!w->linked) {
        goro__spin_unlock(&s->lock);
        return;
    }
    bool front = s->head == w;
    sem_unlink(s, w);
    w->timedout = true;
    G *g = w->g;
    struct swaiter *more = front ? sem_serve(s) : NULL;
    goro__spin_unlock(&s->lock);
    goro__ready(g, false);
    sem_wake_list(more);
}

static bool sem_park_commit(G *g, void *arg)
{
    struct swaiter *w = arg;   /* W.unlockarg: moved with the stack if it grew */
    struct sem *s = w->s;
    w->next = NULL;
    w->prev = s->tail;
    if (s->tail)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
    w->linked = true;
    if (w->has_timer) {
        w->timer.arg = w;
        goro__timer_add(&w->timer);   /* lock order: sem lock > timer heap */
    }
    goro__spin_unlock(&s->lock);
    return true;
}

int goro_sem_acquire(goro_sem *pub, int64_t n, int64_t timeout_ns)
{
    struct sem *s = sem_of(pub);
    if (n < 0 || n > s->size)
        return -EINVAL;
    goro__spin_lock(&s->lock);
    if (s->size - s->cur >= n && s->head == NULL) {
        s->cur += n;
        goro__spin_unlock(&s->lock);
        return 0;
    }
    if (timeout_ns == 0) {
        goro__spin_unlock(&s->lock);
        return -ETIMEDOUT;
    }
    G *self = goro__self();
    if (self == NULL) {
        goro__spin_unlock(&s->lock);
        return -EPERM;
    }
    struct swaiter w = { .g = self, .s = s, .n = n, .has_timer = timeout_ns > 0 };
    if (w.has_timer) {
        w.timer.when = goro__deadline_after(timeout_ns);
        w.timer.fn = sem_timeout;
    }
    goro__park(sem_park_commit, &w, W_SEM, pub);
    /* the waker unlinked w and deleted its timer before readying us;
     * granted units were added to cur by the waker */
    return w.timedout ? -ETIMEDOUT : 0;
}

int goro_sem_tryacquire(goro_sem *pub, int64_t n)
{
    struct sem *s = sem_of(pub);
    if (n < 0 || n > s->size)
        return -EINVAL;
    goro__spin_lock(&s->lock);
    int rc = -EAGAIN;
    if (s->size - s->cur >= n && s->head == NULL) {
        s->cur += n;
        rc = 0;
    }
    goro__spin_unlock(&s->lock);
    return rc;
}

void goro_sem_release(goro_sem *pub, int64_t n)
{
    struct sem *s = sem_of(pub);
    goro__spin_lock(&s->lock);
    if (n < 0 || n > s->cur) {
        goro__spin_unlock(&s->lock);
        goro__fatal("semaphore: released more than held");
    }
    s->cur -= n;
    struct swaiter *list = sem_serve(s);
    goro__spin_unlock(&s->lock);
    sem_wake_list(list);
}

int goro__sem_waiters(goro_sem *pub)
{
    struct sem *s = sem_of(pub);
    int n = 0;
    goro__spin_lock(&s->lock);
    for (struct swaiter *w = s->head; w; w = w->next)
        n++;
    goro__spin_unlock(&s->lock);
    return n;
}
