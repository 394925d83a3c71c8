/*
 * test_spawn.c - the spawn stack (sched.c "Spawning"): a child spawned
 * while runnext holds an earlier child pushes that one onto its worker's
 * spawn stack (newest first), which keeps a tree of spawns depth-first and
 * its memory small; thieves take the oldest entries; the FIFO queue is not
 * starved behind it; entries pushed out of a full stack still run.
 */
#define TEST_PAGE_STACKS 1 /* util.h */
#include "util.h"

#include <atomic_ops.h>
#include <string.h>

/* ---- a skynet tree: right sum, few goroutines alive at once ------------- */

struct node {
    goro_chan *up;
    int64_t num, size;
};

static void tree(void *arg)
{
    struct node me = *(struct node *)arg;
    if (me.size == 1) {
        cr_assert_eq(goro_chan_send(me.up, &me.num), 0);
        return;
    }
    goro_chan *rc = goro_chan_make(sizeof(int64_t), 0);
    /* not on this stack: it may move (grow) before a child reads its node */
    struct node *kids = malloc(10 * sizeof *kids);
    cr_assert(rc != NULL && kids != NULL);
    int64_t sub = me.size / 10, sum = 0, v;
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct node){ rc, me.num + i * sub, sub };
        cr_assert_eq(goro_go(tree, &kids[i]), 0);
    }
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(goro_chan_recv(rc, &v), 1);
        sum += v;
    }
    free(kids);
    goro_chan_free(rc);
    cr_assert_eq(goro_chan_send(me.up, &sum), 0);
}

struct tree_run {
    int64_t leaves, rounds;
    uint64_t reserved; /* stack bytes reserved at the end: records ever made */
    uint64_t spawned;
};

static void tree_main(void *arg)
{
    struct tree_run *r = arg;
    goro_chan *c = goro_chan_make(sizeof(int64_t), 0);
    cr_assert_not_null(c);
    static struct node root; /* not on main's stack (see tree) */
    for (int64_t round = 0; round < r->rounds; round++) {
        root = (struct node){ c, 0, r->leaves };
        int64_t sum = -1;
        cr_assert_eq(goro_go(tree, &root), 0);
        cr_assert_eq(goro_chan_recv(c, &sum), 1);
        cr_assert_eq(sum, r->leaves * (r->leaves - 1) / 2, "round %lld: sum %lld",
                     (long long)round, (long long)sum);
    }
    goro_chan_free(c);
    struct goro_stats st;
    goro_stats(&st);
    r->reserved = st.stack_bytes_reserved;
    r->spawned = st.spawned;
}

/* 111,111 goroutines; with children queued first-in first-out (Go's order)
 * about 9,000 are alive at the peak and as many stacks are made; depth
 * first, a few dozen. Stacks are never freed during a run, so the bytes
 * reserved at the end tell the peak. */
static void check_tree(int procs, uint64_t max_reserved)
{
    struct tree_run r = { .leaves = 100000, .rounds = 1 };
    run_on(procs, tree_main, &r);
    test_note("tree of 100,000 leaves on %d worker(s): %llu KiB of stacks at the end", procs,
              (unsigned long long)(r.reserved >> 10));
    cr_assert_eq(r.spawned, 111111 + 1);
    cr_assert_lt(r.reserved, max_reserved, "%llu bytes of stacks: the tree did not run depth-first",
                 (unsigned long long)r.reserved);
}

/* one page of stack and one of guard accounting per record: 8 KiB */
Test(spawn, tree_depth_first_one_worker, .timeout = 60) { check_tree(1, 1024 * 8192); }
Test(spawn, tree_depth_first_two_workers, .timeout = 60) { check_tree(2, 4096 * 8192); }

/* Many trees on 2 workers, whose spawn stacks are stolen from all along:
 * every sum must be right. */
Test(spawn, trees_stolen_from, .timeout = 120)
{
    /* 20 under TSan: 10x slower (util.h) */
    struct tree_run r = { .leaves = 10000, .rounds = TEST_TSAN ? 20 : 200 };
    run_on(2, tree_main, &r);
    struct goro_stats st;
    goro_stats(&st);
    test_note("%lld trees of 10,000 leaves on 2 workers: %llu steals", (long long)r.rounds,
              (unsigned long long)st.steals);
    cr_assert_eq(r.spawned, (uint64_t)r.rounds * 11111 + 1);
}

/* ---- a spawned child on the spawn stack is stolen ----------------------- */

/* Two children that spin without yielding until both run: the first sits
 * on the spawn stack (the second took runnext), its worker runs the second
 * and never schedules again, so only another worker taking it from the
 * spawn stack ends the round. */
static volatile AO_t started;
static goro_wg pair_wg;

static void spinner(void *arg)
{
    (void)arg;
    AO_fetch_and_add1(&started);
    int64_t t0 = goro_now();
    while (AO_load(&started) < 2)
        cr_assert_lt(goro_now() - t0, 5000000000LL, "the other child never ran");
    goro_wg_done(&pair_wg);
}

static void pair_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 200; round++) {
        AO_store(&started, 0);
        goro_wg_init(&pair_wg);
        goro_wg_add(&pair_wg, 2);
        cr_assert_eq(goro_go(spinner, NULL), 0);
        cr_assert_eq(goro_go(spinner, NULL), 0);
        cr_assert_eq(goro_wg_wait(&pair_wg), 0);
    }
}

Test(spawn, spawn_stack_is_stolen, .timeout = 60)
{
    run_on(2, pair_main, NULL);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_geq(st.steals, 200, "only %llu steals", (unsigned long long)st.steals);
}

/* ---- the queue is not starved behind the spawn stack -------------------- */

/* One worker. A chain of "storm" goroutines, each spawning a leaf and then
 * its successor: the successor takes runnext and pushes the leaf onto the
 * spawn stack, so runnext and the spawn stack are never both empty while
 * at most 32 leaves wait (memory stays bounded). A yielder sits in the FIFO
 * queue; it must get its turns anyway. */
#define STORM_LEAVES 32
#define YIELDER_TURNS 200
static volatile AO_t stop, leaves_waiting, turns;
static goro_wg storm_wg;
static int64_t storm_t0;

static void leaf(void *arg)
{
    (void)arg;
    AO_fetch_and_sub1(&leaves_waiting);
    goro_wg_done(&storm_wg);
}

static void storm(void *arg)
{
    (void)arg;
    cr_assert_lt(goro_now() - storm_t0, 10000000000LL,
                 "the yielder got %lu turns in 10 s: the queue is starved",
                 (unsigned long)AO_load(&turns));
    if (!AO_load(&stop)) {
        if (AO_load(&leaves_waiting) < STORM_LEAVES) {
            AO_fetch_and_add1(&leaves_waiting);
            goro_wg_add(&storm_wg, 1);
            cr_assert_eq(goro_go(leaf, NULL), 0);
        }
        goro_wg_add(&storm_wg, 1);
        cr_assert_eq(goro_go(storm, NULL), 0);
    }
    goro_wg_done(&storm_wg);
}

static void turn_taker(void *arg)
{
    (void)arg;
    for (int i = 0; i < YIELDER_TURNS; i++) {
        AO_fetch_and_add1(&turns);
        goro_yield();
    }
    AO_store(&stop, 1);
    goro_wg_done(&storm_wg);
}

static void storm_main(void *arg)
{
    (void)arg;
    stop = leaves_waiting = turns = 0;
    storm_t0 = goro_now();
    goro_wg_init(&storm_wg);
    goro_wg_add(&storm_wg, 2);
    cr_assert_eq(goro_go(turn_taker, NULL), 0);
    cr_assert_eq(goro_go(storm, NULL), 0);
    cr_assert_eq(goro_wg_wait(&storm_wg), 0);
}

Test(spawn, queue_not_starved_by_spawn_stack, .timeout = 60)
{
    run_on(1, storm_main, NULL);
    cr_assert_eq(turns, YIELDER_TURNS);
    cr_assert_eq(leaves_waiting, 0);
}

/* ---- a full spawn stack pushes its oldest out; all run once ------------- */

#define FLOOD 20000
static volatile AO_t ran[FLOOD];
static goro_wg flood_wg;

static void flood_child(void *arg)
{
    AO_fetch_and_add1(&ran[(uintptr_t)arg]);
    goro_wg_done(&flood_wg);
}

static void flood_main(void *arg)
{
    (void)arg;
    goro_wg_init(&flood_wg);
    goro_wg_add(&flood_wg, FLOOD);
    for (uintptr_t i = 0; i < FLOOD; i++)
        cr_assert_eq(goro_go(flood_child, (void *)i), 0);
    cr_assert_eq(goro_wg_wait(&flood_wg), 0);
}

static void check_flood(int procs)
{
    memset((void *)ran, 0, sizeof ran);
    run_on(procs, flood_main, NULL);
    for (int i = 0; i < FLOOD; i++)
        cr_assert_eq(ran[i], 1, "child %d ran %lu times", i, (unsigned long)ran[i]);
}

Test(spawn, flood_each_once_one_worker, .timeout = 60) { check_flood(1); }
Test(spawn, flood_each_once_two_workers, .timeout = 60) { check_flood(2); }
