/*
 * test_timer.c - goro_sleep, goro_now, the timer heap, a million sleepers.
 */
#include "goro_check.h"

/* ---- a 10 ms sleep wakes after at least 10 ms --------------------------- */

static void precision_main(void *arg)
{
    for (int i = 0; i < 20; i++) {
        int64_t t0 = goro_now();
        goro_sleep(10000000);
        int64_t el = goro_now() - t0;
        CHECK(el >= 10000000, "a 10 ms sleep woke after %lld ns", (long long)el);
    }
    check_no_leaks();
}

Test(timer, sleep_10ms_at_least_10ms, .timeout = 30)
{
    run_on(2, precision_main, NULL);
    CHECKS_PASSED();
}

/* ---- many sleepers of different lengths: each wakes after its time ----- */

#define SLEEPERS 500
static goro_wg sl_wg;
static int64_t sl_slept[SLEEPERS];

static void sleeper(void *arg)
{
    intptr_t i = (intptr_t)arg;
    int64_t want = (int64_t)((i * 7919) % 50) * 1000000; /* 0 .. 49 ms, shuffled */
    int64_t t0 = goro_now();
    goro_sleep(want);
    sl_slept[i] = goro_now() - t0;
    CHECK(sl_slept[i] >= want, "sleeper %ld: %lld < %lld", (long)i, (long long)sl_slept[i],
          (long long)want);
    goro_wg_done(&sl_wg);
}

static void sleepers_main(void *arg)
{
    goro_wg_init(&sl_wg);
    goro_wg_add(&sl_wg, SLEEPERS);
    for (intptr_t i = 0; i < SLEEPERS; i++)
        goro_go(sleeper, (void *)i);
    goro_wg_wait(&sl_wg);
    check_no_leaks();
}

Test(timer, many_sleepers_each_wakes_after_its_time, .timeout = 30)
{
    run_on(2, sleepers_main, NULL);
    CHECKS_PASSED();
}

/* ---- sleep(0), negative, outside a goroutine ---------------------------- */

static void zero_main(void *arg)
{
    int64_t t0 = goro_now();
    for (int i = 0; i < 1000; i++) {
        goro_sleep(0);
        goro_sleep(-5);
    }
    CHECK(goro_now() - t0 < 1000000000, "sleep(0) does not sleep");
    CHECK(AO_load(&goro__ctr.timers_pending) == 0, "no timer for sleep(0)");
    check_no_leaks();
}

Test(timer, sleep_zero_and_outside, .timeout = 10)
{
    int64_t t0 = goro_now();
    goro_sleep(1000000000);   /* not a goroutine: does nothing */
    cr_assert_lt(goro_now() - t0, 500000000);
    cr_assert_gt(goro_now(), 0);
    run_on(1, zero_main, NULL);
    CHECKS_PASSED();
}

/* ---- the heap itself: order, deletes, counts ---------------------------- */

#define HEAP_N 20000
static struct goro__timer heap_t[HEAP_N];
static int heap_fired[HEAP_N];
static int64_t heap_last;
static int heap_order_ok = 1, heap_count;

static void heap_fire(struct goro__timer *t)
{
    if (t->when < heap_last)
        heap_order_ok = 0;
    heap_last = t->when;
    heap_fired[t - heap_t]++;
    heap_count++;
}

static void heap_main(void *arg)
{
    /* deadlines an hour away: the poller will not fire them; this goroutine
     * runs them by calling goro__timers_run with a far-future "now" */
    int64_t base = goro_now() + 3600LL * 1000000000;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < HEAP_N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        heap_t[i] = (struct goro__timer){ .when = base + (int64_t)(x % 1000000), .fn = heap_fire };
        goro__timer_add(&heap_t[i]);
    }
    CHECK(AO_load(&goro__ctr.timers_pending) == HEAP_N, "pending %lu",
          (unsigned long)AO_load(&goro__ctr.timers_pending));
    int deleted = 0;
    for (int i = 0; i < HEAP_N; i += 3) {
        CHECK(goro__timer_del(&heap_t[i]), "delete %d", i);
        CHECK(!goro__timer_del(&heap_t[i]), "second delete %d", i);
        deleted++;
    }
    CHECK(AO_load(&goro__ctr.timers_pending) == (AO_t)(HEAP_N - deleted), "pending after del");
    /* half of what is left, up to a middle deadline */
    int64_t next = goro__timers_run(base + 500000);
    CHECK(next >= base + 500000, "next %lld", (long long)(next - base));
    int first = heap_count;
    next = goro__timers_run(base + 2000000);
    CHECK(next == -1, "heap empty: %lld", (long long)next);
    CHECK(heap_order_ok, "fired out of deadline order");
    CHECK(heap_count == HEAP_N - deleted, "fired %d want %d (%d in the first half)", heap_count,
          HEAP_N - deleted, first);
    for (int i = 0; i < HEAP_N; i++)
        CHECK(heap_fired[i] == (i % 3 == 0 ? 0 : 1), "timer %d fired %d times", i, heap_fired[i]);
    CHECK(!goro__timer_del(&heap_t[1]), "delete after firing");
    check_no_leaks();
}

Test(timer, heap_order_and_delete, .timeout = 30)
{
    run_on(1, heap_main, NULL);
    CHECKS_PASSED();
}

/* ---- one million sleeping goroutines ------------------------------------ */

/* Under Valgrind 20,000: at every switch Valgrind looks the stack pointer
 * up in its list of registered stacks, one per live goroutine, and a
 * million at once did not finish in 8 minutes (tests/valgrind.sh) */
#define MILLION (RUNNING_ON_VALGRIND ? (uintptr_t)20000 : (uintptr_t)TSAN_ALIVE(1000000)) /* util.h */
static goro_wg mil_wg;
static volatile AO_t mil_early, mil_woke, mil_peak;

static void mil_sleeper(void *arg)
{
    int64_t want = 500000000 + (int64_t)((uintptr_t)arg % 1000) * 100000; /* 0.5 .. 0.6 s */
    int64_t t0 = goro_now();
    goro_sleep(want);
    if (goro_now() - t0 < want)
        AO_fetch_and_add1(&mil_early);
    AO_fetch_and_add1(&mil_woke);
    goro_wg_done(&mil_wg);
}

static void million_main(void *arg)
{
    goro_wg_init(&mil_wg);
    goro_wg_add(&mil_wg, MILLION);
    for (uintptr_t i = 0; i < MILLION; i++) {
        int r = goro_go(mil_sleeper, (void *)i);
        if (r != 0) {
            CHECK(r == 0, "goro_go %lu: %d", (unsigned long)i, r);
            goro_wg_add(&mil_wg, -(int64_t)(MILLION - i));
            break;
        }
        if (i % 1024 == 0) {
            AO_t p = AO_load(&goro__ctr.timers_pending);
            if (p > mil_peak)
                mil_peak = p;
            goro_yield();
        }
    }
    goro_wg_wait(&mil_wg);
    CHECK(mil_woke == MILLION, "%lu woke", (unsigned long)mil_woke);
    CHECK(mil_early == 0, "%lu woke early", (unsigned long)mil_early);
    check_no_leaks();
}

Test(timer, one_million_sleepers, .timeout = 240)
{
    run_on(2, million_main, NULL);
    CHECKS_PASSED();
    cr_log_info("peak timers pending seen: %lu", (unsigned long)mil_peak);
}
