/*
 * test_waits.c - deadlock detection and the goroutine dump know the wait
 * reasons of Go's wider vocabulary: rwmutex, cond, sem, once, timer. And a
 * program whose goroutines all wait, but one with a timeout or on an armed
 * timer, is not deadlocked.
 */
#include "goro_check.h"

static goro_rwmutex w_rw;
static goro_mutex w_mu;
static goro_cond w_cv;
static goro_sem w_sem;
static goro_once w_once;
static goro_chan *w_never;
static goro_timer *w_timer;

static void say(const char *what)
{
    printf("%llu %s\n", (unsigned long long)goro_id(), what);
    fflush(stdout);
}

static void k_rlock(void *a) { say("rwmutex"); goro_rwmutex_rlock(&w_rw); }
static void k_wlock(void *a) { say("rwmutex"); goro_rwmutex_lock(&w_rw); }
static void k_cond(void *a)
{
    goro_mutex_lock(&w_mu);
    say("cond");
    goro_cond_wait(&w_cv, &w_mu, -1);
}
static void k_sem(void *a) { say("sem"); goro_sem_acquire(&w_sem, 1, -1); }
static void once_forever(void *a) { say("chan receive"); goro_chan_recv(w_never, NULL); }
static void k_once_runner(void *a) { goro_once_do(&w_once, once_forever, NULL); }
static void k_once_waiter(void *a) { say("once"); goro_once_do(&w_once, once_forever, NULL); }
static void k_timer(void *a) { say("timer"); goro_chan_recv(goro_timer_chan(w_timer), NULL); }

static void spawn_all(void)
{
    goro_rwmutex_init(&w_rw);
    goro_mutex_init(&w_mu);
    goro_cond_init(&w_cv);
    goro_sem_init(&w_sem, 1);
    memset(&w_once, 0, sizeof w_once);
    w_never = goro_chan_make(0, 0);
    w_timer = goro_timer_new(3600LL * 1000000000, 0);
    goro_timer_stop(w_timer);          /* stopped: it will never fire */
    goro_rwmutex_lock(&w_rw);          /* held by main: readers and writers wait */
    goro_sem_acquire(&w_sem, 1, -1);   /* all units held by main */
    goro_fn kinds[] = { k_rlock, k_wlock, k_cond, k_sem, k_once_runner, k_timer };
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        goro_go(kinds[i], NULL);
    goro_sleep(20000000);
    goro_go(k_once_waiter, NULL);      /* after the runner is inside fn */
    goro_sleep(30000000);
}

static void scenario_deadlock(void *a)
{
    spawn_all();
    say("chan receive");
    goro_chan_recv(w_never, NULL);     /* the last runnable goroutine blocks */
}

static void scenario_dump(void *a)
{
    spawn_all();   /* main returns: GORO_DEBUG=dump prints the others */
}

/* Everything waits, but on a timeout or an armed timer: not a deadlock. */
static void cond_timeout_g(void *a)
{
    goro_mutex_lock(&w_mu);
    int rc = goro_cond_wait(&w_cv, &w_mu, 100000000);
    goro_mutex_unlock(&w_mu);
    printf("cond %d\n", rc);
    fflush(stdout);
    goro_chan_close(w_never);
}

static void scenario_no_deadlock(void *a)
{
    goro_mutex_init(&w_mu);
    goro_cond_init(&w_cv);
    w_never = goro_chan_make(0, 0);
    goro_go(cond_timeout_g, NULL);
    goro_chan_recv(w_never, NULL);     /* closed by the goroutine after its timeout */
    goro_timer *t = goro_timer_new(100000000, 0);
    int64_t v;
    int r = goro_chan_recv(goro_timer_chan(t), &v);   /* only main, on an armed timer */
    printf("timer %d\n", r);
    fflush(stdout);
    goro_timer_free(t);
}

__attribute__((constructor)) static void scenario_entry(void)
{
    const char *s = getenv("GORO_TEST_SCENARIO");
    if (!s)
        return;
    unsetenv("GORO_TEST_SCENARIO");
    int r = -1;
    if (!strcmp(s, "deadlock"))
        r = goro_run(scenario_deadlock, NULL);
    else if (!strcmp(s, "dump"))
        r = goro_run(scenario_dump, NULL);
    else if (!strcmp(s, "nodeadlock"))
        r = goro_run(scenario_no_deadlock, NULL);
    fflush(stdout);
    _exit(r == 0 ? 0 : 100);
}

Test(waits, deadlock_names_the_new_wait_reasons, .timeout = 20)
{
    static struct child_result r;
    run_scenario("deadlock", NULL, 0, 0, &r);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2, "status %#x:\n%s%s", r.status,
              r.out, r.err);
    cr_assert_not_null(strstr(r.err, "goro: fatal: all goroutines are asleep - deadlock!"),
                       "stderr:\n%s", r.err);
    check_dump_names(&r, 8);
}

Test(waits, dump_names_the_new_wait_reasons, .timeout = 20)
{
    static struct child_result r;
    run_scenario("dump", "dump", 0, 0, &r);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x:\n%s", r.status,
              r.err);
    check_dump_names(&r, 7);
}

Test(waits, timeouts_and_armed_timers_are_no_deadlock, .timeout = 20)
{
    static struct child_result r;
    run_scenario("nodeadlock", NULL, 0, 0, &r);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x:\n%s%s", r.status,
              r.out, r.err);
    cr_assert_not_null(strstr(r.out, "cond -110"), "cond: %s", r.out);
    cr_assert_not_null(strstr(r.out, "timer 1"), "timer: %s", r.out);
}
