/*
 * local - what goro_local_get costs: one goroutine reads its value under a
 * key n times (4 keys set, read in turn), yielding every 1,000 reads so the
 * runtime does its usual work around it. The Go twin reads a value from a
 * context.Context carrying 4 values (context.WithValue), the idiomatic way
 * to carry per-goroutine (per-request) state in Go, which has no
 * goroutine-local storage.
 *
 * Figure: ns per get. Verified: the sum of what was read.
 */
#include "bench.h"

static int64_t  n, elapsed, sum;
static goro_key keys[4];

static void bench_main(void *arg)
{
    bench_check_procs();
    for (int k = 0; k < 4; k++) {
        if (goro_key_create(&keys[k], NULL) != 0)
            bench_fail("goro_key_create");
        if (goro_local_set(keys[k], (void *)(uintptr_t)(k + 1)) != 0)
            bench_fail("goro_local_set");
    }
    int64_t s = 0, t0 = bench_now();
    for (int64_t i = 0; i < n; i++) {
        s += (int64_t)(uintptr_t)goro_local_get(keys[i & 3]);
        if (i % 1000 == 999)
            goro_yield();
    }
    elapsed = bench_now() - t0;
    sum = s;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 100000000);
    n -= n % 4;
    bench_run(bench_main, NULL);
    if (sum != n / 4 * 10)
        bench_fail("sum is %" PRId64 ", want %" PRId64, sum, n / 4 * 10);
    bench_report(bench_str("name", "local"), (double)elapsed / (double)n, "ns/op");
    return 0;
}
