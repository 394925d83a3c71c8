/*
 * rwmutex - g goroutines share one goro_rwmutex; each makes n/g
 * operations, write_pct percent of them writes (lock, increment a counter,
 * unlock) and the rest reads (rlock, read the counter and a table, runlock).
 * Who writes when is fixed by a per-goroutine xorshift sequence, the same
 * on the Go side. rwmutex_read_heavy: 8 goroutines, 2 workers, 10% writes.
 *
 * Figure: ns per operation (elapsed / n). Verified: the counter equals the
 * number of writes the sequences made.
 */
#include "bench.h"

static int64_t      n, g, per, pct, counter, writes_want, elapsed;
static int64_t      sink;  /* keeps the reads */
static int64_t      table[64];
static goro_rwmutex rw;
static goro_wg      wg;

static void worker(void *arg)
{
    uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    int64_t sum = 0;
    for (int64_t i = 0; i < per; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (x % 100 < (uint32_t)pct) {
            goro_rwmutex_lock(&rw);
            counter++;
            table[counter & 63] = counter;
            goro_rwmutex_unlock(&rw);
        } else {
            goro_rwmutex_rlock(&rw);
            sum += counter + table[x & 63];
            goro_rwmutex_runlock(&rw);
        }
    }
    __atomic_fetch_add(&sink, sum, __ATOMIC_RELAXED);
    goro_wg_done(&wg);
}

static void bench_main(void *arg)
{
    bench_check_procs();
    goro_rwmutex_init(&rw);
    goro_wg_init(&wg);
    goro_wg_add(&wg, g);
    int64_t t0 = bench_now();
    for (int64_t i = 0; i < g; i++)
        bench_go(worker, (void *)(uintptr_t)(i + 1));
    goro_wg_wait(&wg);
    elapsed = bench_now() - t0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 4000000);
    g = bench_int("goroutines", 8);
    pct = bench_int("write_pct", 10);
    if (g < 1 || pct < 0 || pct > 100)
        bench_fail("goroutines must be >= 1, write_pct 0..100");
    per = n / g;
    n = per * g;
    for (int64_t k = 0; k < g; k++) {
        uint32_t x = (uint32_t)(k + 1) * 2654435761u + 1;
        for (int64_t i = 0; i < per; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            writes_want += x % 100 < (uint32_t)pct;
        }
    }
    bench_run(bench_main, NULL);
    if (counter != writes_want)
        bench_fail("counter is %" PRId64 ", want %" PRId64, counter, writes_want);
    bench_report(bench_str("name", "rwmutex"), (double)elapsed / (double)n, "ns/op");
    return 0;
}
