/*
 * examples/http - an HTTP/1.1 server on goro, one goroutine per connection.
 *
 *   examples/http/http [-a ADDR] [-p PORT] [-r DIR]   (default 127.0.0.1:8080)
 *   curl -v http://127.0.0.1:8080/
 *
 * Keep-alive and pipelining; HTTP/1.0 clients as RFC 9112 says;
 * Content-Length and chunked request bodies (read and dropped, at most
 * 1 MiB); limits on the head (8 KiB, 100 header lines: 431), the target
 * (2 KiB: 414) and the body (413); HEAD; read and idle deadlines. Without
 * -r, GET / answers "Hello from goro!" and every other path is 404; with
 * -r DIR, paths are files under DIR (static.c). SIGINT or SIGTERM stops it
 * gracefully: no new connections, requests in flight are answered, idle
 * connections closed, then the process exits 0.
 *
 * The files, one concern each: server.c (listener, connections, stop),
 * conn.c (the per-connection loop), parse.c (the protocol), static.c
 * (files). The signals are blocked in every thread and read from a
 * signalfd by the main goroutine.
 */
#include "http.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

static struct http_server server;
static goro_wg served;
static int sig_fd = -1;
static int status; /* the exit status */

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [-a ADDR] [-p PORT] [-r DIR]\n"
            "An HTTP/1.1 server on goro: keep-alive, pipelining, static files.\n"
            "  -a, --addr ADDR   address to listen on (default 127.0.0.1; \"::\" or\n"
            "                    \"0.0.0.0\" for every address)\n"
            "  -p, --port PORT   port (default 8080; 0 picks a free one)\n"
            "  -r, --root DIR    serve the files under DIR (default: only GET /,\n"
            "                    which answers \"Hello from goro!\")\n"
            "  -h, --help        this text\n"
            "SIGINT or SIGTERM stops the server after the requests in flight.\n",
            prog);
}

static void serve(void *arg)
{
    (void)arg;
    http_serve(&server);
    goro_wg_done(&served);
}

static void main_goroutine(void *arg)
{
    (void)arg;
    int rc = server.root ? http_root_open(&server) : 0;
    if (rc < 0) {
        fprintf(stderr, "http: root %s: %s\n", server.root, strerror(-rc));
        status = 1;
        return;
    }
    rc = http_listen(&server);
    if (rc < 0) {
        fprintf(stderr, "http: listen on %s port %d: %s\n", server.addr, server.port, strerror(-rc));
        status = 1;
        return;
    }
    printf("http: listening on %s port %d (%d workers%s%s)\n", server.addr, server.port,
           goro_procs(), server.root ? ", files under " : "", server.root ? server.root : "");
    fflush(stdout);
    goro_wg_init(&served);
    goro_wg_add(&served, 1);
    goro_go(serve, NULL);

    struct signalfd_siginfo si;
    if (goro_read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
        printf("http: %s, finishing the requests in flight\n", strsignal((int)si.ssi_signo));
    http_shutdown(&server);
    goro_wg_wait(&served);
    printf("http: answered %ld requests on %ld connections\n",
           __atomic_load_n(&server.requests, __ATOMIC_RELAXED),
           __atomic_load_n(&server.accepted, __ATOMIC_RELAXED));
    goro_close(sig_fd);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "addr", required_argument, NULL, 'a' },
        { "port", required_argument, NULL, 'p' },
        { "root", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    http_server_init(&server);
    int c;
    while ((c = getopt_long(argc, argv, "a:p:r:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'a':
            server.addr = optarg;
            break;
        case 'p':
            server.port = (int)strtol(optarg, &end, 10);
            if (*optarg == 0 || *end != 0 || server.port < 0 || server.port > 65535) {
                fprintf(stderr, "http: bad port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'r':
            server.root = optarg;
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
        perror("http: signalfd");
        return 1;
    }
    int rc = goro_run(main_goroutine, NULL);
    if (rc < 0) {
        fprintf(stderr, "http: goro_run: %s\n", strerror(-rc));
        return 1;
    }
    return status;
}
