/*
 * netpoll_epoll.c - the poll-set backend on Linux epoll.
 *
 * The backend is this whole file; another one (kqueue) would be a sibling
 * file implementing the same six goro__pollset_* calls, chosen by the
 * Makefile. netpoll.c runs the poller thread and never sees an epoll type.
 *
 * Every fd is added once, edge-triggered, for input, output and hang-up:
 * the kernel then reports each new arrival of readiness exactly once, and
 * netpoll.c's slot state machine keeps it until a goroutine consumes it, so
 * no epoll_ctl is needed per wait. The event's 64-bit data carries the fd in
 * the low half and the descriptor's generation in the high half, so an
 * event for an fd closed and reopened meanwhile is recognised as stale.
 *
 * An eventfd in the same set (data = WAKE_KEY) cuts the wait short: a timer
 * earlier than the current timeout was added, or the runtime stops.
 *
 * epoll_pwait2 takes a nanosecond timeout; where the kernel lacks it (before
 * 5.11) the wait falls back to epoll_wait, rounded up to whole milliseconds
 * so that a timer never fires early.
 */
#include "internal.h"
#include "annotate.h"

#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define WAKE_KEY UINT64_MAX
#define MAX_EVENTS 256

static struct {
    int epfd;
    int evfd;
    volatile AO_t waking;       /* a wake-up is already pending in the eventfd */
    bool have_pwait2;
    struct epoll_event evs[MAX_EVENTS]; /* poller thread only */
} ps = { .epfd = -1, .evfd = -1 };

int goro__pollset_open(void)
{
    int e;
    ps.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ps.epfd < 0)
        return -errno;
    ps.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ps.evfd < 0) {
        e = -errno;
        goto out_close_epfd;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_KEY };
    if (epoll_ctl(ps.epfd, EPOLL_CTL_ADD, ps.evfd, &ev) != 0) {
        e = -errno;
        goto out_close_evfd;
    }
    ps.have_pwait2 = !goro__on_valgrind; /* Valgrind 3.19 lacks epoll_pwait2 */
    AO_store(&ps.waking, 0);
    return 0;

out_close_evfd:
    close(ps.evfd);
    ps.evfd = -1;
out_close_epfd:
    close(ps.epfd);
    ps.epfd = -1;
    return e;
}

void goro__pollset_close(void)
{
    if (ps.evfd >= 0)
        close(ps.evfd);
    if (ps.epfd >= 0)
        close(ps.epfd);
    ps.evfd = ps.epfd = -1;
}

int goro__pollset_add(int fd, uint64_t key)
{
    struct epoll_event ev = {
        /* EPOLLPRI: urgent data voids the drained hint (netpoll.h) */
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
        .data.u64 = key,
    };
    if (epoll_ctl(ps.epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    /* EPERM: a regular file or directory, which is always ready */
    return -errno;
}

int goro__pollset_del(int fd)
{
    struct epoll_event ev = { 0 }; /* ignored, but kernels before 2.6.9 want it */
    return epoll_ctl(ps.epfd, EPOLL_CTL_DEL, fd, &ev) == 0 ? 0 : -errno;
}

static void drain_wake(void)
{
    uint64_t v;
    while (read(ps.evfd, &v, sizeof v) == (ssize_t)sizeof v)
        ;
    /* release: a waker that saw waking == 1 wrote before we cleared it;
     * later wakers write again */
    AO_store_release(&ps.waking, 0);
}

void goro__pollset_wake(void)
{
    if (ps.evfd < 0)
        return;
    /* full: only the first waker since the last drain writes */
    if (!AO_compare_and_swap_full(&ps.waking, 0, 1))
        return;
    uint64_t one = 1;
    ssize_t r = write(ps.evfd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, the poller wakes anyway */
}

int goro__pollset_wait(int64_t timeout_ns, struct goro__np_batch *b, bool own_buffer)
{
    int n;
    struct epoll_event local[64];
    struct epoll_event *evs = own_buffer ? local : ps.evs;
    int max = own_buffer ? (int)(sizeof local / sizeof local[0]) : MAX_EVENTS;
    if (own_buffer && timeout_ns != 0)
        return -EINVAL;
    if (ps.have_pwait2) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        n = epoll_pwait2(ps.epfd, evs, max, tsp, NULL);
        if (n < 0 && errno == ENOSYS) {
            ps.have_pwait2 = false;
            return 0;
        }
    } else {
        int ms = -1;
        if (timeout_ns >= 0) {
            int64_t m = (timeout_ns + 999999) / 1000000;
            ms = m > 1000000000 ? 1000000000 : (int)m;
        }
        n = epoll_wait(ps.epfd, evs, max, ms);
    }
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        if (evs[i].data.u64 == WAKE_KEY) {
            if (!own_buffer) /* a worker leaves it to the poller */
                drain_wake();
            continue;
        }
        int modes = 0;
        /* as Go: errors and hang-ups wake both directions, so the waiter's
         * system call reports them */
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
            modes |= GORO_READABLE;
        if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
            modes |= GORO_NP_NOHINT;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            modes |= GORO_WRITABLE;
        if (modes)
            goro__netpoll_ready(evs[i].data.u64, modes, b);
    }
    return n;
}
