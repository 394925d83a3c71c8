/*
 * spawn - spawn n goroutines (1,000,000) from one goroutine, each adds one to
 * a counter and signals a WaitGroup; join them all.
 *
 * Figure: ns per goroutine (spawn + run + exit + join, elapsed / n).
 * Verified: the counter reaches n.
 */
#include "bench.h"
#include <atomic_ops.h>

static int64_t           n;
static volatile AO_t     counter;
static goro_wg           wg;
static int64_t           elapsed;

static void child(void *arg)
{
    AO_fetch_and_add1(&counter); /* relaxed would do; the join orders it */
    goro_wg_done(&wg);
}

static void bench_main(void *arg)
{
    int64_t t0;
    bench_check_procs();
    goro_wg_init(&wg);
    t0 = bench_now();
    goro_wg_add(&wg, n);
    for (int64_t i = 0; i < n; i++)
        bench_go(child, NULL);
    goro_wg_wait(&wg);
    elapsed = bench_now() - t0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 1000000);
    bench_run(bench_main, NULL);
    if ((int64_t)AO_load(&counter) != n)
        bench_fail("%" PRId64 " goroutines ran, want %" PRId64,
                   (int64_t)AO_load(&counter), n);
    bench_report(bench_str("name", "spawn_join"), (double)elapsed / (double)n, "ns/op");
    return 0;
}
