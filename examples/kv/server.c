/*
 * server.c - the listener, one goroutine per connection, the expiry
 * sweeper, and stopping.
 *
 * A connection reads into its input buffer, runs every complete command
 * in it (a pipelined batch), and writes all the replies in one write
 * before it reads again. The input buffer starts at 16 KiB and grows only
 * as far as one command needs (a bulk argument is at most bulk_max); past
 * twice that plus 64 KiB the command is refused. Both buffers shrink back
 * once a large command has gone.
 *
 * Connections are counted in nconns from the spawn and listed under mu
 * while their fd is open, as in examples/http. kv_shutdown cuts them all
 * (a read and write deadline of now: Redis, too, drops its clients when
 * it stops) and the listener, and closes quit, which stops the sweeper;
 * kv_serve returns when the last connection has closed.
 */
#include "kv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define IN_START (16 << 10)
#define OUT_FLUSH (64 << 10)

struct kv_conn {
    struct kv_conn *prev, *next; /* in srv->conns, under srv->mu */
    struct kv_server *srv;
    int fd;
    char *in;
    size_t cap, start, len;      /* unconsumed input: in[start, len) */
    struct kv_out out;
    struct kv_arg *argv;
    size_t argcap;
    char errbuf[KV_ERRBUF];
};

struct kv_spawn {
    struct kv_server *srv;
    int fd;
};

int kv_server_init(struct kv_server *s)
{
    memset(s, 0, sizeof *s);
    s->addr = "127.0.0.1";
    s->port = 6380;
    s->lim.bulk_max = 8 << 20;
    s->lim.args_max = 65536;
    s->lim.inline_max = 64 << 10;
    s->sweep_ns = 100 * KV_MS;
    s->listen_fd = -1;
    goro_mutex_init(&s->mu);
    goro_cond_init(&s->drained);
    s->quit = goro_chan_make(0, 0);
    if (s->quit == NULL)
        return -ENOMEM;
    if (kv_db_init(&s->db) < 0) {
        goro_chan_free(s->quit);
        return -ENOMEM;
    }
    return 0;
}

void kv_server_free(struct kv_server *s)
{
    kv_db_free(&s->db);
    goro_chan_free(s->quit);
    s->quit = NULL;
}

int kv_listen(struct kv_server *s)
{
    int fd = goro_listen_tcp(s->addr, s->port, 4096);
    if (fd < 0)
        return fd;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    s->listen_fd = fd;
    return 0;
}

static bool stopping(struct kv_server *s)
{
    return __atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST) != 0;
}

static void conn_done(struct kv_server *s)
{
    goro_mutex_lock(&s->mu);
    if (--s->nconns == 0)
        goro_cond_broadcast(&s->drained);
    goro_mutex_unlock(&s->mu);
}

static bool flush(struct kv_conn *c)
{
    if (c->out.len == 0)
        return true;
    ssize_t n = goro_write(c->fd, c->out.buf, c->out.len);
    c->out.len = 0;
    if (c->out.cap > 4 * OUT_FLUSH) { /* a large reply went: give it back */
        free(c->out.buf);
        c->out.buf = NULL;
        c->out.cap = 0;
    }
    return n >= 0;
}

/* Room to read into: compact, grow for a command that needs it, shrink
 * after one. false: the command is over the limit. */
static bool make_room(struct kv_conn *c)
{
    size_t have = c->len - c->start;
    if (have == 0 && c->cap > 4 * IN_START) {
        char *b = realloc(c->in, IN_START);
        if (b != NULL) {
            c->in = b;
            c->cap = IN_START;
        }
    }
    if (c->start > 0) {
        memmove(c->in, c->in + c->start, have);
        c->start = 0;
        c->len = have;
    }
    if (c->len < c->cap)
        return true;
    size_t limit = 2 * c->srv->lim.bulk_max + (64 << 10);
    if (c->cap >= limit)
        return false;
    size_t cap = c->cap * 2 < limit ? c->cap * 2 : limit;
    char *b = realloc(c->in, cap);
    if (b == NULL)
        return false;
    c->in = b;
    c->cap = cap;
    return true;
}

static void serve_conn(struct kv_conn *c)
{
    struct kv_server *s = c->srv;
    for (;;) {
        /* every complete command there is */
        for (;;) {
            size_t argc;
            const char *err = NULL;
            ssize_t k = kv_parse(&s->lim, c->in + c->start, c->len - c->start, &c->argv,
                                 &c->argcap, &argc, &err, c->errbuf);
            if (k < 0) {
                kv_out_error(&c->out, err);
                flush(c);
                return;
            }
            if (k == 0)
                break;
            c->start += (size_t)k;
            if (argc > 0) {
                __atomic_add_fetch(&s->commands, 1, __ATOMIC_RELAXED);
                if (kv_exec(&s->db, c->argv, argc, &c->out) == KV_CLOSE) {
                    flush(c);
                    return;
                }
            }
            if (c->out.oom)
                return;
            if (c->out.len >= OUT_FLUSH && !flush(c))
                return;
        }
        if (!flush(c))
            return;
        if (!make_room(c)) {
            kv_out_error(&c->out, "ERR Protocol error: command too large");
            flush(c);
            return;
        }
        ssize_t n = goro_read(c->fd, c->in + c->len, c->cap - c->len);
        if (n <= 0)
            return; /* EOF (also mid-command), reset, or kv_shutdown */
        c->len += (size_t)n;
    }
}

static void conn_main(void *arg)
{
    struct kv_spawn *sp = arg;
    struct kv_server *s = sp->srv;
    struct kv_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->in = malloc(IN_START)) == NULL) {
        free(c);
        goro_close(sp->fd);
        free(sp);
        conn_done(s);
        return;
    }
    c->srv = s;
    c->fd = sp->fd;
    c->cap = IN_START;
    free(sp);

    goro_mutex_lock(&s->mu);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    goro_mutex_unlock(&s->mu);
    if (!stopping(s)) /* kv_shutdown cuts listed connections only */
        serve_conn(c);

    goro_mutex_lock(&s->mu);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    goro_mutex_unlock(&s->mu);
    goro_close(c->fd);
    free(c->in);
    free(c->out.buf);
    free(c->argv);
    free(c);
    conn_done(s);
}

/* Expiry: a sixteenth of every shard each sweep_ns, on a goro ticker. */
static void sweeper(void *arg)
{
    struct kv_server *s = arg;
    goro_timer *t = goro_timer_new(s->sweep_ns, s->sweep_ns);
    if (t != NULL) {
        for (;;) {
            int64_t when;
            goro_case cs[2] = {
                { .ch = s->quit, .op = GORO_RECV },
                { .ch = goro_timer_chan(t), .op = GORO_RECV, .elem = &when },
            };
            if (goro_select(cs, 2, -1) == 0)
                break;
            kv_db_sweep(&s->db, 16);
        }
        goro_timer_free(t);
    } else {
        fprintf(stderr, "kv: no expiry sweeper: %s (expired keys go when touched)\n",
                strerror(errno));
    }
    goro_wg_done(&s->sweeper);
}

void kv_shutdown(struct kv_server *s)
{
    if (__atomic_exchange_n(&s->stopping, 1, __ATOMIC_SEQ_CST))
        return;
    goro_mutex_lock(&s->mu);
    int64_t now = goro_now();
    if (s->listen_fd >= 0)
        goro_fd_deadline(s->listen_fd, now, 0);
    for (struct kv_conn *c = s->conns; c != NULL; c = c->next)
        goro_fd_deadline(c->fd, now, now);
    goro_mutex_unlock(&s->mu);
    goro_chan_close(s->quit);
}

int kv_serve(struct kv_server *s)
{
    goro_wg_init(&s->sweeper);
    goro_wg_add(&s->sweeper, 1);
    if (goro_go(sweeper, s) < 0)
        goro_wg_done(&s->sweeper);
    for (;;) {
        int fd = goro_accept(s->listen_fd, NULL, NULL);
        if (stopping(s)) {
            if (fd >= 0)
                goro_close(fd);
            break;
        }
        if (fd < 0) {
            fprintf(stderr, "kv: accept: %s\n", strerror(-fd));
            if (fd == -EMFILE || fd == -ENFILE)
                goro_sleep(100 * KV_MS);
            continue;
        }
        struct kv_spawn *sp = malloc(sizeof *sp);
        if (sp == NULL) {
            goro_close(fd);
            continue;
        }
        sp->srv = s;
        sp->fd = fd;
        goro_mutex_lock(&s->mu);
        s->nconns++;
        goro_mutex_unlock(&s->mu);
        if (goro_go(conn_main, sp) < 0) {
            free(sp);
            goro_close(fd);
            conn_done(s);
        }
    }
    goro_mutex_lock(&s->mu);
    goro_close(s->listen_fd);
    s->listen_fd = -1;
    while (s->nconns > 0)
        goro_cond_wait(&s->drained, &s->mu, -1);
    goro_mutex_unlock(&s->mu);
    goro_wg_wait(&s->sweeper);
    return 0;
}
