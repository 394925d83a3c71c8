/*
 * netpoll_epoll.c - the poller thread on the epoll backend.
 *
 * One thread per running runtime blocks in epoll_wait. Its timeout is the
 * earliest timer deadline (timer.c), so sleeping goroutines, select timeouts
 * and I/O deadlines all wake from here; an eventfd registered in the same
 * epoll set cuts the wait short when an earlier timer is added or the
 * runtime stops. With no timer pending and no fd waited on, the thread
 * sleeps without a timeout: an idle runtime burns no CPU.
 *
 * epoll_pwait2 takes a nanosecond timeout; where the kernel lacks it
 * (before 5.11) the wait falls back to epoll_wait, rounded up to whole
 * milliseconds so that a timer never fires early.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static struct {
    int epfd;
    int evfd;
    pthread_t thread;
    bool started;
    volatile AO_t stop;
    volatile AO_t breaking;     /* a break is already pending in the eventfd */
    bool have_pwait2;
} np = { .epfd = -1, .evfd = -1 };

static void drain_eventfd(void)
{
    uint64_t v;
    while (read(np.evfd, &v, sizeof v) == (ssize_t)sizeof v)
        ;
    /* release: a breaker that saw breaking == 1 wrote before we cleared it;
     * later breakers write again */
    AO_store_release(&np.breaking, 0);
}

static int poll_wait(struct epoll_event *evs, int max, int64_t timeout_ns)
{
    if (np.have_pwait2) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        int n = epoll_pwait2(np.epfd, evs, max, tsp, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        np.have_pwait2 = false;
    }
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t m = (timeout_ns + 999999) / 1000000;
        ms = m > 1000000000 ? 1000000000 : (int)m;
    }
    return epoll_wait(np.epfd, evs, max, ms);
}

static void *poller_main(void *arg)
{
    (void)arg;
    goro__mark_internal_thread();
    struct epoll_event evs[128];
    while (!AO_load_acquire(&np.stop)) {
        int64_t next = goro__timers_run(goro_now());
        int64_t timeout = -1;
        if (next >= 0) {
            timeout = next - goro_now();
            if (timeout < 0)
                timeout = 0;
        }
        int n = poll_wait(evs, (int)(sizeof evs / sizeof evs[0]), timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goro__fatal("netpoll: epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                drain_eventfd();
            else
                goro__netpoll_event(evs[i].data.ptr, evs[i].events);
        }
        goro__netpoll_flush();
    }
    return NULL;
}

int goro__netpoll_epfd(void)
{
    return np.epfd;
}

int goro__netpoll_start(void)
{
    np.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (np.epfd < 0)
        return -errno;
    np.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (np.evfd < 0) {
        int e = errno;
        close(np.epfd);
        np.epfd = -1;
        return -e;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(np.epfd, EPOLL_CTL_ADD, np.evfd, &ev) != 0) {
        int e = errno;
        close(np.evfd);
        np.evfd = -1;
        close(np.epfd);
        np.epfd = -1;
        return -e;
    }
    np.have_pwait2 = true;
    np.stop = 0;
    np.breaking = 0;
    goro__netpoll_init();
    /* the poller thread must not take the process's signals meant for
     * workers or the program: block all but the synchronous ones */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&np.thread, NULL, poller_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        goro__netpoll_fini();
        close(np.evfd);
        close(np.epfd);
        np.evfd = np.epfd = -1;
        return -e;
    }
    np.started = true;
    return 0;
}

void goro__netpoll_break(void)
{
    if (np.evfd < 0)
        return;
    /* full: only the first breaker since the last drain writes */
    if (!AO_compare_and_swap_full(&np.breaking, 0, 1))
        return;
    uint64_t one = 1;
    ssize_t r = write(np.evfd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, the poller wakes anyway */
}

void goro__netpoll_stop(void)
{
    if (!np.started)
        return;
    AO_store_release(&np.stop, 1);
    AO_store(&np.breaking, 0);
    goro__netpoll_break();
    pthread_join(np.thread, NULL);
    np.started = false;
    goro__netpoll_fini();
    close(np.evfd);
    close(np.epfd);
    np.evfd = np.epfd = -1;
}
