/*
 * test_sync.c - Mutex: mutual exclusion under contention, trylock, no
 * starvation, unlock from another goroutine, many parked waiters.
 */
#include "goro_check.h"

/* ---- 8 goroutines x 100,000 increments on 2 workers -------------------- */

#define INC_G 8
#define INC_N 100000

static goro_mutex cnt_mu;
static uint64_t counter;          /* protected by cnt_mu only */
static volatile AO_t inside;      /* goroutines inside the critical section */
static goro_wg cnt_wg;

static void incrementer(void *arg)
{
    bool yield_inside = arg != NULL;
    for (int i = 0; i < INC_N; i++) {
        CHECK(goro_mutex_lock(&cnt_mu) == 0, "lock");
        CHECK(AO_fetch_and_add1(&inside) == 0, "two goroutines inside");
        uint64_t c = counter;
        if (yield_inside && i % 64 == 0)
            goro_yield();   /* hold it across a switch: others must park */
        counter = c + 1;
        AO_fetch_and_sub1(&inside);
        goro_mutex_unlock(&cnt_mu);
    }
    goro_wg_done(&cnt_wg);
}

static void counter_main(void *arg)
{
    goro_mutex_init(&cnt_mu);
    counter = 0;
    goro_wg_init(&cnt_wg);
    goro_wg_add(&cnt_wg, INC_G);
    for (int i = 0; i < INC_G; i++)
        goro_go(incrementer, arg);
    goro_wg_wait(&cnt_wg);
    CHECK(goro_mutex_trylock(&cnt_mu) == 0, "unlocked at the end");
    goro_mutex_unlock(&cnt_mu);
    check_no_leaks();
}

Test(sync, mutex_counter_8x100k_2_workers, .timeout = 60)
{
    run_on(2, counter_main, NULL);
    CHECKS_PASSED();
    cr_assert_eq(counter, (uint64_t)INC_G * INC_N, "counter %llu", (unsigned long long)counter);
}

Test(sync, mutex_counter_held_across_switches, .timeout = 60)
{
    run_on(2, counter_main, (void *)1);
    CHECKS_PASSED();
    cr_assert_eq(counter, (uint64_t)INC_G * INC_N, "counter %llu", (unsigned long long)counter);
}

/* ---- trylock, zero-filled mutex, outside a goroutine -------------------- */

static void try_main(void *arg)
{
    goro_mutex mu;
    memset(&mu, 0, sizeof mu);   /* zero-filled is unlocked */
    CHECK(goro_mutex_trylock(&mu) == 0, "trylock free");
    CHECK(goro_mutex_trylock(&mu) == -EBUSY, "trylock held");
    goro_mutex_unlock(&mu);
    CHECK(goro_mutex_lock(&mu) == 0, "lock");
    CHECK(goro_mutex_trylock(&mu) == -EBUSY, "trylock held");
    goro_mutex_unlock(&mu);
    check_no_leaks();
}

Test(sync, trylock_and_outside, .timeout = 10)
{
    goro_mutex mu;
    goro_mutex_init(&mu);
    cr_assert_eq(goro_mutex_lock(&mu), -EPERM);
    cr_assert_eq(goro_mutex_trylock(&mu), 0);   /* non-blocking: any thread */
    cr_assert_eq(goro_mutex_trylock(&mu), -EBUSY);
    goro_mutex_unlock(&mu);
    run_on(1, try_main, NULL);
    CHECKS_PASSED();
}

/* ---- no starvation: a goroutine that relocks at once cannot keep a
 * waiter out forever (Go's starvation mode) ------------------------------ */

static goro_mutex st_mu;
static volatile AO_t st_got, st_a_rounds;
static goro_wg st_wg;

static void st_hog(void *arg)
{
    /* lock, hold it across a yield (the woken waiter runs then and finds
     * it locked), unlock and relock at once, until the waiter got in */
    while (!AO_load(&st_got)) {
        goro_mutex_lock(&st_mu);
        goro_yield();
        goro_mutex_unlock(&st_mu);
        AO_fetch_and_add1(&st_a_rounds);
    }
    goro_wg_done(&st_wg);
}

static void st_waiter(void *arg)
{
    goro_sleep(2000000);   /* the hog is looping by now */
    goro_mutex_lock(&st_mu);
    AO_store(&st_got, 1);
    goro_mutex_unlock(&st_mu);
    goro_wg_done(&st_wg);
}

static void starve_main(void *arg)
{
    goro_mutex_init(&st_mu);
    st_got = st_a_rounds = 0;
    goro_wg_init(&st_wg);
    goro_wg_add(&st_wg, 2);
    goro_go(st_hog, NULL);
    goro_go(st_waiter, NULL);
    goro_wg_wait(&st_wg);
    CHECK(st_got == 1, "waiter never got the lock");
    check_no_leaks();
}

Test(sync, mutex_no_starvation_one_worker, .timeout = 30)
{
    run_on(1, starve_main, NULL);
    CHECKS_PASSED();
}

Test(sync, mutex_no_starvation_two_workers, .timeout = 30)
{
    run_on(2, starve_main, NULL);
    CHECKS_PASSED();
}

/* ---- unlock from another goroutine; many parked waiters ----------------- */

static goro_mutex hand_mu;
static goro_chan *hand_ch;
static goro_wg hand_wg;
static volatile AO_t hand_n;

static void hand_unlocker(void *arg)
{
    goro_chan_recv(hand_ch, NULL);
    goro_mutex_unlock(&hand_mu);   /* locked by main, as Go allows */
    goro_wg_done(&hand_wg);
}

static void hand_waiter(void *arg)
{
    goro_mutex_lock(&hand_mu);
    AO_fetch_and_add1(&hand_n);
    goro_mutex_unlock(&hand_mu);
    goro_wg_done(&hand_wg);
}

static void hand_main(void *arg)
{
    goro_mutex_init(&hand_mu);
    hand_ch = goro_chan_make(0, 0);
    hand_n = 0;
    goro_wg_init(&hand_wg);
    goro_wg_add(&hand_wg, 1 + 1000);
    CHECK(goro_mutex_lock(&hand_mu) == 0, "lock");
    goro_go(hand_unlocker, NULL);
    for (int i = 0; i < 1000; i++)
        goro_go(hand_waiter, NULL);
    goro_sleep(20000000);   /* they all park on the mutex */
    CHECK(hand_n == 0, "a waiter got in while it was locked");
    goro_chan_send(hand_ch, NULL);
    goro_wg_wait(&hand_wg);
    CHECK(hand_n == 1000, "%lu waiters got the lock", (unsigned long)hand_n);
    CHECK(goro_mutex_trylock(&hand_mu) == 0, "unlocked at the end");
    goro_mutex_unlock(&hand_mu);
    goro_chan_free(hand_ch);
    check_no_leaks();
}

Test(sync, unlock_by_other_goroutine_and_1000_waiters, .timeout = 30)
{
    run_on(2, hand_main, NULL);
    CHECKS_PASSED();
}
