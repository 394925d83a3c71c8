/*
 * timerchan.c - time.Timer, time.Ticker, time.AfterFunc and time.After:
 * goro_timer_new/func/chan/stop/reset/free and goro_after.
 *
 * Design. A goro_timer holds one entry of the timer heap (timer.c) and,
 * for a timer or ticker, a channel of int64_t with a one-value buffer.
 * When the entry fires, its callback (on the poller thread) sends goro_now() into the channel without blocking: a receiver
 * that waits gets it directly; otherwise it waits in the buffer, and a
 * ticker whose previous tick is still there drops the new one (Go's ticker
 * drops ticks for slow receivers the same way: it never queues them). A
 * ticker's callback re-arms its own entry, at the first multiple of the
 * period after now (missed ticks are skipped, not fired late in a burst).
 * A goro_timer_func timer spawns fn(arg) as a new goroutine instead.
 *
 * Go 1.23 semantics: no stale value after stop or reset. Go 1.23 made timer
 * channels synchronous: once Stop or Reset has returned, no receive gets a
 * value from before it. Here stop (and reset, which stops first):
 *   1. under t->lock, clears ARMED: a callback that has not yet taken the
 *      lock will see it and send nothing;
 *   2. deletes the heap entry; goro__timer_del waits for a callback that is
 *      already running, so after it nothing sends for the old arming (a
 *      ticker callback that re-armed before step 1 is taken out here);
 *   3. drains the buffer: a value sent before step 1 and not yet received
 *      is dropped.
 * It returns 1 when a firing was still to come from the program's point of
 * view: the entry was armed, or its value was still unreceived (Go 1.23's
 * Stop returns true in both cases too). stop, reset and free of one timer
 * are serialised by the record's BUSY flag (two resets racing must not both
 * add the entry to the heap), taken and dropped under t->lock but held
 * across step 2; the callback never waits for BUSY, so waiting for the
 * callback in step 2 cannot deadlock.
 *
 * Reset. A reset that pushes an armed timer's firing later, with no value
 * sent since the last stop (the common case: a server pushing back a
 * per-connection timeout on every request), leaves the heap entry where it
 * is and only writes the new deadline into `due`, under t->lock: a reset
 * costs the record's cache line, not a heap delete and insert (2 x log4 n
 * entries, each a cache miss with a million armed). When the entry fires at
 * its old deadline, timer_fire (under t->lock) finds `due` later and puts
 * the entry back at `due` without sending; a timer reset n times before it
 * fires costs one re-insertion, not n. No stale value can come of it: the
 * callback decides under t->lock, which the reset held, and nothing was
 * sent (SENT clear). Invariant: while ARMED, ht.when <= due, and the entry
 * is in the heap or its callback is about to run. A reset to an earlier
 * deadline, of a stopped or fired timer, or with a value possibly in the
 * buffer takes the full path (stop, then arm).
 *
 * Cost. An armed timer is one heap entry, and stop removes it at once (Go
 * before 1.23 left stopped timers in the heap until their time; a million
 * timers armed and stopped leave nothing behind here). A timer is two
 * allocations: the record the caller holds, one 64-byte cache line, is
 * all that arm, stop and reset touch: the heap entry, the lock
 * and the flags, among them SENT (the callback put a value in the channel
 * since the last stop), so a stop looks at the channel only when a value
 * may be there. The rest, the channel (built in place: cap 1, int64_t) or
 * for a goro_timer_func the function and its argument, and a ticker's
 * period, is a second allocation, which only a firing, a ticker's arming
 * and a stop after a firing touch. With a million timers armed every
 * record is a cache miss and every page a TLB miss: a reset of a
 * 250-byte record with the flags and channel spread over three lines cost
 * twice what a bare heap entry's did (bench/timer.c: kind=timer against
 * kind=bare); a 64-byte one costs what a heap entry 64 bytes apart does.
 * So the records come from a slab of their own (64 KiB blocks of 1,024
 * cells, line-aligned and side by side, not between the cold parts):
 * a million timers' records are 64 MiB on 16,384 pages, where one malloc
 * each would spread them over the 200 MiB of both parts. Freed cells go
 * back on the slab's free list for the next timer; the blocks are kept
 * until the process ends (as the timer heap's array is).
 *
 * goro_after. A goro_timer whose channel the caller gets and never frees.
 * Its record is reused by a later goro_after once it has fired and its
 * channel is empty with nobody waiting: the value was received. Reuse
 * rather than free(), because a select that has just been woken by this
 * channel locks it once more to unlink its records (select.c, step 5): a
 * reused channel is still a channel, a freed one would be freed memory.
 * An after-timer whose value is never received (a select that took
 * another case) stays until goro_run returns; use goro_timer_new and
 * goro_timer_reset in loops, as Go advised before 1.23.
 *
 * Across goro_run calls. User timers outlive goro_run and may be reset in
 * the next one, but the heap is forgotten when goro_run returns. Each
 * arming records the run's number (`run`); a record armed in an earlier
 * run counts as stopped (armed_now), and its stale heap index is harmless
 * (goro__timer_del checks the entry's seq); a callback that was running
 * when the run ended left BUSY clear (only stop, reset and free set it,
 * and they return before goro_run can). No list of every record is
 * kept (it cost two links and a global mutex on every new and free); only
 * goro_after records, which the runtime owns, are on a list (all_after,
 * under after_lock), to be freed when goro_run returns.
 *
 * Lock order: (BUSY >) t->lock > channel lock > timer heap lock >
 * sched.lock; after_lock is a leaf (the callback takes it after dropping
 * t->lock).
 */
#include "chan.h"
#include "spin.h"
#include "sync.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_CHAN, K_FUNC, K_AFTER };   /* what a timer is; immutable */

enum {                              /* goro_timer.flags, under its lock */
    F_ARMED = 1,     /* a firing is to come (ht in the heap, or its callback
                        about to run and send); only if run is this run's:
                        see armed_now */
    F_SENT = 2,      /* a value was sent since the last stop */
    F_BUSY = 4,      /* a stop, reset or free is under way (op_begin) */
    F_PERIODIC = 8,  /* armed as a ticker: the period is in the cold part */
};

/* What the caller holds: all that arm, stop and reset touch. */
struct goro_timer {
    struct goro__timer ht;       /* the heap entry, first (timer_fire finds
                                    the record from it); ht.arg: the cold part */
    goro__spin lock;             /* protects flags, run, due, ht.when and the
                                    cold part's period */
    int64_t due;                 /* when it fires (goro_now() time); ht.when,
                                    the heap's key, may be earlier: see
                                    "Reset" in the top comment */
    uint32_t run;                /* the goro_run of the last arming */
    uint8_t flags;               /* F_* */
    uint8_t kind;                /* K_CHAN, K_FUNC or K_AFTER */
};
_Static_assert(sizeof(struct goro_timer) <= 64, "one cache line");

/* What a firing needs. */
struct cold {
    int64_t period;                   /* ticker period (F_PERIODIC) */
    struct goro_timer *after_next;    /* K_AFTER: fired records (after_lock) */
    struct goro_timer *all_next;      /* K_AFTER: every record (after_lock) */
    union {
        struct {                      /* K_FUNC */
            goro_fn fn;
            void *arg;
        };
        struct {                      /* K_CHAN, K_AFTER: the channel in place */
            struct goro_chan chan;    /* int64_t elements, cap 1 */
            int64_t chanbuf;
        };
    };
};

/* This run's number (goro__timerchan_reset counts runs). Written only
 * between runs, when no worker or poller thread runs. */
static uint32_t cur_run = 1;

/* Fired goro_after records, oldest first, waiting to be reused; and every
 * goro_after record; under after_lock. */
static goro__spin after_lock;
static struct goro_timer *after_head, *after_tail, *all_after;

/* The slab of records: free cells linked through their first word. */
#define SLAB_CELL 64
#define SLAB_BLOCK 65536
static goro__spin slab_lock;
static void *slab_free;            /* under slab_lock */

static struct goro_timer *slab_get(void)
{
    goro__spin_lock(&slab_lock);
    void *cell = slab_free;
    if (cell == NULL) {
        goro__spin_unlock(&slab_lock);
        char *block = aligned_alloc(SLAB_CELL, SLAB_BLOCK);
        if (block == NULL)
            return NULL;
        /* keep the first cell, put the rest on the list */
        goro__spin_lock(&slab_lock);
        for (size_t off = SLAB_BLOCK - SLAB_CELL; off > 0; off -= SLAB_CELL) {
            *(void **)(void *)(block + off) = slab_free;
            slab_free = block + off;
        }
        cell = block;
    } else {
        slab_free = *(void **)cell;
    }
    goro__spin_unlock(&slab_lock);
    memset(cell, 0, SLAB_CELL);
    return cell;
}

static void slab_put(struct goro_timer *t)
{
    goro__spin_lock(&slab_lock);
    *(void **)(void *)t = slab_free;
    slab_free = t;
    goro__spin_unlock(&slab_lock);
}

static inline struct cold *cold_of(struct goro_timer *t)
{
    return t->ht.arg;
}

/* t->lock held: a firing is still to come in this run. */
static inline bool armed_now(const struct goro_timer *t)
{
    return (t->flags & F_ARMED) && t->run == cur_run;
}

static void after_fired(struct goro_timer *t)
{
    goro__spin_lock(&after_lock);
    cold_of(t)->after_next = NULL;
    if (after_tail)
        cold_of(after_tail)->after_next = t;
    else
        after_head = t;
    after_tail = t;
    goro__spin_unlock(&after_lock);
}

/* The heap entry fired (poller thread, no heap lock). */
static void timer_fire(struct goro__timer *ht)
{
    struct goro_timer *t = (struct goro_timer *)(void *)ht;   /* ht is first */
    struct cold *c = cold_of(t);
    goro__spin_lock(&t->lock);
    if (!armed_now(t)) {
        goro__spin_unlock(&t->lock);   /* stopped meanwhile: send nothing */
        return;
    }
    int64_t now = goro_now();
    if (t->due != ht->when) {
        /* reset to later while in the heap: the entry fired at the old
         * deadline; it is due at the new one */
        ht->when = t->due;
        if (ht->when > now) {
            goro__timer_add(ht);       /* lock order: t->lock > timer heap */
            goro__spin_unlock(&t->lock);
            return;
        }
    }
    if (t->kind != K_FUNC) {
        /* a full buffer (a ticker's unreceived tick) drops this one */
        if (goro_chan_trysend(&c->chan, &now) == 0)
            t->flags |= F_SENT;
    }
    bool after = false;
    if (t->flags & F_PERIODIC) {
        /* the first multiple of the period after now: missed ticks are
         * skipped (Go's ticker does the same) */
        int64_t late = now - ht->when;
        int64_t skip = late >= 0 ? late / c->period + 1 : 1;
        ht->when = ht->when + skip * c->period;
        t->due = ht->when;
        goro__timer_add(ht);           /* lock order: t->lock > timer heap */
    } else {
        t->flags &= (uint8_t)~F_ARMED;
        after = t->kind == K_AFTER;
    }
    goro__spin_unlock(&t->lock);
    if (t->kind == K_FUNC) {
        /* goro_timer_func: spawn outside the spinlock (a spawn may map a
         * stack). t stays valid: stop and free wait for this callback in
         * goro__timer_del; fn and arg never change. ENOMEM loses the
         * firing, as a failed goro_go would. */
        (void)goro_go(c->fn, c->arg);
    }
    if (after)
        after_fired(t);                /* the record may be reused from now on */
}

/* Begin a stop, reset or free (serialised: two resets racing must not
 * both add the entry). Returns with t->lock held and BUSY set. The other
 * op is short or waits for a callback that never waits for BUSY. */
static void op_begin(struct goro_timer *t)
{
    goro__spin_lock(&t->lock);
    for (unsigned spins = 0; t->flags & F_BUSY; spins++) {
        goro__spin_unlock(&t->lock);
        if (spins < 64)
            goro__cpu_relax();
        else
            sched_yield();
        goro__spin_lock(&t->lock);
    }
    t->flags |= F_BUSY;
}

static void op_end(struct goro_timer *t)
{
    goro__spin_lock(&t->lock);
    t->flags &= (uint8_t)~F_BUSY;
    goro__spin_unlock(&t->lock);
}

/* Steps 1-3 of the top comment. Called from op_begin (t->lock held, BUSY
 * set); returns with BUSY still set and t->lock dropped. */
static int timer_stop_locked(struct goro_timer *t)
{
    bool pending = armed_now(t);
    bool sent = t->flags & F_SENT;
    t->flags &= (uint8_t)~(F_ARMED | F_SENT);
    goro__spin_unlock(&t->lock);
    goro__timer_del(&t->ht);           /* waits for a running callback */
    /* No callback runs for t now, and none will send (ARMED is clear). A
     * value can be in the buffer only if one was sent since the last stop
     * (SENT); then a plain look at count is exact (timer.c's firing
     * release/acquire orders the callback's send before goro__timer_del's
     * return). */
    struct cold *c = cold_of(t);
    bool drained = sent && AO_load(&c->chan.count) != 0 &&
                   goro_chan_tryrecv(&c->chan, NULL) == 1;
    return pending || drained;
}

static inline int64_t when_after(int64_t delay_ns)
{
    return delay_ns > 0 ? goro__deadline_after(delay_ns) : goro_now();
}

/* t->lock held: a ticker with this period, or a one-shot timer (0). */
static inline void set_period(struct goro_timer *t, int64_t period_ns)
{
    if (period_ns > 0) {
        cold_of(t)->period = period_ns;   /* a one-shot timer never looks */
        t->flags |= F_PERIODIC;
    } else {
        t->flags &= (uint8_t)~F_PERIODIC;
    }
}

/* Arm t to fire at `when` (not armed, not in the heap, BUSY set by us) and
 * end the op. */
static void timer_arm_end(struct goro_timer *t, int64_t when, int64_t period_ns)
{
    goro__spin_lock(&t->lock);
    t->ht.when = t->due = when;
    set_period(t, period_ns);
    t->run = cur_run;
    t->flags = (uint8_t)((t->flags | F_ARMED) & ~F_BUSY);
    goro__timer_add(&t->ht);           /* lock order: t->lock > timer heap */
    goro__spin_unlock(&t->lock);
}

static struct goro_timer *timer_make(int kind)
{
    struct goro_timer *t = slab_get();
    size_t csize = kind == K_FUNC ? offsetof(struct cold, arg) + sizeof(void *)
                                  : sizeof(struct cold);
    struct cold *c = calloc(1, csize);
    if (t == NULL || c == NULL) {
        if (t)
            slab_put(t);
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    t->kind = (uint8_t)kind;
    if (kind != K_FUNC) {
        /* what goro_chan_make would set up, in place */
        c->chan.elem_size = sizeof(int64_t);
        c->chan.cap = 1;
        c->chan.buf = (char *)&c->chanbuf;
        c->chan.is_timer = true;       /* the dump's "timer" */
        c->chan.embedded = true;       /* goro_chan_free refuses it */
    }
    t->ht.fn = timer_fire;
    t->ht.arg = c;
    t->flags = F_BUSY;                 /* the creator arms it */
    return t;
}

goro_timer *goro_timer_new(int64_t delay_ns, int64_t period_ns)
{
    if (delay_ns < 0 || period_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!goro__running()) {
        errno = EPERM;
        return NULL;
    }
    struct goro_timer *t = timer_make(K_CHAN);
    if (t == NULL)
        return NULL;
    timer_arm_end(t, when_after(delay_ns), period_ns);
    return t;
}

goro_timer *goro_timer_func(int64_t delay_ns, goro_fn fn, void *arg)
{
    if (delay_ns < 0 || fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if (!goro__running()) {
        errno = EPERM;
        return NULL;
    }
    struct goro_timer *t = timer_make(K_FUNC);
    if (t == NULL)
        return NULL;
    cold_of(t)->fn = fn;
    cold_of(t)->arg = arg;
    timer_arm_end(t, when_after(delay_ns), 0);
    return t;
}

goro_chan *goro_timer_chan(goro_timer *t)
{
    return t && t->kind != K_FUNC ? &cold_of(t)->chan : NULL;
}

int goro_timer_stop(goro_timer *t)
{
    if (t == NULL)
        return -EINVAL;
    op_begin(t);
    int rc = timer_stop_locked(t);
    op_end(t);
    return rc;
}

int goro_timer_reset(goro_timer *t, int64_t delay_ns, int64_t period_ns)
{
    if (t == NULL || delay_ns < 0 || period_ns < 0)
        return -EINVAL;
    if (!goro__running())
        return -EPERM;
    int64_t when = when_after(delay_ns);
    op_begin(t);
    if (armed_now(t) && !(t->flags & F_SENT) && when >= t->ht.when) {
        /* Later than the heap entry, nothing sent: the entry stays where it
         * is and fires at its old deadline, when timer_fire finds `due`
         * later and puts it back (see "Reset" in the top comment). */
        t->due = when;
        set_period(t, period_ns);
        t->flags &= (uint8_t)~F_BUSY;
        goro__spin_unlock(&t->lock);
        return 1;
    }
    int rc = timer_stop_locked(t);
    timer_arm_end(t, when, period_ns);
    return rc;
}

void goro_timer_free(goro_timer *t)
{
    if (t == NULL)
        return;
    op_begin(t);
    timer_stop_locked(t);
    struct cold *c = cold_of(t);
    if (t->kind != K_FUNC) {
        goro__chan_lock(&c->chan);
        bool busy = c->chan.recvq.first || c->chan.sendq.first;
        goro__chan_unlock(&c->chan);
        if (busy) {
            /* as goro_chan_free: they would wake on freed memory */
            op_end(t);
            fprintf(stderr, "goro: goro_timer_free(%p): goroutines are still blocked on "
                            "its channel; stopped, not freed\n", (void *)t);
            return;
        }
    }
    free(c);
    slab_put(t);
}

/* ---------------------------------------------------------------------
 * goro_after
 * ------------------------------------------------------------------- */

/* A fired goro_after record whose value was received, or NULL. Looks at
 * no more than two records (each not yet reusable goes to the back), so a
 * pile of never-received values costs O(1) per call. */
static struct goro_timer *after_reuse(void)
{
    for (int tries = 0; tries < 2; tries++) {
        goro__spin_lock(&after_lock);
        struct goro_timer *t = after_head;
        if (t == NULL) {
            goro__spin_unlock(&after_lock);
            return NULL;
        }
        after_head = cold_of(t)->after_next;
        if (after_head == NULL)
            after_tail = NULL;
        goro__spin_unlock(&after_lock);
        goro_chan *ch = &cold_of(t)->chan;
        goro__chan_lock(ch);
        bool idle = ch->count == 0 && ch->recvq.first == NULL && ch->sendq.first == NULL &&
                    !ch->closed;
        goro__chan_unlock(ch);
        if (idle)
            return t;
        after_fired(t);                /* to the back: not received yet */
    }
    return NULL;
}

goro_chan *goro_after(int64_t delay_ns)
{
    if (delay_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!goro__running()) {
        errno = EPERM;
        return NULL;
    }
    struct goro_timer *t = after_reuse();
    if (t == NULL) {
        t = timer_make(K_AFTER);
        if (t == NULL)
            return NULL;
        goro__spin_lock(&after_lock);
        cold_of(t)->all_next = all_after;
        all_after = t;
        goro__spin_unlock(&after_lock);
    } else {
        op_begin(t);                   /* fired, received, nobody else has it */
        t->flags &= (uint8_t)~F_SENT;  /* its value was received */
        goro__spin_unlock(&t->lock);
    }
    timer_arm_end(t, when_after(delay_ns), 0);
    return &cold_of(t)->chan;
}

/* goro_run has returned (timer.c, goro__timers_reset, with the heap
 * already forgotten; no worker or poller thread runs): every user timer's
 * arming is now of an earlier run (armed_now); free goro_after's. */
void goro__timerchan_reset(void)
{
    cur_run++;
    goro__spin_lock(&after_lock);
    struct goro_timer *t = all_after;
    all_after = after_head = after_tail = NULL;
    goro__spin_unlock(&after_lock);
    while (t) {
        struct goro_timer *next = cold_of(t)->all_next;
        free(cold_of(t));   /* its channel with it */
        slab_put(t);
        t = next;
    }
}
