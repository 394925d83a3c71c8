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
 * The holder's word (locked) is a word of its own, beside the state of
 * the queue (WAITERS, STARVING, CONTENDED). An uncontended lock is one CAS
 * (locked 0 -> 1). The unlock of a mutex that has never had a waiter is a
 * plain store (locked 1 -> 0) and a load of the state: no locked
 * instruction (Go's Unlock is an atomic add); once it has had one, an
 * exchange and a load. Contended lockers spin a little (only with more
 * than one worker: the holder may be running), then queue on a FIFO of
 * waiter records under a small spinlock and park; an unlock that finds
 * WAITERS wakes the first waiter.
 *
 * Why the two words, and the plain store (asymmetric Dekker, as sched.c's
 * runnext). A waiter sets WAITERS, then checks locked before it parks; the
 * unlocker clears locked, then checks WAITERS. If each side's load could
 * pass its own store, both would miss the other, and the waiter would park
 * on a free mutex with nobody to wake it. The exchange is a full barrier;
 * a plain store is not (x86 lets a later load pass it). So the first
 * waiter a mutex ever has sets CONTENDED with WAITERS and runs membarrier(),
 * a full barrier on every CPU running one of our threads: then either an
 * unlocker's plain store is visible to the waiter's check (it takes the
 * mutex instead of parking), or that unlocker's load comes after the
 * barrier and sees WAITERS (it wakes a waiter). Every unlock that loads the
 * state after that sees CONTENDED and exchanges; later waiters fence
 * their own store (a locked OR). An unlock that read the state before
 * CONTENDED was set is the one the barrier covers. (One word could not do
 * this: a plain store of the whole word would erase a WAITERS bit set
 * between the unlocker's load and its store, and no barrier on the waiter's
 * side can close that gap.) CONTENDED is never cleared: a mutex contended
 * once unlocks as before, with one locked instruction. The price is one
 * membarrier per mutex's first contention: 0.1-0.4 us here when idle, far
 * more under load (paid at every park, a first try, it took contended
 * locks from 31 to 145-184 ns: 20,198 membarriers, 0.5 s of system time,
 * for 4,000,000 locks). Without membarrier (kernels
 * before 4.14, ThreadSanitizer builds, GORO_DEBUG=nomembarrier:
 * goro__sched.asym false), every unlock exchanges.
 *
 * Fairness is Go's two modes (sync/mutex.go):
 *  - Normal: a woken waiter competes with goroutines arriving now, which
 *    usually win (they are running, and a woken waiter first has to be
 *    scheduled). Good throughput; a waiter that loses goes back to the FRONT
 *    of the queue.
 *  - Starving: a waiter that has waited more than 1 ms sets STARVING. Unlock
 *    then hands the lock directly to the first waiter (locked stays 1),
 *    and arriving goroutines neither spin nor try: they queue at the
 *    tail. The mode ends when the queue empties or a waiter that waited
 *    less than 1 ms gets the lock. So no waiter starves, even under
 *    cooperative scheduling where the barging holder never yields the CPU:
 *    in starving mode the holder's next lock call parks it.
 *
 * Words:
 *   locked    1 while somebody holds the mutex: set 0 -> 1 by CAS (a
 *             locker, or an unlocker handing it to a starving queue's
 *             head), 1 -> 0 by the holder.
 *   state     WAITERS: the queue is non-empty, or a waiter holding qlock
 *             is about to queue; STARVING: hand-off mode (implies
 *             WAITERS); CONTENDED: see above (never cleared). Written only
 *             under qlock; read anywhere.
 * qlock protects head, tail and state. Waiter records live on the parked
 * goroutines' stacks; as with channels, a record is linked by the park
 * commit, after the switch, which also drops qlock: an unlocker that sees
 * WAITERS takes qlock and so finds the record.
 *
 * Rejected: one word with a CAS on every unlock (uncontended 20.4 ns a
 * lock and unlock, Go's 20.1: two CASes alone take 18.6 ns on this VM, a
 * CAS and a store 10.7); a store and a fence instead of the exchange
 * (contended 42 against 31 ns: mfence costs more than a locked
 * instruction here); a ticket lock (strict FIFO hand-off at every unlock:
 * every contended unlock costs a context switch, the convoy Go's normal
 * mode avoids); a futex (parks the worker thread, not the goroutine).
 * ==================================================================== */


enum {
    MUTEX_WAITERS = 1,
    MUTEX_STARVING = 2,
    MUTEX_CONTENDED = 4,
};
#define MUTEX_QUEUE (MUTEX_WAITERS | MUTEX_STARVING)
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
    volatile AO_t locked;   /* 1 while held: see above */
    volatile AO_t state;    /* MUTEX_* bits, written under qlock */
    goro__spin qlock;       /* protects head, tail and state */
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
    m->locked = 0;
    m->state = 0;
    m->qlock = 0;
    m->head = m->tail = NULL;
}

/* Lock if nobody holds it and no waiter is owed it. */
static inline bool mutex_try(struct mutex *m)
{
    /* acquire: the previous holder's critical section (its release in
     * unlock) happens-before ours */
    return !(AO_load(&m->state) & MUTEX_STARVING) && AO_load(&m->locked) == 0 &&
           AO_compare_and_swap_acquire(&m->locked, 0, 1);
}

int goro_mutex_trylock(goro_mutex *mu)
{
    return mutex_try(mutex_of(mu)) ? 0 : -EBUSY;
}

/* Park commit: queue the record, then drop qlock (after the switch). */
static bool mutex_park_commit(G *g, void *arg)
{
    (void)g;
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

/* Under qlock: take the first waiter off the queue. The queue bits clear
 * when it empties. */
static struct mwaiter *mutex_pop(struct mutex *m)
{
    struct mwaiter *w = m->head;
    m->head = w->next;
    if (!m->head) {
        m->tail = NULL;
        AO_store(&m->state, AO_load(&m->state) & ~(AO_t)MUTEX_QUEUE);
    }
    return w;
}

/* Under qlock, with locked seen 0: the first waiter is to be woken; in
 * starving mode it gets the lock too, unless a locker took it in between
 * (that locker's unlock hands off). Returns the goroutine to ready once
 * qlock is dropped, or NULL. */
static G *mutex_pass(struct mutex *m)
{
    if (m->head == NULL)
        return NULL;
    if (AO_load(&m->state) & MUTEX_STARVING) {
        /* full: the hand-off's acquire, as the locker's CAS would be */
        if (!AO_compare_and_swap_full(&m->locked, 0, 1))
            return NULL;
        m->head->handoff = true;
    }
    return mutex_pop(m)->g;
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
        s = AO_load(&m->state);
        AO_t add = MUTEX_WAITERS | MUTEX_CONTENDED;
        if (woken && goro_now() - wait_start > MUTEX_STARVE_NS)
            add |= MUTEX_STARVING;
        if (!(s & MUTEX_CONTENDED)) {
            /* the first contention: the barrier that covers plain-store
             * unlocks (see the top) */
            AO_store(&m->state, s | add);
            if (!goro__sched.asym || goro__membarrier() != 0)
                AO_nop_full();
        } else if ((s | add) != s) {
            /* full: our bits before our look at locked; the unlocker's
             * exchange is the other half */
            __atomic_fetch_or(&m->state, add, __ATOMIC_SEQ_CST);
        }
        s |= add;
        /* Free now? Take it rather than park, unless a starving queue is
         * owed it: then wake its head with it, and queue behind. */
        G *pass = NULL;
        if (AO_load(&m->locked) == 0) {
            if (!(s & MUTEX_STARVING) || m->head == NULL) {
                if (AO_compare_and_swap_acquire(&m->locked, 0, 1)) {
                    if (m->head == NULL)
                        AO_store(&m->state, s & ~(AO_t)MUTEX_QUEUE);
                    goro__spin_unlock(&m->qlock);
                    return 0;
                }
                /* a locker got in: it sees WAITERS when it unlocks */
            } else if ((pass = mutex_pass(m)) != NULL && m->head == NULL) {
                /* the queue emptied and starving mode with it; WAITERS
                 * again for us (no barrier: it was set all along, under
                 * the qlock we hold) */
                AO_store(&m->state, MUTEX_CONTENDED | MUTEX_WAITERS);
            }
        }
        if (!wait_start)
            wait_start = goro_now();
        struct mwaiter w = { .g = self, .m = m, .front = woken };
        if (pass)
            goro__ready(pass, true); /* under qlock: its unlock waits for it */
        goro__park(mutex_park_commit, &w, reason, waitobj);
        if (w.handoff) {
            /* We hold it (locked never dropped). Leave starving mode if we
             * did not wait long (Go does the same): the queue is moving. */
            if ((AO_load(&m->state) & MUTEX_STARVING) &&
                goro_now() - wait_start < MUTEX_STARVE_NS) {
                goro__spin_lock(&m->qlock);
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
    if (likely(AO_compare_and_swap_acquire(&m->locked, 0, 1)))
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

/* The holder unlocks with waiters queued: hand off (starving) or release
 * and wake the first. */
static __attribute__((noinline)) void mutex_unlock_slow(struct mutex *m)
{
    goro__spin_lock(&m->qlock);
    G *g = NULL;
    bool handoff = false;
    if (m->head != NULL) {
        handoff = (AO_load(&m->state) & MUTEX_STARVING) != 0;
        if (handoff)
            m->head->handoff = true; /* locked stays 1: it passes on */
        g = mutex_pop(m)->g;
    } else {
        /* cannot be (the queue bits change with the queue, under qlock);
         * harmless: just release */
        AO_store(&m->state, AO_load(&m->state) & ~(AO_t)MUTEX_QUEUE);
    }
    /* release: our critical section happens-before the next holder's
     * acquire (on hand-off, goro__ready's full barrier does it) */
    if (!handoff)
        AO_store_release(&m->locked, 0);
    goro__spin_unlock(&m->qlock);
    if (g)
        goro__ready(g, true);
}

/* An unlock released the mutex and then saw WAITERS: a waiter queued (or
 * was about to) meanwhile. Wake the first, unless a locker took the mutex
 * since (its unlock will). */
static __attribute__((noinline)) void mutex_unlock_recheck(struct mutex *m)
{
    goro__spin_lock(&m->qlock);
    G *g = AO_load(&m->locked) == 0 ? mutex_pass(m) : NULL;
    goro__spin_unlock(&m->qlock);
    if (g)
        goro__ready(g, true);
}

static __attribute__((noinline, noreturn)) void mutex_unlock_unlocked(void)
{
    goro__fatal("sync: unlock of unlocked mutex");
}

void goro_mutex_unlock(goro_mutex *mu)
{
    struct mutex *m = mutex_of(mu);
    AO_t s = AO_load(&m->state);
    if (likely(s == 0) && likely(goro__sched.asym)) {
        /* never contended: a plain store (see the top). The check for an
         * unlocked mutex comes after the store (0 over 0 changes nothing,
         * and the process ends): before it, the store waited for it, 3 ns
         * of 16 a lock and unlock */
        AO_t held = AO_load(&m->locked);
        /* release: our critical section happens-before the next holder's
         * acquire */
        AO_store_release(&m->locked, 0);
        /* the CPU may still move the load above the store: the first
         * waiter's membarrier is what orders them; the compiler must not */
        __asm__ __volatile__("" ::: "memory");
        s = AO_load(&m->state);
        if (unlikely(held == 0))
            mutex_unlock_unlocked();
        if (unlikely(s & MUTEX_WAITERS))
            mutex_unlock_recheck(m);
        return;
    }
    if (likely(!(s & MUTEX_QUEUE))) {
        /* full (release and the barrier before our look at the state) */
        if (unlikely(__atomic_exchange_n(&m->locked, 0, __ATOMIC_SEQ_CST) == 0))
            mutex_unlock_unlocked();
        if (unlikely(AO_load(&m->state) & MUTEX_WAITERS))
            mutex_unlock_recheck(m);
        return;
    }
    if (unlikely(AO_load(&m->locked) == 0))
        mutex_unlock_unlocked();
    mutex_unlock_slow(m);
}
