/*
 * test_stackhint.c - start-size hints (g.c): goroutines of a function whose
 * goroutines needed a big stack start on one that big, so they do not grow
 * again; functions that never grew keep starting on one page; the hint
 * follows use back down; a hinted goroutine still grows past its hint.
 */
#define TEST_PAGE_STACKS 1 /* util.h */
#include "util.h"

#include <atomic_ops.h>
#include <string.h>
#include <unistd.h>

#define FRAME 1024

static volatile AO_t bad;

/* depth frames of a zeroed 1 KiB buffer; returns a checksum of them */
__attribute__((noinline)) static uint64_t recurse(uint32_t d)
{
    volatile unsigned char buf[FRAME];
    memset((void *)buf, 0, sizeof buf);
    buf[d % FRAME] = (unsigned char)d;
    if (d == 0)
        return 0;
    return recurse(d - 1) + buf[d % FRAME];
}

static uint64_t want_sum(uint32_t depth)
{
    uint64_t w = 0;
    for (uint32_t d = 1; d <= depth; d++)
        w += d & 0xff;
    return w;
}

static volatile AO_t depth_now; /* frames the next grower recurses through */
static goro_wg wg;

static void grower(void *arg)
{
    (void)arg;
    uint32_t d = (uint32_t)AO_load(&depth_now);
    if (recurse(d) != want_sum(d))
        AO_fetch_and_add1(&bad);
    goro_wg_done(&wg);
}

/* n growers one after the other (each joined before the next) */
static void run_growers(int n)
{
    for (int i = 0; i < n; i++) {
        goro_wg_add(&wg, 1);
        cr_assert_eq(goro_go(grower, NULL), 0);
        cr_assert_eq(goro_wg_wait(&wg), 0);
    }
}

static uint64_t growths(void)
{
    struct goro_stats st;
    goro_stats(&st);
    return st.stack_growths;
}

/* ---- goroutines of a deep function stop growing ------------------------ */

#define GROWERS 320

static uint64_t grew;

static void deep_main(void *arg)
{
    (void)arg;
    goro_wg_init(&wg);
    AO_store(&depth_now, 200); /* ~200 KiB: grows 4 KiB -> 32 KiB -> 256 KiB */
    uint64_t g0 = growths();
    run_growers(GROWERS);
    grew = growths() - g0;
}

Test(stackhint, deep_function_starts_big, .timeout = 60)
{
    bad = 0;
    unsetenv("GORO_DEBUG");
    run_on(1, deep_main, NULL);
    test_note("%d goroutines recursing to ~200 KiB: %llu growths", GROWERS,
              (unsigned long long)grew);
    cr_assert_eq(bad, 0, "%lu wrong checksums", (unsigned long)bad);
    /* without hints 2 each; with them 2 for the first and one per probe
     * (about one spawn in 32) */
    cr_assert_lt(grew, GROWERS / 4, "%llu growths", (unsigned long long)grew);
}

Test(stackhint, nostackhint_grows_every_time, .timeout = 60)
{
    bad = 0;
    setenv("GORO_DEBUG", "nostackhint", 1);
    run_on(1, deep_main, NULL);
    unsetenv("GORO_DEBUG");
    cr_assert_eq(bad, 0);
    /* two each (main's own stack may grow once more, by compiler) */
    cr_assert(grew >= 2 * GROWERS && grew <= 2 * GROWERS + 4, "%llu growths",
              (unsigned long long)grew);
}

/* ---- a function that never grew starts on one page --------------------- */

#define PARKED 1000
static goro_chan *gate;
static goro_wg parked_wg, left_wg; /* parked at the gate; out of it */

static void parker(void *arg)
{
    (void)arg;
    goro_wg_done(&parked_wg);
    goro_chan_recv(gate, NULL);
    goro_wg_done(&left_wg);
}

/* PARKED goroutines of fn parked at once: stack bytes reserved for them */
static uint64_t park_many(goro_fn fn)
{
    struct goro_stats st;
    gate = goro_chan_make(0, 0);
    cr_assert_not_null(gate);
    goro_stats(&st);
    uint64_t r0 = st.stack_bytes_reserved;
    goro_wg_init(&parked_wg);
    goro_wg_add(&parked_wg, PARKED);
    goro_wg_init(&left_wg);
    goro_wg_add(&left_wg, PARKED);
    for (int i = 0; i < PARKED; i++)
        cr_assert_eq(goro_go(fn, NULL), 0);
    cr_assert_eq(goro_wg_wait(&parked_wg), 0);
    goro_stats(&st);
    uint64_t r = st.stack_bytes_reserved - r0;
    cr_assert_eq(goro_chan_close(gate), 0);
    /* every receiver out of goro_chan_recv before the channel is freed (a
     * 20 ms sleep here was not enough under Valgrind: a woken receiver
     * still in chan_recv read the freed channel) */
    cr_assert_eq(goro_wg_wait(&left_wg), 0);
    goro_chan_free(gate);
    return r;
}

static uint64_t shallow_bytes;

static void shallow_main(void *arg)
{
    (void)arg;
    goro_wg_init(&wg);
    AO_store(&depth_now, 200);
    run_growers(64); /* grower's hint: 256 KiB */
    shallow_bytes = park_many(parker);
}

Test(stackhint, other_functions_start_small, .timeout = 60)
{
    run_on(1, shallow_main, NULL);
    test_note("%d parked goroutines after a deep function ran: %llu KiB of stacks", PARKED,
              (unsigned long long)(shallow_bytes >> 10));
    /* one page each, and one more in the accounting (util.h) */
    cr_assert_leq(shallow_bytes, (uint64_t)PARKED * SMALL_PARKED_PAGES *
                                 (uint64_t)sysconf(_SC_PAGESIZE) + (1u << 20));
}

/* ---- the hint follows use back down ------------------------------------ */

static volatile AO_t mode_deep;

/* deep (grows to ~200 KiB) while mode_deep, then parks like parker */
static void changer(void *arg)
{
    (void)arg;
    if (AO_load(&mode_deep)) {
        if (recurse(200) != want_sum(200))
            AO_fetch_and_add1(&bad);
        goro_wg_done(&wg);
        return;
    }
    goro_wg_done(&parked_wg);
    goro_chan_recv(gate, NULL);
    goro_wg_done(&left_wg);
}

static uint64_t before_bytes, after_bytes;

static void shrink_main(void *arg)
{
    (void)arg;
    goro_wg_init(&wg);
    AO_store(&mode_deep, 1);
    for (int i = 0; i < 64; i++) {
        goro_wg_add(&wg, 1);
        cr_assert_eq(goro_go(changer, NULL), 0);
        cr_assert_eq(goro_wg_wait(&wg), 0);
    }
    AO_store(&mode_deep, 0);
    /* the first batch still starts big (its hint is 256 KiB) */
    before_bytes = park_many(changer);
    /* each batch's probes that exit without growing lower the hint one
     * class: 6 classes from 256 KiB to 4 KiB */
    for (int i = 0; i < 8; i++)
        park_many(changer);
    after_bytes = park_many(changer);
}

Test(stackhint, hint_follows_use_down, .timeout = 120)
{
    bad = 0;
    run_on(1, shrink_main, NULL);
    test_note("%d parked goroutines of a function that used to recurse: %llu KiB at first, "
              "%llu KiB ten batches later", PARKED, (unsigned long long)(before_bytes >> 10),
              (unsigned long long)(after_bytes >> 10));
    cr_assert_eq(bad, 0);
    cr_assert_gt(before_bytes, (uint64_t)PARKED * 64 * 1024, "the hint never took");
    cr_assert_leq(after_bytes, (uint64_t)PARKED * SMALL_PARKED_PAGES *
                               (uint64_t)sysconf(_SC_PAGESIZE) + (1u << 20));
}

/* ---- a hinted goroutine still grows past its hint ---------------------- */

static void past_main(void *arg)
{
    (void)arg;
    goro_wg_init(&wg);
    AO_store(&depth_now, 200);
    run_growers(64);                 /* hint: 256 KiB */
    AO_store(&depth_now, 4096);      /* ~4 MiB: past the 1 MiB cap */
    run_growers(8);
    AO_store(&depth_now, 20);        /* and small again */
    run_growers(8);
}

Test(stackhint, grows_past_the_hint, .timeout = 60)
{
    bad = 0;
    run_on(2, past_main, NULL);
    cr_assert_eq(bad, 0, "%lu wrong checksums", (unsigned long)bad);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_geq(st.stack_max, 4u << 20);
}
