/*
 * test_ctx.c - goro_ctx: trees cancelled from the root, from the middle,
 * by deadline; 100,000 descendants whose waiters all wake; freed in random
 * order (every record reclaimed); cancel from plain threads.
 */
#include "goro_check.h"
#include "ctx.h"

#include <pthread.h>

#define MS 1000000LL

static goro_wg wg;
static volatile AO_t woke, woke_bad;

struct waitarg {
    goro_ctx *c;
    bool use_select;
    int want;          /* the error the context must report after the wake */
};

static void waiter(void *p)
{
    struct waitarg *a = p;
    if (a->use_select) {
        goro_chan *never = NULL;
        goro_case cs[2] = { { never, GORO_RECV, NULL, 0 },
                            { goro_ctx_done(a->c), GORO_RECV, NULL, 0 } };
        int r = goro_select(cs, 2, -1);
        CHECK(r == 1 && cs[1].result == 0, "select: %d", r);
    } else {
        CHECK(goro_chan_recv(goro_ctx_done(a->c), NULL) == 0, "recv: closed");
    }
    if (goro_ctx_err(a->c) != a->want)
        AO_fetch_and_add1(&woke_bad);
    AO_fetch_and_add1(&woke);
    goro_wg_done(&wg);
}

/* ---- root and middle --------------------------------------------------- */

/* root -> a, b; a -> a1, a2; a1 -> a11; b -> b1 */
static void tree_main(void *arg)
{
    woke = woke_bad = 0;
    goro_ctx *root = goro_ctx_new(NULL, 0);
    goro_ctx *a = goro_ctx_new(root, 0), *b = goro_ctx_new(root, 0);
    goro_ctx *a1 = goro_ctx_new(a, 0), *a2 = goro_ctx_new(a, 0);
    goro_ctx *a11 = goro_ctx_new(a1, 0), *b1 = goro_ctx_new(b, 0);
    goro_ctx *all[] = { root, a, b, a1, a2, a11, b1 };
    for (int i = 0; i < 7; i++)
        CHECK(all[i] && goro_ctx_err(all[i]) == 0 && goro_ctx_deadline(all[i]) == 0, "new %d", i);
    /* from the middle: a's subtree only */
    static struct waitarg wa[] = { { NULL, false, -ECANCELED }, { NULL, true, -ECANCELED },
                                   { NULL, false, -ECANCELED } };
    wa[0].c = a11;
    wa[1].c = a2;
    wa[2].c = a;
    goro_wg_init(&wg);
    goro_wg_add(&wg, 3);
    for (int i = 0; i < 3; i++)
        goro_go(waiter, &wa[i]);
    goro_sleep(5 * MS);
    goro_ctx_cancel(a);
    goro_wg_wait(&wg);
    CHECK(woke == 3 && woke_bad == 0, "middle: %lu woke, %lu with the wrong error",
          (unsigned long)woke, (unsigned long)woke_bad);
    CHECK(goro_ctx_err(root) == 0 && goro_ctx_err(b) == 0 && goro_ctx_err(b1) == 0,
          "cancel reached outside the subtree");
    CHECK(goro_chan_tryrecv(goro_ctx_done(b1), NULL) == -EAGAIN, "b1 done");
    goro_ctx_cancel(a);   /* idempotent */
    /* a child of a cancelled parent starts cancelled */
    goro_ctx *late = goro_ctx_new(a1, 0);
    CHECK(goro_ctx_err(late) == -ECANCELED, "child of a cancelled parent: %d",
          goro_ctx_err(late));
    CHECK(goro_chan_tryrecv(goro_ctx_done(late), NULL) == 0, "its done is closed");
    /* from the root: the rest */
    static struct waitarg wr[] = { { NULL, false, -ECANCELED }, { NULL, true, -ECANCELED } };
    wr[0].c = b1;
    wr[1].c = root;
    woke = 0;
    goro_wg_add(&wg, 2);
    for (int i = 0; i < 2; i++)
        goro_go(waiter, &wr[i]);
    goro_sleep(5 * MS);
    goro_ctx_cancel(root);
    goro_wg_wait(&wg);
    CHECK(woke == 2 && woke_bad == 0, "root: %lu woke", (unsigned long)woke);
    for (int i = 0; i < 7; i++)
        CHECK(goro_ctx_err(all[i]) == -ECANCELED, "node %d: %d", i, goro_ctx_err(all[i]));
    goro_chan_free(goro_ctx_done(late));   /* refused (a warning): the context's */
    CHECK(goro_chan_tryrecv(goro_ctx_done(late), NULL) == 0, "done still there");
    goro_ctx_free(late);
    for (int i = 0; i < 7; i++)
        goro_ctx_free(all[i]);
    CHECK(AO_load(&goro__ctx_live) == 0, "%lu contexts not reclaimed",
          (unsigned long)AO_load(&goro__ctx_live));
    check_no_leaks();
}

Test(ctx, cancel_from_the_middle_and_the_root, .timeout = 20)
{
    run_on(2, tree_main, NULL);
    CHECKS_PASSED();
}

/* ---- deadlines ----------------------------------------------------------- */

/* The deadlines' and sleeps' milliseconds, scaled under TSan (SLOW,
 * util.h): the test is about their order, which a slow run's 20 ms sleep
 * overshooting 30 ms would break. */
#define TMS (MS * SLOW)

static void deadline_main(void *arg)
{
    woke = woke_bad = 0;
    int64_t now = goro_now();
    goro_ctx *root = goro_ctx_new(NULL, 0);
    goro_ctx *d = goro_ctx_new(root, now + 30 * TMS);
    goro_ctx *later = goro_ctx_new(d, now + 3600 * 1000 * MS);   /* capped to d's */
    goro_ctx *earlier = goro_ctx_new(d, now + 10 * TMS);
    goro_ctx *inherit = goro_ctx_new(earlier, 0);
    CHECK(goro_ctx_deadline(d) == now + 30 * TMS, "deadline");
    CHECK(goro_ctx_deadline(later) == now + 30 * TMS, "a child's deadline past its parent's");
    CHECK(goro_ctx_deadline(inherit) == now + 10 * TMS, "inherited deadline");
    static struct waitarg w[] = { { NULL, false, -ETIMEDOUT }, { NULL, true, -ETIMEDOUT },
                                  { NULL, false, -ETIMEDOUT } };
    w[0].c = inherit;
    w[1].c = later;
    w[2].c = d;
    goro_wg_init(&wg);
    goro_wg_add(&wg, 3);
    for (int i = 0; i < 3; i++)
        goro_go(waiter, &w[i]);
    goro_sleep(20 * TMS);
    CHECK(goro_ctx_err(earlier) == -ETIMEDOUT && goro_ctx_err(inherit) == -ETIMEDOUT,
          "10 ms deadline: %d", goro_ctx_err(earlier));
    /* (read before the clock: a slow machine, Valgrind, may be past 30 ms) */
    int derr = goro_ctx_err(d);
    CHECK(derr == 0 || goro_now() - now >= 30 * MS, "30 ms deadline passed early");
    goro_wg_wait(&wg);
    CHECK(goro_now() - now >= 30 * TMS, "woke early");
    CHECK(woke == 3 && woke_bad == 0, "%lu woke, %lu wrong error", (unsigned long)woke,
          (unsigned long)woke_bad);
    CHECK(goro_ctx_err(root) == 0, "a child's deadline cancelled the root");
    /* a deadline already past */
    goro_ctx *past = goro_ctx_new(root, now);
    CHECK(goro_ctx_err(past) == -ETIMEDOUT, "past deadline: %d", goro_ctx_err(past));
    /* cancel before the deadline: -ECANCELED, the timer goes with free */
    goro_ctx *soon = goro_ctx_new(root, goro_now() + 10 * TMS);
    goro_ctx_cancel(soon);
    goro_sleep(15 * TMS);
    CHECK(goro_ctx_err(soon) == -ECANCELED, "cancel then deadline: %d", goro_ctx_err(soon));
    /* free with a timer still armed */
    goro_ctx *armed = goro_ctx_new(root, goro_now() + 3600 * 1000 * MS);
    goro_ctx_free(armed);
    goro_ctx *objs[] = { past, soon, inherit, earlier, later, d, root };
    for (int i = 0; i < 7; i++)
        goro_ctx_free(objs[i]);
    CHECK(goro_ctx_new(NULL, -1) == NULL && errno == EINVAL, "deadline < 0");
    CHECK(AO_load(&goro__ctx_live) == 0, "%lu contexts not reclaimed",
          (unsigned long)AO_load(&goro__ctx_live));
    check_no_leaks();
}

Test(ctx, deadlines, .timeout = 20)
{
    run_on(2, deadline_main, NULL);
    CHECKS_PASSED();
}

/* ---- 100,000 descendants ------------------------------------------------------- */

#define DESC 100000
#define CHAIN 20000        /* part of them one long chain */
#define WAITERS TSAN_ALIVE(20000) /* goroutines (util.h) */

static goro_ctx *nodes[DESC + 1];
static struct waitarg wargs[WAITERS];

static void big_main(void *arg)
{
    woke = woke_bad = 0;
    goro_ctx *top = goro_ctx_new(NULL, 0);
    goro_ctx *parent = goro_ctx_new(top, 0);
    nodes[0] = parent;
    uint32_t x = 12345;
    for (int i = 1; i <= DESC; i++) {
        goro_ctx *p;
        if (i <= CHAIN) {
            p = nodes[i - 1];                    /* a chain 20,000 deep */
        } else {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            p = nodes[x % (uint32_t)i];          /* a random bushy tree */
        }
        nodes[i] = goro_ctx_new(p, 0);
        CHECK(nodes[i] != NULL, "new %d", i);
    }
    goro_wg_init(&wg);
    goro_wg_add(&wg, WAITERS);
    for (int i = 0; i < WAITERS; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        wargs[i] = (struct waitarg){ nodes[1 + x % DESC], i % 4 == 0, -ECANCELED };
        CHECK(goro_go(waiter, &wargs[i]) == 0, "go");
    }
    goro_sleep(100 * MS);   /* all parked */
    int64_t t0 = goro_now();
    goro_ctx_cancel(parent);
    int64_t t1 = goro_now();
    goro_wg_wait(&wg);
    int64_t t2 = goro_now();
    test_note("cancel of %d descendants: %lld ms; all %d waiters awake %lld ms later", DESC,
              (long long)((t1 - t0) / MS), WAITERS, (long long)((t2 - t1) / MS));
    CHECK(woke == WAITERS && woke_bad == 0, "%lu of %d woke, %lu with the wrong error",
          (unsigned long)woke, WAITERS, (unsigned long)woke_bad);
    CHECK(goro_ctx_err(top) == 0, "cancel went up");
    for (int i = 0; i <= DESC; i++)
        CHECK(goro_ctx_err(nodes[i]) == -ECANCELED, "node %d not cancelled", i);
    /* free in random order (a Fisher-Yates shuffle), top last but one */
    for (int i = DESC; i > 0; i--) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        int j = (int)(x % (uint32_t)(i + 1));
        goro_ctx *t = nodes[i];
        nodes[i] = nodes[j];
        nodes[j] = t;
    }
    for (int i = 0; i <= DESC; i++) {
        goro_ctx_free(nodes[i]);
        if (i == DESC / 2)
            goro_ctx_free(top);   /* a freed root whose descendants live on */
    }
    CHECK(AO_load(&goro__ctx_live) == 0, "%lu contexts not reclaimed",
          (unsigned long)AO_load(&goro__ctx_live));
    check_no_leaks();
}

Test(ctx, cancel_parent_of_100k_descendants_wakes_every_waiter, .timeout = 60)
{
    run_on(2, big_main, NULL);
    CHECKS_PASSED();
}

/* ---- freed in random order while live, and plain threads ------------------------ */

#define RND 3000

static void *canceller(void *arg)
{
    goro_ctx_cancel(arg);
    goro_ctx_cancel(arg);
    return NULL;
}

static void random_main(void *arg)
{
    static goro_ctx *n[RND];
    uint32_t x = 777;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < RND; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            goro_ctx *p = i == 0 || x % 7 == 0 ? NULL : n[x % (uint32_t)i];
            int64_t dl = x % 5 == 0 ? goro_now() + (int64_t)(x % 3000) * 1000 : 0;
            n[i] = goro_ctx_new(p, dl);
        }
        /* cancel some from a plain thread, let some deadlines pass */
        pthread_t t;
        pthread_create(&t, NULL, canceller, n[x % RND]);
        pthread_join(t, NULL);
        goro_sleep((int64_t)(x % 2000) * 1000);
        /* free everything in a random order, live ones included */
        for (int i = RND - 1; i > 0; i--) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            int j = (int)(x % (uint32_t)(i + 1));
            goro_ctx *tmp = n[i];
            n[i] = n[j];
            n[j] = tmp;
        }
        for (int i = 0; i < RND; i++)
            goro_ctx_free(n[i]);
        CHECK(AO_load(&goro__ctx_live) == 0, "round %d: %lu contexts not reclaimed", round,
              (unsigned long)AO_load(&goro__ctx_live));
    }
    check_no_leaks();
}

Test(ctx, freed_in_random_order_with_deadlines_firing, .timeout = 60)
{
    run_on(2, random_main, NULL);
    CHECKS_PASSED();
}
