/*
 * mutex - g goroutines each take and release one goro_mutex n/g times around
 * an increment of a shared counter. g=8 on all workers: contended; g=1:
 * uncontended (the lock and unlock fast paths).
 *
 * Figure: ns per lock+unlock (elapsed / n). Verified: the counter is n.
 */
#include "bench.h"

static int64_t    n, g, per, counter, elapsed;
static goro_mutex mu;
static goro_wg    wg;

static void worker(void *arg)
{
    for (int64_t i = 0; i < per; i++) {
        if (goro_mutex_lock(&mu) != 0)
            bench_fail("goro_mutex_lock failed");
        counter++;
        goro_mutex_unlock(&mu);
    }
    goro_wg_done(&wg);
}

static void bench_main(void *arg)
{
    int64_t t0;
    bench_check_procs();
    goro_mutex_init(&mu);
    goro_wg_init(&wg);
    goro_wg_add(&wg, g);
    t0 = bench_now();
    for (int64_t i = 0; i < g; i++)
        bench_go(worker, NULL);
    goro_wg_wait(&wg);
    elapsed = bench_now() - t0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 4000000);
    g = bench_int("goroutines", 8);
    if (g < 1)
        bench_fail("goroutines must be >= 1");
    per = n / g;
    n = per * g;
    bench_run(bench_main, NULL);
    if (counter != n)
        bench_fail("counter is %" PRId64 ", want %" PRId64, counter, n);
    bench_report(bench_str("name", "mutex"), (double)elapsed / (double)n, "ns/op");
    return 0;
}
