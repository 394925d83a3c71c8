/*
 * test_lend.c - lending (runtime/stack_fault.c) for programs built with
 * -fno-plt, as this file is (the Makefile): their calls into goro are
 * `call *f@GOTPCREL(%rip)`, which a static link relaxes to `addr32 call f`
 * (67 e8). A goroutine hands B a pointer to its local and blocks, at every
 * depth near the end of its one-page stack; where the push of that call's
 * return address crosses the guard, the fault is goro's call all the same
 * and must borrow the guard's page, not move the stack
 * (tests/test_window.c's parker sweeps do this for plain calls).
 */
#include "util.h"
#include "internal.h"
#include "stack.h" /* goro__stk.lend */

#include <string.h>

static goro_wg bwg;
static goro_chan *ach;
static int64_t *volatile pub;
static G *volatile ag;
static volatile uint32_t row0;
static volatile bool moved;
static volatile int done;

static void b_fn(void *arg)
{
    (void)arg;
    goro_wg_wait(&bwg);
    moved = (uint32_t)((uintptr_t)ag->stack.hi >> 32) != row0;
    *pub = 42;
    int one = 1;
    goro_chan_send(ach, &one);
}

static __attribute__((noinline)) int a_body(void)
{
    int64_t word = 0;
    ag = goro__self();
    row0 = (uint32_t)((uintptr_t)ag->stack.hi >> 32);
    pub = &word;
    goro_wg_done(&bwg);
    int got = 0;
    goro_chan_recv(ach, &got);
    return *(volatile int64_t *)&word == 42;
}

static __attribute__((noinline)) int at(int off)
{
    volatile char pad[off + 1];
    memset((char *)pad, 0x5a, (size_t)off + 1);
    int ok = a_body();
    return ok && pad[0] == 0x5a && pad[off] == 0x5a;
}

struct res {
    long moved, lost;
    bool lend;
};

static int a_off;
static struct res *a_res;

static void a_fn(void *arg)
{
    (void)arg;
    int ok = at(a_off);
    a_res->moved += moved;
    a_res->lost += !ok;
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

static void lend_main(void *arg)
{
    struct res *r = arg;
    r->lend = goro__stk.lend;
    a_res = r;
    ach = goro_chan_make(sizeof(int), 0);
    for (int off = 3000; off < 4096; off += 8) {
        goro_wg_init(&bwg);
        goro_wg_add(&bwg, 1);
        done = 0;
        moved = false;
        a_off = off;
        cr_assert_eq(goro_go(b_fn, NULL), 0);
        cr_assert_eq(goro_go(a_fn, NULL), 0);
        while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
            goro_yield();
    }
    goro_chan_free(ach);
}

Test(lend, no_plt_calls_into_goro_borrow_at_the_edge, .timeout = 60)
{
    setenv("GORO_DEBUG", "nostackhint", 1);
    struct res r = { 0 };
    uint64_t l0 = AO_load(&goro__ctr.stack_lends);
    run_on(1, lend_main, &r);
    uint64_t lends = AO_load(&goro__ctr.stack_lends) - l0;
    test_note("%ld of %d depths moved, %ld answers lost, %llu pages lent", r.moved,
              (4096 - 3000) / 8, r.lost, (unsigned long long)lends);
    if (!r.lend)
        cr_skip_test("no lending here (sanitizers, Valgrind, a one-page guard)");
    cr_assert_gt(lends, 0, "no page lent: the sweep never reached the edge");
    cr_assert_eq(r.moved, 0, "the stack moved after the handoff at %ld depths", r.moved);
    cr_assert_eq(r.lost, 0);
}
