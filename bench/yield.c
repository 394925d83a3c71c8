/*
 * yield - two goroutines on one worker hand the CPU back and forth with
 * goro_yield (Go: runtime.Gosched with GOMAXPROCS=1).
 *
 * Figure: ns per yield (elapsed / total yields). Verified: every yield of
 * both goroutines ran, and the two really alternated (a yield that never
 * switches would be fast and wrong). Also printed (goro only): bare_switch,
 * ns per bare register switch, for the bar's "within 2x" half.
 */
#include "bench.h"

static int64_t n;           /* yields per goroutine */
static int     last;        /* who ran last (one worker: no race) */
static int64_t switches;    /* times a goroutine found the other had run */
static int64_t count[2];
static goro_wg wg;
static int64_t elapsed;

static void yielder(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int64_t i = 0; i < n; i++) {
        last = me;
        goro_yield();
        if (last != me)
            switches++;
        count[me]++;
    }
    goro_wg_done(&wg);
}

static void bench_main(void *arg)
{
    int64_t t0;
    bench_check_procs();
    goro_wg_init(&wg);
    goro_wg_add(&wg, 2);
    t0 = bench_now();
    bench_go(yielder, (void *)(intptr_t)0);
    bench_go(yielder, (void *)(intptr_t)1);
    goro_wg_wait(&wg);
    elapsed = bench_now() - t0;
}

/* The second half of the bar: "within 2x of a bare register switch". The
 * bare switch is the register switch at the core of goro's own
 * goro__ctx_switch (runtime/asm/switch_x86_64.S): callee-saved registers
 * and rsp out, the other's in, the current-context slot written, ret;
 * without what the runtime's switch does after it (a pending action,
 * errno). It runs between two contexts on the main thread with no
 * scheduler around it. */
struct bare_ctx {
    void *rsp;
    uint64_t rbx, rbp, r12, r13, r14, r15;
};
void bare_ctx_switch(struct bare_ctx *from, const struct bare_ctx *to, void **cur, void *newg);
__asm__(".text\n"
        ".p2align 4\n"
        "bare_ctx_switch:\n"
        "  movq %rsp, 0(%rdi)\n"
        "  movq %rbx, 8(%rdi)\n"
        "  movq %rbp, 16(%rdi)\n"
        "  movq %r12, 24(%rdi)\n"
        "  movq %r13, 32(%rdi)\n"
        "  movq %r14, 40(%rdi)\n"
        "  movq %r15, 48(%rdi)\n"
        "  movq 8(%rsi), %rbx\n"
        "  movq 16(%rsi), %rbp\n"
        "  movq 24(%rsi), %r12\n"
        "  movq 32(%rsi), %r13\n"
        "  movq 40(%rsi), %r14\n"
        "  movq 48(%rsi), %r15\n"
        "  movq 0(%rsi), %rsp\n"
        "  movq %rcx, (%rdx)\n"
        "  ret\n");

/* Two contexts switch to each other from the same call site, as two
 * yielding goroutines do (so the return-stack buffer predicts every ret);
 * the first one back returns to main. */
struct bare_side {
    struct bare_ctx ctx;
    struct bare_side *peer;
    int64_t iters, done;
};
static struct bare_ctx bare_main;
static struct bare_side bare_sides[2];
static void *bare_cur;

static __attribute__((noinline)) void bare_loop(struct bare_side *me)
{
    for (me->done = 0; me->done < me->iters; me->done++)
        bare_ctx_switch(&me->ctx, &me->peer->ctx, &bare_cur, me->peer);
    bare_ctx_switch(&me->ctx, &bare_main, &bare_cur, NULL);
    bench_fail("bare switch: a finished context was resumed");
}

static void bare_entry0(void) { bare_loop(&bare_sides[0]); }
static void bare_entry1(void) { bare_loop(&bare_sides[1]); }

static double bare_switch_ns(int64_t iters)
{
    enum { STACK = 64 * 1024 };
    static _Alignas(64) char stacks[2][STACK];
    void (*entry[2])(void) = { bare_entry0, bare_entry1 };
    for (int i = 0; i < 2; i++) {
        /* a context resumes with ret: its rsp points at the address to go to */
        void **sp = (void **)(void *)(stacks[i] + STACK - 16);
        *sp = (void *)(uintptr_t)entry[i];
        bare_sides[i] = (struct bare_side){ .ctx = { .rsp = sp }, .peer = &bare_sides[!i],
                                            .iters = iters };
    }
    int64_t t0 = bench_now();
    bare_ctx_switch(&bare_main, &bare_sides[0].ctx, &bare_cur, &bare_sides[0]);
    int64_t t = bench_now() - t0;
    if (bare_sides[0].done != iters || bare_sides[1].done != iters - 1)
        bench_fail("bare switch: %" PRId64 " + %" PRId64 " switches, want %" PRId64 " + %" PRId64,
                   bare_sides[0].done, bare_sides[1].done, iters, iters - 1);
    return (double)t / (double)(2 * iters);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 1000000);
    bench_run(bench_main, NULL);
    if (count[0] != n || count[1] != n)
        bench_fail("yields counted %" PRId64 " + %" PRId64 ", want %" PRId64 " each",
                   count[0], count[1], n);
    if (switches < n)
        bench_fail("only %" PRId64 " of %" PRId64 " yields switched goroutines",
                   switches, 2 * n);
    bench_report(bench_str("name", "yield"), (double)elapsed / (double)(2 * n), "ns/op");
    bench_report("bare_switch", bare_switch_ns(n), "ns/op");
    return 0;
}
