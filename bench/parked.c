/*
 * parked - memory per parked goroutine: spawn n goroutines that each check in
 * on one WaitGroup and then park on another, let them stay parked for a
 * while (idle_ms, 1.5 s: past goro's compaction threshold, GORO_COMPACT_AFTER,
 * 1 s by default, and until the compaction pass is done), measure the growth
 * of the resident set plus the page tables (/proc/self/statm and VmPTE) from
 * before the spawn, divide by n. Then release and join them all.
 *
 * Figure: bytes per goroutine (stack pages, runtime records, page tables).
 * Verified: all n goroutines checked in, parked and ran to the end.
 */
#include "bench.h"
#include <atomic_ops.h>

static int64_t       n, mem_before, mem_parked, idle_ms;
static goro_wg       started, release, done;
static volatile AO_t finished;
static struct goro_stats st;

static void sleeper(void *arg)
{
    goro_wg_done(&started);
    if (goro_wg_wait(&release) != 0)
        bench_fail("goro_wg_wait failed");
    AO_fetch_and_add1(&finished);
    goro_wg_done(&done);
}

static void bench_main(void *arg)
{
    bench_check_procs();
    goro_wg_init(&started);
    goro_wg_init(&release);
    goro_wg_init(&done);
    goro_wg_add(&started, n);
    goro_wg_add(&release, 1);
    goro_wg_add(&done, n);
    goro_sleep(20 * 1000000);          /* let the runtime settle */
    mem_before = bench_mem();
    for (int64_t i = 0; i < n; i++)
        bench_go(sleeper, NULL);
    goro_wg_wait(&started);
    goro_sleep(idle_ms * 1000000);     /* parked for a while */
    st = bench_compaction_settle((uint64_t)n);
    mem_parked = bench_mem();
    if (AO_load(&finished) != 0)
        bench_fail("a goroutine went past its park");
    goro_wg_done(&release);
    goro_wg_wait(&done);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 100000);
    idle_ms = bench_int("idle_ms", 1500);
    bench_run(bench_main, NULL);
    if ((int64_t)AO_load(&finished) != n)
        bench_fail("%" PRId64 " goroutines finished, want %" PRId64,
                   (int64_t)AO_load(&finished), n);
    bench_info("rss+pte before %" PRId64 " KiB, parked %" PRId64 " KiB, %" PRIu64
               " stacks compacted", mem_before / 1024, mem_parked / 1024,
               st.stacks_compacted);
    bench_report(bench_str("name", "parked"),
                 (double)(mem_parked - mem_before) / (double)n, "bytes/goroutine");
    return 0;
}
