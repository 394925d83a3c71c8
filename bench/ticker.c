/*
 * ticker - t goroutines, each with its own ticker of period_ms (a
 * goro_timer with a period), each receiving per ticks and then stopping
 * it. 10,000 tickers at 1 ms ask for 10 million ticks a second, more than
 * two cores deliver: ticks for receivers that are behind are dropped (never
 * queued), and the figure is what a delivered tick costs. The work is
 * bounded by the ticks, not by a wall-clock window (the Go side, with a
 * window, once kept its main goroutine from waking for minutes).
 *
 * Figure: CPU time of the process (user + system, getrusage) from the
 * first spawn to the last ticker's end, per tick received (t * per).
 * Verified: every ticker got its ticks, none faster than the period
 * allows (a ticker that queued would deliver a backlog at once).
 */
#include "bench.h"

#include <sys/resource.h>

static int64_t t_count, period, per, cpu, elapsed, too_fast;
static goro_wg wg;

static int64_t cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static void ticker_g(void *arg)
{
    goro_timer *t = goro_timer_new(period, period);
    if (t == NULL)
        bench_fail("goro_timer_new failed");
    goro_chan *c = goro_timer_chan(t);
    int64_t v, first = 0;
    for (int64_t i = 0; i < per; i++) {
        if (goro_chan_recv(c, &v) != 1)
            bench_fail("tick receive failed");
        if (i == 0)
            first = v;
    }
    goro_timer_free(t);
    /* per ticks span at least per - 1 periods (less 10%: clock jitter) */
    if (v - first < (per - 1) * period * 9 / 10)
        __atomic_fetch_add(&too_fast, 1, __ATOMIC_RELAXED);
    goro_wg_done(&wg);
}

static void bench_main(void *arg)
{
    bench_check_procs();
    goro_wg_init(&wg);
    goro_wg_add(&wg, t_count);
    int64_t c0 = cpu_now(), t0 = bench_now();
    for (int64_t i = 0; i < t_count; i++)
        bench_go(ticker_g, NULL);
    goro_wg_wait(&wg);
    cpu = cpu_now() - c0;
    elapsed = bench_now() - t0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    t_count = bench_int("tickers", 10000);
    period = bench_int("period_ms", 1) * 1000000;
    per = bench_int("ticks", 20);
    if (t_count < 1 || period <= 0 || per < 2)
        bench_fail("tickers and period_ms must be > 0, ticks >= 2");
    bench_run(bench_main, NULL);
    if (too_fast)
        bench_fail("%" PRId64 " tickers got their ticks faster than the period: queued", too_fast);
    int64_t ticks = t_count * per;
    bench_info("%" PRId64 " ticks in %" PRId64 " ms (%.0f/s), %.0f ms of CPU", ticks,
               elapsed / 1000000, (double)ticks * 1e9 / (double)elapsed, (double)cpu / 1e6);
    bench_report(bench_str("name", "ticker"), (double)cpu / (double)ticks, "ns/tick");
    return 0;
}
