/*
 * stackshrink - memory given back by stacks that once ran deep: n goroutines
 * each recurse through 1 KiB frames to `depth` bytes once, return, and park
 * on a WaitGroup; after they have stayed parked idle_ms (goro compacts, and
 * shrinks on the next run; the Go twin calls runtime.GC twice, as a program
 * would see it after a while), measure the growth of the resident set plus
 * the page tables from before the spawn, divide by n. Then release and join.
 *
 * Figure: bytes per goroutine left resident (smaller is better).
 * Verified: every recursion's checksum, every goroutine parked and finished.
 */
#include "bench.h"
#include <atomic_ops.h>

#define FRAME 1024

static int64_t n, depth, idle_ms, mem_before, mem_parked, mem_deep, rss_before, rss_parked;
static uint64_t want;
static goro_wg parked, release, done;
static volatile AO_t bad, finished;

__attribute__((noinline)) static uint64_t recurse(uint32_t d)
{
    volatile unsigned char buf[FRAME];
    buf[d % FRAME] = (unsigned char)d;
    if (d == 0)
        return 0;
    uint64_t r = recurse(d - 1);
    return r + buf[d % FRAME];
}

static void deep(void *arg)
{
    if (recurse((uint32_t)depth) != want)
        AO_fetch_and_add1(&bad);
    goro_wg_done(&parked);
    if (goro_wg_wait(&release) != 0)
        bench_fail("goro_wg_wait failed");
    AO_fetch_and_add1(&finished);
    goro_wg_done(&done);
}

static void bench_main(void *arg)
{
    bench_check_procs();
    goro_wg_init(&parked);
    goro_wg_init(&release);
    goro_wg_init(&done);
    goro_wg_add(&parked, n);
    goro_wg_add(&release, 1);
    goro_wg_add(&done, n);
    goro_sleep(20 * 1000000);
    mem_before = bench_mem();
    rss_before = bench_rss();
    for (int64_t i = 0; i < n; i++)
        bench_go(deep, NULL);
    goro_wg_wait(&parked);
    mem_deep = bench_mem();
    goro_sleep(idle_ms * 1000000);
    bench_compaction_settle((uint64_t)n);
    mem_parked = bench_mem();
    rss_parked = bench_rss();
    goro_wg_done(&release);
    goro_wg_wait(&done);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 10000);
    int64_t bytes = bench_int("depth", 1 << 20);
    idle_ms = bench_int("idle_ms", 1500);
    depth = bytes / FRAME;
    for (int64_t d = 1; d <= depth; d++)
        want += (uint64_t)(d & 0xff);
    bench_run(bench_main, NULL);
    if (AO_load(&bad) != 0)
        bench_fail("%lu recursions returned a wrong checksum", (unsigned long)AO_load(&bad));
    if ((int64_t)AO_load(&finished) != n)
        bench_fail("%lu goroutines finished, want %" PRId64, (unsigned long)AO_load(&finished), n);
    bench_info("rss+pte before %" PRId64 " KiB, deep %" PRId64 " KiB, parked %" PRId64
               " KiB (page tables %" PRId64 " KiB of it)", mem_before / 1024, mem_deep / 1024,
               mem_parked / 1024, ((mem_parked - rss_parked) - (mem_before - rss_before)) / 1024);
    bench_report(bench_str("name", "stackshrink"),
                 (double)(mem_parked - mem_before) / (double)n, "bytes/goroutine");
    return 0;
}
