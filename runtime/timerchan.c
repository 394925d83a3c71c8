/*
 * timerchan.c - time.Timer, time.Ticker, time.AfterFunc and time.After:
 * goro_timer_new/func/chan/stop/reset/free and goro_after.
 *
 * Design. A goro_timer is a heap record holding one entry of the timer heap
 * (timer.c) and, for a timer or ticker, a channel of int64_t with a
 * one-value buffer. When the entry fires, its callback (on the poller
 * thread) sends goro_now() into the channel without blocking: a receiver
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
 *   1. under t->lock, clears `armed`: a callback that has not yet taken the
 *      lock will see it and send nothing;
 *   2. deletes the heap entry; goro__timer_del waits for a callback that is
 *      already running, so after it nothing sends for the old arming (a
 *      ticker callback that re-armed before step 1 is taken out here);
 *   3. drains the buffer: a value sent before step 1 and not yet received
 *      is dropped.
 * It returns 1 when a firing was still to come from the program's point of
 * view: the entry was armed, or its value was still unreceived (Go 1.23's
 * Stop returns true in both cases too). stop, reset and free of one timer
 * are serialised by t->oplock (two resets racing must not both add the
 * entry to the heap); the callback never takes oplock, so waiting for it
 * in step 2 under oplock cannot deadlock.
 *
 * Cost. An armed timer is one heap entry, and stop removes it at once (Go
 * before 1.23 left stopped timers in the heap until their time; a million
 * timers armed and stopped leave nothing behind here). The channel is
 * built in place inside the record: one allocation, and a stop touches one
 * record, not two. new is that malloc and the registry below.
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
 * The registry: every goro_timer record of this process, on a list under
 * reg_lock, so that when goro_run returns (goro__timers_reset empties the
 * heap) every armed record is marked disarmed and its entry forgotten, and
 * the goro_after records are freed. User timers outlive goro_run and may be
 * reset in the next one.
 *
 * Lock order: t->oplock > t->lock > channel lock > timer heap lock >
 * sched.lock; after_lock and reg_lock are leaves (the callback takes
 * after_lock after dropping t->lock).
 */
#include "chan.h"
#include "spin.h"
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>

struct goro_timer {
    struct goro__timer ht;       /* the heap entry; ht.arg is this record */
    goro__spin lock;             /* protects armed, period, ht.when, fired */
    goro__spin oplock;           /* serialises stop, reset and free */
    bool armed;                  /* a firing is to come (ht in the heap, or
                                    its callback about to run and send) */
    bool is_after;               /* a goro_after record (runtime-owned) */
    bool fired;                  /* goro_after: its one value was sent */
    int64_t period;              /* ticker period, 0: fires once */
    goro_chan *ch;               /* &chan, or NULL for a func timer */
    goro_fn fn;                  /* goro_timer_func */
    void *arg;
    struct goro_timer *reg_next, *reg_prev;   /* the registry, under reg_lock */
    struct goro_timer *after_next;            /* fired goro_after records */
    /* The channel lives in the record (one allocation, one cache miss
     * less per stop): int64_t elements, cap 1, buffer below. */
    struct goro_chan chan;
    int64_t chanbuf;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct goro_timer *reg_head;            /* every record; under reg_lock */

/* Fired goro_after records, oldest first, waiting to be reused; under
 * after_lock. */
static goro__spin after_lock;
static struct goro_timer *after_head, *after_tail;

static void reg_add(struct goro_timer *t)
{
    pthread_mutex_lock(&reg_lock);
    t->reg_prev = NULL;
    t->reg_next = reg_head;
    if (reg_head)
        reg_head->reg_prev = t;
    reg_head = t;
    pthread_mutex_unlock(&reg_lock);
}

static void reg_del(struct goro_timer *t)
{
    pthread_mutex_lock(&reg_lock);
    if (t->reg_prev)
        t->reg_prev->reg_next = t->reg_next;
    else
        reg_head = t->reg_next;
    if (t->reg_next)
        t->reg_next->reg_prev = t->reg_prev;
    pthread_mutex_unlock(&reg_lock);
}

static void after_fired(struct goro_timer *t)
{
    goro__spin_lock(&after_lock);
    t->after_next = NULL;
    if (after_tail)
        after_tail->after_next = t;
    else
        after_head = t;
    after_tail = t;
    goro__spin_unlock(&after_lock);
}

/* The heap entry fired (poller thread, no heap lock). */
static void timer_fire(struct goro__timer *ht)
{
    struct goro_timer *t = ht->arg;
    goro__spin_lock(&t->lock);
    if (!t->armed) {
        goro__spin_unlock(&t->lock);   /* stopped meanwhile: send nothing */
        return;
    }
    int64_t now = goro_now();
    if (t->ch) {
        /* a full buffer (a ticker's unreceived tick) drops this one */
        (void)goro_chan_trysend(t->ch, &now);
    }
    bool after = false;
    if (t->period > 0) {
        /* the first multiple of the period after now: missed ticks are
         * skipped (Go's ticker does the same) */
        int64_t late = now - ht->when;
        int64_t skip = late >= 0 ? late / t->period + 1 : 1;
        ht->when = ht->when + skip * t->period;
        goro__timer_add(ht);           /* lock order: t->lock > timer heap */
    } else {
        t->armed = false;
        if (t->is_after) {
            t->fired = true;
            after = true;
        }
    }
    goro__spin_unlock(&t->lock);
    if (t->ch == NULL) {
        /* goro_timer_func: spawn outside the spinlock (a spawn may map a
         * stack). t stays valid: stop and free wait for this callback in
         * goro__timer_del; fn and arg never change. ENOMEM loses the
         * firing, as a failed goro_go would. */
        (void)goro_go(t->fn, t->arg);
    }
    if (after)
        after_fired(t);                /* the record may be reused from now on */
}

/* t->oplock held, t not armed and not in the heap. */
static void timer_arm(struct goro_timer *t, int64_t delay_ns, int64_t period_ns)
{
    goro__spin_lock(&t->lock);
    t->ht.when = delay_ns > 0 ? goro__deadline_after(delay_ns) : goro_now();
    t->period = period_ns;
    t->armed = true;
    goro__timer_add(&t->ht);           /* lock order: t->lock > timer heap */
    goro__spin_unlock(&t->lock);
}

/* Steps 1-3 of the top comment; t->oplock held. */
static int timer_stop_locked(struct goro_timer *t)
{
    goro__spin_lock(&t->lock);
    bool pending = t->armed;
    t->armed = false;
    goro__spin_unlock(&t->lock);
    goro__timer_del(&t->ht);           /* waits for a running callback */
    /* No callback runs for t now, and none will send (armed is clear):
     * a plain look at count is exact (timer.c's firing release/acquire
     * orders the callback's send before goro__timer_del's return). */
    bool drained = t->ch && AO_load(&t->ch->count) != 0 &&
                   goro_chan_tryrecv(t->ch, NULL) == 1;
    return pending || drained;
}

static struct goro_timer *timer_make(bool with_chan)
{
    struct goro_timer *t = calloc(1, sizeof *t);
    if (t == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (with_chan) {
        /* what goro_chan_make would set up, in place */
        t->ch = &t->chan;
        t->chan.elem_size = sizeof(int64_t);
        t->chan.cap = 1;
        t->chan.buf = (char *)&t->chanbuf;
        t->chan.is_timer = true;       /* the dump's "timer" */
        t->chan.embedded = true;       /* goro_chan_free refuses it */
    }
    t->ht.fn = timer_fire;
    t->ht.arg = t;
    reg_add(t);
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
    struct goro_timer *t = timer_make(true);
    if (t == NULL)
        return NULL;
    goro__spin_lock(&t->oplock);
    timer_arm(t, delay_ns, period_ns);
    goro__spin_unlock(&t->oplock);
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
    struct goro_timer *t = timer_make(false);
    if (t == NULL)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    goro__spin_lock(&t->oplock);
    timer_arm(t, delay_ns, 0);
    goro__spin_unlock(&t->oplock);
    return t;
}

goro_chan *goro_timer_chan(goro_timer *t)
{
    return t ? t->ch : NULL;
}

int goro_timer_stop(goro_timer *t)
{
    if (t == NULL)
        return -EINVAL;
    goro__spin_lock(&t->oplock);
    int rc = timer_stop_locked(t);
    goro__spin_unlock(&t->oplock);
    return rc;
}

int goro_timer_reset(goro_timer *t, int64_t delay_ns, int64_t period_ns)
{
    if (t == NULL || delay_ns < 0 || period_ns < 0)
        return -EINVAL;
    if (!goro__running())
        return -EPERM;
    goro__spin_lock(&t->oplock);
    int rc = timer_stop_locked(t);
    timer_arm(t, delay_ns, period_ns);
    goro__spin_unlock(&t->oplock);
    return rc;
}

void goro_timer_free(goro_timer *t)
{
    if (t == NULL)
        return;
    goro__spin_lock(&t->oplock);
    timer_stop_locked(t);
    goro__spin_unlock(&t->oplock);
    if (t->ch) {
        goro__chan_lock(t->ch);
        bool busy = t->ch->recvq.first || t->ch->sendq.first;
        goro__chan_unlock(t->ch);
        if (busy) {
            /* as goro_chan_free: they would wake on freed memory */
            fprintf(stderr, "goro: goro_timer_free(%p): goroutines are still blocked on "
                            "its channel; stopped, not freed\n", (void *)t);
            return;
        }
    }
    reg_del(t);
    free(t);
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
        after_head = t->after_next;
        if (after_head == NULL)
            after_tail = NULL;
        goro__spin_unlock(&after_lock);
        goro__chan_lock(t->ch);
        bool idle = t->ch->count == 0 && t->ch->recvq.first == NULL &&
                    t->ch->sendq.first == NULL && !t->ch->closed;
        goro__chan_unlock(t->ch);
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
        t = timer_make(true);
        if (t == NULL)
            return NULL;
        t->is_after = true;
    }
    goro__spin_lock(&t->oplock);
    t->fired = false;
    timer_arm(t, delay_ns, 0);
    goro__spin_unlock(&t->oplock);
    return t->ch;
}

/* goro_run has returned (timer.c, goro__timers_reset, with the heap
 * already forgotten): disarm every record; free goro_after's. */
void goro__timerchan_reset(void)
{
    pthread_mutex_lock(&reg_lock);
    struct goro_timer *t = reg_head, *keep = NULL;
    while (t) {
        struct goro_timer *next = t->reg_next;
        t->armed = false;
        t->ht.idx = 0;                 /* the heap forgot it */
        if (t->is_after) {
            free(t);   /* its channel with it */
        } else {
            t->reg_prev = NULL;
            t->reg_next = keep;
            if (keep)
                keep->reg_prev = t;
            keep = t;
        }
        t = next;
    }
    reg_head = keep;
    pthread_mutex_unlock(&reg_lock);
    after_head = after_tail = NULL;
}
