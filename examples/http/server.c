/*
 * server.c - the listener, the set of open connections, graceful stop.
 *
 * http_serve accepts until http_shutdown closes the listener, spawning one
 * goroutine per connection (conn.c). Every connection is on a list under
 * s->mu from before its first read until just before its fd is closed, so
 * a goroutine holding s->mu may touch the fd of any listed connection.
 *
 * Graceful stop (SIGTERM in main.c): stop accepting (the listener's read
 * deadline is set to now: the acceptor wakes and closes it), let every request in
 * flight finish, close connections that wait idle between requests, then
 * return. A connection is "idle" while parked waiting for the first byte
 * of a next request; only those are cut, by setting their read deadline to
 * now (goro_fd_deadline wakes the parked read with -ETIMEDOUT). The race
 * between a connection going idle and the stop is closed Dekker-style,
 * every access seq_cst:
 *
 *   connection                            http_shutdown
 *   arm its idle deadline                 stopping = 1
 *   idle = 1                              lock mu
 *   if stopping: close                    for each conn: if idle: deadline = now
 *   read (parks)                          unlock mu
 *
 * Either the connection sees stopping, or the stopper sees idle (and its
 * deadline comes after the connection's own). A connection whose read
 * brought a request just as the stopper cut it clears idle and, when it
 * sees stopping, re-arms its read deadline under mu (http_conn_busy_again),
 * after the stopper's pass or before it (then the stopper sees idle = 0),
 * so the request in flight is answered (with Connection: close). After
 * grace_ns, whatever is still open is cut the same way, idle or not.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void http_server_init(struct http_server *s)
{
    memset(s, 0, sizeof *s);
    s->addr = "127.0.0.1";
    s->port = 8080;
    s->head_max = 8 << 10;
    s->target_max = 2 << 10;
    s->headers_max = 100;
    s->body_max = 1 << 20;
    s->idle_ns = 30 * HTTP_SEC;
    s->read_ns = 10 * HTTP_SEC;
    s->write_ns = 30 * HTTP_SEC;
    s->grace_ns = 10 * HTTP_SEC;
    s->listen_fd = -1;
    s->root_fd = -1;
    goro_mutex_init(&s->mu);
    goro_cond_init(&s->drained);
}

int http_listen(struct http_server *s)
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

bool http_stopping(struct http_server *s)
{
    return __atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST) != 0;
}

/* Link a new connection (counted in nconns by the acceptor already).
 * -ECANCELED when the server is stopping: leave at once. */
int http_conn_enter(struct http_server *s, struct http_conn *c)
{
    goro_mutex_lock(&s->mu);
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    goro_mutex_unlock(&s->mu);
    return http_stopping(s) ? -ECANCELED : 0;
}

/* Unlink; the caller closes the fd after this returns. */
void http_conn_leave(struct http_server *s, struct http_conn *c)
{
    goro_mutex_lock(&s->mu);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (--s->nconns == 0)
        goro_cond_broadcast(&s->drained);
    goro_mutex_unlock(&s->mu);
}

/* A connection cut while idle got a request after all: give it its read
 * deadline back, under mu so that no cut lands after this. */
void http_conn_busy_again(struct http_server *s, struct http_conn *c)
{
    goro_mutex_lock(&s->mu);
    c->deadline = goro_now() + s->read_ns;
    goro_fd_deadline(c->fd, c->deadline, goro_now() + s->write_ns);
    goro_mutex_unlock(&s->mu);
}

/* Cut connections: the idle ones, or all. Needs s->mu. */
static void cut(struct http_server *s, bool all)
{
    int64_t now = goro_now();
    for (struct http_conn *c = s->conns; c != NULL; c = c->next)
        if (all || __atomic_load_n(&c->idle, __ATOMIC_SEQ_CST))
            goro_fd_deadline(c->fd, now, now);
}

void http_shutdown(struct http_server *s)
{
    if (__atomic_exchange_n(&s->stopping, 1, __ATOMIC_SEQ_CST))
        return;
    goro_mutex_lock(&s->mu);
    cut(s, false);
    /* the acceptor wakes with -ETIMEDOUT, sees stopping and closes the
     * listener itself (closing it here could race with its next accept) */
    if (s->listen_fd >= 0)
        goro_fd_deadline(s->listen_fd, goro_now(), 0);
    goro_mutex_unlock(&s->mu);
}

int http_serve(struct http_server *s)
{
    for (;;) {
        int fd = goro_accept(s->listen_fd, NULL, NULL);
        if (http_stopping(s)) {
            if (fd >= 0)
                goro_close(fd);
            break;
        }
        if (fd < 0) {
            fprintf(stderr, "http: accept: %s\n", strerror(-fd));
            if (fd == -EMFILE || fd == -ENFILE)
                goro_sleep(HTTP_SEC / 10); /* out of fds: let some close */
            continue;
        }
        __atomic_add_fetch(&s->accepted, 1, __ATOMIC_RELAXED);
        struct http_accept *a = malloc(sizeof *a);
        if (a == NULL) {
            goro_close(fd);
            continue;
        }
        a->srv = s;
        a->fd = fd;
        goro_mutex_lock(&s->mu);
        s->nconns++; /* before the spawn: the drain below waits for it */
        goro_mutex_unlock(&s->mu);
        if (goro_go(http_conn_serve, a) < 0) {
            free(a);
            goro_close(fd);
            goro_mutex_lock(&s->mu);
            if (--s->nconns == 0)
                goro_cond_broadcast(&s->drained);
            goro_mutex_unlock(&s->mu);
        }
    }
    goro_mutex_lock(&s->mu); /* http_shutdown touches it under mu */
    goro_close(s->listen_fd);
    s->listen_fd = -1;
    goro_mutex_unlock(&s->mu);

    /* Drain: requests in flight finish; after the grace period, cut all. */
    goro_mutex_lock(&s->mu);
    int64_t until = goro_now() + s->grace_ns;
    while (s->nconns > 0) {
        int64_t left = until - goro_now();
        if (left <= 0) {
            cut(s, true);
            goro_cond_wait(&s->drained, &s->mu, -1);
        } else {
            goro_cond_wait(&s->drained, &s->mu, left);
        }
    }
    goro_mutex_unlock(&s->mu);
    if (s->root_fd >= 0)
        close(s->root_fd);
    s->root_fd = -1;
    return 0;
}
