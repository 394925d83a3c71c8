/*
 * examples/echo - a TCP echo server: one goroutine per connection, written
 * as plain blocking code.
 *
 *   examples/echo/echo [-a ADDR] [-p PORT]     (default 127.0.0.1:7000)
 *   echo hello | nc 127.0.0.1 7000
 *
 * SIGINT or SIGTERM stops it cleanly: the signals are blocked in every
 * thread and read from a signalfd by the main goroutine, which closes the
 * listener (the acceptor wakes with -ECANCELED) and returns; goro_run then
 * returns and the process exits 0.
 */
#include <goro.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

#define BUF_SIZE (16 << 10)

static const char *addr = "127.0.0.1";
static int port = 7000;
static int listen_fd = -1;
static goro_wg acceptor_done;
static volatile long served, active; /* updated with __atomic builtins */

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [-a ADDR] [-p PORT]\n"
            "A TCP echo server on goro: every byte a client sends comes back.\n"
            "  -a, --addr ADDR   address to listen on (default 127.0.0.1; \"::\" or\n"
            "                    \"0.0.0.0\" for every address)\n"
            "  -p, --port PORT   port (default 7000; 0 picks a free one)\n"
            "  -h, --help        this text\n"
            "SIGINT or SIGTERM stops the server.\n",
            prog);
}

static void serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(BUF_SIZE);
    __atomic_add_fetch(&active, 1, __ATOMIC_RELAXED);
    if (buf != NULL) {
        for (;;) {
            ssize_t n = goro_read(fd, buf, BUF_SIZE);
            if (n <= 0 || goro_write(fd, buf, (size_t)n) < 0)
                break;
        }
    }
    free(buf);
    goro_close(fd);
    __atomic_sub_fetch(&active, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&served, 1, __ATOMIC_RELAXED);
}

static void acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = goro_accept(listen_fd, NULL, NULL);
        if (fd == -ECANCELED)
            break; /* the listener was closed: shutting down */
        if (fd < 0) {
            fprintf(stderr, "echo: accept: %s\n", strerror(-fd));
            if (fd == -EMFILE || fd == -ENFILE)
                goro_sleep(100 * 1000000); /* out of fds: let some close */
            continue;
        }
        if (goro_go(serve, (void *)(intptr_t)fd) < 0)
            goro_close(fd);
    }
    goro_wg_done(&acceptor_done);
}

static void main_goroutine(void *arg)
{
    int sfd = *(int *)arg;
    listen_fd = goro_listen_tcp(addr, port, 1024);
    if (listen_fd < 0) {
        fprintf(stderr, "echo: listen on %s port %d: %s\n", addr, port, strerror(-listen_fd));
        *(int *)arg = -1;
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(listen_fd, (struct sockaddr *)&ss, &len);
    int bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    printf("echo: listening on %s port %d (%d workers)\n", addr, bound, goro_procs());
    fflush(stdout);

    goro_wg_init(&acceptor_done);
    goro_wg_add(&acceptor_done, 1);
    goro_go(acceptor, NULL);

    struct signalfd_siginfo si;
    ssize_t n = goro_read(sfd, &si, sizeof si); /* parks until a signal */
    if (n == (ssize_t)sizeof si)
        printf("echo: %s, shutting down\n", strsignal((int)si.ssi_signo));
    goro_close(listen_fd);
    goro_wg_wait(&acceptor_done);
    printf("echo: served %ld connections (%ld still open, dropped)\n",
           __atomic_load_n(&served, __ATOMIC_RELAXED), __atomic_load_n(&active, __ATOMIC_RELAXED));
    goro_close(sfd);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "addr", required_argument, NULL, 'a' },
        { "port", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "a:p:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'a':
            addr = optarg;
            break;
        case 'p':
            port = (int)strtol(optarg, &end, 10);
            if (*optarg == 0 || *end != 0 || port < 0 || port > 65535) {
                fprintf(stderr, "echo: bad port '%s'\n", optarg);
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

    /* Blocked here, so in every thread goro_run starts; read from a signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("echo: signalfd");
        return 1;
    }
    int arg = sfd;
    int rc = goro_run(main_goroutine, &arg);
    if (rc < 0) {
        fprintf(stderr, "echo: goro_run: %s\n", strerror(-rc));
        return 1;
    }
    return arg < 0 ? 1 : 0;
}
