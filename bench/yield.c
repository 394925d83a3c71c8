/*
 * yield - two goroutines on one worker hand the CPU back and forth with
 * goro_yield (Go: runtime.Gosched with GOMAXPROCS=1).
 *
 * Figure: ns per yield (elapsed / total yields). Verified: every yield of
 * both goroutines ran, and the two really alternated (a yield that never
 * switches would be fast and wrong).
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
    return 0;
}
