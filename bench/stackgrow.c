/*
 * stackgrow - stack growth by recursion. g goroutines (1, or 10,000) each
 * recurse through frames holding a zeroed 1 KiB buffer until they use 13/16
 * of target bytes (64 MiB, or 256 KiB), so each stack must grow to target;
 * repeated reps times. Go grows its stacks by copying too; the frame, the
 * depth and the work per frame are the same on both sides.
 *
 * Figure: ms per rep (all g goroutines spawned, grown, returned, joined).
 * Verified: every recursion returns the checksum of its frames.
 */
#include "bench.h"
#include <atomic_ops.h>

#define FRAME 1024

static int64_t       g, target, reps, depth, elapsed;
static uint64_t      want;
static goro_wg       wg;
static volatile AO_t bad;

/* Keep the frame: a zeroed buffer written and read at a runtime index, as
 * Go's "var buf [1024]byte" is zeroed by the language. */
__attribute__((noinline))
static uint64_t recurse(uint32_t d)
{
    volatile unsigned char buf[FRAME];
    uint64_t r;
    memset((void *)buf, 0, sizeof buf);
    buf[d % FRAME] = (unsigned char)d;
    if (d == 0)
        return 0;
    r = recurse(d - 1);
    return r + buf[d % FRAME];
}

static void grower(void *arg)
{
    if (recurse((uint32_t)depth) != want)
        AO_fetch_and_add1(&bad);
    goro_wg_done(&wg);
}

static void bench_main(void *arg)
{
    int64_t t0;
    struct goro_stats st;
    bench_check_procs();
    goro_wg_init(&wg);
    t0 = bench_now();
    for (int64_t r = 0; r < reps; r++) {
        goro_wg_add(&wg, g);
        for (int64_t i = 0; i < g; i++)
            bench_go(grower, NULL);
        goro_wg_wait(&wg);
    }
    elapsed = bench_now() - t0;
    goro_stats(&st);
    bench_info("stack_max %" PRIu64 " KiB, %" PRIu64 " growths, %" PRIu64 " MiB copied",
               st.stack_max / 1024, st.stack_growths, st.stack_bytes_copied >> 20);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    g = bench_int("goroutines", 1);
    target = bench_int("target", 64 << 20);
    reps = bench_int("reps", 5);
    depth = target / 16 * 13 / FRAME;
    want = 0;
    for (int64_t d = 1; d <= depth; d++)
        want += (uint64_t)(d & 0xff);
    bench_run(bench_main, NULL);
    if (AO_load(&bad) != 0)
        bench_fail("%lu recursions returned a wrong checksum", (unsigned long)AO_load(&bad));
    bench_report(bench_str("name", "stackgrow"), (double)elapsed / 1e6 / (double)reps, "ms");
    return 0;
}
