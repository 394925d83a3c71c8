/*
 * chanbuf - 4 producers and 4 consumers share one buffered channel (cap 128):
 * the producers send the numbers 1..n between them, the consumers receive
 * until the channel is closed.
 *
 * Figure: ns per message (elapsed / n). Verified: n messages received, and
 * their sum is n(n+1)/2.
 */
#include "bench.h"

#define MAXSIDE 64

static int64_t    n, producers, consumers, cap_, elapsed;
static goro_chan *ch;
static goro_wg    pwg, cwg;
static int64_t    got[MAXSIDE], sum[MAXSIDE];

static void producer(void *arg)
{
    int64_t p = (int64_t)(intptr_t)arg;
    for (int64_t v = p + 1; v <= n; v += producers)
        if (goro_chan_send(ch, &v) != 0)
            bench_fail("send failed");
    goro_wg_done(&pwg);
}

static void consumer(void *arg)
{
    int64_t c = (int64_t)(intptr_t)arg, v, k = 0, s = 0;
    while (goro_chan_recv(ch, &v) == 1) {
        k++;
        s += v;
    }
    got[c] = k;
    sum[c] = s;
    goro_wg_done(&cwg);
}

static void bench_main(void *arg)
{
    int64_t t0;
    bench_check_procs();
    ch = goro_chan_make(sizeof(int64_t), (size_t)cap_);
    if (!ch)
        bench_fail("goro_chan_make: %s", strerror(errno));
    goro_wg_init(&pwg);
    goro_wg_init(&cwg);
    goro_wg_add(&pwg, producers);
    goro_wg_add(&cwg, consumers);
    t0 = bench_now();
    for (int64_t i = 0; i < consumers; i++)
        bench_go(consumer, (void *)(intptr_t)i);
    for (int64_t i = 0; i < producers; i++)
        bench_go(producer, (void *)(intptr_t)i);
    goro_wg_wait(&pwg);
    goro_chan_close(ch);
    goro_wg_wait(&cwg);
    elapsed = bench_now() - t0;
    goro_chan_free(ch);
}

int main(int argc, char **argv)
{
    int64_t total = 0, s = 0;
    bench_args(argc, argv);
    n = bench_int("n", 2000000);
    producers = bench_int("producers", 4);
    consumers = bench_int("consumers", 4);
    cap_ = bench_int("cap", 128);
    if (producers < 1 || consumers < 1 || producers > MAXSIDE || consumers > MAXSIDE)
        bench_fail("producers and consumers must be 1..%d", MAXSIDE);
    bench_run(bench_main, NULL);
    for (int64_t i = 0; i < consumers; i++) {
        total += got[i];
        s += sum[i];
    }
    if (total != n || s != n * (n + 1) / 2)
        bench_fail("received %" PRId64 " messages summing to %" PRId64
                   ", want %" PRId64 " summing to %" PRId64, total, s, n, n * (n + 1) / 2);
    bench_report(bench_str("name", "chan_buffered_4x4"), (double)elapsed / (double)n, "ns/op");
    return 0;
}
