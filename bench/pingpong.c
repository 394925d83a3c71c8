/*
 * pingpong - two goroutines bounce a counter over two unbuffered channels,
 * n round trips (run with 1 and with 2 workers).
 *
 * Figure: ns per round trip (two sends, two receives). Verified: every reply
 * is the request plus one, and the echoer saw all n requests.
 */
#include "bench.h"

static int64_t    n, echoed, elapsed;
static goro_chan *ping, *pong;
static goro_wg    wg;

static void echoer(void *arg)
{
    int64_t v;
    while (goro_chan_recv(ping, &v) == 1) {
        v++;
        echoed++;
        if (goro_chan_send(pong, &v) != 0)
            bench_fail("send on pong failed");
    }
    goro_wg_done(&wg);
}

static void bench_main(void *arg)
{
    int64_t t0, v;
    bench_check_procs();
    ping = goro_chan_make(sizeof(int64_t), 0);
    pong = goro_chan_make(sizeof(int64_t), 0);
    if (!ping || !pong)
        bench_fail("goro_chan_make: %s", strerror(errno));
    goro_wg_init(&wg);
    goro_wg_add(&wg, 1);
    t0 = bench_now();
    bench_go(echoer, NULL);
    for (int64_t i = 0; i < n; i++) {
        if (goro_chan_send(ping, &i) != 0)
            bench_fail("send on ping failed");
        if (goro_chan_recv(pong, &v) != 1 || v != i + 1)
            bench_fail("round trip %" PRId64 ": got %" PRId64 ", want %" PRId64, i, v, i + 1);
    }
    elapsed = bench_now() - t0;
    goro_chan_close(ping);
    goro_wg_wait(&wg);
    goro_chan_free(ping);
    goro_chan_free(pong);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 1000000);
    bench_run(bench_main, NULL);
    if (echoed != n)
        bench_fail("echoer saw %" PRId64 " requests, want %" PRId64, echoed, n);
    bench_report(bench_str("name", "pingpong"), (double)elapsed / (double)n, "ns/op");
    return 0;
}
