/*
 * tcpecho - a TCP echo server and its clients in one program, on loopback.
 * The server listens on 127.0.0.1 only and runs one goroutine per connection
 * (read, write back). conns (64) client goroutines each dial once and do up to
 * rts round trips of a msg-byte message (write it, read it all back, check
 * it), stopping early at the time limit (secs). Both sides set TCP_NODELAY
 * (Go's default) and a deadline on every connection, so nothing can hang.
 *
 * Figure: round trips per second, all clients together. Verified: every echo
 * equals what was sent, and the server echoed exactly the bytes the clients
 * received.
 */
#include "bench.h"
#include <atomic_ops.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define MAXMSG 65536

static int64_t       conns, rts, msg, secs, elapsed, stop_at;
static int           lfd, port;
static goro_wg       clients, handlers;
static volatile AO_t server_bytes, client_rts, accepted;

static void nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        bench_fail("TCP_NODELAY: %s", strerror(errno));
}

static void handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t r;
    nodelay(fd);
    goro_fd_deadline(fd, stop_at + 5000000000LL, stop_at + 5000000000LL);
    while ((r = goro_read(fd, buf, sizeof buf)) > 0) {
        ssize_t w = goro_write(fd, buf, (size_t)r);
        if (w < 0)
            bench_fail("server write: %s", strerror((int)-w));
        AO_fetch_and_add(&server_bytes, (AO_t)r);
    }
    if (r < 0)
        bench_fail("server read: %s", strerror((int)-r));
    goro_close(fd);
    goro_wg_done(&handlers);
}

static void acceptor(void *arg)
{
    for (;;) {
        int fd = goro_accept(lfd, NULL, NULL);
        if (fd == -ECANCELED || fd == -EBADF)
            return; /* the listener was closed: the end */
        if (fd < 0)
            bench_fail("accept: %s", strerror(-fd));
        AO_fetch_and_add1(&accepted);
        bench_go(handler, (void *)(intptr_t)fd);
    }
}

static void client(void *arg)
{
    int64_t id = (int64_t)(intptr_t)arg, done = 0;
    unsigned char *out = malloc((size_t)msg), *in = malloc((size_t)msg);
    int fd;
    if (!out || !in)
        bench_fail("out of memory");
    fd = goro_dial_tcp("127.0.0.1", port, 5000000000LL);
    if (fd < 0)
        bench_fail("dial: %s", strerror(-fd));
    nodelay(fd);
    goro_fd_deadline(fd, stop_at + 5000000000LL, stop_at + 5000000000LL);
    for (int64_t i = 0; i < rts && goro_now() < stop_at; i++) {
        ssize_t w;
        for (int64_t k = 0; k < msg; k++)
            out[k] = (unsigned char)(id * 31 + i * 7 + k);
        w = goro_write(fd, out, (size_t)msg);
        if (w < 0)
            bench_fail("client write: %s", strerror((int)-w));
        for (int64_t got = 0; got < msg;) {
            ssize_t r = goro_read(fd, in + got, (size_t)(msg - got));
            if (r <= 0)
                bench_fail("client read: %s", r == 0 ? "early EOF" : strerror((int)-r));
            got += r;
        }
        if (memcmp(in, out, (size_t)msg) != 0)
            bench_fail("client %" PRId64 ": round trip %" PRId64 " echoed wrong bytes", id, i);
        done++;
    }
    goro_close(fd);
    free(out);
    free(in);
    AO_fetch_and_add(&client_rts, (AO_t)done);
    goro_wg_done(&clients);
}

static void bench_main(void *arg)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int64_t t0;

    bench_check_procs();
    lfd = goro_listen_tcp("127.0.0.1", 0, 1024);
    if (lfd < 0)
        bench_fail("listen: %s", strerror(-lfd));
    if (getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        bench_fail("getsockname: %s", strerror(errno));
    port = ntohs(sa.sin_port);
    goro_wg_init(&clients);
    goro_wg_init(&handlers);
    goro_wg_add(&clients, conns);
    goro_wg_add(&handlers, conns); /* one handler per client connection */
    bench_go(acceptor, NULL);
    t0 = bench_now();
    stop_at = goro_now() + secs * 1000000000LL;
    for (int64_t i = 0; i < conns; i++)
        bench_go(client, (void *)(intptr_t)i);
    goro_wg_wait(&clients);
    elapsed = bench_now() - t0;
    goro_wg_wait(&handlers); /* each handler ends at its client's close */
    goro_close(lfd);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    conns = bench_int("conns", 64);
    rts = bench_int("rts", 2000);
    msg = bench_int("msg", 64);
    secs = bench_int("secs", 10);
    if (msg < 1 || msg > MAXMSG || conns < 1)
        bench_fail("bad msg or conns");
    bench_run(bench_main, NULL);
    if ((int64_t)AO_load(&accepted) != conns)
        bench_fail("server accepted %lu connections, want %" PRId64,
                   (unsigned long)AO_load(&accepted), conns);
    if (AO_load(&client_rts) == 0)
        bench_fail("no round trip completed");
    if ((int64_t)AO_load(&server_bytes) != (int64_t)AO_load(&client_rts) * msg)
        bench_fail("server echoed %lu bytes, clients got %" PRId64,
                   (unsigned long)AO_load(&server_bytes), (int64_t)AO_load(&client_rts) * msg);
    if ((int64_t)AO_load(&client_rts) < conns * rts)
        bench_info("time limit reached: %lu of %" PRId64 " round trips",
                   (unsigned long)AO_load(&client_rts), conns * rts);
    bench_report(bench_str("name", "tcp_echo"),
                 (double)AO_load(&client_rts) / ((double)elapsed / 1e9), "rt/s");
    return 0;
}
