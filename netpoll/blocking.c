/*
 * blocking.c - goro_blocking: run a call that blocks its thread (file I/O,
 * getaddrinfo, compression) on a helper thread while the goroutine parks.
 *
 * A pool of helper threads, made per goro_run on the first call. It grows
 * on demand: a call that finds no idle helper starts a new one, up to a cap
 * (GORO_BLOCKING_MAX, default 128); beyond the cap calls queue in FIFO
 * order. A helper idle for 10 seconds exits, so a burst leaves no threads
 * behind. Helpers block every asynchronous signal, like the poller.
 *
 * The job record lives on the calling goroutine's stack. The goroutine
 * queues it under the pool lock and parks; the lock is released by park's
 * unlock function after the switch, so no helper can finish the job (and
 * ready the goroutine) before it has left its stack.
 *
 * Stop (goro_run returning): the goroutines are discarded, so queued jobs
 * are dropped and a helper still inside a job must not touch that job (its
 * stack is freed) nor ready its goroutine. Under the lock, stop sets
 * `stopping` and waits for the idle helpers to leave; busy ones are
 * detached, finish their call, see `stopping`, and exit. The pool record is
 * reference-counted by its helpers and freed by the last one out, so the
 * next goro_run starts a fresh pool whatever the old helpers still do.
 *
 * Rejected: a fixed-size pool (100 sleeping calls would wait in line while
 * the cores idle); a thread per call (a thread create per getaddrinfo);
 * joining busy helpers at stop (a call that never returns would hang
 * goro_run).
 */
#include "internal.h"
#include "annotate.h"
#include "netpoll.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BLOCKING_MAX_DEFAULT 128
#define BLOCKING_IDLE_NS (10 * (int64_t)1000000000)

struct pool;

struct job {
    intptr_t (*fn)(void *arg);
    void *arg;
    intptr_t result;
    G *g;
    struct pool *pool;
    struct job *next;
};

struct pool {
    pthread_mutex_t lock;   /* protects everything below */
    pthread_cond_t work;    /* idle helpers wait for a job */
    pthread_cond_t left;    /* stop waits for idle helpers to leave */
    struct job *head, *tail;
    int nqueued;            /* jobs on the list */
    int nthreads;           /* helpers alive */
    int nidle;              /* helpers waiting on `work` */
    int refs;               /* helpers + the runtime */
    int cap;
    bool stopping;
};

static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
/* The running runtime's pool (struct pool *), made on the first call.
 * Written under create_lock, read without it. */
static volatile AO_t cur;

static void pool_unref_locked(struct pool *p)
{
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (last) {
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->left);
        pthread_mutex_destroy(&p->lock);
        free(p);
    }
}

static void *helper_main(void *arg)
{
    struct pool *p = arg;
    goro__mark_internal_thread();
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->head == NULL && !p->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + BLOCKING_IDLE_NS;
            ts.tv_sec = t / 1000000000;
            ts.tv_nsec = t % 1000000000;
            p->nidle++;
            int rc = pthread_cond_timedwait(&p->work, &p->lock, &ts);
            p->nidle--;
            if (rc == ETIMEDOUT && p->head == NULL)
                goto out; /* idle too long: shrink */
        }
        if (p->stopping)
            goto out; /* queued jobs belong to discarded goroutines */
        struct job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->nqueued--;
        intptr_t (*fn)(void *) = j->fn;
        void *fnarg = j->arg;
        pthread_mutex_unlock(&p->lock);

        intptr_t r = fn(fnarg);

        pthread_mutex_lock(&p->lock);
        if (!p->stopping) {
            /* the goroutine is parked (it queued j and parked under the lock);
             * goro__ready's full CAS publishes the result with it */
            j->result = r;
            goro__ready(j->g, false);
        }
    }
out:
    p->nthreads--;
    if (p->stopping)
        pthread_cond_signal(&p->left);
    pool_unref_locked(p);
    return NULL;
}

static int env_cap(void)
{
    const char *s = getenv("GORO_BLOCKING_MAX");
    if (s == NULL || *s == 0)
        return BLOCKING_MAX_DEFAULT;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != 0 || v < 1 || v > 10000) {
        fprintf(stderr, "goro: ignoring GORO_BLOCKING_MAX=%s (want 1..10000)\n", s);
        return BLOCKING_MAX_DEFAULT;
    }
    return (int)v;
}

static struct pool *get_pool(void)
{
    /* acquire: the pool's initialization before its pointer */
    struct pool *p = (struct pool *)AO_load_acquire(&cur);
    if (likely(p != NULL))
        return p;
    pthread_mutex_lock(&create_lock);
    p = (struct pool *)AO_load(&cur);
    if (p == NULL && (p = calloc(1, sizeof *p)) != NULL) {
        pthread_mutex_init(&p->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->work, &ca);
        pthread_condattr_destroy(&ca);
        pthread_cond_init(&p->left, NULL);
        p->refs = 1; /* the runtime's */
        p->cap = env_cap();
        /* release: pairs with the acquire above */
        AO_store_release(&cur, (AO_t)p);
    }
    pthread_mutex_unlock(&create_lock);
    return p;
}

/* Start one more helper. Under p->lock. */
static int spawn_helper(struct pool *p)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = goro__np_thread_create(&t, &attr, helper_main, p);
    pthread_attr_destroy(&attr);
    if (e == 0) {
        p->nthreads++;
        p->refs++;
    }
    return e;
}

/* Park commit: queue the job, then release the pool. The job lives on the
 * parked goroutine's stack, so it is linked only now that the goroutine
 * has switched away: linked before, it would be pointed to from outside
 * the stack while the goroutine still runs, and the stack may move in any
 * call (stack_fault.c). The pool lock, held since goro_blocking counted the job,
 * keeps the helpers from looking meanwhile. */
static bool queue_job(G *g, void *arg)
{
    (void)g;
    struct job *j = arg;
    struct pool *p = j->pool;
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    goro__ann_lock_enter(&p->lock); /* taken on the goroutine (annotate.h) */
    pthread_mutex_unlock(&p->lock);
    return true;
}

intptr_t goro_blocking(intptr_t (*fn)(void *arg), void *arg)
{
    G *g = goro__self();
    if (g == NULL)
        return -EPERM;
    if (fn == NULL)
        return -EINVAL;
    struct pool *p = get_pool();
    if (p == NULL)
        return fn(arg); /* no memory for a pool: block this worker instead */
    struct job j = { .fn = fn, .arg = arg, .g = g, .pool = p };

    pthread_mutex_lock(&p->lock);
    p->nqueued++; /* counted now, linked by queue_job after the switch */
    if (p->nidle >= p->nqueued) {
        pthread_cond_signal(&p->work);
    } else if (p->nthreads < p->cap && spawn_helper(p) != 0 && p->nthreads == 0) {
        /* no helper at all and none can start: run it here */
        p->nqueued--;
        pthread_mutex_unlock(&p->lock);
        return fn(arg);
    }
    /* before the park: not asleep for deadlock detection (no ordering: the
     * worker is busy until the park completes) */
    AO_fetch_and_add1(&goro__ctr.blocking_running);
    goro__ann_lock_leave(&p->lock); /* queue_job releases it */
    goro__park(queue_job, &j, W_BLOCKING, (void *)fn);
    /* full: lowered only after our ready (sched.c deadlock check) */
    AO_fetch_and_sub1_full(&goro__ctr.blocking_running);
    return j.result;
}

void goro__blocking_stop(void)
{
    struct pool *p = (struct pool *)AO_load(&cur);
    if (p == NULL)
        return;
    AO_store(&cur, 0); /* no goroutine runs: nobody reads it concurrently */
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    p->head = p->tail = NULL;
    p->nqueued = 0;
    pthread_cond_broadcast(&p->work);
    while (p->nidle > 0)
        pthread_cond_wait(&p->left, &p->lock);
    pool_unref_locked(p);
}
