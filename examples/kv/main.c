/*
 * examples/kv - a Redis-protocol (RESP2) key-value server on goro.
 *
 *   examples/kv/kv [-a ADDR] [-p PORT]     (default 127.0.0.1:6380)
 *   redis-cli -p 6380 set greeting hello
 *   redis-benchmark -p 6380 -t ping,set,get,incr,mset -P 16
 *
 * PING, ECHO, GET, SET (EX, PX, NX, XX), DEL, EXISTS, INCR, MGET, MSET,
 * EXPIRE, TTL, FLUSHALL, DBSIZE, QUIT; pipelining; one goroutine per
 * connection over a table of 64 shards under goro mutexes (db.c says why
 * not goroutines behind channels); expiry when a key is touched and by a
 * sweeper on a goro ticker. Protocol errors get Redis's error reply and
 * the connection closes; limits: 8 MiB a bulk argument, 65,536 arguments.
 * Nothing is kept on disk. SIGINT or SIGTERM closes the listener and every
 * connection, and the process exits 0.
 *
 * The files, one concern each: server.c (listener, connections, sweeper,
 * stop), resp.c (the protocol), cmd.c (the commands), db.c (the table).
 */
#include "kv.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

static struct kv_server server;
static goro_wg served;
static int sig_fd = -1;
static int status;

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [-a ADDR] [-p PORT]\n"
            "A Redis-protocol (RESP2) key-value server on goro, for redis-cli and\n"
            "redis-benchmark: PING ECHO GET SET DEL EXISTS INCR MGET MSET EXPIRE TTL\n"
            "FLUSHALL DBSIZE QUIT.\n"
            "  -a, --addr ADDR   address to listen on (default 127.0.0.1; \"::\" or\n"
            "                    \"0.0.0.0\" for every address)\n"
            "  -p, --port PORT   port (default 6380; 0 picks a free one)\n"
            "  -h, --help        this text\n"
            "SIGINT or SIGTERM stops the server.\n",
            prog);
}

static void serve(void *arg)
{
    (void)arg;
    kv_serve(&server);
    goro_wg_done(&served);
}

static void main_goroutine(void *arg)
{
    (void)arg;
    int rc = kv_listen(&server);
    if (rc < 0) {
        fprintf(stderr, "kv: listen on %s port %d: %s\n", server.addr, server.port, strerror(-rc));
        status = 1;
        return;
    }
    printf("kv: listening on %s port %d (%d workers)\n", server.addr, server.port, goro_procs());
    fflush(stdout);
    goro_wg_init(&served);
    goro_wg_add(&served, 1);
    goro_go(serve, NULL);

    struct signalfd_siginfo si;
    if (goro_read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
        printf("kv: %s, shutting down\n", strsignal((int)si.ssi_signo));
    kv_shutdown(&server);
    goro_wg_wait(&served);
    printf("kv: ran %ld commands, %zu keys at the end\n",
           __atomic_load_n(&server.commands, __ATOMIC_RELAXED), kv_db_size(&server.db));
    kv_server_free(&server);
    goro_close(sig_fd);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "addr", required_argument, NULL, 'a' },
        { "port", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    if (kv_server_init(&server) < 0) {
        fprintf(stderr, "kv: out of memory\n");
        return 1;
    }
    int c;
    while ((c = getopt_long(argc, argv, "a:p:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'a':
            server.addr = optarg;
            break;
        case 'p':
            server.port = (int)strtol(optarg, &end, 10);
            if (*optarg == 0 || *end != 0 || server.port < 0 || server.port > 65535) {
                fprintf(stderr, "kv: bad port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr, argv[0]);
        return 2;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_fd < 0) {
        perror("kv: signalfd");
        return 1;
    }
    int rc = goro_run(main_goroutine, NULL);
    if (rc < 0) {
        fprintf(stderr, "kv: goro_run: %s\n", strerror(-rc));
        return 1;
    }
    return status;
}
