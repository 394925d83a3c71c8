/*
 * timer.c - the timer heap: goro_sleep, select timeouts, I/O deadlines.
 *
 * Every pending timer sits in one 4-ary min-heap of pointers ordered by
 * deadline (Go's runtime uses a 4-ary heap too: half the depth of a binary
 * one, and the four children share a cache line). Add and delete are
 * O(log n); a million sleeping goroutines cost a million pointers in the
 * heap and one record each on their own stacks. The poller thread
 * (netpoll.c) sleeps in epoll_wait until the earliest deadline, which
 * goro__timers_run returns; when a newly added timer becomes the earliest,
 * goro__timer_add interrupts that wait with goro__netpoll_break.
 *
 * Callbacks run on the poller thread, one at a time, without the heap lock
 * (they usually call goro__ready, which takes sched.lock: lock order timer
 * heap > sched.lock, and a callback may also add timers). While one runs,
 * `firing` names it; goro__timer_del on a timer that has already left the
 * heap waits until its callback has returned, so after goro__timer_del the
 * caller may reuse or free the timer (a select's timer lives on its
 * goroutine's stack). timers_run never touches a timer after its callback
 * returns, so a callback may end the timer's life by readying the goroutine
 * that owns it (goro_sleep does). A callback must not delete its own timer.
 *
 * goro__ctr.timers_pending counts timers in the heap or whose callback is
 * still running: deadlock detection never sees "no timers" between the pop
 * of a timer and the wake-up it causes. The last worker to go idle checks
 * for deadlock; it may do so before the last timer's count is dropped, so
 * goro__timers_run checks again once the heap has emptied.
 *
 * Rejected: a sorted list (O(n) insert: a million sleepers would crawl);
 * timer wheels (cheap insert, but epoll needs the exact earliest deadline and
 * a wheel's cascade costs on every tick even when idle, and idle must be
 * idle); a timerfd per timer (a syscall and an fd per sleep).
 */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>
#include <time.h>

#define HEAP_ARITY 4

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER; /* protects heap, heap_len,
                                                                 heap_cap, t->idx */
static struct goro__timer **heap;
static size_t heap_len, heap_cap;
/* The timer whose callback is running, or NULL. Written by the poller thread
 * (set under heap_lock, cleared with a release store after the callback),
 * read by goro__timer_del (acquire: once it sees the callback is over, the
 * callback's writes are visible). */
static volatile AO_t firing;     /* seq of the timer whose callback runs, 0: none */
static uint64_t next_seq;        /* under heap_lock */

int64_t goro_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* heap_lock held for all the heap helpers. */
static inline void heap_set(size_t i, struct goro__timer *t)
{
    heap[i] = t;
    t->idx = i + 1;
}

static void sift_up(size_t i)
{
    struct goro__timer *t = heap[i];
    while (i > 0) {
        size_t p = (i - 1) / HEAP_ARITY;
        if (heap[p]->when <= t->when)
            break;
        heap_set(i, heap[p]);
        i = p;
    }
    heap_set(i, t);
}

static void sift_down(size_t i)
{
    struct goro__timer *t = heap[i];
    for (;;) {
        size_t c = i * HEAP_ARITY + 1, best = i;
        int64_t bw = t->when;
        for (size_t e = c + HEAP_ARITY; c < e && c < heap_len; c++) {
            if (heap[c]->when < bw) {
                best = c;
                bw = heap[c]->when;
            }
        }
        if (best == i)
            break;
        heap_set(i, heap[best]);
        i = best;
    }
    heap_set(i, t);
}

static void heap_remove(size_t i)
{
    struct goro__timer *t = heap[i];
    size_t last = --heap_len;
    if (i != last) {
        struct goro__timer *m = heap[last];
        heap_set(i, m);
        if (i > 0 && heap[(i - 1) / HEAP_ARITY]->when > m->when)
            sift_up(i);
        else
            sift_down(i);
    }
    t->idx = 0;
}

void goro__timer_add(struct goro__timer *t)
{
    pthread_mutex_lock(&heap_lock);
    if (heap_len == heap_cap) {
        size_t ncap = heap_cap ? heap_cap * 2 : 256;
        struct goro__timer **nh = realloc(heap, ncap * sizeof *nh);
        if (!nh)
            goro__fatal("out of memory growing the timer heap to %zu timers", ncap);
        heap = nh;
        heap_cap = ncap;
    }
    /* Identify the timer by a sequence number, not its address: a timer
     * may live on a goroutine stack, and if that stack grows (moves) while
     * the goroutine is on its way into goro__timer_del, the address it
     * passes is the new one while the heap and `firing` knew the old. */
    t->seq = ++next_seq;
    heap_len++;
    heap_set(heap_len - 1, t);
    sift_up(heap_len - 1);
    bool earliest = t->idx == 1;
    AO_fetch_and_add1(&goro__ctr.timers_pending); /* no ordering: a counter */
    pthread_mutex_unlock(&heap_lock);
    if (earliest)
        goro__netpoll_break();
}

bool goro__timer_del(struct goro__timer *t)
{
    pthread_mutex_lock(&heap_lock);
    /* idx alone is not proof: a record that outlived a goro_run (a
     * context's deadline) keeps the idx of a heap that was forgotten.
     * Compared by seq, not address (see goro__timer_add). */
    if (t->idx != 0 && t->idx <= heap_len && heap[t->idx - 1]->seq == t->seq) {
        heap_remove(t->idx - 1);
        AO_fetch_and_sub1(&goro__ctr.timers_pending);
        pthread_mutex_unlock(&heap_lock);
        return true;
    }
    bool running = t->seq != 0 && AO_load(&firing) == (AO_t)t->seq;
    pthread_mutex_unlock(&heap_lock);
    if (running) {
        /* acquire: pairs with the release store after the callback */
        for (unsigned spins = 0; AO_load_acquire(&firing) == (AO_t)t->seq; spins++)
            if (spins > 64)
                sched_yield();
    }
    return false;
}

int64_t goro__timers_run(int64_t now)
{
    int64_t next;
    bool fired = false;
    pthread_mutex_lock(&heap_lock);
    while (heap_len > 0 && heap[0]->when <= now) {
        struct goro__timer *t = heap[0];
        heap_remove(0);
        /* under heap_lock, so that goro__timer_del sees either idx != 0 or
         * firing == t, never neither while the callback is pending */
        AO_store(&firing, (AO_t)t->seq);
        pthread_mutex_unlock(&heap_lock);
        t->fn(t);
        /* release: the callback's effects are visible to a goro__timer_del
         * that sees firing change */
        AO_store_release(&firing, 0);
        AO_fetch_and_sub1(&goro__ctr.timers_pending); /* after the wake-up: see top */
        fired = true;
        pthread_mutex_lock(&heap_lock);
    }
    next = heap_len > 0 ? heap[0]->when : -1;
    pthread_mutex_unlock(&heap_lock);
    /* The last worker to go idle checks for deadlock, but it may have looked
     * while the last timer was still counted: look again now that none is. */
    if (fired && next < 0)
        goro__check_deadlock();
    return next;
}

void goro__timers_reset(void)
{
    /* The goroutines that owned the timers are gone (goro_run returned):
     * forget the timers without touching them. */
    pthread_mutex_lock(&heap_lock);
    heap_len = 0;
    free(heap);
    heap = NULL;
    heap_cap = 0;
    AO_store(&firing, 0);
    AO_store(&goro__ctr.timers_pending, 0);
    pthread_mutex_unlock(&heap_lock);
    goro__timerchan_reset();   /* goro_timer records outlive the run */
}

/* ---------------------------------------------------------------------
 * goro_sleep
 * ------------------------------------------------------------------- */

static void sleep_fire(struct goro__timer *t)
{
    /* t lives on the sleeper's stack: after this call it may be gone */
    goro__ready((G *)t->arg, false);
}

static bool sleep_park_commit(G *g, void *arg)
{
    goro__timer_add(arg);   /* only now: g has switched away */
    return true;
}

void goro_sleep(int64_t ns)
{
    G *g = goro__self();
    if (!g)
        return;
    if (ns <= 0) {
        goro_yield();
        return;
    }
    int64_t now = goro_now();
    struct goro__timer t = {
        .when = ns > INT64_MAX - now ? INT64_MAX : now + ns,
        .fn = sleep_fire,
        .arg = g,
    };
    goro__park(sleep_park_commit, &t, W_SLEEP, NULL);
}
