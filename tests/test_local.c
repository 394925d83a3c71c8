/*
 * test_local.c - goroutine-local storage: values follow their goroutine
 * across workers (1,000 goroutines that yield and park on 2 workers and
 * check their values after every switch), destructors at goroutine exit on
 * that goroutine, destructors that set values again, deleted keys, key
 * exhaustion, plain threads.
 */
#include "goro_check.h"

#include <pthread.h>

/* ---- migration --------------------------------------------------------- */

#define MIG_G 1000
#define MIG_ROUNDS 60

static goro_key k1, k2;
static goro_wg wg;
static goro_mutex mig_mu;
static goro_chan *mig_ch;
static volatile AO_t migrated, switches;

struct mine {
    uint64_t id;
    int round;
};

/* glibc declares pthread_self const: the compiler may reuse one thread's
 * answer after a switch; a call through a volatile pointer is made anew */
static pthread_t (*volatile self_fn)(void) = pthread_self;

static void check_mine(struct mine *m, const char *after)
{
    CHECK(goro_local_get(k1) == m, "after %s: key 1 gives %p, not its own %p", after,
          goro_local_get(k1), (void *)m);
    CHECK((uintptr_t)goro_local_get(k2) == m->id * 3 + 1, "after %s: key 2", after);
    CHECK(goro_id() == m->id, "after %s: goro_id", after);
    AO_fetch_and_add1(&switches);
}

static void migrant(void *arg)
{
    /* on the heap: a value pointing into the goroutine's own stack would
     * go stale when the stack moves (README rule 5), as any pointer into
     * a stack kept outside it */
    struct mine *mp = malloc(sizeof *mp);
    *mp = (struct mine){ .id = goro_id() };
    CHECK(goro_local_get(k1) == NULL, "fresh goroutine has a value");
    CHECK(goro_local_set(k1, mp) == 0, "set");
    CHECK(goro_local_set(k2, (void *)(uintptr_t)(mp->id * 3 + 1)) == 0, "set 2");
    pthread_t self = self_fn();
    bool moved = false;
    for (mp->round = 0; mp->round < MIG_ROUNDS; mp->round++) {
        goro_yield();
        check_mine(mp, "yield");
        switch (mp->round % 4) {
        case 0:
            goro_sleep(10000);
            check_mine(mp, "sleep");
            break;
        case 1:
            goro_mutex_lock(&mig_mu);
            goro_yield();
            goro_mutex_unlock(&mig_mu);
            check_mine(mp, "mutex");
            break;
        case 2: {
            uint64_t v = mp->id;
            if ((uintptr_t)arg % 2)   /* 500 senders, 500 receivers */
                goro_chan_send(mig_ch, &v);
            else
                goro_chan_recv(mig_ch, &v);
            check_mine(mp, "channel");
            break;
        }
        default:
            goro_go((goro_fn)goro_yield, NULL);   /* a child: runs next here */
            goro_yield();
            check_mine(mp, "spawn");
        }
        if (!pthread_equal(self, self_fn()))
            moved = true;
    }
    if (moved)
        AO_fetch_and_add1(&migrated);
    free(mp);
    goro_wg_done(&wg);
}

static void mig_main(void *arg)
{
    CHECK(goro_key_create(&k1, NULL) == 0, "key 1");
    CHECK(goro_key_create(&k2, NULL) == 0, "key 2");
    goro_mutex_init(&mig_mu);
    mig_ch = goro_chan_make(sizeof(uint64_t), 0);
    migrated = switches = 0;
    goro_wg_init(&wg);
    goro_wg_add(&wg, MIG_G);
    for (int i = 0; i < MIG_G; i++)
        goro_go(migrant, (void *)(uintptr_t)i);
    goro_wg_wait(&wg);
    test_note("%lu checks after switches; %lu of %d goroutines changed workers",
              (unsigned long)switches, (unsigned long)migrated, MIG_G);
    CHECK(AO_load(&migrated) > 0, "no goroutine changed workers: the test proves nothing");
    CHECK(goro_local_get(k1) == NULL, "main has no value");
    goro_chan_free(mig_ch);
    goro_key_delete(k1);
    goro_key_delete(k2);
    check_no_leaks();
}

Test(local, values_follow_1000_goroutines_across_2_workers, .timeout = 60)
{
    run_on(2, mig_main, NULL);
    CHECKS_PASSED();
}

/* ---- destructors --------------------------------------------------------- */

static goro_key kd, kre;
static volatile AO_t dtor_calls, dtor_wrong_g, re_calls;

struct val {
    uint64_t owner;
    int freed;
};

static void dtor(void *v)
{
    struct val *x = v;
    if (x->owner != goro_id())
        AO_fetch_and_add1(&dtor_wrong_g);
    CHECK(goro_local_get(kd) == NULL, "value still set in its destructor");
    x->freed++;
    AO_fetch_and_add1(&dtor_calls);
}

/* sets its value again twice: called three times */
static void re_dtor(void *v)
{
    uintptr_t n = (uintptr_t)v;
    AO_fetch_and_add1(&re_calls);
    if (n < 3)
        CHECK(goro_local_set(kre, (void *)(n + 1)) == 0, "set in destructor");
}

static struct val vals[100];

static void owner_g(void *arg)
{
    struct val *x = arg;
    x->owner = goro_id();
    CHECK(goro_local_set(kd, x) == 0, "set");
    goro_sleep(1000);   /* park: may resume on the other worker */
    if (x == &vals[0])
        CHECK(goro_local_set(kre, (void *)1) == 0, "set re");
    if (x == &vals[1])
        CHECK(goro_local_set(kd, NULL) == 0, "unset");   /* NULL: no call */
    goro_wg_done(&wg);
}

static void dtor_main(void *arg)
{
    CHECK(goro_key_create(&kd, dtor) == 0, "key");
    CHECK(goro_key_create(&kre, re_dtor) == 0, "key re");
    dtor_calls = dtor_wrong_g = re_calls = 0;
    memset(vals, 0, sizeof vals);
    goro_wg_init(&wg);
    goro_wg_add(&wg, 100);
    for (int i = 0; i < 100; i++)
        goro_go(owner_g, &vals[i]);
    goro_wg_wait(&wg);
    goro_sleep(5000000);   /* the last ones are on their way out */
    CHECK(AO_load(&dtor_calls) == 99, "%lu destructor calls, want 99",
          (unsigned long)AO_load(&dtor_calls));
    CHECK(AO_load(&dtor_wrong_g) == 0, "%lu destructors ran on another goroutine",
          (unsigned long)AO_load(&dtor_wrong_g));
    CHECK(vals[1].freed == 0, "destructor called for a NULL value");
    for (int i = 2; i < 100; i++)
        CHECK(vals[i].freed == 1, "value %d freed %d times", i, vals[i].freed);
    CHECK(AO_load(&re_calls) == 3, "re-setting destructor called %lu times, want 3",
          (unsigned long)AO_load(&re_calls));
    goro_key_delete(kd);
    goro_key_delete(kre);
    check_no_leaks();
}

Test(local, destructors_run_at_exit_on_the_goroutine, .timeout = 20)
{
    run_on(2, dtor_main, NULL);
    CHECKS_PASSED();
}

/* ---- deleted keys, exhaustion, plain threads ------------------------------ */

static goro_key kdel;
static volatile AO_t del_calls;
static void del_dtor(void *v) { AO_fetch_and_add1(&del_calls); }

static goro_chan *del_ready, *del_go; /* unbuffered: the steps in order */

static void del_g(void *arg)
{
    int t = 0;
    CHECK(goro_local_set(kdel, (void *)1) == 0, "set");
    goro_chan_send(del_ready, &t);
    goro_chan_recv(del_go, &t);   /* main deletes the key meanwhile */
    CHECK(goro_local_get(kdel) == NULL, "value under a deleted key");
    CHECK(goro_local_set(kdel, (void *)2) == -EINVAL, "set under a deleted key");
    goro_wg_done(&wg);
}

static void *plain(void *arg)
{
    goro_key k = *(goro_key *)arg;
    intptr_t r = goro_local_set(k, (void *)1) == -EPERM;
    r |= (goro_local_get(k) == NULL) << 1;
    return (void *)r;
}

static void keys_main(void *arg)
{
    del_calls = 0;
    CHECK(goro_key_create(&kdel, del_dtor) == 0, "key");
    goro_wg_init(&wg);
    goro_wg_add(&wg, 1);
    del_ready = goro_chan_make(sizeof(int), 0);
    del_go = goro_chan_make(sizeof(int), 0);
    goro_go(del_g, NULL);
    int token = 0;
    goro_chan_recv(del_ready, &token); /* it has set its value */
    CHECK(goro_key_delete(kdel) == 0, "delete");
    CHECK(goro_key_delete(kdel) == -EINVAL, "delete twice");
    /* the slot's next key must not see the old values */
    goro_key knew;
    CHECK(goro_key_create(&knew, NULL) == 0, "recreate");
    CHECK(knew != kdel, "a deleted key's number came back");
    goro_chan_send(del_go, &token);
    goro_wg_wait(&wg);
    goro_chan_free(del_ready);
    goro_chan_free(del_go);
    goro_sleep(2000000);
    CHECK(AO_load(&del_calls) == 0, "destructor of a deleted key called");
    CHECK(goro_local_get(0) == NULL && goro_local_set(0, NULL) == -EINVAL, "key 0");
    CHECK(goro_local_get(12345) == NULL && goro_local_set(12345, NULL) == -EINVAL, "bogus key");

    pthread_t t;
    void *r;
    pthread_create(&t, NULL, plain, &knew);
    pthread_join(t, &r);
    CHECK((intptr_t)r == 3, "plain thread: %ld", (long)(intptr_t)r);
    goro_key_delete(knew);

    /* at least 128 keys; then -EAGAIN */
    static goro_key ks[1024];
    int n = 0;
    while (n < 1024 && goro_key_create(&ks[n], NULL) == 0)
        n++;
    CHECK(n >= 128 && n < 1024, "%d keys", n);
    CHECK(goro_key_create(&knew, NULL) == -EAGAIN, "no key left");
    for (int i = 0; i < n; i++) {
        CHECK(goro_local_set(ks[i], (void *)(uintptr_t)(i + 1)) == 0, "set %d", i);
    }
    for (int i = 0; i < n; i++)
        CHECK(goro_local_get(ks[i]) == (void *)(uintptr_t)(i + 1), "get %d", i);
    for (int i = 0; i < n; i++)
        goro_key_delete(ks[i]);
    CHECK(goro_key_create(NULL, NULL) == -EINVAL, "NULL key");
    check_no_leaks();
}

Test(local, deleted_keys_exhaustion_plain_threads, .timeout = 20)
{
    run_on(2, keys_main, NULL);
    CHECKS_PASSED();
}
