/*
 * sched.c - workers, run queues, work stealing, park/ready, idle sleep and
 * goro_run.
 *
 * Design. Each worker (W) is one OS thread with a bounded lock-free run
 * queue of 256 goroutines, a runnext slot and a scheduler context (g0: the
 * thread's own stack). A goroutine that blocks, yields or exits picks the
 * next goroutine itself and switches to it directly when one is in its own
 * worker's runnext or queue: one register switch per hand-off, no detour
 * through g0. Only when the local queues are empty does it switch to g0,
 * which looks further (global queue, stealing) and sleeps if there is
 * nothing; and when the next goroutine's stack needs work first (a
 * restore or a shrink: resume_idle), g0 does that too. A goroutine on its
 * way into a park runs nothing but its own way there on its stack: it may
 * have handed out a pointer to a local (README rule 5), and a growth now
 * would move the local away from whoever writes the answer into it.
 * Whatever must happen to the goroutine switched away from (run park's
 * unlock function, put a yielding goroutine back on the queue, free an
 * exited one) happens after the switch, on the next context, so no other
 * worker can ever resume a goroutine whose stack is still in use.
 *
 * Finding work, in order: every 61st round the global queue; runnext (at
 * most 3 in a row, so two goroutines ping-ponging through runnext cannot
 * starve the rest); the spawn stack's newest; the local queue (its head
 * first every 61st round, offset by 30); the global queue; then steal half
 * of a random victim's queue (patiently, below, when steals did not pay),
 * or else the older half of its spawn stack (4 rounds over all victims;
 * the last round may take the victim's runnext), then sleep on a futex.
 *
 * Wakeups (Go's protocol, proc.go). Readying work publishes it, issues a full
 * fence, then wakes an idle worker only when there is one and no worker is
 * spinning (a spinning worker is one looking for work: it will find it). A
 * worker going to sleep first puts itself on the idle list (npidle++), then
 * stops spinning (nspinning--), full fence, then checks every queue once
 * more. Either the waker sees npidle > 0 and nspinning == 0 and wakes someone,
 * or the sleeper's re-check sees the work: no lost wakeup. A spinning worker
 * that finds work stops spinning and, if it was the last spinner and work
 * is queued somewhere, wakes another worker (a waker that saw it spinning
 * counted on it; the same fence-then-recheck as the sleeper's, so that
 * work is not missed either). At most half of the busy workers spin at
 * once.
 *
 * A goroutine readied into an empty runnext wakes nobody at once (Tokio's
 * LIFO slot never does; Go always wakes a worker). Its worker is awake and
 * runs it at its next scheduling point, which in a request/response chain
 * is a microsecond away: the waker is about to park. Waking a sleeping worker
 * for it cost a futex call on the waker's path, and the woken worker then
 * spun, polled and stole in the middle of the chain, so that each hop of
 * a round trip crossed workers: idle_conns_wake on 2 workers, 0.8 futex
 * calls and 4.8 epoll waits a round trip against Tokio's 0.01 and 2.1, and
 * p90 40-45 us against 19-20 (compaction off, 2,000 connections). If the
 * waker runs on instead, the safety net is goro__sched_sysmon (every
 * NAP_NS at most, netpoll.c): it wakes a worker for a runnext whose owner
 * has not scheduled since its last pass, which then steals it. A second
 * ready pushes the first into the queue and wakes as before, and a spawn
 * still wakes (a spawner usually carries on). So does the waker's next
 * channel operation that finishes without parking (goro__nudge, a flag
 * checked by chan.c and select.c): a producer that readied its consumer
 * and sends on into the buffer is not about to park, and its consumer is
 * stolen ~3 us later, as in Go. A producer and a consumer over a 64-slot
 * channel, 2-20 us of work an item on each side, ran as fast as before or
 * faster (medians of 7 alternating runs); without the nudge, at 2 us an
 * item, they ran one after the other (4.0 us an item, against 2.8).
 *
 * Stealing patiently. A steal pays when the goroutine taken runs long
 * enough to be worth its move (its G record, its stack's hot lines and the
 * data it touches follow it to the thief's cache). Goroutines that contend
 * for one lock do not: the lock's release readies them on the releaser's
 * worker, a thief takes them, they meet the lock again within a
 * microsecond and park, and the next release readies them back. On
 * rwmutex_read_heavy (8 goroutines, 2 workers) that was a steal for every
 * four writes and 75 ns an operation, against 23 on one worker. So each
 * worker judges its steals: the first goroutine it runs from a steal is
 * timed to its first park (steal_judge). A park on a lock (Mutex,
 * RWMutex) within STEAL_FUTILE_NS makes the worker patient (W.patience:
 * PATIENCE_MIN ns, doubling up to PATIENCE_MAX); any other first park
 * makes it eager again. Only a lock says "contended": judged by time
 * alone, a producer feeding consumers that work 1-8 us an item ran 1.4x
 * slower, since its consumers, stolen, also park soon (waiting for the
 * next item) after useful parallel work. A patient thief that finds a
 * short queue (PATIENT_QUEUE) on a worker that is running a goroutine
 * watches the owner for W.patience ns first, once per search: if the
 * owner scheduled meanwhile, it is draining its queue itself and the thief
 * leaves it (and is a little less patient next time, so that it tries a
 * steal now and then and finds out whether steals pay again); if the
 * owner is stuck in one goroutine, the thief takes half at once, as
 * before. So a queue is never left behind a stuck owner for longer than
 * PATIENCE_MAX (200 us) plus a search; long queues, the spawn stack and the
 * global queue are taken from at once, as before. Measured (chrt, medians
 * of 5, Intel Xeon VM, 2026-12-03): rwmutex_read_heavy 69 -> 27 ns (Go
 * 29.5), steals 100,000 -> 5,000 per 4,000,000 operations; pingpong,
 * chan_buffered_4x4, mutex_contended, spawn_join and skynet unchanged; a
 * worker pool, a fan-out and message pairs with 1-10 us of work per item,
 * and 8 goroutines sharing a Mutex held for a fifth of their time, kept
 * their parallel speed-up. The cap was 1,000 pauses (~17 us here) at
 * first: a thief then still took from an owner stuck in one lock-bound
 * goroutine every 17 us, which set off a round of contention each time;
 * at 200 us, steals went from ~5,000 to ~500 per 4,000,000 operations and
 * rwmutex_read_heavy from 30 to 20.7 ns (Go 21.9; one worker alone: 20),
 * medians of 5, unpinned, the other rows unchanged. Rejected: readers
 * spinning instead of parking (both workers then run into the lock at
 * once, the expensive case on this machine: 78-90 ns); a longer grace
 * before stealing runnext (it keeps the thief out of the way everywhere,
 * not only where steals did not pay).
 *
 * Idle spinning. A spinner that found nothing polls the queues for ~240 us
 * more before it sleeps: while it is counted in nspinning, readying work
 * costs no futex wake (a syscall on the waker's path). An idle runtime
 * still ends up with every worker asleep. It polls the netpoller only when
 * no other worker has for IDLE_POLL_QUIET of its looks (~5-7 us; W.npoll
 * counts each worker's polls): a worker that runs out of work polls it
 * itself, and a spinner that polled every look took the I/O the busy
 * worker was about to find, so that a request and its reply each crossed
 * to the other worker (idle_conns_wake: 8 epoll calls a round trip, and
 * 19-24 us against 12-14 now, medians of 20,000). A spinner beside a
 * worker stuck in one goroutine still polls every ~7 us, and at every look
 * when the others sleep or there are none (one worker: nobody else is
 * about to poll); once asleep, the poller thread's sweep (netpoll.c,
 * NAP_NS) takes over, as before.
 *
 * Spawning. A child goes to runnext and the parent carries on (as in Go).
 * A child still in runnext when its worker spawns again is pushed onto the
 * worker's spawn stack (w->lifo, GORO_LIFO entries), not the queue: spawned
 * children run newest first, so a tree of spawns runs depth-first and only
 * a path of it is alive at once. Go queues them first-in first-out, and
 * runs a tree breadth-first: skynet (1,111,111 goroutines) peaks at about
 * 80,000 alive there and in goro before the spawn stack, 200-370 MB; with
 * it, 2-3 MB and 12x faster (a first touch of a page costs ~10 us on this
 * VM, whatever was populated ahead). Thieves take the oldest half, the
 * biggest subtrees (Cilk's and Rayon's work-first stealing order). Nothing
 * waits forever: a full stack pushes its oldest entry to the queue, and an
 * entry older than LIFO_AGE rounds is taken from the bottom (at most one
 * per LIFO_AGE rounds: one each 61 rounds made a 1M tree on one worker
 * breadth-first again, 160 MB). Only a spawn pushes onto it, so it holds
 * what a spawn pushed out of runnext (nearly always an earlier child); a
 * goroutine that yields or is woken goes to the queue or runnext as before.
 * When the parent's queue and spawn stack together hold a queue's worth,
 * the child runs at once and the parent continues from runnext: a
 * goroutine spawning in a loop cannot run arbitrarily far ahead of the
 * workers (Go bounds it by preemption).
 *
 * A single worker has no thieves: its queue's claims are plain stores.
 *
 * Rejected: a g0 round trip on every switch (two switches per hand-off,
 * twice the cost of Go's own design where it is avoidable); running every
 * child at once with its parent in runnext (skynet stayed breadth-first,
 * 1.4 s: the parent kicks its own parent to the FIFO queue); one global
 * locked queue (contention on every spawn and wakeup); a condition variable
 * per worker (a futex word is cheaper and cannot lose a wake issued before
 * the wait).
 *
 * Invariants (run queue):
 *  - only the owner writes runq_tail and the slots in [tail, head+256);
 *  - runq_head only moves forward, by CAS; a slot is read before the CAS that
 *    claims it, and the CAS fails if the slot was claimed or overwritten;
 *  - a G is in at most one of: a runq, a runnext, a spawn stack, the global
 *    queue, a free list, a wait queue, or running;
 *  - only the owner pushes onto its spawn stack, without the lock, in
 *    slots above the top it then publishes; everything else on it (pop,
 *    steal, aging, eviction) is under lifo_lock (with more than one
 *    worker); top - bot read without the lock is a hint, except that the
 *    owner's empty is true.
 * Invariants (idle):
 *  - w->onidle  <=>  w is on sched.idle  (under sched.lock);
 *  - sched.npidle == number of W with onidle (written under sched.lock);
 *  - a W taken off the idle list by a waker has spinning set and parked 0.
 */
#include "internal.h"
#include "annotate.h"
#include "asm/offsets.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(offsetof(struct goro__ctx, rsp) == 0, "asm offsets");
_Static_assert(offsetof(struct goro__ctx, rbx) == 8, "asm offsets");
_Static_assert(offsetof(struct goro__ctx, r12) == 24, "asm offsets");
_Static_assert(offsetof(struct goro__ctx, r15) == 48, "asm offsets");

/* What a worker does with w->pend after switching away from it. */
enum {
    PEND_NONE,
    PEND_PARK,      /* run its unlock function; undo the park if it says so */
    PEND_YIELD,     /* to the tail of the local queue */
    PEND_SPAWNER,   /* to runnext: a spawner that let its child run first */
    PEND_EXIT,      /* to the free list */
};

/* adaptive: spins briefly before sleeping; the lock is held for a few
 * dozen instructions, and a futex sleep costs more than the wait */
struct goro__sched goro__sched = { .lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP };
struct goro__counters goro__ctr;

__thread W *goro__tls_w __attribute__((tls_model("initial-exec")));
#define tls_w goro__tls_w
static __thread bool tls_internal __attribute__((tls_model("initial-exec")));

void goro__mark_internal_thread(void)
{
    tls_internal = true;
}

/* glibc declares __errno_location const, so the compiler may reuse the old
 * thread's errno address after a switch; a call through a volatile pointer
 * cannot be reused. */
static int *(*volatile errno_location)(void) = __errno_location;

/* ------------------------------------------------------------------ */

void goro__fatal(const char *fmt, ...)
{
    char buf[512];
    static const char head[] = "goro: fatal: ";
    memcpy(buf, head, sizeof head - 1);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + sizeof head - 1, sizeof buf - sizeof head, fmt, ap);
    va_end(ap);
    size_t len = sizeof head - 1 + (n < 0 ? 0 : (size_t)n);
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    /* one write(2): async-signal-safe, unbuffered, not interleaved with
     * other processes' lines */
    ssize_t r = write(2, buf, len);
    (void)r;
    abort();
}

static long futex(volatile int *addr, int op, int val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static inline uint32_t fastrand(W *w)
{
    uint64_t x = w->rand;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rand = x;
    return (uint32_t)(x >> 32);
}

/* For the dump's "waiting for how long": CLOCK_MONOTONIC_COARSE (tick
 * resolution) costs 5.6 ns here against 39 ns for CLOCK_MONOTONIC, and it
 * is read on every park. */
static inline int64_t coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t goro__coarse_now(void)
{
    return coarse_now();
}

W *goro__self_w(void)
{
    return tls_w;
}

bool goro__running(void)
{
    /* acquire: pairs with the release in goro_run that publishes the
     * workers before running is set */
    return AO_load_acquire(&goro__sched.running) != 0;
}

/* ------------------------------------------------------------------
 * Local run queue
 * ------------------------------------------------------------------ */

/* Entries on w's spawn stack. */
static inline AO_t lifo_len(W *w)
{
    /* a hint: each index is read atomically, not the pair */
    return AO_load(&w->lifo_top) - AO_load(&w->lifo_bot);
}

static bool runq_empty(W *w)
{
    /* A thief's guess: the queue may change right after. Acquire so that a
     * G published by the owner's release store of tail is seen with it. */
    for (;;) {
        AO_t h = AO_load_acquire(&w->runq_head);
        AO_t t = AO_load_acquire(&w->runq_tail);
        AO_t n = AO_load_acquire(&w->runnext);
        if (t == AO_load_acquire(&w->runq_tail))
            return h == t && n == 0 && lifo_len(w) == 0;
    }
}

/* Claim run-queue slots (move head) against thieves.
 * With a single worker there are no thieves: only the owner's thread ever
 * touches its queue, and a plain compare-and-store replaces the locked
 * CAS (6 ns here, a third of a yield). */
static inline bool rq_claim(volatile AO_t *addr, AO_t old, AO_t new_)
{
    if (goro__sched.nprocs == 1) {
        if (*addr != old)
            return false;
        *addr = new_;
        return true;
    }
    /* full: orders the slot reads before the claim, against thieves */
    return AO_compare_and_swap_full(addr, old, new_);
}

/* runnext without locked operations (asymmetric Dekker).
 *
 * The owner touches runnext on every hand-off; thieves almost never (only
 * to rescue a goroutine left there while its worker runs one goroutine for
 * a long time). So the owner uses plain loads and stores, bracketed by
 * rn_seq (odd while it is at it), after checking that no thief has raised
 * rn_thief; a thief raises rn_thief, then runs membarrier(), which executes
 * a full barrier on every CPU running one of our threads, then checks that
 * rn_seq is even and has not moved since before its grace period. Either the
 * owner's rn_seq increment is visible to the thief after the membarrier
 * (the thief backs off), or the owner's load of rn_thief happens after the
 * barrier and sees it raised (the owner uses CAS, which arbitrates with the
 * thief's). Two locked operations fewer per hand-off with more than one
 * worker; the cost, a membarrier of a few microseconds, falls on the rare
 * runnext steal. Without membarrier (old kernels), both sides use CAS. */
static inline bool rn_plain_begin(W *w)
{
    if (goro__sched.nprocs == 1)
        return true;
    if (!goro__sched.asym)
        return false;
    AO_store(&w->rn_seq, w->rn_seq + 1); /* odd: in progress */
    /* the compiler must not move the load above the store; the CPU may,
     * and the thief's membarrier is what orders them (see above) */
    __asm__ __volatile__("" ::: "memory");
    if (AO_load(&w->rn_thief) == 0)
        return true;
    AO_store(&w->rn_seq, w->rn_seq + 1);
    return false;
}

static inline void rn_plain_end(W *w)
{
    if (goro__sched.nprocs == 1)
        return;
    __asm__ __volatile__("" ::: "memory");
    AO_store(&w->rn_seq, w->rn_seq + 1); /* even: done */
}

static long membarrier(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0, 0);
}

long goro__membarrier(void)
{
    return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
}

/* Global queue, under sched.lock. */
static void globq_put_batch_locked(G *head, G *tail, int n)
{
    tail->schedlink = NULL;
    if (goro__sched.gq_tail)
        goro__sched.gq_tail->schedlink = head;
    else
        goro__sched.gq_head = head;
    goro__sched.gq_tail = tail;
    /* store: read without the lock only as a hint (is it worth locking?) */
    AO_store(&goro__sched.gq_size, AO_load(&goro__sched.gq_size) + (AO_t)n);
}

static void globq_put_batch(G *head, G *tail, int n)
{
    pthread_mutex_lock(&goro__sched.lock);
    globq_put_batch_locked(head, tail, n);
    pthread_mutex_unlock(&goro__sched.lock);
}

/* Move half of the local queue, plus g, to the global queue. Fails when
 * thieves moved head meanwhile (the queue is then no longer full). */
static bool runq_put_slow(W *w, G *g, AO_t h, AO_t t)
{
    G *batch[GORO_RUNQ / 2 + 1];
    AO_t n = (t - h) / 2;
    for (AO_t i = 0; i < n; i++)
        batch[i] = (G *)AO_load(&w->runq[(h + i) % GORO_RUNQ]);
    /* full (rq_claim): the slots were read before; claiming them must be
     * ordered after those reads and against the thieves' CAS */
    if (!rq_claim(&w->runq_head, h, h + n))
        return false;
    batch[n] = g;
    for (AO_t i = 0; i < n; i++)
        batch[i]->schedlink = batch[i + 1];
    globq_put_batch(batch[0], batch[n], (int)n + 1);
    return true;
}

/* Owner only. Put g in runnext; return what was there (or NULL). Without
 * a locked operation when rn_plain_begin allows; else a full CAS. */
static inline __attribute__((always_inline)) G *runnext_swap(W *w, G *g)
{
    AO_t old;
    if (rn_plain_begin(w)) {
        old = w->runnext;
        GORO_OWNER_STORE(w->runnext, (AO_t)g); /* sysmon reads it */
        rn_plain_end(w);
    } else {
        do {
            old = AO_load(&w->runnext);
            /* full: a thief is at it; g's fields must be visible to
             * whoever takes it */
        } while (!AO_compare_and_swap_full(&w->runnext, old, (AO_t)g));
    }
    return (G *)old;
}

/* Owner only. next: into runnext, kicking the old runnext to the queue.
 * Returns true when a G went into the queue (a release store, no full
 * barrier), false when only runnext changed (a full barrier with more
 * than one worker). */
static inline __attribute__((always_inline)) bool runq_put(W *w, G *g, bool next)
{
    if (next) {
        g = runnext_swap(w, g);
        if (g == NULL)
            return false;
    }
    for (;;) {
        /* acquire: a thief's CAS of head released the slots it read */
        AO_t h = AO_load_acquire(&w->runq_head);
        AO_t t = w->runq_tail; /* only we write it */
        if (t - h < GORO_RUNQ) {
            AO_store(&w->runq[t % GORO_RUNQ], (AO_t)g);
            /* release: the slot (and g's fields) before the new tail */
            AO_store_release(&w->runq_tail, t + 1);
            return true;
        }
        if (runq_put_slow(w, g, h, t))
            return true;
    }
}

/* Owner only: take runnext, or NULL. */
static inline __attribute__((always_inline)) G *runnext_take(W *w)
{
    if (AO_load(&w->runnext) == 0)
        return NULL;
    AO_t next;
    if (rn_plain_begin(w)) {
        next = w->runnext;
        GORO_OWNER_STORE(w->runnext, 0); /* sysmon reads it */
        rn_plain_end(w);
    } else {
        next = AO_load(&w->runnext);
        /* full: a thief is at it */
        if (next && !AO_compare_and_swap_full(&w->runnext, next, 0))
            next = 0;
    }
    return (G *)next;
}

/* Owner only: the head of the queue, or NULL. */
static inline __attribute__((always_inline)) G *runq_take(W *w)
{
    for (;;) {
        AO_t h = AO_load_acquire(&w->runq_head);
        AO_t t = w->runq_tail;
        if (t == h)
            return NULL;
        G *g = (G *)AO_load(&w->runq[h % GORO_RUNQ]);
        /* full (rq_claim): claims the slot read above against thieves */
        if (rq_claim(&w->runq_head, h, h + 1))
            return g;
    }
}

/* A pause instruction takes 28 ns on an AMD EPYC (measured 2026-11-27),
 * 16-17 ns on the Intel Xeon VM (2026-12-03); 10-40 ns on current x86.
 * Short spins below are in pauses, so that waiting costs no clock reads
 * (clock_gettime is 20-39 ns); the patient watch, up to 200 us, reads
 * the clock once every PATIENCE_CHUNK pauses. */
#define RUNNEXT_GRACE_PAUSES 100   /* ~3 us: Go's grace before stealing runnext */
#define PATIENCE_MIN 2000          /* ns: the first patient look, about the grace */
#define PATIENCE_MAX 200000        /* ns: the longest (see patient_watch) */
#define PATIENCE_CHUNK 64          /* pauses between looks at the clock */
#define PATIENT_QUEUE 32           /* longer queues are taken from at once */
#define STEAL_FUTILE_NS 10000      /* a stolen goroutine that parks sooner did
                                      not pay for its move */
#define IDLE_SPIN_POLLS 128        /* polls of the queues before sleeping */
#define IDLE_SPIN_PAUSES 64        /* pauses between polls: ~1-1.8 us; ~240 us in all */
#define IDLE_POLL_QUIET 4          /* polls of the queues with no other worker
                                      polling the netpoller before we do */

static inline void cpu_pause(int n)
{
    for (int i = 0; i < n; i++)
        __asm__ __volatile__("pause" ::: "memory");
}

/* ------------------------------------------------------------------
 * Spawn stack (see "Spawning" at the top): a ring, [lifo_bot, lifo_top),
 * newest at the top. The lock is held for a few instructions; with one
 * worker there are no thieves and it is not taken.
 * ------------------------------------------------------------------ */

#define LIFO_TRIES 64 /* a thief's bounded spin; it retries on its next round */
#define LIFO_AGE 65536 /* rounds: 16,384 made skynet on one worker 10x slower */
_Static_assert(GORO_LIFO <= GORO_RUNQ, "a stolen half of the spawn stack fits a steal batch");
_Static_assert((GORO_LIFO & (GORO_LIFO - 1)) == 0, "ring indices stay right when they wrap");

static inline bool lifo_trylock(W *w, int tries)
{
    if (goro__sched.nprocs == 1)
        return true;
    for (int i = 0; tries < 0 || i < tries; i++) {
        /* acquire: the entries written by the last holder */
        if (AO_load(&w->lifo_lock) == 0 && AO_compare_and_swap_acquire(&w->lifo_lock, 0, 1))
            return true;
        cpu_pause(1);
    }
    return false;
}

static inline void lifo_unlock(W *w)
{
    if (goro__sched.nprocs != 1)
        AO_store_release(&w->lifo_lock, 0); /* release: our entries */
}

#define LIFO_AT(i) ((i) % GORO_LIFO)

/* Owner only. Push g; when the stack is full its oldest entry makes room
 * and is returned, for the caller to queue (so every entry leaves the
 * stack: run from the top, stolen from the bottom, or pushed out).
 * Without the lock unless full: a thief (under the lock) reads only slots
 * below the top it loaded, and the one written here is above it; it is
 * not one of theirs modulo GORO_LIFO since top - bot < GORO_LIFO (bot read
 * here may be stale, but only ever too low). With the lock on every push,
 * a thief taking children as fast as they came kept its line bouncing:
 * spawn_join on 2 workers 374 ns a spawn against 230 before. */
static inline G *lifo_push(W *w, G *g)
{
    AO_t t = w->lifo_top;
    G *out = NULL;
    /* acquire: a thief's reads of the slots it took are done */
    if (t - AO_load_acquire(&w->lifo_bot) >= GORO_LIFO) {
        lifo_trylock(w, -1);
        AO_t b = w->lifo_bot;
        if (t - b >= GORO_LIFO) {
            out = w->lifo[LIFO_AT(b)];
            AO_store(&w->lifo_bot, b + 1);
        }
        lifo_unlock(w);
    }
    w->lifo[LIFO_AT(t)] = g;
    w->lifo_tick[LIFO_AT(t)] = w->schedtick;
    /* release: the slot (and g's fields) before the top that covers it; a
     * sleeper's re-check is ordered by the wakep that follows */
    AO_store_release(&w->lifo_top, t + 1);
    return out;
}

/* Owner only. The newest entry, or NULL. Only the owner adds entries, so
 * an empty stack read without the lock is empty. */
static inline G *lifo_take(W *w)
{
    if (w->lifo_top == w->lifo_bot_seen)
        return NULL;
    lifo_trylock(w, -1);
    AO_t t = w->lifo_top, b = w->lifo_bot;
    G *g = NULL;
    if (t != b) {
        g = w->lifo[LIFO_AT(t - 1)];
        AO_store(&w->lifo_top, --t);
    }
    w->lifo_bot_seen = b;
    lifo_unlock(w);
    return g;
}

/* Owner only. The oldest entry if it has waited more than LIFO_AGE
 * scheduling rounds, else NULL; at most one per LIFO_AGE rounds. */
static G *lifo_take_aged(W *w)
{
    if (w->lifo_top == w->lifo_bot_seen || w->schedtick - w->lifo_aged <= LIFO_AGE)
        return NULL;
    lifo_trylock(w, -1);
    AO_t b = w->lifo_bot;
    G *g = NULL;
    if (w->lifo_top != b && w->schedtick - w->lifo_tick[LIFO_AT(b)] > LIFO_AGE) {
        g = w->lifo[LIFO_AT(b)];
        AO_store(&w->lifo_bot, ++b);
        w->lifo_aged = w->schedtick;
    }
    w->lifo_bot_seen = b;
    lifo_unlock(w);
    return g;
}

/* Thieves: the older half (at least one) of victim's spawn stack into
 * batch, oldest first. 0 when it is empty or its lock is busy. */
static AO_t lifo_grab(W *victim, G **batch)
{
    if (lifo_len(victim) == 0 || !lifo_trylock(victim, LIFO_TRIES))
        return 0;
    AO_t b = victim->lifo_bot;
    /* acquire: the slots below it were written before it */
    AO_t t = AO_load_acquire(&victim->lifo_top);
    AO_t n = t - b, k = n - n / 2;
    for (AO_t i = 0; i < k; i++)
        batch[i] = victim->lifo[LIFO_AT(b + i)];
    /* release: our reads of the slots before the owner may reuse them */
    AO_store_release(&victim->lifo_bot, b + k);
    lifo_unlock(victim);
    return k;
}

/* "Stealing patiently" (at the top): watch victim, the owner of a short
 * queue, for w->patience ns. True: it did not schedule meanwhile (it is
 * stuck in one goroutine), so take from it now. False: it did (it is
 * draining its queue itself: leave it, and look a little less long next
 * time, so that a worker that stopped stealing finds out when stealing
 * would pay again), or the global queue got work, looked at every
 * PATIENCE_CHUNK pauses (the search goes on to it). The owner is judged
 * at the end of the watch only: leaving as soon as it schedules would
 * make the thief search, and so lose patience, many times more often
 * (rwmutex_read_heavy: 2,300 steals instead of 800, 30 ns instead of 23).
 * Timed with the clock, not by counting pauses: a pause takes 17 ns on
 * this Intel VM, 28 on an AMD EPYC, a few on older cores, and the
 * watch's length is what keeps a stuck owner's queue waiting. */
static bool patient_watch(W *w, W *victim)
{
    /* relaxed: a heuristic, as the runnext grace below */
    uint32_t tick = __atomic_load_n(&victim->schedtick, __ATOMIC_RELAXED);
    int64_t end = goro_now() + w->patience;
    do {
        cpu_pause(PATIENCE_CHUNK);
        if (AO_load(&goro__sched.gq_size) != 0)
            return false;
    } while (goro_now() < end);
    if (__atomic_load_n(&victim->schedtick, __ATOMIC_RELAXED) != tick) {
        w->patience -= w->patience / 8 + 1;
        return false;
    }
    return true;
}

/* Take half of victim's queue into batch. Thieves (w) only; watch: a
 * patient thief may watch the owner (at most once a search, so that the
 * search, which also polls the global queue and the netpoller, goes on). */
static AO_t runq_grab(W *w, W *victim, G **batch, bool stealnext, bool watch)
{
    bool watched = false;
    for (;;) {
        AO_t h = AO_load_acquire(&victim->runq_head);
        /* acquire: the slots below tail were published with it */
        AO_t t = AO_load_acquire(&victim->runq_tail);
        AO_t n = t - h;
        /* "Stealing patiently" (at the top): a short queue whose owner keeps
         * scheduling is left to it, when our recent steals did not pay. */
        if (w->patience != 0 && !watched && n != 0 && n <= PATIENT_QUEUE &&
            __atomic_load_n(&victim->curg, __ATOMIC_RELAXED) != NULL) {
            if (!watch)
                return 0;
            watched = true;
            if (patient_watch(w, victim))
                continue; /* the owner is stuck: take half now */
            return 0;
        }
        n = n - n / 2;
        if (n == 0) {
            if (!stealnext)
                return 0;
            AO_t next = AO_load_acquire(&victim->runnext);
            if (next == 0)
                return 0;
            /* The victim is probably about to run its runnext (it was
             * readied by the running goroutine, which is blocking). Give it
             * a moment, as Go does, before taking it to another worker,
             * and leave it if the victim scheduled meanwhile: a ping-pong
             * puts the same G back in runnext over and over, and a CAS on
             * the value alone would take it away mid-conversation. */
            AO_t seq = AO_load(&victim->rn_seq);
            if (seq & 1)
                return 0; /* the owner is at it right now */
            if (victim->curg != NULL) {
                uint32_t tick = __atomic_load_n(&victim->schedtick, __ATOMIC_RELAXED);
                cpu_pause(RUNNEXT_GRACE_PAUSES);
                if (__atomic_load_n(&victim->schedtick, __ATOMIC_RELAXED) != tick)
                    return 0;
            }
            bool took = false;
            if (goro__sched.asym) {
                /* full: one thief at a time, and raised before the barrier */
                if (!AO_compare_and_swap_full(&victim->rn_thief, 0, 1))
                    return 0;
                if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 &&
                    AO_load(&victim->rn_seq) == seq)
                    took = AO_compare_and_swap_full(&victim->runnext, next, 0);
                /* release: our CAS before the owner may go plain again */
                AO_store_release(&victim->rn_thief, 0);
                if (!took)
                    return 0;
            } else if (!AO_compare_and_swap_full(&victim->runnext, next, 0)) {
                continue;
            }
            batch[0] = (G *)next;
            return 1;
        }
        if (n > GORO_RUNQ / 2)
            continue; /* h and t read at different times: inconsistent */
        for (AO_t i = 0; i < n; i++)
            batch[i] = (G *)AO_load(&victim->runq[(h + i) % GORO_RUNQ]);
        /* full: the slots were read before the CAS that claims them */
        if (AO_compare_and_swap_full(&victim->runq_head, h, h + n))
            return n;
    }
}

/* Steal half of victim's queue into w's; return one G to run. */
static G *runq_steal(W *w, W *victim, bool stealnext, bool watch)
{
    G *batch[GORO_RUNQ / 2];
    AO_t n = runq_grab(w, victim, batch, false, watch);
    if (n == 0 && (n = lifo_grab(victim, batch)) != 0) {
        /* the newest of the older half runs, the rest keep their order on
         * our spawn stack (empty: we only steal when we have nothing) */
        G *g = batch[--n];
        for (AO_t i = 0; i < n; i++) {
            G *out = lifo_push(w, batch[i]);
            if (out != NULL)
                runq_put(w, out, false);
        }
        AO_fetch_and_add1(&goro__ctr.steals);
        return g;
    }
    if (n == 0 && stealnext)
        n = runq_grab(w, victim, batch, true, false);
    if (n == 0)
        return NULL;
    G *g = batch[--n];
    if (n > 0) {
        AO_t t = w->runq_tail;
        for (AO_t i = 0; i < n; i++)
            AO_store(&w->runq[(t + i) % GORO_RUNQ], (AO_t)batch[i]);
        /* release: publish the slots. Our queue was empty (we only steal
         * when it is), so they fit. */
        AO_store_release(&w->runq_tail, t + n);
    }
    AO_fetch_and_add1(&goro__ctr.steals);
    return g;
}

/* Take a batch from the global queue: one G to run, the rest (up to half a
 * local queue) into w's local queue. */
static G *globq_get(W *w, int max)
{
    if (AO_load(&goro__sched.gq_size) == 0)
        return NULL;
    pthread_mutex_lock(&goro__sched.lock);
    AO_t size = goro__sched.gq_size;
    if (size == 0) {
        pthread_mutex_unlock(&goro__sched.lock);
        return NULL;
    }
    AO_t n = size / (AO_t)goro__sched.nprocs + 1;
    if (n > size)
        n = size;
    if (max > 0 && n > (AO_t)max)
        n = (AO_t)max;
    if (n > GORO_RUNQ / 2)
        n = GORO_RUNQ / 2;
    AO_store(&goro__sched.gq_size, size - n);
    G *g = goro__sched.gq_head;
    goro__sched.gq_head = g->schedlink;
    G *rest = goro__sched.gq_head;
    for (AO_t i = 1; i < n; i++)
        goro__sched.gq_head = goro__sched.gq_head->schedlink;
    if (goro__sched.gq_head == NULL)
        goro__sched.gq_tail = NULL;
    pthread_mutex_unlock(&goro__sched.lock);
    for (AO_t i = 1; i < n; i++) {
        G *next = rest->schedlink;
        runq_put(w, rest, false);
        rest = next;
    }
    return g;
}

/* ------------------------------------------------------------------
 * Idle workers and wakeups
 * ------------------------------------------------------------------ */

/* Wake one idle worker as a spinner. Called with nspinning already raised
 * on its behalf. Returns false (and lowers it back) when none is idle. */
static bool start_spinner(void)
{
    pthread_mutex_lock(&goro__sched.lock);
    W *w = goro__sched.idle;
    if (w == NULL) {
        pthread_mutex_unlock(&goro__sched.lock);
        /* full: pairs with the sleeper's fence-then-recheck */
        AO_fetch_and_sub1_full(&goro__sched.nspinning);
        return false;
    }
    goro__sched.idle = w->idlenext;
    w->onidle = false;
    /* w's own thread reads it after it sees parked == 0 (acquire) or
     * after it takes the lock (sleep_worker's re-check) */
    w->spinning = true;
    AO_t idle = AO_load(&goro__sched.npidle);
    AO_store(&goro__sched.npidle, idle - 1);
    /* release: spinning and onidle before the worker sees parked == 0 */
    __atomic_store_n(&w->parked, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&goro__sched.lock);
    futex(&w->parked, FUTEX_WAKE_PRIVATE, 1, NULL);
    if (idle == (AO_t)goro__sched.nprocs)
        goro__netpoll_workers_busy();
    return true;
}

/* Wake an idle worker if there is one and none is spinning. Reads the
 * counts without a fence: wakep() issues it first where the work's
 * publication must be ordered before them (the sleeper's protocol). */
static void wake_idle(void)
{
    if (AO_load(&goro__sched.npidle) == 0)
        return;
    if (AO_load(&goro__sched.nspinning) != 0 ||
        !AO_compare_and_swap_full(&goro__sched.nspinning, 0, 1))
        return;
    start_spinner();
}

static void wakep(void)
{
    /* full: the published work must be visible before we read the counts
     * (the other half of the sleeper's protocol) */
    AO_nop_full();
    wake_idle();
}

static bool any_queued(W *self);

static void stop_spinning(W *w)
{
    w->spinning = false;
    /* full: we are about to run a G. If we were the last spinner, a waker
     * may have left work to us: the fence orders our decrement before the
     * look at the queues, the waker's fence its work before its look at
     * nspinning, so one of us sees the other ("Wakeups", at the top). Our
     * own queue counts too: a batch we just took from the global queue
     * (or a steal's rest) is work another worker could take from us. */
    if (AO_fetch_and_sub1_full(&goro__sched.nspinning) == 1 && any_queued(NULL))
        wakep();
}

static void wake_all_workers(void)
{
    pthread_mutex_lock(&goro__sched.lock);
    while (goro__sched.idle) {
        W *w = goro__sched.idle;
        goro__sched.idle = w->idlenext;
        w->onidle = false;
        AO_store(&goro__sched.npidle, AO_load(&goro__sched.npidle) - 1);
        __atomic_store_n(&w->parked, 0, __ATOMIC_RELEASE);
        futex(&w->parked, FUTEX_WAKE_PRIVATE, 1, NULL);
    }
    pthread_mutex_unlock(&goro__sched.lock);
}

/* Work in the global queue or another worker's queue (any worker's when
 * self is NULL), not counting runnext slots (a runnext is its owner's to
 * run next, and its owner is awake; a busy worker's runnext changes every
 * hand-off, and polling it would only steal cache lines). */
static bool any_queued(W *self)
{
    if (AO_load(&goro__sched.gq_size) != 0)
        return true;
    for (int i = 0; i < goro__sched.nprocs; i++) {
        W *v = &goro__sched.ws[i];
        if (v != self && (AO_load(&v->runq_head) != AO_load(&v->runq_tail) ||
                          lifo_len(v) != 0))
            return true;
    }
    return false;
}

/* The other workers' polls of the netpoller, summed (a hint, relaxed). */
static uint64_t others_npoll(W *self)
{
    uint64_t sum = 0;
    for (int i = 0; i < goro__sched.nprocs; i++) {
        W *v = &goro__sched.ws[i];
        if (v != self)
            sum += __atomic_load_n(&v->npoll, __ATOMIC_RELAXED);
    }
    return sum;
}

uint64_t goro__sched_npolls(void)
{
    return others_npoll(NULL);
}

/* Every worker is idle: is anything outside the run queues able to ready a
 * goroutine? If not, no goroutine can ever run again. Under sched.lock. */
static bool deadlocked_locked(void)
{
    if (goro__sched.nodeadlock || AO_load(&goro__sched.foreign) != 0)
        return false;
    if (AO_load(&goro__sched.npidle) != (AO_t)goro__sched.nprocs)
        return false;
    if (AO_load(&goro__ctr.timers_pending) != 0 ||
        AO_load(&goro__ctr.io_waiters) != 0 ||
        AO_load(&goro__ctr.blocking_running) != 0)
        return false;
    /* full: the counters above are lowered after the goroutine they
     * belonged to was readied; re-read the queues after them */
    AO_nop_full();
    if (goro__sched.gq_size != 0)
        return false;
    for (int i = 0; i < goro__sched.nprocs; i++)
        if (!runq_empty(&goro__sched.ws[i]))
            return false;
    return AO_load(&goro__sched.shutdown) == 0;
}

void goro__check_deadlock(void)
{
    if (!goro__running())
        return;
    pthread_mutex_lock(&goro__sched.lock);
    bool dead = deadlocked_locked();
    pthread_mutex_unlock(&goro__sched.lock);
    if (dead)
        goro__deadlock();
}

/* Put w to sleep until woken. Returns with w running (maybe spinning). */
static void sleep_worker(W *w)
{
    pthread_mutex_lock(&goro__sched.lock);
    if (AO_load(&goro__sched.gq_size) != 0 || AO_load(&goro__sched.shutdown)) {
        pthread_mutex_unlock(&goro__sched.lock);
        return;
    }
    /* w->spinning is read and cleared here, before w joins the idle list:
     * from then on a waker may set it (start_spinner, under the lock). Read
     * after the unlock, as it once was, a waker's spinning = true was taken
     * for w's own: w lowered nspinning on the waker's behalf and woke as a
     * non-spinner (no wakeup lost, but the "last spinner wakes another"
     * chain of that wake was). Cleared here while w stays counted in
     * nspinning until the decrement below, no waker (which needs nspinning
     * == 0) can take w off the list before that. */
    bool was_spinning = w->spinning;
    w->spinning = false;
    w->onidle = true;
    w->idlenext = goro__sched.idle;
    goro__sched.idle = w;
    __atomic_store_n(&w->parked, 1, __ATOMIC_RELAXED);
    AO_store(&goro__sched.npidle, AO_load(&goro__sched.npidle) + 1);
    pthread_mutex_unlock(&goro__sched.lock);

    if (unlikely(goro__sched.idlewindow)) {
        /* GORO_DEBUG=idlewindow: hold the window in which w is on the idle
         * list but still counted as spinning (a waker skips the wake, the
         * poller may see every worker idle), for tests of that window */
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 1000000 };
        nanosleep(&ts, NULL);
    }
    if (was_spinning) {
        /* full: lower nspinning before re-checking the queues (wakep reads
         * them in the other order) */
        AO_fetch_and_sub1_full(&goro__sched.nspinning);
    }
    AO_nop_full();
    /* Runnext slots are not looked at: a G is put in a runnext only by a
     * goroutine running on that worker, which is awake and runs it at its
     * next scheduling point. Re-checking them here kept a spinner from
     * ever sleeping during a ping-pong, reading the busy worker's hottest
     * cache line over and over. */
    if (any_queued(w) || AO_load(&goro__sched.shutdown)) {
        pthread_mutex_lock(&goro__sched.lock);
        if (w->onidle) {
            /* still ours to undo */
            W **pp = &goro__sched.idle;
            while (*pp != w)
                pp = &(*pp)->idlenext;
            *pp = w->idlenext;
            w->onidle = false;
            AO_t idle = AO_load(&goro__sched.npidle);
            AO_store(&goro__sched.npidle, idle - 1);
            pthread_mutex_unlock(&goro__sched.lock);
            if (was_spinning) {
                w->spinning = true;
                AO_fetch_and_add1(&goro__sched.nspinning);
            }
            /* the poller may have seen every worker idle meanwhile */
            if (idle == (AO_t)goro__sched.nprocs)
                goro__netpoll_workers_busy();
            return;
        }
        /* a waker took us off the list: its wake is ours */
        pthread_mutex_unlock(&goro__sched.lock);
        return;
    }

    /* The last worker to go idle checks whether anything can ever run, and
     * hands the poll set back to the poller thread, which naps while
     * workers run. */
    if (AO_load(&goro__sched.npidle) == (AO_t)goro__sched.nprocs) {
        goro__netpoll_workers_idle();
        goro__check_deadlock();
    }

    AO_fetch_and_add1(&goro__ctr.worker_sleeps);
    /* acquire: pairs with the waker's release store of parked = 0 */
    while (__atomic_load_n(&w->parked, __ATOMIC_ACQUIRE) == 1)
        futex(&w->parked, FUTEX_WAIT_PRIVATE, 1, NULL);
}

/* ------------------------------------------------------------------
 * Scheduling
 * ------------------------------------------------------------------ */

/* Every ROUNDS-th scheduling round looks at the global queue first, and
 * ROUNDS_HALF rounds before that at the head of the local queue. W.nextround
 * is the schedtick of the next of these two events (W.round_global says
 * which), so that a round without one costs one compare, and goro_yield's
 * fast path can tell it needs none. (Not a modulo of schedtick on every
 * round, and not a second counter next to it: gcc fused the two increments
 * into one SSE add and moved the result back lane by lane, 1 ns of a 7 ns
 * yield.) */
#define ROUNDS      61
#define ROUNDS_HALF 30
#define CLOCK_ROUNDS 1024 /* W.clock is read again after this many rounds */

/* The next G from w's own queues, or NULL. Cheap: no locks unless the
 * every-ROUNDS global check finds the global queue non-empty. */
static inline __attribute__((always_inline)) G *local_next(W *w)
{
    if (unlikely(AO_load(&goro__sched.shutdown)))
        return NULL;
    uint32_t tick = w->schedtick + 1;
    GORO_OWNER_STORE(w->schedtick, tick); /* read by thieves and sysmon */
    G *g = NULL;
    if (unlikely(tick == w->nextround)) {
        if (w->round_global) {
            w->round_global = false;
            w->nextround = tick + (ROUNDS - ROUNDS_HALF);
            /* a clock read is ~40 ns here: every 61 rounds was 0.7 ns a yield */
            if (tick - w->clocktick >= CLOCK_ROUNDS) {
                w->clocktick = tick;
                w->clock = coarse_now();
            }
            g = globq_get(w, 1);
            if (g)
                return g;
        } else {
            w->round_global = true;
            w->nextround = tick + ROUNDS_HALF;
            /* now and then the queue first, and a spawn-stack entry that has
             * waited too long: neither starves behind the newer work */
            g = runq_take(w);
            if (g == NULL)
                g = lifo_take_aged(w);
        }
    }
    if (g == NULL && w->nextstreak < 3 && (g = runnext_take(w)) != NULL) {
        w->nextstreak++;
        return g;
    }
    if (g == NULL)
        g = lifo_take(w);
    if (g == NULL)
        g = runq_take(w);
    if (g == NULL && (g = runnext_take(w)) != NULL) {
        w->nextstreak++;
        return g;
    }
    w->nextstreak = 0;
    return g;
}

/* On g0, out of work: poll the netpoller without waiting and take what
 * it wakes: the first to run, the rest into our queue. This is how a busy
 * runtime learns of I/O (the poller thread naps while workers run). */
static G *netpoll_local(W *w)
{
    /* relaxed: a hint; a waiter parked a moment ago is found by the poller */
    if (AO_load(&goro__ctr.io_waiters) == 0)
        return NULL;
    /* relaxed: read by spinners as a hint ("Idle spinning") */
    __atomic_store_n(&w->npoll, w->npoll + 1, __ATOMIC_RELAXED);
    int n;
    G *list = goro__netpoll_poll_now(&n);
    if (list == NULL)
        return NULL;
    G *first = NULL;
    while (list) {
        G *g = list;
        list = g->schedlink;
        if (unlikely(AO_load(&g->status) != G_WAITING))
            goro__fatal("goroutine %llu woken by the netpoller while not waiting",
                        (unsigned long long)g->id);
        AO_store(&g->status, G_RUNNABLE);
        if (first == NULL)
            first = g;
        else
            runq_put(w, g, false);
    }
    if (n > 1)
        wakep(); /* more than we can run at once: let idle workers steal */
    return first;
}

/* On g0: block until there is a G to run; NULL on shutdown. */
static G *find_runnable(W *w)
{
    bool spun = false;
    for (;;) {
        if (AO_load(&goro__sched.shutdown))
            return NULL;
        G *g = local_next(w);
        if (g == NULL)
            g = globq_get(w, 0);
        if (g == NULL)
            g = netpoll_local(w);
        if (g == NULL) {
            /* steal, if not too many workers are spinning already */
            AO_t nspin = AO_load(&goro__sched.nspinning);
            AO_t busy = (AO_t)goro__sched.nprocs - AO_load(&goro__sched.npidle);
            if (w->spinning || 2 * nspin < busy) {
                if (!w->spinning) {
                    w->spinning = true;
                    AO_fetch_and_add1(&goro__sched.nspinning);
                }
                int n = goro__sched.nprocs;
                for (int round = 0; round < 4 && g == NULL; round++) {
                    int start = (int)(fastrand(w) % (uint32_t)n);
                    for (int i = 0; i < n && g == NULL; i++) {
                        W *v = &goro__sched.ws[(start + i) % n];
                        if (v != w && (g = runq_steal(w, v, round == 3, round == 0)) != NULL) {
                            /* judged at its first park (steal_judge) */
                            w->steal_g = g;
                            w->steal_at = goro_now();
                        }
                    }
                    if (g == NULL)
                        g = globq_get(w, 0);
                }
            }
        }
        if (g) {
            if (w->spinning)
                stop_spinning(w);
            return g;
        }
        /* Before sleeping, a spinner keeps polling for a while (~240 us):
         * work tends to come back soon, and while we are counted in
         * nspinning, whoever readies it skips the futex wake (a system
         * call on the waker's path, ~1 us here). Once per idle spell;
         * an idle runtime still sleeps after it. */
        if (w->spinning && !spun) {
            spun = true;
            bool found = false;
            uint64_t seen = others_npoll(w);
            int quiet = 0;
            for (int i = 0; i < IDLE_SPIN_POLLS && !found; i++) {
                cpu_pause(IDLE_SPIN_PAUSES);
                found = any_queued(w) || AO_load(&goro__sched.shutdown);
                if (found)
                    break;
                /* the netpoller only when no other worker polled it for
                 * IDLE_POLL_QUIET looks, or at every look when every other
                 * worker sleeps (or there is none): nobody else is about
                 * to poll then ("Idle spinning", at the top). Relaxed:
                 * npidle is a hint here; we are not counted in it. */
                uint64_t now = others_npoll(w);
                if (now != seen) {
                    seen = now;
                    quiet = 0;
                } else if (AO_load(&goro__sched.npidle) + 1 >= (AO_t)goro__sched.nprocs ||
                           ++quiet >= IDLE_POLL_QUIET) {
                    quiet = 0;
                    if ((g = netpoll_local(w)) != NULL) {
                        stop_spinning(w);
                        return g;
                    }
                }
            }
            if (found)
                continue;
        }
        sleep_worker(w);
        w->clock = coarse_now(); /* it may have slept long: see W.clock */
        spun = false;
    }
}

/* resume()'s rare case, out of line so that the common one stays a tail
 * call with no frame of its own (goro_yield's fast path: a frame there
 * cost 4 ns a yield, 17.6 against 13.5 at best): to's stack is restored
 * or moved first (stack_idle.c). Never on fromg's stack: fromg may have
 * handed out a pointer to its variables just before it parked (README
 * rule 5: fine while it waits for the answer), and that work (system
 * calls, free, and the first call of a libc function: the dynamic linker
 * resolves it on the caller's stack, a frame of 1 KiB and more) can
 * cross its guard: the growth then moved fromg's stack, and a store
 * through that pointer went to the old one, lost
 * (compact::clusters_asleep_and_woken_again_and_again, 1 run in 10 under
 * load). So from a goroutine, g0 does it: to waits in W.g0next, and the
 * worker's own stack takes the work, as it takes the idle loop. */
static __attribute__((noinline)) void resume_idle(W *w, struct goro__ctx *from, G *fromg,
                                                  G *to, bool exiting)
{
    if (fromg != NULL) {
        w->g0next = to;
        if (exiting)
            goro__ann_switch_exit(w, fromg, NULL);
        else
            goro__ann_switch(w, fromg, NULL);
        goro__ctx_switch(from, &w->g0ctx, &w->curg, NULL);
        return; /* fromg runs again: the caller's goro__ann_resumed */
    }
    goro__stack_idle_resume(w, to);
    if (exiting)
        goro__ann_switch_exit(w, fromg, to);
    else
        goro__ann_switch(w, fromg, to);
    goro__ctx_switch(from, &to->ctx, &w->curg, to);
}

/* Switch from the context saved into *from (fromg's, or g0's when fromg
 * is NULL; exiting: fromg is leaving for good) to the goroutine to. The
 * annotations (annotate.h) are empty outside sanitizer builds. */
static inline void resume(W *w, struct goro__ctx *from, G *fromg, G *to, bool exiting)
{
    goro__ann_headroom(); /* TSan builds: the stack work below calls TSan */
    to->status = G_RUNNING;
    GORO_OWNER_STORE(w->nswitch, w->nswitch + 1); /* read by goro_stats */
    if (likely(to->ctx.rsp != NULL)) {
        /* compacted, or back from a park on a grown stack: restore or
         * shrink it first (stack_idle.c) */
        if (unlikely(to->cstate != C_NONE || (to->stack.cls != 0 && to->wait_reason != W_NONE))) {
            resume_idle(w, from, fromg, to, exiting);
        } else {
            if (exiting)
                goro__ann_switch_exit(w, fromg, to);
            else
                goro__ann_switch(w, fromg, to);
            goro__ctx_switch(from, &to->ctx, &w->curg, to);
        }
    } else {
        /* relaxed: a hint (stack_space.c, warm homes) */
        if (unlikely(AO_load(&goro__stack_warm) != 0))
            goro__stack_adopt(to);
        if (unlikely((to->start_cls & ~G_START_PROBE) != to->stack.cls))
            goro__g_first_stack(to);
        goro__ann_g_start(w, to);
        if (exiting)
            goro__ann_switch_exit(w, fromg, to);
        else
            goro__ann_switch(w, fromg, to);
        goro__ctx_start(from, to->stack.hi - 16, &w->curg, to);
    }
}

/* From the running goroutine from to to; returns when from runs again
 * (perhaps on another worker). */
static inline void switch_to(W *w, G *from, G *to)
{
    resume(w, &from->ctx, from, to, false);
    goro__ann_resumed(tls_w);
}

/* A parker's unlock found its wait over already: runnable again. */
static __attribute__((noinline)) void park_wait_over(W *w, G *p)
{
    p->status = G_RUNNABLE;
    runq_put(w, p, true);
}

/* Runs first on every context resumed after a switch: finish what the
 * previous context asked for. w is the worker we now run on. Called by
 * the switch itself (goro__switch_pend) when W.pend is set, and by
 * goro__g_main on a goroutine's first run (goro__ctx_start leaves it). */
static inline __attribute__((always_inline)) void after_switch(W *w)
{
    G *p = w->pend;
    if (p == NULL)
        return;
    w->pend = NULL;
    switch (w->pendkind) {
    case PEND_PARK:
        if (w->unlockf && !w->unlockf(p, w->unlockarg))
            park_wait_over(w, p);
        break;
    case PEND_YIELD:
        runq_put(w, p, false);
        break;
    case PEND_SPAWNER:
        runq_put(w, p, true);
        break;
    case PEND_EXIT:
        goro__ann_g_exit(p);
        goro__g_free(w, p);
        break;
    }
}

/* The pending actions but a park's, out of line: they need more registers,
 * and goro__switch_pend would save them on every park (and goro__g_main's
 * frame on every goroutine's stack). */
static __attribute__((noinline)) void switch_pend_other(W *w)
{
    after_switch(w);
}

/* The switch (asm) ends with this, on the resumed context, when W.pend is
 * set: it returns in the switch's place. Then errno (the resumed G's, or
 * none for g0) is ours to restore, after the action. */
void goro__switch_pend(G **cur)
{
    W *w = (W *)((char *)cur - offsetof(W, curg));
    goro__ann_resumed(w);
    G *p = w->pend;
    if (likely(w->pendkind == PEND_PARK && w->unlockf != NULL)) {
        /* Nothing live across the call (W.pend stays set until after it,
         * and w comes back from TLS): no registers to save on every park. */
        bool still = w->unlockf(p, w->unlockarg);
        w = tls_w;
        p = w->pend;
        w->pend = NULL;
        if (unlikely(!still))
            park_wait_over(w, p);
    } else {
        switch_pend_other(w);
    }
    G *g = w->curg;
    if (g != NULL)
        *w->errno_ptr = g->saved_errno;
}

_Static_assert(offsetof(W, pendkind) + sizeof(int) - offsetof(W, curg) <= GORO_CACHELINE,
               "W: the fields a yield touches share curg's cache line (internal.h)");
_Static_assert(offsetof(W, errno_ptr) - offsetof(W, curg) == GORO_CURG_TO_ERRNO_PTR,
               "runtime/asm/offsets.h: GORO_CURG_TO_ERRNO_PTR");
_Static_assert(offsetof(W, pend) - offsetof(W, curg) == GORO_CURG_TO_PEND,
               "runtime/asm/offsets.h: GORO_CURG_TO_PEND");
_Static_assert(offsetof(G, saved_errno) == GORO_G_SAVED_ERRNO,
               "runtime/asm/offsets.h: GORO_G_SAVED_ERRNO");
_Static_assert(sizeof(((G *)0)->saved_errno) == 4 && sizeof(((W *)0)->pend) == 8,
               "runtime/asm/offsets.h: field sizes");

/* Leave the running goroutine g (its status already set, w->pend set) for
 * the next one on this worker, or for g0. Returns when g runs again. */
static void schedule_away(W *w, G *g)
{
    g->saved_errno = *w->errno_ptr;
    G *next = local_next(w);
    if (next) {
        switch_to(w, g, next);
    } else {
        goro__ann_switch(w, g, NULL);
        goro__ctx_switch(&g->ctx, &w->g0ctx, &w->curg, NULL);
        goro__ann_resumed(tls_w);
    }
    /* back on g, perhaps on another worker; the switch ran the pending
     * action of the context before and restored errno */
}

/* The first park on w since it stole: did the steal pay? ("Stealing
 * patiently" at the top.)
 * Out of line: a park costs one compare for it. */
static __attribute__((noinline)) void steal_judge(W *w, G *g)
{
    int reason = g->wait_reason;
    if (g == w->steal_g) {
        /* only a lock says "contended": a goroutine that waits for a
         * message soon after it moved may well have done its share of
         * parallel work (one producer feeding consumers that each work a
         * microsecond or two: judged by time alone, those steals looked
         * futile too, and the fan-out ran 1.4x slower) */
        if ((reason == W_MUTEX || reason == W_RWMUTEX) &&
            goro_now() - w->steal_at < STEAL_FUTILE_NS)
            w->patience = w->patience == 0 ? PATIENCE_MIN
                        : w->patience >= PATIENCE_MAX / 2 ? PATIENCE_MAX : 2 * w->patience;
        else
            w->patience = 0;
    }
    w->steal_g = NULL;
}

void goro__park(bool (*unlockf)(G *g, void *arg), void *arg, int reason,
                void *waitobj)
{
    W *w = tls_w;
    G *g = w->curg;
    w->unlockf = unlockf;
    w->unlockarg = arg;
    g->wait_reason = (uint8_t)reason;
    g->waitobj = waitobj;
    g->wait_since = w->clock; /* see W.clock */
    g->status = G_WAITING;
    w->pend = g;
    w->pendkind = PEND_PARK;
    /* here, where only w and g live on (as across schedule_away): called
     * at the top, with all the arguments still to store, it made this
     * frame 40 bytes larger, and every parked goroutine's stack with it
     * (parked_100k: 709 -> 757 bytes a goroutine compacted) */
    if (unlikely(w->steal_g != NULL)) {
        steal_judge(w, g);
        w = tls_w; /* reloaded, not kept across the call: no spill slot */
    }
    if (unlikely(g->stack.flags & GORO_STACK_LENT)) {
        goro__stack_park_unlend(g); /* guard the lent page if we are above it */
        w = tls_w;
    }
    schedule_away(w, g);
    g->wait_reason = W_NONE;
    g->waitobj = NULL;
}

/* w's goroutine just spawned a G: stealable (a queue or the spawn stack),
 * or only in runnext. Wake an idle worker if that is worth it: a spawner
 * usually carries on, so even a child in runnext is worth a wake, unlike
 * a goroutine readied there (put_local). */
static inline void wake_for_local(bool stealable)
{
    if (goro__sched.nprocs == 1)
        return; /* no other worker to wake: this one is running */
    if (stealable)
        wakep();
    else
        wake_idle(); /* a G in runnext needs no wake to be run (its worker
                           is awake); the wake is for parallelism only, so
                           no fence: a stale read costs a missed wake */
}

/* g is RUNNABLE: onto the queues of w, whose goroutine is running (us).
 * An idle worker is woken when g (or the runnext it pushed out) went into
 * the queue; when g took an empty runnext, only if the goroutine running
 * goes on with channel operations that do not park (goro__nudge), or by
 * the poller's rescue ("Wakeups", at the top). */
static inline void put_local(W *w, G *g, bool next)
{
    if (!runq_put(w, g, next))
        w->rn_quiet = true; /* goro__nudge may wake for it later */
    else if (goro__sched.nprocs > 1)
        wakep();
}

void goro__sched_nudge(W *w)
{
    w->rn_quiet = false;
    /* relaxed: a hint, as wake_for_local's; a thief may have taken it */
    if (AO_load(&w->runnext) != 0 && goro__sched.nprocs > 1)
        wakep();
}

/* g is RUNNABLE, made so by a thread that runs no goroutine (the poller,
 * a foreign thread, a worker's g0): onto the global queue. */
static void put_from_outside(W *w, G *g)
{
    if (w == NULL && !tls_internal)
        AO_store(&goro__sched.foreign, 1);
    g->schedlink = NULL;
    globq_put_batch(g, g, 1);
    wakep();
}

void goro__ready(G *g, bool next)
{
    /* full: one waker wins, and a second is caught. Every waker owns the
     * G it readies by its subsystem's protocol (taken off a wait queue
     * under a lock, or a select won by CAS), so this could be a plain
     * check-and-store, 6 ns cheaper per hand-off. With the plain version,
     * tools/stackgrow used to corrupt memory far more often; the causes
     * found were all in stack growth (stack_move.c: a derived base register,
     * glibc frames over a one-page guard, FILE flags read as a pointer),
     * and with them fixed both versions pass 12 of 12 oversubscribed runs
     * (2026-11-27). Why the CAS made those failures rarer is not
     * understood, so it stays until more runs say otherwise. */
    if (!AO_compare_and_swap_full(&g->status, G_WAITING, G_RUNNABLE))
        goro__fatal("goroutine %llu readied while not waiting (status %d)",
                    (unsigned long long)g->id, (int)g->status);
    W *w = tls_w;
    if (w != NULL && w->curg != NULL)
        put_local(w, g, next);
    else
        put_from_outside(w, g);
}

void goro__ready_list(G *head, int n)
{
    if (n == 0)
        return;
    G *tail = head;
    for (G *g = head; g; g = g->schedlink) {
        if (!AO_compare_and_swap_full(&g->status, G_WAITING, G_RUNNABLE))
            goro__fatal("goroutine %llu readied while not waiting",
                        (unsigned long long)g->id);
        tail = g;
    }
    globq_put_batch(head, tail, n);
    /* wake as many workers as there is work for (wakep wakes one spinner,
     * which wakes the next when it finds work) */
    wakep();
}

void goro__sched_sysmon(void)
{
    if (!goro__running())
        return;
    for (int i = 0; i < goro__sched.nprocs; i++) {
        W *v = &goro__sched.ws[i];
        /* relaxed: heuristics; the steal itself is arbitrated in runq_grab */
        uint32_t tick = __atomic_load_n(&v->schedtick, __ATOMIC_RELAXED);
        if (tick == v->sysmon_tick && AO_load(&v->runnext) != 0 &&
            __atomic_load_n(&v->curg, __ATOMIC_RELAXED) != NULL)
            wakep();
        v->sysmon_tick = tick;
    }
}

/* Called by goro_go: g is RUNNABLE and fully set up. */
void goro__sched_spawn(W *w, G *g)
{
    if (w != NULL && w->curg != NULL) {
        /* A goroutine spawning faster than the workers run what it spawns
         * fills its queue. Rather than spill half of it to the global queue
         * (and on and on: a million goroutines, a million stacks alive),
         * the spawner lets the child run now and continues from runnext
         * when the child blocks or exits. The backlog (queue and spawn
         * stack together) stays one queue long; Go bounds it the same way
         * by preempting the spawner. (Counting the queue alone let 512
         * wait: spawn_join on 2 workers 330 ns a spawn, against 296 and
         * 231 before the spawn stack, medians of 6 runs; the extra records
         * in flight are cache misses.) */
        AO_t h = AO_load(&w->runq_head);
        if (unlikely(w->runq_tail - h + lifo_len(w) >= GORO_RUNQ - 1)) {
            G *parent = w->curg;
            wakep(); /* a full queue: let idle workers steal from it */
            parent->status = G_RUNNABLE;
            parent->saved_errno = *w->errno_ptr;
            w->pend = parent;
            w->pendkind = PEND_SPAWNER;
            switch_to(w, parent, g);
            return;
        }
        /* The child takes runnext; a child spawned before it and still
         * there goes on the spawn stack, not the queue. */
        G *old = runnext_swap(w, g);
        G *out = old != NULL ? lifo_push(w, old) : NULL;
        if (out != NULL)
            put_local(w, out, false); /* pushed out: the queue (and a wake) */
        else
            wake_for_local(old != NULL);
    } else {
        put_from_outside(w, g);
    }
}

/* goro_yield's general case, out of line so that the fast path below
 * saves no registers. */
static __attribute__((noinline)) void yield_slow(W *w, G *g)
{
    G *next = local_next(w);
    if (next == NULL) {
        /* Nothing else here: carry on without a switch, unless the global
         * queue has work (or the runtime stops): then via g0. */
        if (AO_load(&goro__sched.gq_size) == 0 && !AO_load(&goro__sched.shutdown))
            return;
        g->status = G_RUNNABLE;
        w->pend = g;
        w->pendkind = PEND_YIELD;
        schedule_away(w, g);
        return;
    }
    g->status = G_RUNNABLE;
    if (goro__sched.nprocs == 1) {
        /* No thief can take g before we are off its stack: queue it now
         * and spare the next context the pending action. */
        runq_put(w, g, false);
    } else {
        w->pend = g;
        w->pendkind = PEND_YIELD;
    }
    g->saved_errno = *w->errno_ptr;
    switch_to(w, g, next);
}

/* resume() for goro_yield's one-worker fast path: to has run before, so
 * on w, the only worker, and nothing is pending
 * (W.pend is NULL while a goroutine runs): the switch needs to check for
 * neither g0 nor a pending action (goro__ctx_switch_g). */
static inline __attribute__((always_inline)) void yield_resume(W *w, G *g, G *to)
{
    to->status = G_RUNNING;
    GORO_OWNER_STORE(w->nswitch, w->nswitch + 1); /* read by goro_stats */
    if (unlikely(to->cstate != C_NONE || (to->stack.cls != 0 && to->wait_reason != W_NONE))) {
        resume_idle(w, &g->ctx, g, to, false);
    } else {
        goro__ann_switch(w, g, to);
        goro__ctx_switch_g(&g->ctx, &to->ctx, &w->curg, to);
    }
    goro__ann_resumed(tls_w);
}

/* goro_yield's fast path met a round event (local_next): settle it here
 * when local_next would take the queue's head after it anyway, which the
 * fast path then does; false when local_next must run (the global queue
 * has work, the clock is due, the runtime stops). The caller has checked
 * that runnext and the spawn stack are empty and the queue is not. Every
 * 30th-31st yield went through yield_slow for these: ~1 ns a yield on
 * average (Intel Xeon VM, 2026-12-03). */
static inline __attribute__((always_inline)) bool yield_round(W *w, uint32_t tick)
{
    if (AO_load(&goro__sched.shutdown))
        return false;
    if (!w->round_global) {
        /* "the queue's head first": the fast path takes it; nothing can
         * have aged on the empty spawn stack */
        w->round_global = true;
        w->nextround = tick + ROUNDS_HALF;
        return true;
    }
    if (tick - w->clocktick >= CLOCK_ROUNDS || AO_load(&goro__sched.gq_size) != 0)
        return false;
    /* the global queue is empty: local_next goes on to runnext, the spawn
     * stack (both empty) and the queue's head */
    w->round_global = false;
    w->nextround = tick + (ROUNDS - ROUNDS_HALF);
    return true;
}

void goro_yield(void)
{
    W *w = tls_w;
    if (w == NULL || w->curg == NULL)
        return;
    G *g = w->curg;
    /* a load, not a store, when it is 0 already (a yield loop): stores
     * are what a yield has most of */
    if (w->nextstreak != 0)
        w->nextstreak = 0;
    /* The fast path: one worker (no thieves: the queue is ours alone),
     * nothing in runnext or on the spawn stack, no round event that needs
     * local_next (yield_round), and a queue head that has run before.
     * Then local_next would take that head: take it and put
     * g at the tail in one go, and end with the switch as a tail call, so
     * that it returns straight into the caller of goro_yield on the other
     * goroutine (the switch restores errno and runs no pending action:
     * there is none). Two goroutines yielding on one worker: 5.7 ns a
     * yield, against 6.9 through yield_slow (medians of 7 alternating
     * runs, 2026-11-27, AMD EPYC). On the Intel Xeon VM (2026-12-03), 6.9
     * ns against a bare register switch's 3.5; 6.4 with the round events
     * settled here (yield_round: every 30th-31st yield went through
     * yield_slow), the switch that checks for neither g0 nor a pending
     * action (goro__ctx_switch_g), no store of the G's worker (a field
     * G had then), a load instead of a store for nextstreak, and W's fields
     * on one line (medians of 15 alternating runs, chrt). */
    if (goro__sched.nprocs == 1) {
        uint32_t tick = w->schedtick + 1;
        AO_t h = w->runq_head, t = w->runq_tail;
        if (likely(t != h && w->runnext == 0 && w->lifo_top == w->lifo_bot_seen &&
                   (likely(tick != w->nextround) || yield_round(w, tick)))) {
            G *next = (G *)w->runq[h % GORO_RUNQ];
            if (likely(next->ctx.rsp != NULL)) {
                GORO_OWNER_STORE(w->schedtick, tick);
                w->runq[t % GORO_RUNQ] = (AO_t)g;
                w->runq_head = h + 1;
                w->runq_tail = t + 1;
                g->status = G_RUNNABLE;
                g->saved_errno = *w->errno_ptr;
                yield_resume(w, g, next); /* a tail call */
                return;
            }
        }
    }
    yield_slow(w, g);
}

/* goro__g_main's end, once fn returned: out of line, so that g_main's
 * frame, which every parked goroutine's stack holds, is no bigger than
 * what the call of fn needs. */
static __attribute__((noinline, noreturn)) void g_main_end(G *g)
{
    if (g->locals)
        goro__local_exit(g);   /* goroutine-local destructors, on g */
    if (g->is_main)
        goro__main_returned();
    /* the worker we run on now, which may not be the one we started on */
    goro__exit_current(tls_w, g);
}

/* Every goroutine starts here (called by goro__g_entry). */
void goro__g_main(G *g)
{
    W *w = tls_w; /* not live across fn: it may return on another worker */
    goro__ann_resumed(w);
    switch_pend_other(w); /* after_switch, out of line: see g_main_end */
    *tls_w->errno_ptr = 0;
    g->fn((void *)(uintptr_t)g->ctx.r13); /* the argument: goro__g_new */
    g_main_end(g);
}

/* A goroutine's fn returned: leave it for good. */
void goro__exit_current(W *w, G *g)
{
    g->status = G_DEAD;
    GORO_OWNER_STORE(w->nexit, w->nexit + 1); /* read by goro_stats */
    w->pend = g;
    w->pendkind = PEND_EXIT;
    G *next = local_next(w);
    if (next) {
        resume(w, &g->ctx, g, next, true);
    } else {
        goro__ann_switch_exit(w, g, NULL);
        goro__ctx_switch(&g->ctx, &w->g0ctx, &w->curg, NULL);
    }
    goro__fatal("dead goroutine resumed");
}

void goro__main_returned(void)
{
    AO_store_release(&goro__sched.shutdown, 1);
    wake_all_workers();
    goro__netpoll_break();
}

/* ------------------------------------------------------------------
 * Workers and goro_run
 * ------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    W *w = arg;
    tls_w = w;
    w->errno_ptr = errno_location();
    goro__signal_worker_init(w);
    goro__ann_worker_start(w);
    for (;;) {
        G *g = w->g0next; /* left by resume_idle, whose work is ours */
        w->g0next = NULL;
        if (g == NULL && (g = find_runnable(w)) == NULL)
            break;
        resume(w, &w->g0ctx, NULL, g, false);
        goro__ann_resumed(w);
    }
    goro__ann_worker_stop(w);
    goro__signal_worker_fini(w);
    tls_w = NULL;
    return NULL;
}

static int env_int(const char *name, int def)
{
    const char *s = getenv(name);
    if (s == NULL || *s == 0)
        return def;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != 0 || v <= 0 || v > 4096) {
        fprintf(stderr, "goro: ignoring %s=%s (want 1..4096)\n", name, s);
        return def;
    }
    return (int)v;
}

static bool debug_has(const char *what)
{
    const char *s = getenv("GORO_DEBUG");
    if (s == NULL)
        return false;
    size_t n = strlen(what);
    while (*s) {
        if (strncmp(s, what, n) == 0 && (s[n] == 0 || s[n] == ','))
            return true;
        s = strchr(s, ',');
        if (s == NULL)
            break;
        s++;
    }
    return false;
}

bool goro__debug(const char *what)
{
    return debug_has(what);
}

int goro_run(goro_fn main_fn, void *arg)
{
    if (main_fn == NULL)
        return -EINVAL;
    if (tls_w != NULL)
        return -EPERM;
    if (!AO_compare_and_swap_full(&goro__sched.busy, 0, 1))
        return -EBUSY;

    int nprocs = env_int("GORO_PROCS", (int)sysconf(_SC_NPROCESSORS_ONLN));
    if (nprocs < 1)
        nprocs = 1;

    /* Fresh state for this run; counters from the last run are dropped. */
    memset(&goro__ctr, 0, sizeof goro__ctr);
    goro__sched.nprocs = nprocs;
    goro__sched.gq_head = goro__sched.gq_tail = NULL;
    goro__sched.gq_size = 0;
    goro__sched.idle = NULL;
    goro__sched.npidle = 0;
    goro__sched.nspinning = 0;
    goro__sched.shutdown = 0;
    goro__sched.foreign = 0;
    goro__sched.spawned_foreign = 0;
    goro__sched.next_id = 1;
    goro__sched.nodeadlock = debug_has("nodeadlock");
    /* registering is idempotent; failure (old kernel) means CAS everywhere */
    goro__sched.asym = !debug_has("nomembarrier") && !GORO_ANN_NO_MEMBARRIER &&
                       membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    goro__sched.dump_at_exit = debug_has("dump");
    goro__sched.idlewindow = debug_has("idlewindow");
    goro__g_hints_init(debug_has("nostackhint"));
    /* W is cache-line aligned (its run queue head and tail sit on lines of
     * their own): calloc's 16-byte alignment is not enough */
    void *ws = NULL;
    if (posix_memalign(&ws, GORO_CACHELINE, (size_t)nprocs * sizeof(W)) == 0)
        memset(ws, 0, (size_t)nprocs * sizeof(W));
    goro__sched.ws = ws;
    if (goro__sched.ws == NULL) {
        AO_store_release(&goro__sched.busy, 0);
        return -ENOMEM;
    }
    for (int i = 0; i < nprocs; i++) {
        W *w = &goro__sched.ws[i];
        w->id = i;
        w->rand = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) ^ (uint64_t)goro_now();
        w->nextround = ROUNDS - ROUNDS_HALF; /* the local-queue event first */
        w->round_global = false;
        w->clock = coarse_now();
    }

    int rc = 0;
    goro__ann_init();     /* before the stacks: Valgrind or not */
    goro__stack_init();
    goro__signal_init();
    goro__diag_init();
    rc = goro__netpoll_start();
    if (rc < 0)
        goto out_fini_signal;

    G *g = goro__g_new(NULL, main_fn, arg);
    if (g == NULL) {
        rc = -ENOMEM;
        goto out_stop_netpoll;
    }
    g->is_main = true;
    g->schedlink = NULL;
    globq_put_batch(g, g, 1);
    /* release: everything above before a thread may see running */
    AO_store_release(&goro__sched.running, 1);

    int started = 0;
    for (; started < nprocs; started++) {
        int e = pthread_create(&goro__sched.ws[started].thread, NULL, worker_main,
                               &goro__sched.ws[started]);
        if (e != 0) {
            rc = -e;
            goro__main_returned(); /* stop the ones that started */
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(goro__sched.ws[i].thread, NULL);

    AO_store_release(&goro__sched.running, 0);
    if (goro__sched.dump_at_exit)
        goro__dump(2, "exit");
out_stop_netpoll:
    goro__netpoll_stop();
    goro__timers_reset();
    goro__g_free_all();
out_fini_signal:
    goro__diag_fini();
    goro__signal_fini();
    goro__stack_fini();
    /* keep the summed counters for goro_stats after the run */
    goro__stats_snapshot();
    free(goro__sched.ws);
    goro__sched.ws = NULL;
    goro__sched.nprocs = 0;
    AO_store_release(&goro__sched.busy, 0);
    return rc;
}

int goro_procs(void)
{
    return goro__running() ? goro__sched.nprocs : 0;
}
