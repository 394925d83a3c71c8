/*
 * test_once.c - goro_once_do: one run of fn for 10,000 concurrent callers
 * with a slow initialiser, callers that come while it runs wait for it and
 * see everything it wrote, zero-filled objects, plain threads.
 */
#include "goro_check.h"

#include <pthread.h>

#define ONCE_CALLERS 10000

static goro_once once;
static volatile AO_t runs;          /* fn calls */
static volatile AO_t finished;      /* fn returned */
static int payload[64];             /* written by fn, plain stores */
static volatile AO_t early;          /* callers that returned before fn had */
static goro_wg once_wg;

static void slow_init(void *arg)
{
    AO_fetch_and_add1(&runs);
    for (int i = 0; i < 64; i++) {
        payload[i] = i * 7 + (int)(intptr_t)arg;
        if (i % 16 == 0)
            goro_sleep(5000000);   /* 20 ms in all, parked: others come meanwhile */
    }
    AO_store(&finished, 1);   /* plain: the callers' check is of goro_once_do's ordering */
}

static void caller(void *arg)
{
    CHECK(goro_once_do(&once, slow_init, (void *)(intptr_t)3) == 0, "once_do");
    if (!AO_load(&finished))
        AO_fetch_and_add1(&early);
    for (int i = 0; i < 64; i++)
        CHECK(payload[i] == i * 7 + 3, "payload[%d] = %d after once_do", i, payload[i]);
    if ((uintptr_t)arg % 3 == 0)
        goro_yield();
    goro_wg_done(&once_wg);
}

static void once_main(void *arg)
{
    memset(&once, 0, sizeof once);   /* zero-filled: ready to use */
    runs = finished = early = 0;
    memset(payload, 0, sizeof payload);
    goro_wg_init(&once_wg);
    goro_wg_add(&once_wg, ONCE_CALLERS);
    for (int i = 0; i < ONCE_CALLERS; i++)
        CHECK(goro_go(caller, (void *)(uintptr_t)i) == 0, "go");
    goro_wg_wait(&once_wg);
    CHECK(AO_load(&runs) == 1, "fn ran %lu times", (unsigned long)AO_load(&runs));
    CHECK(AO_load(&early) == 0, "%lu callers returned before fn had",
          (unsigned long)AO_load(&early));
    /* later calls return at once, without running fn */
    CHECK(goro_once_do(&once, slow_init, NULL) == 0, "once_do after");
    CHECK(AO_load(&runs) == 1, "fn ran again");
    check_no_leaks();
}

Test(once, slow_init_10k_callers_2_workers, .timeout = 60)
{
    run_on(2, once_main, NULL);
    CHECKS_PASSED();
}

Test(once, slow_init_10k_callers_1_worker, .timeout = 60)
{
    run_on(1, once_main, NULL);
    CHECKS_PASSED();
}

/* ---- many objects, fn that spawns and blocks ------------------------------ */

#define MANY 200
static goro_once many[MANY];
static volatile AO_t many_runs[MANY];

static void many_init(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    goro_yield();
    AO_fetch_and_add1(&many_runs[i]);
}

static void many_caller(void *arg)
{
    for (uintptr_t i = 0; i < MANY; i++)
        CHECK(goro_once_do(&many[i], many_init, (void *)i) == 0, "once_do");
    for (uintptr_t i = 0; i < MANY; i++)
        CHECK(AO_load(&many_runs[i]) == 1, "once %lu ran %lu times", (unsigned long)i,
              (unsigned long)AO_load(&many_runs[i]));
    goro_wg_done(&once_wg);
}

static void many_main(void *arg)
{
    memset(many, 0, sizeof many);
    memset((void *)many_runs, 0, sizeof many_runs);
    goro_wg_init(&once_wg);
    goro_wg_add(&once_wg, 64);
    for (int i = 0; i < 64; i++)
        goro_go(many_caller, NULL);
    goro_wg_wait(&once_wg);
    check_no_leaks();
}

Test(once, many_objects_64_callers, .timeout = 30)
{
    run_on(2, many_main, NULL);
    CHECKS_PASSED();
}

/* ---- plain threads ---------------------------------------------------------- */

static goro_once th_once;
static volatile AO_t th_in_fn, th_release;

static void th_slow(void *arg)
{
    AO_store(&th_in_fn, 1);
    while (!AO_load(&th_release))
        goro_sleep(1000000);
}

static void *th_thread(void *arg)
{
    /* outside a goroutine while a goroutine runs fn: cannot wait */
    *(int *)arg = goro_once_do(&th_once, th_slow, NULL);
    return NULL;
}

static void noop(void *arg) { (*(int *)arg)++; }

static void blocker(void *arg)
{
    goro_once_do(&th_once, th_slow, NULL);
}

static void thread_main2(void *arg)
{
    memset(&th_once, 0, sizeof th_once);
    th_in_fn = th_release = 0;
    goro_go(blocker, NULL);
    while (!AO_load(&th_in_fn))
        goro_sleep(1000000);
    /* static, not on this stack: the stack may move (grow) inside
     * pthread_create or pthread_join, after the thread got the address
     * (README rule 5; seen under AddressSanitizer, whose frames are big) */
    static int rc;
    rc = 1;
    pthread_t t;
    pthread_create(&t, NULL, th_thread, &rc);
    pthread_join(t, NULL);
    CHECK(rc == -EPERM, "plain thread while fn runs: %d", rc);
    AO_store(&th_release, 1);
    goro_sleep(5000000);
    rc = 1;
    pthread_create(&t, NULL, th_thread, &rc);
    pthread_join(t, NULL);
    CHECK(rc == 0, "plain thread after fn: %d", rc);
    check_no_leaks();
}

Test(once, plain_threads_and_errors, .timeout = 20)
{
    /* no runtime at all: a plain thread runs fn itself */
    goro_once o;
    memset(&o, 0, sizeof o);
    int n = 0;
    cr_assert_eq(goro_once_do(&o, noop, &n), 0);
    cr_assert_eq(goro_once_do(&o, noop, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(goro_once_do(&o, NULL, NULL), -EINVAL);
    run_on(2, thread_main2, NULL);
    CHECKS_PASSED();
}
