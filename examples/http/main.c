/*
 * examples/http - a minimal HTTP/1.1 server with keep-alive: GET / (and
 * HEAD /) answer a fixed body, other paths 404, other methods 405. One
 * goroutine per connection; pipelined requests are answered in order, all
 * responses to what one read brought in going out in one write.
 *
 *   examples/http/http [-a ADDR] [-p PORT]     (default 127.0.0.1:8080)
 *   curl -v http://127.0.0.1:8080/
 *
 * An idle keep-alive connection is closed after 30 s (a read deadline).
 * SIGINT or SIGTERM stops it cleanly, as in examples/echo.
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
#include <strings.h>
#include <sys/signalfd.h>

#define REQ_MAX (8 << 10)   /* request head limit: 431 beyond */
#define OUT_MAX (64 << 10)
#define IDLE_NS (30 * (int64_t)1000000000)

static const char body[] = "Hello from goro!\n";
static const char *addr = "127.0.0.1";
static int port = 8080;
static int listen_fd = -1;
static goro_wg acceptor_done;
static volatile long requests; /* __atomic builtins */

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [-a ADDR] [-p PORT]\n"
            "A minimal HTTP/1.1 keep-alive server on goro: GET / answers \"%.*s\".\n"
            "  -a, --addr ADDR   address to listen on (default 127.0.0.1; \"::\" or\n"
            "                    \"0.0.0.0\" for every address)\n"
            "  -p, --port PORT   port (default 8080; 0 picks a free one)\n"
            "  -h, --help        this text\n"
            "SIGINT or SIGTERM stops the server.\n",
            prog, (int)sizeof body - 2, body);
}

struct conn {
    int fd;
    size_t len;          /* bytes in in[] */
    size_t skip;         /* request body bytes still to discard */
    size_t olen;
    char in[REQ_MAX];
    char out[OUT_MAX];
};

static bool flush_out(struct conn *c)
{
    if (c->olen == 0)
        return true;
    ssize_t n = goro_write(c->fd, c->out, c->olen);
    c->olen = 0;
    return n >= 0;
}

static bool respond(struct conn *c, int status, const char *reason, bool head_only,
                    bool keep_alive, const char *extra)
{
    const char *b = status == 200 ? body : reason;
    size_t blen = status == 200 ? sizeof body - 1 : strlen(reason);
    if (c->olen + 256 + blen > OUT_MAX && !flush_out(c))
        return false;
    int n = snprintf(c->out + c->olen, OUT_MAX - c->olen,
                     "HTTP/1.1 %d %s\r\nServer: goro-http\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n%s%s\r\n",
                     status, reason, status == 200 ? blen : blen + 1,
                     keep_alive ? "" : "Connection: close\r\n", extra ? extra : "");
    c->olen += (size_t)n;
    if (!head_only) {
        memcpy(c->out + c->olen, b, blen);
        c->olen += blen;
        if (status != 200)
            c->out[c->olen++] = '\n';
    }
    return true;
}

/* Does header `name` in [h, end) have a value containing `word`? */
static bool header_has(const char *h, const char *end, const char *name, const char *word)
{
    size_t nl = strlen(name), wl = strlen(word);
    for (const char *p = h; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            for (const char *v = p + nl + 1; v + wl <= eol; v++)
                if (strncasecmp(v, word, wl) == 0)
                    return true;
        }
        p = eol + 1;
    }
    return false;
}

static long content_length(const char *h, const char *end)
{
    static const char name[] = "content-length:";
    for (const char *p = h; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
            return strtol(p + sizeof name - 1, NULL, 10);
        p = eol + 1;
    }
    return 0;
}

/* Answer one complete request head [0, hlen). false: close the connection. */
static bool handle(struct conn *c, size_t hlen)
{
    char *req = c->in, *end = c->in + hlen;
    char *eol = memchr(req, '\r', hlen);
    char *sp1 = memchr(req, ' ', (size_t)(eol - req));
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    __atomic_add_fetch(&requests, 1, __ATOMIC_RELAXED);
    if (sp1 == NULL || sp2 == NULL || eol - sp2 - 1 != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        respond(c, 400, "Bad Request", false, false, NULL);
        return false;
    }
    bool http10 = sp2[8] == '0';
    const char *headers = eol + 2;
    bool keep = http10 ? header_has(headers, end, "connection", "keep-alive")
                       : !header_has(headers, end, "connection", "close");
    if (header_has(headers, end, "transfer-encoding", "chunked")) {
        respond(c, 501, "Not Implemented", false, false, NULL);
        return false;
    }
    long cl = content_length(headers, end);
    if (cl < 0) {
        respond(c, 400, "Bad Request", false, false, NULL);
        return false;
    }
    c->skip = (size_t)cl;
    size_t mlen = (size_t)(sp1 - req), plen = (size_t)(sp2 - sp1 - 1);
    bool get = mlen == 3 && memcmp(req, "GET", 3) == 0;
    bool head = mlen == 4 && memcmp(req, "HEAD", 4) == 0;
    bool ok;
    if (!get && !head)
        ok = respond(c, 405, "Method Not Allowed", false, keep, "Allow: GET, HEAD\r\n");
    else if (plen == 1 && sp1[1] == '/')
        ok = respond(c, 200, "OK", head, keep, NULL);
    else
        ok = respond(c, 404, "Not Found", head, keep, NULL);
    return ok && keep;
}

static void serve(void *arg)
{
    struct conn *c = malloc(sizeof *c);
    int fd = (int)(intptr_t)arg;
    if (c == NULL) {
        goro_close(fd);
        return;
    }
    c->fd = fd;
    c->len = c->skip = c->olen = 0;
    bool open = true;
    while (open) {
        goro_fd_deadline(fd, goro_now() + IDLE_NS, 0);
        ssize_t n = goro_read(fd, c->in + c->len, REQ_MAX - c->len);
        if (n <= 0)
            break; /* EOF, idle timeout, reset, or shutdown */
        c->len += (size_t)n;
        /* every complete request in the buffer, in order */
        for (;;) {
            if (c->skip > 0) { /* a request body we do not read */
                size_t d = c->skip < c->len ? c->skip : c->len;
                memmove(c->in, c->in + d, c->len - d);
                c->len -= d;
                c->skip -= d;
            }
            char *hend = c->len >= 4 ? memmem(c->in, c->len, "\r\n\r\n", 4) : NULL;
            if (hend == NULL) {
                if (c->len == REQ_MAX) {
                    respond(c, 431, "Request Header Fields Too Large", false, false, NULL);
                    open = false;
                }
                break;
            }
            size_t hlen = (size_t)(hend - c->in) + 4;
            if (!handle(c, hlen))
                open = false;
            memmove(c->in, c->in + hlen, c->len - hlen);
            c->len -= hlen;
            if (!open)
                break;
        }
        if (!flush_out(c))
            break;
    }
    flush_out(c);
    goro_close(fd);
    free(c);
}

static void acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = goro_accept(listen_fd, NULL, NULL);
        if (fd == -ECANCELED)
            break;
        if (fd < 0) {
            fprintf(stderr, "http: accept: %s\n", strerror(-fd));
            if (fd == -EMFILE || fd == -ENFILE)
                goro_sleep(100 * 1000000);
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
        fprintf(stderr, "http: listen on %s port %d: %s\n", addr, port, strerror(-listen_fd));
        *(int *)arg = -1;
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(listen_fd, (struct sockaddr *)&ss, &len);
    int bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    printf("http: listening on %s port %d (%d workers)\n", addr, bound, goro_procs());
    fflush(stdout);

    goro_wg_init(&acceptor_done);
    goro_wg_add(&acceptor_done, 1);
    goro_go(acceptor, NULL);

    struct signalfd_siginfo si;
    if (goro_read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
        printf("http: %s, shutting down\n", strsignal((int)si.ssi_signo));
    goro_close(listen_fd);
    goro_wg_wait(&acceptor_done);
    printf("http: answered %ld requests\n", __atomic_load_n(&requests, __ATOMIC_RELAXED));
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
                fprintf(stderr, "http: bad port '%s'\n", optarg);
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
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("http: signalfd");
        return 1;
    }
    int arg = sfd;
    int rc = goro_run(main_goroutine, &arg);
    if (rc < 0) {
        fprintf(stderr, "http: goro_run: %s\n", strerror(-rc));
        return 1;
    }
    return arg < 0 ? 1 : 0;
}
