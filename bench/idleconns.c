/*
 * idleconns - what a mostly idle server costs: conns TCP connections on
 * loopback, both ends in this process, each end held by a goroutine blocked
 * in a read (the server end echoes what it reads; the client end reports
 * what it reads to main). After they have stayed idle idle_ms (goro
 * compacts their stacks), one of two figures (what=):
 *   mem    bytes per connection: RSS plus page tables, minus the same before
 *          the connections (two goroutines and two fds a connection);
 *   wake   microseconds per round trip through `sample` connections chosen
 *          at random: main writes on the client end, the server goroutine
 *          wakes and echoes, the client goroutine wakes and hands the reply
 *          to main (the price of waking two idle goroutines).
 * Listens on `ports` ports, as one port gives only ~28,000 connections
 * from one address. Needs 2 * conns + a few fds: it raises RLIMIT_NOFILE
 * (the hard limit too when it may: CAP_SYS_RESOURCE), else makes as many as
 * fit and says so.
 *
 * Verified: every connection established and parked, every echo equal to
 * what was sent, every goroutine ended at the close.
 */
#include "bench.h"
#include <atomic_ops.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define MSG 16
#define MAXPORTS 16

static int64_t conns, sample, idle_ms, nports;
static const char *what;
static int lfd[MAXPORTS], port[MAXPORTS];
static int *cfd;
static goro_chan *replies;
static goro_wg servers, clients, parked;
static volatile AO_t accepted, bad;
static double figure;

static void server_g(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[MSG];
    ssize_t r;
    goro_wg_done(&parked);
    while ((r = goro_read(fd, buf, sizeof buf)) > 0)
        if (goro_write(fd, buf, (size_t)r) != r)
            AO_fetch_and_add1(&bad);
    goro_close(fd);
    goro_wg_done(&servers);
}

static void acceptor_g(void *arg)
{
    int l = (int)(intptr_t)arg;
    for (;;) {
        int fd = goro_accept(l, NULL, NULL);
        if (fd < 0)
            break; /* closed by main */
        AO_fetch_and_add1(&accepted);
        bench_go(server_g, (void *)(intptr_t)fd);
    }
}

static void client_g(void *arg)
{
    int64_t i = (int64_t)(intptr_t)arg;
    char buf[MSG];
    goro_wg_done(&parked);
    for (;;) {
        size_t got = 0;
        ssize_t r = 1;
        while (got < MSG && (r = goro_read((int)cfd[i], buf + got, MSG - got)) > 0)
            got += (size_t)r;
        if (r <= 0)
            break;
        int64_t v;
        memcpy(&v, buf, sizeof v);
        if (v != i)
            AO_fetch_and_add1(&bad);
        goro_chan_send(replies, &i);
    }
    goro_wg_done(&clients);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void raise_nofile(int64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        bench_fail("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur >= (rlim_t)need)
        return;
    rl.rlim_cur = (rlim_t)need;
    if (rl.rlim_max < (rlim_t)need)
        rl.rlim_max = (rlim_t)need;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return;
    /* not allowed to raise the hard limit: as many as fit, said so */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        bench_fail("getrlimit: %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int64_t fit = ((int64_t)rl.rlim_max - 256) / 2;
    if (fit < 1000)
        bench_fail("%" PRId64 " connections need %" PRId64 " fds: raise the limit "
                   "(ulimit -n %" PRId64 ")", conns, need, need);
    bench_info("RLIMIT_NOFILE hard limit %lu: %" PRId64 " connections, not %" PRId64
               " (ulimit -Hn %" PRId64 " as root for all)", (unsigned long)rl.rlim_max, fit,
               conns, need);
    conns = fit;
}

static void bench_main(void *arg)
{
    bench_check_procs();
    cfd = calloc((size_t)conns, sizeof *cfd);
    replies = goro_chan_make(sizeof(int64_t), 1);
    goro_wg_init(&servers);
    goro_wg_init(&clients);
    goro_wg_init(&parked);
    goro_wg_add(&servers, conns);
    goro_wg_add(&clients, conns);
    goro_wg_add(&parked, 2 * conns);
    for (int p = 0; p < nports; p++) {
        lfd[p] = goro_listen_tcp("127.0.0.1", 0, 4096);
        if (lfd[p] < 0)
            bench_fail("listen: %s", strerror(-lfd[p]));
        struct sockaddr_in sin;
        socklen_t sl = sizeof sin;
        getsockname(lfd[p], (struct sockaddr *)&sin, &sl);
        port[p] = ntohs(sin.sin_port);
        bench_go(acceptor_g, (void *)(intptr_t)lfd[p]);
    }
    goro_sleep(20 * 1000000);
    int64_t before = bench_mem();
    for (int64_t i = 0; i < conns; i++) {
        int fd = goro_dial_tcp("127.0.0.1", port[i % nports], 10 * 1000000000LL);
        if (fd < 0)
            bench_fail("dial %" PRId64 ": %s", i, strerror(-fd));
        cfd[i] = fd;
        bench_go(client_g, (void *)(intptr_t)i);
    }
    goro_wg_wait(&parked);
    goro_sleep(idle_ms * 1000000);
    struct goro_stats st = bench_compaction_settle((uint64_t)(2 * conns));
    int64_t after = bench_mem();
    bench_info("%" PRId64 " connections: rss+pte +%" PRId64 " KiB, %" PRIu64
               " goroutines compacted", conns, (after - before) / 1024, st.stacks_compacted);
    if (strcmp(what, "mem") == 0) {
        figure = (double)(after - before) / (double)conns;
    } else {
        uint64_t x = 88172645463325252ull;
        int64_t t0 = bench_now();
        int64_t *each = calloc((size_t)sample, sizeof *each);
        for (int64_t k = 0; k < sample; k++) {
            int64_t tk = bench_now();
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int64_t i = (int64_t)(x % (uint64_t)conns), got = -1;
            char buf[MSG] = { 0 };
            memcpy(buf, &i, sizeof i);
            if (goro_write(cfd[i], buf, MSG) != MSG)
                bench_fail("write: connection %" PRId64, i);
            if (goro_chan_recv(replies, &got) != 1 || got != i)
                bench_fail("reply from %" PRId64 ", want %" PRId64, got, i);
            each[k] = bench_now() - tk;
        }
        figure = (double)(bench_now() - t0) / 1000.0 / (double)sample;
        qsort(each, (size_t)sample, sizeof *each, cmp64);
        bench_info("round trips: median %.1f us, p90 %.1f us, p99 %.1f us",
                   (double)each[sample / 2] / 1000, (double)each[sample * 9 / 10] / 1000,
                   (double)each[sample * 99 / 100] / 1000);
        free(each);
    }
    for (int p = 0; p < nports; p++)
        goro_close(lfd[p]);
    for (int64_t i = 0; i < conns; i++)
        goro_close(cfd[i]);
    goro_wg_wait(&clients);
    goro_wg_wait(&servers);
    if ((int64_t)AO_load(&accepted) != conns || AO_load(&bad) != 0)
        bench_fail("%lu accepted of %" PRId64 ", %lu bad echoes", (unsigned long)accepted, conns,
                   (unsigned long)bad);
    goro_chan_free(replies);
    free(cfd);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    conns = bench_int("conns", 100000);
    sample = bench_int("sample", 1000);
    idle_ms = bench_int("idle_ms", 1500);
    nports = bench_int("ports", 4);
    what = bench_str("what", "mem");
    if (nports < 1 || nports > MAXPORTS || (strcmp(what, "mem") && strcmp(what, "wake")))
        bench_fail("ports 1-%d, what=mem|wake", MAXPORTS);
    raise_nofile(2 * conns + 256);
    bench_run(bench_main, NULL);
    if (strcmp(what, "mem") == 0)
        bench_report(bench_str("name", "idle_conns_mem"), figure, "bytes/conn");
    else
        bench_report(bench_str("name", "idle_conns_wake"), figure, "us/roundtrip");
    return 0;
}
