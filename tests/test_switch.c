/*
 * test_switch.c - what every context switch must carry: each goroutine's
 * errno, the previous context's pending action (requeue, unlock, free),
 * and goro_yield's one-worker fast path, which must not skip runnext, the
 * spawn stack, the global queue or shutdown.
 */
#include "util.h"
#include "seccomp.h"

#include <atomic_ops.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* ---- errno belongs to the goroutine ------------------------------------ */

/* errno's address on the thread we run on now. glibc declares
 * __errno_location const, so a plain `errno` after a switch may use the
 * address computed before it, on another worker (README, rule 2): call it
 * through a volatile pointer, as the runtime does. */
static int *(*volatile errno_at)(void) = __errno_location;
#define ERRNO (*errno_at())

#define E_GOROS 8
#define E_ROUNDS 20000

static volatile AO_t e_bad, e_checks, e_children;
static goro_chan *e_pair[E_GOROS / 2];
static goro_wg e_wg, e_child_wg;

static int e_value(uintptr_t me, int round) { return (int)(me * 100003 + (uintptr_t)round + 1); }

static void e_check(int want)
{
    if (ERRNO != want)
        AO_fetch_and_add1(&e_bad);
    AO_fetch_and_add1(&e_checks);
}

/* A short-lived child: it sets errno and exits, so that the next context
 * runs its pending action (freeing the child) before it continues. */
static void e_child(void *arg)
{
    ERRNO = (int)(uintptr_t)arg;
    goro_yield();
    if (ERRNO != (int)(uintptr_t)arg)
        AO_fetch_and_add1(&e_bad);
    AO_fetch_and_add1(&e_children);
    goro_wg_done(&e_child_wg);
}

static void e_worker(void *arg)
{
    uintptr_t me = (uintptr_t)arg;
    goro_chan *ch = e_pair[me / 2];
    for (int r = 0; r < E_ROUNDS; r++) {
        int v = e_value(me, r);
        ERRNO = v;
        goro_yield(); /* one worker: the fast path, mostly */
        e_check(v);
        if (r % 7 == 0) {
            /* a park and a wake: the pending action is the unlock */
            int x = r;
            if (me % 2 == 0)
                cr_assert_eq(goro_chan_send(ch, &x), 0);
            else
                cr_assert_eq(goro_chan_recv(ch, &x), 1);
            e_check(v);
        }
        if (r % 13 == 0) {
            goro_wg_add(&e_child_wg, 1);
            cr_assert_eq(goro_go(e_child, (void *)(uintptr_t)(-v)), 0);
            goro_yield();
            e_check(v);
        }
        if (r % 101 == 0) {
            goro_sleep(1000); /* woken by the timer thread, from outside */
            e_check(v);
        }
    }
    goro_wg_done(&e_wg);
}

static void e_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < E_GOROS / 2; i++)
        cr_assert_not_null(e_pair[i] = goro_chan_make(sizeof(int), 0));
    goro_wg_init(&e_wg);
    goro_wg_init(&e_child_wg);
    goro_wg_add(&e_wg, E_GOROS);
    ERRNO = 4242;
    for (uintptr_t i = 0; i < E_GOROS; i++)
        cr_assert_eq(goro_go(e_worker, (void *)i), 0);
    cr_assert_eq(goro_wg_wait(&e_wg), 0);
    cr_assert_eq(goro_wg_wait(&e_child_wg), 0);
    cr_assert_eq(ERRNO, 4242, "main's errno: %d", ERRNO);
    for (int i = 0; i < E_GOROS / 2; i++)
        goro_chan_free(e_pair[i]);
}

static void check_errno(int procs)
{
    e_bad = e_checks = e_children = 0;
    run_on(procs, e_main, NULL);
    cr_assert_eq(e_bad, 0, "%lu of %lu errno checks failed", (unsigned long)e_bad,
                 (unsigned long)e_checks);
    cr_assert_gt(e_checks, (AO_t)E_GOROS * E_ROUNDS);
    cr_assert_eq(e_children, (AO_t)E_GOROS * ((E_ROUNDS + 12) / 13));
}

Test(switch, errno_follows_each_goroutine_one_worker, .timeout = 60) { check_errno(1); }
/* two workers: goroutines move between threads, and errno with them */
Test(switch, errno_follows_each_goroutine_two_workers, .timeout = 60) { check_errno(2); }
/* where a seccomp profile forbids process_madvise (Docker's default), the
 * runtime's own failed system calls (a spawn carving stacks) must not
 * show in the goroutine's errno either */
Test(switch, errno_follows_each_goroutine_without_process_madvise, .timeout = 60)
{
    forbid_syscall(__NR_process_madvise);
    check_errno(2);
}

/* ---- the fast path does not skip runnext or the spawn stack ------------ */

#define R_SPAWNS 5000
static volatile AO_t r_yields, r_ran, r_late, r_stop;
static goro_wg r_wg;

/* A child spawned by a yielder goes to runnext, and one spawned before it
 * and still waiting onto the spawn stack: both run before the spawner runs
 * again (only the spawner counts r_yields). */
static void r_child(void *arg)
{
    AO_t spawned_at = (AO_t)(uintptr_t)arg;
    if (AO_load(&r_yields) - spawned_at > 1)
        AO_fetch_and_add1(&r_late);
    AO_fetch_and_add1(&r_ran);
    goro_wg_done(&r_wg);
}

static void r_spawner(void *arg)
{
    (void)arg;
    for (int i = 0; i < R_SPAWNS; i++) {
        goro_wg_add(&r_wg, 1);
        cr_assert_eq(goro_go(r_child, (void *)(uintptr_t)AO_load(&r_yields)), 0);
        if (i % 3 == 0) {
            /* a second child: the first goes onto the spawn stack */
            goro_wg_add(&r_wg, 1);
            cr_assert_eq(goro_go(r_child, (void *)(uintptr_t)AO_load(&r_yields)), 0);
        }
        AO_fetch_and_add1(&r_yields);
        goro_yield();
        /* and yields with nothing new: the fast path's own case */
        for (int k = 0; k < 3; k++) {
            AO_fetch_and_add1(&r_yields);
            goro_yield();
        }
    }
    AO_store(&r_stop, 1);
    goro_wg_done(&r_wg);
}

static void r_other(void *arg)
{
    (void)arg;
    while (!AO_load(&r_stop))
        goro_yield();
    goro_wg_done(&r_wg);
}

static void r_main(void *arg)
{
    (void)arg;
    goro_wg_init(&r_wg);
    goro_wg_add(&r_wg, 3);
    cr_assert_eq(goro_go(r_other, NULL), 0);
    cr_assert_eq(goro_go(r_other, NULL), 0);
    cr_assert_eq(goro_go(r_spawner, NULL), 0);
    cr_assert_eq(goro_wg_wait(&r_wg), 0);
}

Test(switch, yield_runs_spawned_children_first, .timeout = 60)
{
    r_yields = r_ran = r_late = r_stop = 0;
    run_on(1, r_main, NULL);
    cr_assert_eq(r_ran, R_SPAWNS + (R_SPAWNS + 2) / 3);
    cr_assert_eq(r_late, 0, "%lu children waited for the spawner to run again",
                 (unsigned long)r_late);
}

/* ---- the fast path still sees the global queue and shutdown ------------ */

static volatile AO_t g_stop, g_foreign_ran;

static void g_spin(void *arg)
{
    (void)arg;
    while (!AO_load(&g_stop))
        goro_yield();
}

static void g_foreign_child(void *arg)
{
    (void)arg;
    AO_fetch_and_add1(&g_foreign_ran);
    if (AO_load(&g_foreign_ran) == 100)
        AO_store(&g_stop, 1);
}

static void *g_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(goro_go(g_foreign_child, NULL), 0); /* the global queue */
        usleep(200);
    }
    return NULL;
}

static void g_main(void *arg)
{
    (void)arg;
    pthread_t t;
    goro_go(g_spin, NULL);
    goro_go(g_spin, NULL);
    cr_assert_eq(pthread_create(&t, NULL, g_thread, NULL), 0);
    /* main yields too: the two spinners and main share the one worker, and
     * only the global queue's turn lets the foreign children in */
    while (!AO_load(&g_stop))
        goro_yield();
    pthread_join(t, NULL);
}

Test(switch, yielders_let_the_global_queue_in, .timeout = 30)
{
    g_stop = g_foreign_ran = 0;
    run_on(1, g_main, NULL);
    cr_assert_eq(g_foreign_ran, 100);
}

/* main returns while two goroutines yield to each other for ever: with one
 * worker, only the scheduler's shutdown check stops them. */
static void s_forever(void *arg)
{
    (void)arg;
    for (;;)
        goro_yield();
}

static void s_main(void *arg)
{
    (void)arg;
    goro_go(s_forever, NULL);
    goro_go(s_forever, NULL);
    goro_sleep(2000000); /* the timer wakes main through the global queue */
}

Test(switch, shutdown_stops_yielders, .timeout = 30)
{
    setenv("GORO_DEBUG", "nodeadlock", 1);
    for (int i = 0; i < 3; i++)
        run_on(1, s_main, NULL);
    unsetenv("GORO_DEBUG");
}
