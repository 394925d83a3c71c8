/*
 * test_stress.c - hammer park/ready across workers.
 *
 * Millions of park/ready hand-offs through counting semaphores built on the
 * runtime's own park/ready primitive, between goroutines on several workers
 * and from a foreign thread. A lost wakeup leaves a goroutine parked
 * forever: the test hangs and its timeout fails it. A goroutine resumed
 * twice at once trips the per-goroutine "running" counter. `make stress`
 * runs this suite 20 times in a row.
 */
#include "util.h"
#include "internal.h"

#include <atomic_ops.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* A counting semaphore on goro__park / goro__ready. */
struct sem {
    volatile AO_TS_t lock;
    long count;
    G *head, *tail;  /* parked waiters, FIFO through schedlink */
};

static void sem_init(struct sem *s)
{
    memset(s, 0, sizeof *s);
    s->lock = AO_TS_INITIALIZER;
}

static void sem_lock(struct sem *s)
{
    while (AO_test_and_set_acquire(&s->lock) == AO_TS_SET)
        __asm__ __volatile__("pause");
}

static bool sem_unlock_cb(G *g, void *arg)
{
    (void)g;
    AO_CLEAR(&((struct sem *)arg)->lock);
    return true;
}

static void sem_wait(struct sem *s)
{
    sem_lock(s);
    if (s->count > 0) {
        s->count--;
        AO_CLEAR(&s->lock);
        return;
    }
    G *g = goro__self();
    g->schedlink = NULL;
    if (s->tail)
        s->tail->schedlink = g;
    else
        s->head = g;
    s->tail = g;
    goro__park(sem_unlock_cb, s, W_NONE, s);
}

static void sem_post(struct sem *s, bool next)
{
    sem_lock(s);
    G *g = s->head;
    if (g) {
        s->head = g->schedlink;
        if (s->head == NULL)
            s->tail = NULL;
    } else {
        s->count++;
    }
    AO_CLEAR(&s->lock);
    if (g)
        goro__ready(g, next);
}

/* ---- token rings -------------------------------------------------------- */

#define RINGS 8
#define RING_LEN 32
#define LAPS 8000   /* 8 * 32 * 8000 = 2,048,000 hand-offs */

struct member {
    struct sem sem;
    volatile AO_t running;
    uint64_t id;
    long turns;
    struct member *next;
};

static struct member ring[RINGS][RING_LEN];
static goro_wg ring_wg;
static volatile AO_t double_runs, wrong_self;

static void enter(struct member *m)
{
    /* full: a second, concurrent resume of the same goroutine would see 1 */
    if (AO_fetch_and_add_full(&m->running, 1) != 0)
        AO_fetch_and_add1(&double_runs);
    if (m->id != goro_id())
        AO_fetch_and_add1(&wrong_self);
}

static void leave(struct member *m)
{
    AO_fetch_and_sub1_full(&m->running);
}

static void ring_member(void *arg)
{
    struct member *m = arg;
    m->id = goro_id();
    for (int lap = 0; lap < LAPS; lap++) {
        sem_wait(&m->sem);
        enter(m);
        m->turns++;
        leave(m);
        /* alternate between runnext and the queue, so both paths and
         * stealing get exercised */
        sem_post(&m->next->sem, lap & 1);
    }
    goro_wg_done(&ring_wg);
}

static void rings_main(void *arg)
{
    (void)arg;
    goro_wg_init(&ring_wg);
    goro_wg_add(&ring_wg, RINGS * RING_LEN);
    for (int r = 0; r < RINGS; r++)
        for (int i = 0; i < RING_LEN; i++) {
            sem_init(&ring[r][i].sem);
            ring[r][i].running = 0;
            ring[r][i].turns = 0;
            ring[r][i].next = &ring[r][(i + 1) % RING_LEN];
        }
    for (int r = 0; r < RINGS; r++)
        for (int i = 0; i < RING_LEN; i++)
            cr_assert_eq(goro_go(ring_member, &ring[r][i]), 0);
    for (int r = 0; r < RINGS; r++)
        sem_post(&ring[r][0].sem, false); /* one token per ring */
    goro_wg_wait(&ring_wg);
}

Test(stress, token_rings_2M_handoffs, .timeout = 120)
{
    double_runs = wrong_self = 0;
    run_on(2, rings_main, NULL);
    cr_assert_eq(double_runs, 0, "a goroutine ran twice at once");
    cr_assert_eq(wrong_self, 0, "goro_id changed under a goroutine");
    for (int r = 0; r < RINGS; r++)
        for (int i = 0; i < RING_LEN; i++)
            cr_assert_eq(ring[r][i].turns, LAPS);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_eq(st.goroutines, 0, "goroutines left: %lu", (unsigned long)st.goroutines);
}

/* ---- many wakers, random targets, a foreign thread too ----------------- */

#define WAITERS 64
#define WAITS_EACH 40000
#define POSTERS 16

static struct member waiter[WAITERS];
static goro_wg mix_wg;

static void mix_waiter(void *arg)
{
    struct member *m = arg;
    m->id = goro_id();
    for (int i = 0; i < WAITS_EACH; i++) {
        sem_wait(&m->sem);
        enter(m);
        m->turns++;
        leave(m);
        if (i % 64 == 0)
            goro_yield();
    }
    goro_wg_done(&mix_wg);
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Posts are drawn from a shared budget: WAITERS * WAITS_EACH in all, each
 * to a waiter that still needs one (per-waiter budgets, claimed by CAS). */
static volatile AO_t need[WAITERS];

static bool post_one(uint64_t *rng, bool next)
{
    for (int tries = 0; tries < 4 * WAITERS; tries++) {
        int i = (int)(xorshift(rng) % WAITERS);
        AO_t n = AO_load(&need[i]);
        if (n == 0)
            continue;
        if (AO_compare_and_swap_full(&need[i], n, n - 1)) {
            sem_post(&waiter[i].sem, next);
            return true;
        }
    }
    for (int i = 0; i < WAITERS; i++) {
        AO_t n;
        while ((n = AO_load(&need[i])) != 0)
            if (AO_compare_and_swap_full(&need[i], n, n - 1)) {
                sem_post(&waiter[i].sem, next);
                return true;
            }
    }
    return false;
}

static void mix_poster(void *arg)
{
    uint64_t rng = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    int k = 0;
    while (post_one(&rng, (k & 3) == 0))
        if (++k % 32 == 0)
            goro_yield();
    goro_wg_done(&mix_wg);
}

static void *foreign_poster(void *arg)
{
    uint64_t rng = 12345;
    (void)arg;
    for (int k = 0; k < WAITERS * WAITS_EACH / 8 && post_one(&rng, false); k++)
        ;
    return NULL;
}

static void mix_main(void *arg)
{
    (void)arg;
    goro_wg_init(&mix_wg);
    goro_wg_add(&mix_wg, WAITERS + POSTERS);
    for (int i = 0; i < WAITERS; i++) {
        sem_init(&waiter[i].sem);
        waiter[i].running = 0;
        waiter[i].turns = 0;
        need[i] = WAITS_EACH;
    }
    for (int i = 0; i < WAITERS; i++)
        goro_go(mix_waiter, &waiter[i]);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, foreign_poster, NULL), 0);
    for (uintptr_t i = 0; i < POSTERS; i++)
        goro_go(mix_poster, (void *)(i + 1));
    goro_wg_wait(&mix_wg);
    pthread_join(t, NULL);
}

Test(stress, random_wakers_and_foreign_thread, .timeout = 120)
{
    double_runs = wrong_self = 0;
    run_on(2, mix_main, NULL);
    cr_assert_eq(double_runs, 0, "a goroutine ran twice at once");
    cr_assert_eq(wrong_self, 0);
    for (int i = 0; i < WAITERS; i++)
        cr_assert_eq(waiter[i].turns, WAITS_EACH);
}

/* Same on more workers than cores: workers get descheduled mid-protocol. */
Test(stress, random_wakers_4_workers, .timeout = 120)
{
    double_runs = wrong_self = 0;
    run_on(4, mix_main, NULL);
    cr_assert_eq(double_runs, 0);
    for (int i = 0; i < WAITERS; i++)
        cr_assert_eq(waiter[i].turns, WAITS_EACH);
}

/* Sleep/wake churn: workers go idle and are woken over and over (the
 * idle protocol's lost-wakeup window), by a foreign thread's posts. Every
 * eighth gap outlasts an idle worker's spin (~240 us), so that the worker
 * running the waiter goes to sleep too, not only a second one woken
 * along (workers no longer wake each other without queued work). */
#define CHURN 20000
static struct sem churn_sem;

static void *churn_thread(void *arg);
static volatile AO_t churn_sleeps;

static void churn_main(void *arg)
{
    (void)arg;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, churn_thread, NULL), 0);
    for (int i = 0; i < CHURN; i++)
        sem_wait(&churn_sem); /* most waits park: the runtime goes idle */
    struct goro_stats st;
    goro_stats(&st);
    churn_sleeps = st.worker_sleeps;
    pthread_join(t, NULL);
}

static void *churn_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < CHURN; i++) {
        sem_post(&churn_sem, false);
        if (i % 8 == 0)
            usleep(300);
        else if (i % 4 == 0)
            usleep(5);
        else
            for (volatile int k = 0; k < (i % 7) * 300; k++)
                ;
    }
    return NULL;
}

Test(stress, idle_wake_churn, .timeout = 120)
{
    sem_init(&churn_sem);
    setenv("GORO_DEBUG", "nodeadlock", 1); /* the feeder is a foreign thread */
    run_on(2, churn_main, NULL);
    unsetenv("GORO_DEBUG");
    cr_log_info("worker sleeps: %lu", (unsigned long)churn_sleeps);
    cr_assert_gt(churn_sleeps, CHURN / 10, "the workers hardly ever slept: not a churn");
}

/* ---- runnext steals racing the owner ------------------------------------ */

/* Spawners put each child in their worker's runnext and then stay busy for
 * 0-8 us without yielding, so the other worker keeps trying to steal the
 * child out of runnext (after its ~3 us grace) just as the owner comes back
 * to take it itself: the owner's plain runnext accesses and the thief's
 * membarrier + CAS race on every round. Every child must run exactly once. */
#define RN_SPAWNERS 1
#define RN_ROUNDS 40000
static volatile AO_t rn_ran[RN_SPAWNERS * RN_ROUNDS];
static goro_wg rn_wg;

static void rn_child(void *arg)
{
    AO_fetch_and_add1(&rn_ran[(uintptr_t)arg]);
    goro_wg_done(&rn_wg);
}

static void rn_spawner(void *arg)
{
    uintptr_t base = (uintptr_t)arg * RN_ROUNDS;
    uint64_t rng = base * 2654435761u + 7;
    for (uintptr_t i = 0; i < RN_ROUNDS; i++) {
        cr_assert_eq(goro_go(rn_child, (void *)(base + i)), 0);
        int64_t until = goro_now() + (int64_t)(xorshift(&rng) % 8000);
        while (goro_now() < until)
            __asm__ __volatile__("pause");
        if (i % 3 == 0)
            goro_yield();
    }
    goro_wg_done(&rn_wg);
}

static void rn_main(void *arg)
{
    (void)arg;
    goro_wg_init(&rn_wg);
    goro_wg_add(&rn_wg, RN_SPAWNERS * (RN_ROUNDS + 1));
    for (uintptr_t s = 0; s < RN_SPAWNERS; s++)
        goro_go(rn_spawner, (void *)s);
    goro_wg_wait(&rn_wg);
}

Test(stress, runnext_steals_race_the_owner, .timeout = 120)
{
    memset((void *)rn_ran, 0, sizeof rn_ran);
    run_on(2, rn_main, NULL);
    for (int i = 0; i < RN_SPAWNERS * RN_ROUNDS; i++)
        cr_assert_eq(rn_ran[i], 1, "child %d ran %lu times", i, (unsigned long)rn_ran[i]);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_gt(st.steals, 0);
}
