/*
 * test_select.c - select: fairness, timeouts and the non-blocking form,
 * opposite lock orders, the same channel in several cases, close, many
 * cases, bad input.
 */
#include "goro_check.h"

/* ---- fairness: every always-ready case chosen within 5% of 1/N ---------- */

#define FAIR_ROUNDS 100000

static uint64_t fair_hits[16];

static void fair_closed_main(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    goro_chan *chs[16];
    goro_case cs[16];
    for (size_t i = 0; i < n; i++) {
        chs[i] = goro_chan_make(sizeof(int), 0);
        goro_chan_close(chs[i]);   /* a closed channel is always ready */
        cs[i] = (goro_case){ chs[i], GORO_RECV, NULL, -1 };
    }
    memset(fair_hits, 0, sizeof fair_hits);
    for (int r = 0; r < FAIR_ROUNDS; r++) {
        int k = goro_select(cs, n, -1);
        CHECK(k >= 0 && (size_t)k < n, "select returned %d", k);
        if (k >= 0 && (size_t)k < n) {
            CHECK(cs[k].result == 0, "closed recv result %d", cs[k].result);
            fair_hits[k]++;
        }
    }
    for (size_t i = 0; i < n; i++)
        goro_chan_free(chs[i]);
    check_no_leaks();
}

/* Buffered channels kept non-empty (RECV cases) and non-full (SEND cases),
 * mixed, through the non-blocking form. */
static void fair_mixed_main(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    goro_chan *chs[16];
    goro_case cs[16];
    int vals[16], one = 1;
    for (size_t i = 0; i < n; i++) {
        chs[i] = goro_chan_make(sizeof(int), 4);
        goro_chan_send(chs[i], &one);
        goro_chan_send(chs[i], &one);
        cs[i] = (goro_case){ chs[i], i % 2 ? GORO_SEND : GORO_RECV, &vals[i], -1 };
        vals[i] = (int)i;
    }
    memset(fair_hits, 0, sizeof fair_hits);
    for (int r = 0; r < FAIR_ROUNDS; r++) {
        int k = goro_select(cs, n, 0);
        CHECK(k >= 0 && (size_t)k < n, "select returned %d", k);
        if (k < 0 || (size_t)k >= n)
            continue;
        fair_hits[k]++;
        /* put the channel back to 2 elements */
        if (cs[k].op == GORO_RECV) {
            CHECK(cs[k].result == 1, "recv result");
            goro_chan_send(chs[k], &one);
        } else {
            CHECK(cs[k].result == 0, "send result");
            goro_chan_recv(chs[k], NULL);
        }
    }
    for (size_t i = 0; i < n; i++) {
        CHECK(goro_chan_len(chs[i]) == 2, "len");
        goro_chan_free(chs[i]);
    }
    check_no_leaks();
}

static void check_fair(size_t n)
{
    double want = (double)FAIR_ROUNDS / (double)n;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += fair_hits[i];
        cr_assert(fair_hits[i] >= want * 0.95 && fair_hits[i] <= want * 1.05,
                  "case %zu of %zu chosen %llu times, want %.0f +- 5%%", i, n,
                  (unsigned long long)fair_hits[i], want);
    }
    cr_assert_eq(total, FAIR_ROUNDS);
}

Test(select, fairness_closed_2, .timeout = 30)
{
    run_on(1, fair_closed_main, (void *)2);
    CHECKS_PASSED();
    check_fair(2);
}

Test(select, fairness_closed_5, .timeout = 30)
{
    run_on(1, fair_closed_main, (void *)5);
    CHECKS_PASSED();
    check_fair(5);
}

Test(select, fairness_mixed_send_recv_8, .timeout = 30)
{
    run_on(1, fair_mixed_main, (void *)8);
    CHECKS_PASSED();
    check_fair(8);
}

/* ---- timeout and default ----------------------------------------------- */

static void timeout_main(void *arg)
{
    goro_chan *a = goro_chan_make(sizeof(int), 0), *b = goro_chan_make(sizeof(int), 1);
    int x = 5, y = 0;
    goro_case cs[2] = { { a, GORO_RECV, &y, -7 }, { a, GORO_SEND, &x, -7 } };

    /* default: nothing ready, nothing changes */
    CHECK(goro_select(cs, 2, 0) == -EAGAIN, "default");
    CHECK(cs[0].result == -7 && cs[1].result == -7 && y == 0, "untouched");

    /* timeout: nothing ready for 20 ms */
    int64_t t0 = goro_now();
    CHECK(goro_select(cs, 2, 20000000) == -ETIMEDOUT, "timeout");
    int64_t el = goro_now() - t0;
    CHECK(el >= 20000000, "timed out after %lld ns", (long long)el);
    CHECK(cs[0].result == -7 && cs[1].result == -7, "untouched after timeout");

    /* a ready case with a timeout or default returns at once */
    goro_chan_send(b, &x);
    goro_case cb[2] = { { a, GORO_RECV, &y, -7 }, { b, GORO_RECV, &y, -7 } };
    CHECK(goro_select(cb, 2, 1000000000) == 1 && y == 5 && cb[1].result == 1, "ready");
    CHECK(goro_select(cb, 2, 0) == -EAGAIN, "drained");
    cb[1].op = GORO_SEND;
    CHECK(goro_select(cb, 2, 0) == 1 && cb[1].result == 0, "send ready");
    CHECK(goro_chan_len(b) == 1, "sent");

    /* no channel at all, just a timeout: a sleep */
    t0 = goro_now();
    CHECK(goro_select(NULL, 0, 5000000) == -ETIMEDOUT, "n=0 timeout");
    CHECK(goro_now() - t0 >= 5000000, "slept");
    CHECK(goro_select(NULL, 0, 0) == -EAGAIN, "n=0 default");

    goro_chan_free(a);
    goro_chan_free(b);
    check_no_leaks();
}

Test(select, timeout_and_default, .timeout = 30)
{
    run_on(2, timeout_main, NULL);
    CHECKS_PASSED();
}

/* A receiver that only ever waits with short timeouts still gets every
 * value exactly once, in order: the timer and the sender race for the
 * same select, and exactly one wins each time. */
#define RACE_VALUES 3000
static goro_chan *race_ch;
static goro_wg race_wg;

static void race_sender(void *arg)
{
    for (int i = 0; i < RACE_VALUES; i++) {
        CHECK(goro_chan_send(race_ch, &i) == 0, "send");
        if (i % 7 == 0)
            goro_sleep(20000);
    }
    goro_wg_done(&race_wg);
}

static void race_main(void *arg)
{
    race_ch = goro_chan_make(sizeof(int), (size_t)(uintptr_t)arg);
    goro_wg_init(&race_wg);
    goro_wg_add(&race_wg, 1);
    goro_go(race_sender, NULL);
    int next = 0, timeouts = 0, v;
    goro_case c = { race_ch, GORO_RECV, &v, 0 };
    while (next < RACE_VALUES) {
        int k = goro_select(&c, 1, 10000 + (next % 5) * 10000);
        if (k == -ETIMEDOUT) {
            timeouts++;
            continue;
        }
        CHECK(k == 0 && c.result == 1, "select %d result %d", k, c.result);
        CHECK(v == next, "got %d want %d", v, next);
        next = v + 1;
    }
    goro_wg_wait(&race_wg);
    CHECK(goro__chan_free(race_ch) == 0, "no record left on the channel");
    check_no_leaks();
}

Test(select, timeouts_racing_senders_lose_nothing, .timeout = 60)
{
    run_on(2, race_main, (void *)0);
    run_on(2, race_main, (void *)2);
    CHECKS_PASSED();
}

/* ---- opposite orders never deadlock ------------------------------------ */

#define OPP_ROUNDS 50000
static goro_chan *opp_c1, *opp_c2;
static goro_wg opp_wg;
static uint64_t opp_done[2];

static void opp_a(void *arg)
{
    uint64_t v = 1, got;
    for (int i = 0; i < OPP_ROUNDS; i++) {
        goro_case cs[2] = { { opp_c1, GORO_SEND, &v, 0 }, { opp_c2, GORO_RECV, &got, 0 } };
        int k = goro_select(cs, 2, -1);
        CHECK(k == 0 || k == 1, "a: %d", k);
    }
    opp_done[0] = OPP_ROUNDS;
    goro_wg_done(&opp_wg);
}

static void opp_b(void *arg)
{
    uint64_t v = 2, got;
    for (int i = 0; i < OPP_ROUNDS; i++) {
        goro_case cs[2] = { { opp_c2, GORO_SEND, &v, 0 }, { opp_c1, GORO_RECV, &got, 0 } };
        int k = goro_select(cs, 2, -1);
        CHECK(k == 0 || k == 1, "b: %d", k);
    }
    opp_done[1] = OPP_ROUNDS;
    goro_wg_done(&opp_wg);
}

static void opposite_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    opp_c1 = goro_chan_make(sizeof(uint64_t), cap);
    opp_c2 = goro_chan_make(sizeof(uint64_t), cap);
    goro_wg_init(&opp_wg);
    goro_wg_add(&opp_wg, 2);
    goro_go(opp_a, NULL);
    goro_go(opp_b, NULL);
    goro_wg_wait(&opp_wg);
    /* drain what a buffered run left behind */
    goro_chan_close(opp_c1);
    goro_chan_close(opp_c2);
    CHECK(goro__chan_free(opp_c1) == 0 && goro__chan_free(opp_c2) == 0, "free");
    check_no_leaks();
}

Test(select, opposite_orders_unbuffered, .timeout = 60)
{
    run_on(2, opposite_main, (void *)0);
    CHECKS_PASSED();
    cr_assert_eq(opp_done[0] + opp_done[1], 2 * OPP_ROUNDS);
}

/* Four goroutines, each selecting on both sides of two channels in its own
 * order, plus a done channel; every value sent is received exactly once. */
#define MESH_G 4
#define MESH_TARGET 100000
static goro_chan *mesh_c[2], *mesh_done;
static volatile AO_t mesh_ops, mesh_sent_sum, mesh_recv_sum, mesh_sent_n, mesh_recv_n;
static goro_wg mesh_wg;

static void mesh_g(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t v = 0, got = 0, ssum = 0, rsum = 0, sn = 0, rn = 0;
    for (uint64_t i = 1;; i++) {
        v = id * 1000000000ull + i;
        goro_case cs[5] = {
            { mesh_c[id & 1], GORO_SEND, &v, 0 },   { mesh_c[id & 1], GORO_RECV, &got, 0 },
            { mesh_c[!(id & 1)], GORO_SEND, &v, 0 }, { mesh_c[!(id & 1)], GORO_RECV, &got, 0 },
            { mesh_done, GORO_RECV, NULL, 0 },
        };
        if (id >= 2) {   /* reverse the case order for half of them */
            goro_case t = cs[0]; cs[0] = cs[3]; cs[3] = t;
            t = cs[1]; cs[1] = cs[2]; cs[2] = t;
        }
        int k = goro_select(cs, 5, -1);
        CHECK(k >= 0 && k < 5, "select %d", k);
        if (k == 4)
            break;
        if (cs[k].op == GORO_SEND) {
            CHECK(cs[k].result == 0, "send result %d", cs[k].result);
            ssum += v;
            sn++;
        } else {
            CHECK(cs[k].result == 1, "recv result %d", cs[k].result);
            CHECK(got / 1000000000ull != id, "received its own value");
            rsum += got;
            rn++;
        }
        if (AO_fetch_and_add1(&mesh_ops) + 1 == MESH_TARGET)
            goro_chan_close(mesh_done);
    }
    AO_fetch_and_add(&mesh_sent_sum, ssum);
    AO_fetch_and_add(&mesh_recv_sum, rsum);
    AO_fetch_and_add(&mesh_sent_n, sn);
    AO_fetch_and_add(&mesh_recv_n, rn);
    goro_wg_done(&mesh_wg);
}

static void mesh_main(void *arg)
{
    mesh_c[0] = goro_chan_make(sizeof(uint64_t), 0);
    mesh_c[1] = goro_chan_make(sizeof(uint64_t), 0);
    mesh_done = goro_chan_make(0, 0);
    mesh_ops = mesh_sent_sum = mesh_recv_sum = mesh_sent_n = mesh_recv_n = 0;
    goro_wg_init(&mesh_wg);
    goro_wg_add(&mesh_wg, MESH_G);
    for (uintptr_t i = 0; i < MESH_G; i++)
        goro_go(mesh_g, (void *)i);
    goro_wg_wait(&mesh_wg);
    CHECK(mesh_sent_n == mesh_recv_n, "sent %lu received %lu", (unsigned long)mesh_sent_n,
          (unsigned long)mesh_recv_n);
    CHECK(mesh_sent_sum == mesh_recv_sum, "sums differ");
    CHECK(mesh_sent_n >= MESH_TARGET / 2, "sent %lu", (unsigned long)mesh_sent_n);
    for (int i = 0; i < 2; i++)
        CHECK(goro__chan_free(mesh_c[i]) == 0, "records left on channel %d", i);
    goro_chan_free(mesh_done);
    check_no_leaks();
}

Test(select, four_goroutines_both_sides_two_channels, .timeout = 60)
{
    run_on(4, mesh_main, NULL);
    CHECKS_PASSED();
}

/* ---- the same channel in several cases --------------------------------- */

static goro_chan *same_ch;
static goro_wg same_wg;
static int same_k = -1, same_v;

static void same_blocked(void *arg)
{
    int a = -1, b = -1;
    goro_case cs[3] = { { same_ch, GORO_RECV, &a, 0 }, { NULL, GORO_RECV, NULL, 0 },
                        { same_ch, GORO_RECV, &b, 0 } };
    same_k = goro_select(cs, 3, -1);
    same_v = same_k == 0 ? a : same_k == 2 ? b : -1;
    goro_wg_done(&same_wg);
}

static void same_main(void *arg)
{
    same_ch = goro_chan_make(sizeof(int), 0);
    goro_wg_init(&same_wg);
    goro_wg_add(&same_wg, 1);
    goro_go(same_blocked, NULL);
    goro_sleep(5000000);
    int v = 77;
    CHECK(goro_chan_send(same_ch, &v) == 0, "send");
    goro_wg_wait(&same_wg);
    CHECK((same_k == 0 || same_k == 2) && same_v == 77, "k %d v %d", same_k, same_v);
    /* the other record was removed */
    CHECK(goro_chan_trysend(same_ch, &v) == -EAGAIN, "a stale receiver is left");
    CHECK(goro__chan_free(same_ch) == 0, "free");

    /* both cases ready: both get chosen */
    goro_chan *b = goro_chan_make(sizeof(int), 1);
    int hits[2] = { 0, 0 };
    for (int i = 0; i < 1000; i++) {
        goro_chan_send(b, &i);
        int x = -1;
        goro_case cs[2] = { { b, GORO_RECV, &x, 0 }, { b, GORO_RECV, &x, 0 } };
        int k = goro_select(cs, 2, -1);
        CHECK((k == 0 || k == 1) && x == i, "k %d x %d", k, x);
        if (k == 0 || k == 1)
            hits[k]++;
    }
    CHECK(hits[0] > 350 && hits[1] > 350, "hits %d %d", hits[0], hits[1]);
    goro_chan_free(b);
    check_no_leaks();
}

Test(select, same_channel_in_several_cases, .timeout = 30)
{
    run_on(2, same_main, NULL);
    CHECKS_PASSED();
}

/* ---- close wakes a blocked select; closed cases are ready --------------- */

static goro_chan *sc_a, *sc_b;
static goro_wg sc_wg;
static int sc_k[2], sc_res[2];
static uint64_t sc_v = 0xdead;

static void sc_recv(void *arg)
{
    goro_case cs[2] = { { sc_a, GORO_RECV, &sc_v, 0 }, { NULL, GORO_SEND, NULL, 0 } };
    sc_k[0] = goro_select(cs, 2, -1);
    sc_res[0] = cs[0].result;
    goro_wg_done(&sc_wg);
}

static void sc_send(void *arg)
{
    uint64_t v = 1;
    goro_case cs[1] = { { sc_b, GORO_SEND, &v, 0 } };
    sc_k[1] = goro_select(cs, 1, -1);
    sc_res[1] = cs[0].result;
    goro_wg_done(&sc_wg);
}

static void select_close_main(void *arg)
{
    sc_a = goro_chan_make(sizeof(uint64_t), 0);
    sc_b = goro_chan_make(sizeof(uint64_t), 0);
    goro_wg_init(&sc_wg);
    goro_wg_add(&sc_wg, 2);
    goro_go(sc_recv, NULL);
    goro_go(sc_send, NULL);
    goro_sleep(5000000);
    goro_chan_close(sc_a);
    goro_chan_close(sc_b);
    goro_wg_wait(&sc_wg);
    CHECK(sc_k[0] == 0 && sc_res[0] == 0 && sc_v == 0, "recv: k %d res %d v %llx", sc_k[0],
          sc_res[0], (unsigned long long)sc_v);
    CHECK(sc_k[1] == 0 && sc_res[1] == -EPIPE, "send: k %d res %d", sc_k[1], sc_res[1]);

    /* on a closed channel a send case is ready, with -EPIPE */
    uint64_t v = 3;
    goro_case cs[1] = { { sc_b, GORO_SEND, &v, 0 } };
    CHECK(goro_select(cs, 1, 0) == 0 && cs[0].result == -EPIPE, "send on closed");
    goro_chan_free(sc_a);
    goro_chan_free(sc_b);
    check_no_leaks();
}

Test(select, close_wakes_blocked_select, .timeout = 30)
{
    run_on(2, select_close_main, NULL);
    CHECKS_PASSED();
}

/* ---- many cases (past the on-stack limit) ------------------------------- */

#define MANY 100
static goro_chan *many_ch[MANY];
static int many_k = -1, many_v = -1;
static goro_wg many_wg;

static void many_blocked(void *arg)
{
    static goro_case cs[MANY];
    static int vals[MANY];
    for (int i = 0; i < MANY; i++)
        cs[i] = (goro_case){ many_ch[i], GORO_RECV, &vals[i], 0 };
    many_k = goro_select(cs, MANY, -1);
    if (many_k >= 0 && many_k < MANY)
        many_v = vals[many_k];
    goro_wg_done(&many_wg);
}

static void many_main(void *arg)
{
    for (int i = 0; i < MANY; i++)
        many_ch[i] = goro_chan_make(sizeof(int), i % 3);
    goro_wg_init(&many_wg);
    goro_wg_add(&many_wg, 1);
    goro_go(many_blocked, NULL);
    goro_sleep(5000000);
    int v = 4242;
    CHECK(goro_chan_send(many_ch[63], &v) == 0, "send");
    goro_wg_wait(&many_wg);
    CHECK(many_k == 63 && many_v == 4242, "k %d v %d", many_k, many_v);
    for (int i = 0; i < MANY; i++)
        CHECK(goro__chan_free(many_ch[i]) == 0, "records left on %d", i);

    /* a ready one among many, non-blocking */
    goro_chan *chs[MANY];
    goro_case cs[MANY];
    for (int i = 0; i < MANY; i++) {
        chs[i] = goro_chan_make(sizeof(int), 1);
        cs[i] = (goro_case){ chs[i], GORO_RECV, &v, 0 };
    }
    v = 9;
    goro_chan_send(chs[17], &v);
    v = 0;
    CHECK(goro_select(cs, MANY, 0) == 17 && v == 9, "picked the ready one");
    CHECK(goro_select(cs, MANY, 0) == -EAGAIN, "then none");
    for (int i = 0; i < MANY; i++)
        goro_chan_free(chs[i]);
    check_no_leaks();
}

Test(select, hundred_cases, .timeout = 30)
{
    run_on(2, many_main, NULL);
    CHECKS_PASSED();
}

/* ---- bad input ---------------------------------------------------------- */

static void bad_main(void *arg)
{
    goro_chan *ch = goro_chan_make(sizeof(int), 2);
    int x = 1, y = 0;
    goro_chan_send(ch, &x);

    CHECK(goro_select(NULL, 1, 0) == -EINVAL, "NULL cases");
    CHECK(goro_select(NULL, 0, -1) == -EINVAL, "n=0 forever");

    /* a bad op anywhere: -EINVAL and nothing consumed */
    goro_case c1[2] = { { ch, GORO_RECV, &y, -7 }, { ch, 3, &y, -7 } };
    CHECK(goro_select(c1, 2, -1) == -EINVAL, "bad op");
    CHECK(goro_chan_len(ch) == 1 && y == 0 && c1[0].result == -7, "nothing consumed");
    c1[1].op = 0;
    CHECK(goro_select(c1, 2, 0) == -EINVAL, "op 0");
    /* a send of NULL data on a channel with elements */
    goro_case c2[2] = { { ch, GORO_SEND, NULL, -7 }, { ch, GORO_RECV, &y, -7 } };
    CHECK(goro_select(c2, 2, -1) == -EINVAL, "send NULL elem");
    CHECK(goro_chan_len(ch) == 1, "nothing consumed");

    /* NULL channels are never ready */
    goro_case c3[2] = { { NULL, GORO_RECV, &y, -7 }, { NULL, GORO_SEND, &x, -7 } };
    CHECK(goro_select(c3, 2, 0) == -EAGAIN, "all NULL default");
    CHECK(goro_select(c3, 2, 1000000) == -ETIMEDOUT, "all NULL timeout");
    CHECK(goro_select(c3, 2, -1) == -EINVAL, "all NULL forever");
    goro_case c4[2] = { { NULL, GORO_RECV, &y, -7 }, { ch, GORO_RECV, &y, -7 } };
    for (int i = 0; i < 20; i++) {
        x = i;
        goro_chan_send(ch, &x);
        CHECK(goro_select(c4, 2, -1) == 1, "the non-NULL case");
    }
    CHECK(c4[0].result == -7, "NULL case untouched");
    goro_chan_free(ch);
    check_no_leaks();
}

Test(select, bad_input, .timeout = 10)
{
    /* outside a goroutine: a blocking select is -EPERM, default works */
    goro_chan *ch = goro_chan_make(sizeof(int), 1);
    int x = 5;
    goro_case c = { ch, GORO_SEND, &x, -7 };
    cr_assert_eq(goro_select(&c, 1, -1), -EPERM);
    cr_assert_eq(goro_select(&c, 1, 1000), -EPERM);
    cr_assert_eq(goro_select(&c, 1, 0), 0);
    cr_assert_eq(c.result, 0);
    cr_assert_eq(goro_select(&c, 1, 0), -EAGAIN);
    goro_chan_free(ch);

    run_on(1, bad_main, NULL);
    CHECKS_PASSED();
}
