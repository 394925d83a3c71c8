/*
 * test_sem.c - goro_sem: FIFO service with mixed weights and no barging,
 * cancellation by timeout (a front waiter giving up lets the ones behind
 * it in), a stress run that never exceeds the size, the error returns.
 */
#include "goro_check.h"
#include "sync.h"   /* goro__sem_waiters */

#include <pthread.h>

static goro_sem sem;
static goro_wg wg;
static char order[32];
/* nslot: places in order taken; norder: entries written (after their
 * char: a reader that saw norder reach n reads n chars) */
static volatile AO_t nslot, norder;

struct req {
    int64_t n;
    int64_t timeout;
    char name;
    int rc;
    bool hold;       /* keep the units until told */
};
static volatile AO_t release_all;

static void acquirer(void *arg)
{
    struct req *r = arg;
    r->rc = goro_sem_acquire(&sem, r->n, r->timeout);
    if (r->rc == 0) {
        order[AO_fetch_and_add1(&nslot)] = r->name;
        AO_fetch_and_add1(&norder);
        while (r->hold && !AO_load(&release_all))
            goro_sleep(1000000);
        goro_sem_release(&sem, r->n);
    }
    goro_wg_done(&wg);
}

/* ---- FIFO with mixed weights, no barging ---------------------------------- */

static void fifo_main(void *arg)
{
    goro_sem_init(&sem, 10);
    nslot = norder = 0;
    memset(order, 0, sizeof order);
    release_all = 0;
    CHECK(goro_sem_acquire(&sem, 10, -1) == 0, "take all");
    static struct req rs[] = {
        { 7, -1, 'a', 1, true }, { 1, -1, 'b', 1, true },
        { 3, -1, 'c', 1, false }, { 2, -1, 'd', 1, false },
    };
    goro_wg_init(&wg);
    goro_wg_add(&wg, 4);
    for (int i = 0; i < 4; i++) {
        goro_go(acquirer, &rs[i]);
        /* queue in this order */
        CHECK(WAIT_FOR(goro__sem_waiters(&sem) == i + 1), "%c did not queue", rs[i].name);
    }
    CHECK(goro_sem_tryacquire(&sem, 1) == -EAGAIN, "tryacquire with waiters");
    goro_sem_release(&sem, 10);
    /* a (7) and b (1) fit; c (3) does not, so d (2), which would, waits
     * too. The release granted a and b before it returned. */
    CHECK(goro__sem_waiters(&sem) == 2, "%d waiting after the release, want c and d",
          goro__sem_waiters(&sem));
    CHECK(WAIT_FOR(AO_load(&norder) >= 2), "a and b never ran");
    goro_sleep(5000000);   /* c or d, had either been let in, would log now */
    /* a and b are granted by one release: they may log in either order */
    CHECK(strlen(order) == 2 && strchr(order, 'a') && strchr(order, 'b'),
          "after release: %s, want a and b", order);
    CHECK(goro_sem_tryacquire(&sem, 1) == -EAGAIN, "barged past c");
    CHECK(goro_sem_acquire(&sem, 1, 5000000) == -ETIMEDOUT, "acquire barged past c");
    AO_store(&release_all, 1);
    goro_wg_wait(&wg);
    CHECK(strlen(order) == 4 && strchr(order + 2, 'c') && strchr(order + 2, 'd'),
          "order %s, want a and b, then c and d", order);
    CHECK(goro_sem_tryacquire(&sem, 10) == 0, "all units back");
    goro_sem_release(&sem, 10);
    check_no_leaks();
}

Test(sem, fifo_mixed_weights_no_barging, .timeout = 20)
{
    run_on(2, fifo_main, NULL);
    CHECKS_PASSED();
}

/* ---- cancellation by timeout -------------------------------------------------- */

/* One try: big (5) waits at the front with a timeout of to_ns; small ones
 * (1, 1) behind it fit all along but must wait their turn, until big gives
 * up. Returns false, inconclusive, when big timed out before both small
 * ones had queued behind it (a loaded machine): the caller tries again with
 * a longer timeout. */
static bool cancel_try(int64_t to_ns)
{
    goro_sem_init(&sem, 10);
    nslot = norder = 0;
    memset(order, 0, sizeof order);
    release_all = 0;
    CHECK(goro_sem_acquire(&sem, 8, -1) == 0, "take 8");
    static struct req rs[3];
    rs[0] = (struct req){ 5, to_ns, 'B', 1, false };
    rs[1] = (struct req){ 1, -1, 's', 1, true };
    rs[2] = (struct req){ 1, -1, 't', 1, true };
    goro_wg_init(&wg);
    goro_wg_add(&wg, 3);
    bool queued = true;
    for (int i = 0; i < 3; i++) {
        goro_go(acquirer, &rs[i]);
        /* s or t would get in at once if B had left: then it is no test */
        queued = queued && WAIT_FOR(goro__sem_waiters(&sem) == i + 1 || rs[0].rc != 1);
        queued = queued && rs[0].rc == 1;
    }
    if (queued)
        CHECK(AO_load(&nslot) == 0, "someone got in past B: %s", order);
    /* B's timeout lets s and t in; nothing else does */
    CHECK(WAIT_FOR(AO_load(&norder) == 2), "s and t never got in: %s", order);
    /* B stores its result when it runs again, which may be after s and t
     * (the timeout readies all three at once) */
    CHECK(WAIT_FOR(__atomic_load_n(&rs[0].rc, __ATOMIC_ACQUIRE) != 1) &&
              rs[0].rc == -ETIMEDOUT, "big: %d", rs[0].rc);
    /* both granted by the timeout at once: they may log in either order */
    CHECK(strlen(order) == 2 && strchr(order, 's') && strchr(order, 't'),
          "after the timeout: %s, want s and t", order);
    AO_store(&release_all, 1);
    goro_wg_wait(&wg);
    goro_sem_release(&sem, 8);
    CHECK(goro_sem_tryacquire(&sem, 10) == 0, "all units back");
    goro_sem_release(&sem, 10);
    return queued;
}

static void cancel_main(void *arg)
{
    int64_t to = 30000000;
    while (!cancel_try(to) && to < 4000000000LL) {
        test_note("B timed out before s and t queued in %lld ms: again, longer",
                  (long long)to / 1000000);
        to *= 4;
    }
    /* timeout 0, and a timeout that passes with nobody in the way */
    CHECK(goro_sem_acquire(&sem, 10, 0) == 0, "timeout 0, free");
    CHECK(goro_sem_acquire(&sem, 1, 0) == -ETIMEDOUT, "timeout 0, full");
    int64_t t0 = goro_now();
    CHECK(goro_sem_acquire(&sem, 1, 10000000) == -ETIMEDOUT, "timeout");
    CHECK(goro_now() - t0 >= 10000000, "woke early");
    goro_sem_release(&sem, 10);
    check_no_leaks();
}

Test(sem, front_waiter_timing_out_lets_the_others_in, .timeout = 20)
{
    run_on(2, cancel_main, NULL);
    CHECKS_PASSED();
}

/* ---- stress: random weights and timeouts ------------------------------------- */

#define ST_SIZE 16
#define ST_G 24
#define ST_N 3000
static volatile AO_t held, timeouts, grants;

static void stress_g(void *arg)
{
    uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u | 1;
    for (int i = 0; i < ST_N; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        int64_t n = 1 + x % 6;
        int64_t to = (x >> 8) % 4 == 0 ? -1 : (int64_t)((x >> 12) % 200000);
        int rc = goro_sem_acquire(&sem, n, to);
        if (rc == -ETIMEDOUT) {
            AO_fetch_and_add1(&timeouts);
            continue;
        }
        CHECK(rc == 0, "acquire: %d", rc);
        AO_t h = AO_fetch_and_add(&held, (AO_t)n) + (AO_t)n;
        CHECK(h <= ST_SIZE, "%lu units held of %d", (unsigned long)h, ST_SIZE);
        AO_fetch_and_add1(&grants);
        if (x % 5 == 0)
            goro_yield();
        else if (x % 11 == 0)
            goro_sleep(20000);
        AO_fetch_and_add(&held, (AO_t)-n);
        goro_sem_release(&sem, n);
    }
    goro_wg_done(&wg);
}

static void stress_main(void *arg)
{
    goro_sem_init(&sem, ST_SIZE);
    held = timeouts = grants = 0;
    goro_wg_init(&wg);
    goro_wg_add(&wg, ST_G);
    for (int i = 0; i < ST_G; i++)
        goro_go(stress_g, (void *)(uintptr_t)(i + 1));
    goro_wg_wait(&wg);
    test_note("sem stress: %lu grants, %lu timeouts", (unsigned long)grants,
              (unsigned long)timeouts);
    CHECK(goro_sem_tryacquire(&sem, ST_SIZE) == 0, "all units back");
    goro_sem_release(&sem, ST_SIZE);
    check_no_leaks();
}

Test(sem, stress_random_weights_and_timeouts, .timeout = 60)
{
    run_on(2, stress_main, NULL);
    CHECKS_PASSED();
}

/* ---- errors ---------------------------------------------------------------------- */

static void *plain(void *arg)
{
    return (void *)(intptr_t)goro_sem_acquire(&sem, 1, -1);
}

static void err_main(void *arg)
{
    goro_sem s;
    goro_sem_init(&s, 4);
    CHECK(goro_sem_acquire(&s, 5, -1) == -EINVAL, "n > size");
    CHECK(goro_sem_acquire(&s, -1, -1) == -EINVAL, "n < 0");
    CHECK(goro_sem_tryacquire(&s, 5) == -EINVAL, "try n > size");
    CHECK(goro_sem_acquire(&s, 0, -1) == 0, "n == 0");
    CHECK(goro_sem_tryacquire(&s, 4) == 0, "try all");
    CHECK(goro_sem_tryacquire(&s, 1) == -EAGAIN, "try more");
    goro_sem_release(&s, 4);
    goro_sem_init(&sem, 1);
    CHECK(goro_sem_tryacquire(&sem, 1) == 0, "take");
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, plain, NULL);
    pthread_join(t, &r);
    CHECK((intptr_t)r == -EPERM, "plain thread that must wait: %ld", (long)(intptr_t)r);
    goro_sem_release(&sem, 1);
    pthread_create(&t, NULL, plain, NULL);
    pthread_join(t, &r);
    CHECK((intptr_t)r == 0, "plain thread, free: %ld", (long)(intptr_t)r);
    goro_sem_release(&sem, 1);
    check_no_leaks();
}

Test(sem, errors_and_plain_threads, .timeout = 10)
{
    run_on(2, err_main, NULL);
    CHECKS_PASSED();
}
