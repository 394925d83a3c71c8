/*
 * io.c - the I/O calls of goro.h: read, write, accept, connect, wait_fd,
 * deadlines, close, and TCP listen/dial.
 *
 * Every call has the same shape: try the system call on the non-blocking
 * fd; if it did something, return; on EAGAIN wait in the fd's descriptor
 * (netpoll.c) and try again. The hot path (data already there) costs the
 * system call itself, a two-load table lookup and a few loads of the
 * descriptor: no lock, no allocation, no other system call. The readiness
 * snapshot (goro__pd_snap) is taken before each attempt so that an event
 * arriving between the EAGAIN and the park is never lost. goro_read on a
 * TCP socket whose last read was short parks without the read that would
 * fail (netpoll.h, the drained hint).
 *
 * read and write go straight to the kernel (netpoll.h, goro__sys3):
 * they return -errno. On a socket they are recv and send. The other
 * calls' errno is read through NP_ERRNO right after the call that set it:
 * after a park the goroutine may run on another thread, whose errno the
 * compiler would not know to reload.
 */
#include "netpoll.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t goro_read(int fd, void *buf, size_t len)
{
    if (unlikely(goro__self() == NULL))
        return -EPERM;
    struct goro__pd *pd;
    int rc = goro__pd_get(fd, &pd);
    if (unlikely(rc < 0))
        return rc;
    bool hint = true;   /* once a call: after a wait, always try the read */
    for (;;) {
        if (unlikely((rc = goro__pd_deadline_check(pd, PD_R)) != 0))
            return rc;
        AO_t snap = goro__pd_snap(pd, PD_R);
        if (hint && goro__pd_drained(pd, snap)) {
            /* the last read drained it and nothing came since: the read
             * would get EAGAIN (netpoll.h, the drained hint) */
            hint = false;
            if ((rc = goro__pd_wait(pd, PD_R, snap)) < 0)
                return rc;
            continue;
        }
        /* sockets: recv, which skips read's file layer (vfs_read and its
         * checks); on a cold socket that is 300-500 ns of a 600-1,100 ns
         * read (9,000 connections, 2026-12-04). Not for len 0: there recv
         * would consume a pending empty datagram, which read leaves. */
        ssize_t n = goro__sys_recv_or_read(pd->is_socket && len > 0, fd, buf, len);
        if (likely(n >= 0)) {
            goro__pd_read_done(pd, snap, (size_t)n, len);
            return n;
        }
        int e = (int)-n;
        if (e == EINTR)
            continue;
        /* buf in a compacted goroutine's stack (README rule 5) */
        if (e == EFAULT && goro__idle_touch(buf, len))
            continue;
        if (e != EAGAIN)
            return -e;
        if ((rc = goro__pd_wait(pd, PD_R, snap)) < 0)
            return rc;
    }
}

ssize_t goro_write(int fd, const void *buf, size_t len)
{
    if (unlikely(goro__self() == NULL))
        return -EPERM;
    if (unlikely(len > SSIZE_MAX))
        return -EINVAL;
    struct goro__pd *pd;
    int rc = goro__pd_get(fd, &pd);
    if (unlikely(rc < 0))
        return rc;
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        if (unlikely((rc = goro__pd_deadline_check(pd, PD_W)) != 0))
            return rc;
        AO_t snap = goro__pd_snap(pd, PD_W);
        /* sockets: -EPIPE rather than SIGPIPE for a peer that went away */
        ssize_t n = pd->is_socket ? goro__sys_send(fd, p, left, MSG_NOSIGNAL)
                                  : goro__sys_write(fd, p, left);
        if (likely(n >= 0)) {
            p += n;
            left -= (size_t)n;
            continue;
        }
        int e = (int)-n;
        if (e == EINTR)
            continue;
        if (e == EFAULT && goro__idle_touch(p, left))
            continue;
        if (e != EAGAIN)
            return -e;
        if ((rc = goro__pd_wait(pd, PD_W, snap)) < 0)
            return rc;
    }
    return (ssize_t)len;
}

int goro_accept(int listen_fd, struct sockaddr *addr, socklen_t *addrlen)
{
    if (goro__self() == NULL)
        return -EPERM;
    struct goro__pd *pd;
    int rc = goro__pd_get(listen_fd, &pd);
    if (rc < 0)
        return rc;
    for (;;) {
        if ((rc = goro__pd_deadline_check(pd, PD_R)) != 0)
            return rc;
        AO_t snap = goro__pd_snap(pd, PD_R);
        int fd = accept4(listen_fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if ((rc = goro__pd_fresh(fd, pd->tcp ? PD_TCP : PD_SOCKET)) < 0) {
                close(fd);
                return rc;
            }
            /* as Go: no Nagle delay on TCP (fails harmlessly elsewhere) */
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        int e = NP_ERRNO;
        if (e == EINTR || e == ECONNABORTED)
            continue;
        if (e != EAGAIN)
            return -e; /* a regular file: -ENOTSOCK; not listening: -EINVAL */
        if ((rc = goro__pd_wait(pd, PD_R, snap)) < 0)
            return rc;
    }
}

/* connect on pd's fd; nowait: -ETIMEDOUT rather than waiting. */
static int connect_pd(struct goro__pd *pd, int fd, const struct sockaddr *addr,
                      socklen_t addrlen, bool nowait)
{
    int rc;
    if ((rc = goro__pd_deadline_check(pd, PD_W)) != 0)
        return rc;
    AO_t snap = goro__pd_snap(pd, PD_W);
    if (connect(fd, addr, addrlen) == 0)
        return 0;
    int e = NP_ERRNO;
    if (e == EISCONN)
        return 0;
    if (e != EINPROGRESS && e != EALREADY && e != EINTR)
        return -e;
    if (nowait)
        return -ETIMEDOUT;
    for (;;) {
        if ((rc = goro__pd_wait(pd, PD_W, snap)) < 0)
            return rc;
        snap = goro__pd_snap(pd, PD_W);
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
            return -NP_ERRNO;
        switch (err) {
        case 0: {
            /* writable may be an early or spurious wakeup: are we connected? */
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
                return 0;
            if (NP_ERRNO != ENOTCONN)
                return -NP_ERRNO;
            break;
        }
        case EINPROGRESS:
        case EALREADY:
        case EINTR:
            break;
        case EISCONN:
            return 0;
        default:
            return -err; /* ECONNREFUSED, ETIMEDOUT, ENETUNREACH, ... */
        }
    }
}

int goro_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    if (goro__self() == NULL)
        return -EPERM;
    if (addr == NULL)
        return -EINVAL;
    struct goro__pd *pd;
    int rc = goro__pd_get(fd, &pd);
    if (rc < 0)
        return rc;
    return connect_pd(pd, fd, addr, addrlen, false);
}

int goro_wait_fd(int fd, int events, int64_t timeout_ns)
{
    if (events == 0 || (events & ~(GORO_READABLE | GORO_WRITABLE)) != 0)
        return -EINVAL;
    if (goro__self() == NULL)
        return -EPERM;
    struct goro__pd *pd;
    int rc = goro__pd_get(fd, &pd);
    if (rc < 0)
        return rc;
    int64_t until = -1;
    if (timeout_ns > 0) {
        int64_t now = goro_now();
        until = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    }
    for (;;) {
        for (int d = 0; d < 2; d++)
            if ((events & (1 << d)) && (rc = goro__pd_deadline_check(pd, d)) != 0)
                return rc;
        /* edge-triggered: readiness that predates us sends no event, so
         * ask the kernel first; an event after the snapshot sends us back */
        AO_t snap[2] = { goro__pd_snap(pd, PD_R), goro__pd_snap(pd, PD_W) };
        struct pollfd p = {
            .fd = fd,
            .events = (short)(((events & GORO_READABLE) ? POLLIN : 0) |
                              ((events & GORO_WRITABLE) ? POLLOUT : 0)),
        };
        int n = poll(&p, 1, 0);
        if (n < 0) {
            if (NP_ERRNO == EINTR)
                continue;
            return -NP_ERRNO;
        }
        if (n > 0)
            return (p.revents & POLLNVAL) ? -EBADF : 0; /* errors and hang-ups count as ready */
        int64_t left = -1;
        if (timeout_ns == 0)
            return -ETIMEDOUT;
        if (until >= 0 && (left = until - goro_now()) <= 0)
            return -ETIMEDOUT;
        if ((rc = goro__pd_wait_modes(pd, events, snap, left)) < 0)
            return rc;
    }
}

int goro_fd_deadline(int fd, int64_t read_deadline_ns, int64_t write_deadline_ns)
{
    if (read_deadline_ns < 0 || write_deadline_ns < 0)
        return -EINVAL;
    struct goro__pd *pd;
    int rc = goro__pd_get(fd, &pd);
    if (rc < 0)
        return rc;
    /* the first nonzero deadline makes both timers, so only it can fail,
     * and then nothing changed (without timers both deadlines were 0) */
    if ((rc = goro__pd_set_deadline(pd, PD_R, read_deadline_ns)) < 0 ||
        (rc = goro__pd_set_deadline(pd, PD_W, write_deadline_ns)) < 0)
        return rc;
    return 0;
}

int goro_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    struct goro__pd *pd = goro__running() ? goro__pd_lookup(fd) : NULL;
    if (pd != NULL)
        return goro__pd_close(pd);
    if (close(fd) == 0 || NP_ERRNO == EINTR) /* Linux frees the fd even on EINTR */
        return 0;
    return -NP_ERRNO;
}

/* ------------------------------------------------------------------
 * TCP: name resolution, listen, dial
 * ------------------------------------------------------------------ */

struct resolve {
    const char *host;
    char port[8];
    bool passive;
    struct addrinfo *res;
};

static intptr_t resolve_fn(void *arg)
{
    struct resolve *r = arg;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | (r->passive ? AI_PASSIVE : 0);
    int e = getaddrinfo(r->host, r->port, &hints, &r->res);
    switch (e) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_FAIL:
        return -ENOENT; /* no such host */
    case EAI_AGAIN:
        return -EAGAIN; /* temporary resolver failure */
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SYSTEM:
        return -errno;
    default:
        return -EINVAL;
    }
}

/* A literal IPv4/IPv6 address (brackets allowed) into ss; false if not one. */
static bool parse_literal(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        host = buf;
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof *sin;
        return true;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof *sin6;
        return true;
    }
    return false;
}

/* Addresses for host:port: one literal in *lit (res NULL), or a getaddrinfo
 * list in *res (on a helper thread when called from a goroutine: the
 * resolver blocks and wants a deep stack). */
static int resolve(const char *host, int port, bool passive, struct addrinfo *lit,
                   struct sockaddr_storage *ss, struct addrinfo **res)
{
    *res = NULL;
    socklen_t len;
    if (parse_literal(host, port, ss, &len)) {
        memset(lit, 0, sizeof *lit);
        lit->ai_family = ss->ss_family;
        lit->ai_socktype = SOCK_STREAM;
        lit->ai_protocol = IPPROTO_TCP;
        lit->ai_addr = (struct sockaddr *)ss;
        lit->ai_addrlen = len;
        return 0;
    }
    struct resolve r = { .host = host, .passive = passive };
    snprintf(r.port, sizeof r.port, "%d", port);
    intptr_t rc = goro__self() ? goro_blocking(resolve_fn, &r) : resolve_fn(&r);
    if (rc < 0)
        return (int)rc;
    if (r.res == NULL)
        return -ENOENT;
    *res = r.res;
    return 0;
}

static int listen_one(const struct addrinfo *ai, int backlog, bool dualstack)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -NP_ERRNO;
    int one = 1, zero = 0, rc;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dualstack ? &zero : &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        rc = -NP_ERRNO;
        goto out_close;
    }
    if ((rc = goro__pd_fresh(fd, PD_TCP)) < 0)
        goto out_close;
    return fd;

out_close:
    close(fd);
    return rc;
}

int goro_listen_tcp(const char *host, int port, int backlog)
{
    if (port < 0 || port > 65535)
        return -EINVAL;
    if (backlog <= 0)
        backlog = SOMAXCONN;
    struct sockaddr_storage ss;
    struct addrinfo lit, *res = NULL;
    int rc;
    if (host == NULL || *host == 0) {
        /* every address: IPv6 "::" taking IPv4 too, else IPv4 0.0.0.0 */
        rc = resolve("::", port, true, &lit, &ss, &res);
        if (rc == 0 && (rc = listen_one(&lit, backlog, true)) >= 0)
            return rc;
        rc = resolve("0.0.0.0", port, true, &lit, &ss, &res);
        return rc < 0 ? rc : listen_one(&lit, backlog, false);
    }
    if ((rc = resolve(host, port, true, &lit, &ss, &res)) < 0)
        return rc;
    if (res == NULL)
        return listen_one(&lit, backlog, false);
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if ((rc = listen_one(ai, backlog, false)) >= 0)
            break;
    freeaddrinfo(res);
    return rc;
}

static int dial_one(const struct addrinfo *ai, int64_t until, bool nowait)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -NP_ERRNO;
    struct goro__pd *pd;
    int rc = goro__pd_fresh(fd, PD_TCP);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if ((rc = goro__pd_get(fd, &pd)) < 0)
        goto out_close;
    if (until > 0 && (rc = goro__pd_set_deadline(pd, PD_W, until)) < 0)
        goto out_close;
    rc = connect_pd(pd, fd, ai->ai_addr, ai->ai_addrlen, nowait);
    if (rc < 0)
        goto out_close;
    if (until > 0) {
        goro__pd_set_deadline(pd, PD_W, 0);
        goro__pd_drop_timers(pd);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;

out_close:
    goro_close(fd);
    return rc;
}

int goro_dial_tcp(const char *host, int port, int64_t timeout_ns)
{
    if (goro__self() == NULL)
        return -EPERM;
    if (host == NULL || port <= 0 || port > 65535)
        return -EINVAL;
    int64_t until = 0;
    if (timeout_ns > 0) {
        int64_t now = goro_now();
        until = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    }
    struct sockaddr_storage ss;
    struct addrinfo lit, *res = NULL;
    int rc = resolve(host, port, false, &lit, &ss, &res);
    if (rc < 0)
        return rc;
    if (res == NULL)
        return dial_one(&lit, until, timeout_ns == 0);
    /* every address in the resolver's order, within one overall timeout */
    rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (until > 0 && goro_now() >= until) {
            rc = -ETIMEDOUT;
            break;
        }
        if ((rc = dial_one(ai, until, timeout_ns == 0)) >= 0)
            break;
    }
    freeaddrinfo(res);
    return rc;
}
