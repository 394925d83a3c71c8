/*
 * sync.c - WaitGroup (and Mutex, below it).
 *
 * WaitGroup (Go's design): one atomic word holds the counter (high 32
 * bits) and the number of waiters (low 32), so Add and Done never take a
 * lock unless the counter reaches zero with waiters. Waiters queue on a
 * list (linked through G.schedlink, free while a G is parked) under a
 * small spinlock: a waiter takes it, then registers (CAS waiters + 1, only
 * while the counter is not zero) and queues itself, and releases it only
 * in park's unlock function, after the switch. The Done that brings the
 * counter to zero sees how many registered: none, and it returns without
 * touching the WaitGroup again; some, and it clears the word, takes the
 * lock (every registered waiter is on the list by then), takes the list,
 * unlocks, and readies them. So once Wait has returned, nothing in the
 * runtime touches the WaitGroup (its owner may free it; the last waiter's
 * wake comes after the unlock): the earlier design, a count and a list
 * emptied under the lock by every Done that reached zero, wrote to it
 * after a Wait could have seen zero and returned (ThreadSanitizer found
 * it: test_sync's waitgroup_untouched_after_wait_returns). Holders of the
 * spinlock never park while holding it.
 */
#include "internal.h"
#include "spin.h"
#include "sync.h"

struct wg {
    volatile AO_t state;   /* counter << 32 | waiters */
    goro__spin lock;       /* protects head/tail */
    G *head, *tail;        /* parked waiters, FIFO */
};
_Static_assert(sizeof(struct wg) <= sizeof(goro_wg), "goro_wg too small");

#define WG_COUNTER(s) ((int32_t)((uint64_t)(s) >> 32))
#define WG_WAITERS(s) ((uint32_t)(s))

void goro_wg_init(goro_wg *wg)
{
    struct wg *w = (struct wg *)(void *)wg;
    w->state = 0;
    w->lock = 0;
    w->head = w->tail = NULL;
}

/* The counter reached zero with waiters registered: ready them. Nothing
 * else can change the word now (a waiter registers only while the counter
 * is not zero; an Add racing with the last Done and a Wait is the
 * program's error, as in Go). Out of line, so that an Add or Done that
 * does not reach zero saves no registers. */
static __attribute__((noinline)) void wg_release(struct wg *w)
{
    AO_store(&w->state, 0);
    goro__spin_lock(&w->lock);
    G *list = w->head;
    w->head = w->tail = NULL;
    goro__spin_unlock(&w->lock);
    /* w is not touched from here on: a waiter returns once readied */
    while (list) {
        G *next = list->schedlink;
        goro__ready(list, false);
        list = next;
    }
}

void goro_wg_add(goro_wg *wg, int64_t delta)
{
    struct wg *w = (struct wg *)(void *)wg;
    if (delta > INT32_MAX || delta < -(int64_t)INT32_MAX)
        goro__fatal("sync: WaitGroup delta %lld out of range", (long long)delta);
    /* full: the work done before Done must be visible to whoever sees the
     * counter reach zero (the waiter, through the lock or its fast path) */
    AO_t s = AO_fetch_and_add_full(&w->state, (AO_t)((uint64_t)delta << 32)) +
             (AO_t)((uint64_t)delta << 32);
    int32_t n = WG_COUNTER(s);
    if (n < 0)
        goro__fatal("sync: negative WaitGroup counter");
    if (n != 0 || WG_WAITERS(s) == 0)
        return; /* not zero, or nobody waits: w is not touched again */
    wg_release(w);
}

void goro_wg_done(goro_wg *wg)
{
    goro_wg_add(wg, -1);
}

static bool wg_unlock(G *g, void *arg)
{
    (void)g;
    goro__spin_unlock(arg);
    return true;
}

int goro_wg_wait(goro_wg *wg)
{
    struct wg *w = (struct wg *)(void *)wg;
    G *g = goro__self();
    if (g == NULL)
        return -EPERM;
    /* acquire: pairs with the full fetch-and-add of the last Done */
    if (WG_COUNTER(AO_load_acquire(&w->state)) == 0)
        return 0;
    goro__spin_lock(&w->lock);
    for (;;) {
        AO_t s = AO_load_acquire(&w->state);
        if (WG_COUNTER(s) == 0) {
            /* a Done that saw registered waiters may still take the
             * lock: they have not returned, so w is still alive */
            goro__spin_unlock(&w->lock);
            return 0;
        }
        /* full: registered before the Done that reaches zero reads it */
        if (AO_compare_and_swap_full(&w->state, s, s + 1))
            break;
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

/* ======================================================================
 * Mutex
 *
 * One state word carries the fast path: an uncontended lock is one CAS
 * (0 -> LOCKED) and an uncontended unlock one CAS (LOCKED -> 0). Contended
 * lockers spin a little (only with more than one worker: the holder may be
 * running), then queue on a FIFO of waiter records under a small spinlock
 * and park; an unlock that finds WAITERS wakes the first waiter.
 *
 * Fairness is Go's two modes (sync/mutex.go):
 *  - Normal: a woken waiter competes with goroutines arriving now, which
 *    usually win (they are running, and a woken waiter first has to be
 *    scheduled). Good throughput; a waiter that loses goes back to the FRONT
 *    of the queue.
 *  - Starving: a waiter that has waited more than 1 ms sets STARVING. Unlock
 *    then hands the lock directly to the first waiter (LOCKED never drops),
 *    and arriving goroutines neither barge nor spin: they queue at the tail.
 *    The mode ends when the queue empties or a waiter that waited less than
 *    1 ms gets the lock. So no waiter starves, even under cooperative
 *    scheduling where the barging holder never yields the CPU: in starving
 *    mode the holder's next lock call parks it.
 *
 * State bits (the rest of the word is zero):
 *   LOCKED    somebody holds the mutex
 *   WAITERS   the queue is non-empty (changed only under qlock)
 *   STARVING  hand-off mode (changed only under qlock); implies WAITERS
 * Who may change the word: anyone, by CAS, LOCKED 0->1 while STARVING is
 * clear (lock fast path, spinning); the holder LOCKED 1->0 when the word is
 * exactly LOCKED (unlock fast path); a qlock holder anything else. While
 * LOCKED is set and qlock is held, nobody else can change it, so the unlock
 * slow path stores the new word outright.
 *
 * qlock protects head and tail (the queue) and the WAITERS/STARVING bits.
 * Waiter records live on the parked goroutines' stacks; as with channels, a
 * record is linked by the park commit, after the switch, which also drops
 * qlock: an unlocker that sees WAITERS takes qlock and so finds the record.
 *
 * Rejected: a ticket lock (strict FIFO hand-off at every unlock: every
 * contended unlock costs a context switch, the convoy Go's normal mode
 * avoids); a futex (parks the worker thread, not the goroutine).
 * ==================================================================== */


enum {
    MUTEX_LOCKED = 1,
    MUTEX_WAITERS = 2,
    MUTEX_STARVING = 4,
};
#define MUTEX_STARVE_NS 1000000 /* 1 ms, as in Go */
#define MUTEX_SPIN_ROUNDS 4     /* Go's active_spin */
#define MUTEX_SPIN_PAUSES 30    /* Go's active_spin_cnt */

struct mwaiter {
    struct mwaiter *next;   /* in the queue, under qlock */
    G *g;
    struct mutex *m;
    bool front;             /* re-queue at the front (it was woken and lost) */
    bool handoff;           /* set by the unlocker: the lock is ours */
};

struct mutex {
    volatile AO_t state;    /* MUTEX_* bits, see above */
    goro__spin qlock;       /* protects head, tail, WAITERS, STARVING */
    struct mwaiter *head;   /* parked waiters, FIFO (woken losers at head) */
    struct mwaiter *tail;
};
_Static_assert(sizeof(struct mutex) <= sizeof(goro_mutex), "goro_mutex too small");
_Static_assert(_Alignof(struct mutex) <= _Alignof(goro_mutex), "goro_mutex misaligned");

static inline struct mutex *mutex_of(goro_mutex *mu)
{
    return (struct mutex *)(void *)mu;
}

void goro_mutex_init(goro_mutex *mu)
{
    struct mutex *m = mutex_of(mu);
    m->state = 0;
    m->qlock = 0;
    m->head = m->tail = NULL;
}

/* Lock if nobody holds it and no waiter is owed it. */
static inline bool mutex_try(struct mutex *m)
{
    AO_t s = AO_load(&m->state);
    /* acquire: the previous holder's critical section (its release in
     * unlock) happens-before ours */
    return !(s & (MUTEX_LOCKED | MUTEX_STARVING)) &&
           AO_compare_and_swap_acquire(&m->state, s, s | MUTEX_LOCKED);
}

int goro_mutex_trylock(goro_mutex *mu)
{
    return mutex_try(mutex_of(mu)) ? 0 : -EBUSY;
}

/* Park commit: queue the record, then drop qlock (after the switch). */
static bool mutex_park_commit(G *g, void *arg)
{
    struct mwaiter *w = arg;
    struct mutex *m = w->m;
    if (w->front) {
        w->next = m->head;
        m->head = w;
        if (!m->tail)
            m->tail = w;
    } else {
        w->next = NULL;
        if (m->tail)
            m->tail->next = w;
        else
            m->head = w;
        m->tail = w;
    }
    goro__spin_unlock(&m->qlock);
    return true;
}

/* Out of line (as mutex_unlock_slow): inlined, its registers and frame
 * were saved and restored on every uncontended lock and unlock too. */
static __attribute__((noinline)) int mutex_lock_slow(struct mutex *m, G *self, int reason,
                                                     void *waitobj, bool may_spin)
{
    int64_t wait_start = 0;
    bool woken = false;
    int spin = 0;
    bool can_spin = may_spin && goro_procs() > 1;
    for (;;) {
        if (mutex_try(m))
            return 0;
        AO_t s = AO_load(&m->state);
        if (can_spin && spin < MUTEX_SPIN_ROUNDS && !(s & MUTEX_STARVING)) {
            spin++;
            for (int i = 0; i < MUTEX_SPIN_PAUSES; i++)
                goro__cpu_relax();
            continue;
        }
        goro__spin_lock(&m->qlock);
        int64_t now = 0;
        if (woken) {
            now = goro_now();
        }
        for (;;) {
            s = AO_load(&m->state);
            if (!(s & (MUTEX_LOCKED | MUTEX_STARVING))) {
                if (AO_compare_and_swap_acquire(&m->state, s, s | MUTEX_LOCKED)) {
                    /* the queue and its bits are unchanged: still right */
                    goro__spin_unlock(&m->qlock);
                    return 0;
                }
                continue;
            }
            AO_t ns = s | MUTEX_WAITERS;
            if (woken && now - wait_start > MUTEX_STARVE_NS)
                ns |= MUTEX_STARVING;
            /* no ordering beyond the CAS itself: qlock orders the queue;
             * an unlocker whose fast-path CAS fails because of WAITERS
             * takes qlock next */
            if (AO_compare_and_swap(&m->state, s, ns))
                break;
        }
        if (!wait_start)
            wait_start = goro_now();
        struct mwaiter w = { .g = self, .m = m, .front = woken };
        goro__park(mutex_park_commit, &w, reason, waitobj);
        if (w.handoff) {
            /* We hold it (LOCKED never dropped). Leave starving mode if we
             * did not wait long (Go does the same): the queue is moving. */
            if ((AO_load(&m->state) & MUTEX_STARVING) &&
                goro_now() - wait_start < MUTEX_STARVE_NS) {
                goro__spin_lock(&m->qlock);
                /* LOCKED is ours and we hold qlock: nobody else writes */
                AO_store(&m->state, AO_load(&m->state) & ~(AO_t)MUTEX_STARVING);
                goro__spin_unlock(&m->qlock);
            }
            return 0;
        }
        woken = true;
        spin = 0;
    }
}

/* The fast path is a CAS and a return; everything else is out of line in
 * mutex_lock_slow (no frame around the CAS: see the file's header). */
static inline __attribute__((always_inline)) int
mutex_lock_as(goro_mutex *mu, int reason, void *waitobj, bool may_spin)
{
    struct mutex *m = mutex_of(mu);
    G *self = goro__self();
    if (unlikely(self == NULL))
        return -EPERM;
    /* acquire: see mutex_try */
    if (likely(AO_compare_and_swap_acquire(&m->state, 0, MUTEX_LOCKED)))
        return 0;
    return mutex_lock_slow(m, self, reason, waitobj, may_spin);
}

int goro_mutex_lock(goro_mutex *mu)
{
    return mutex_lock_as(mu, W_MUTEX, mu, true);
}

int goro__mutex_lock_as(goro_mutex *mu, int reason, void *waitobj, bool may_spin)
{
    return mutex_lock_as(mu, reason, waitobj, may_spin);
}

static __attribute__((noinline)) void mutex_unlock_slow(struct mutex *m)
{
    if (!(AO_load(&m->state) & MUTEX_LOCKED))
        goro__fatal("sync: unlock of unlocked mutex");
    goro__spin_lock(&m->qlock);
    AO_t s = AO_load(&m->state);
    struct mwaiter *w = m->head;
    if (w == NULL) {
        /* WAITERS without a queue cannot happen (both change under qlock) */
        AO_store_release(&m->state, s & ~(AO_t)(MUTEX_LOCKED | MUTEX_WAITERS | MUTEX_STARVING));
        goro__spin_unlock(&m->qlock);
        return;
    }
    m->head = w->next;
    if (!m->head)
        m->tail = NULL;
    AO_t ns;
    if (s & MUTEX_STARVING) {
        ns = s;                 /* LOCKED stays: it passes to w */
        w->handoff = true;
    } else {
        ns = s & ~(AO_t)MUTEX_LOCKED;
    }
    if (!m->head)
        ns &= ~(AO_t)(MUTEX_WAITERS | MUTEX_STARVING);
    G *g = w->g;
    /* release: our critical section happens-before the next holder's
     * acquire CAS (or, on hand-off, goro__ready's full barrier) */
    AO_store_release(&m->state, ns);
    goro__spin_unlock(&m->qlock);
    goro__ready(g, true);
}

void goro_mutex_unlock(goro_mutex *mu)
{
    struct mutex *m = mutex_of(mu);
    /* release: our critical section happens-before the next holder's
     * acquire */
    if (likely(AO_compare_and_swap_release(&m->state, MUTEX_LOCKED, 0)))
        return;
    mutex_unlock_slow(m);
}
