/*
 * netpoll.h - the descriptor record shared by netpoll.c (the table, the
 * slots, close, deadlines, the poller thread) and io.c (the calls that try
 * a system call and wait on EAGAIN). Private to netpoll/.
 */
#ifndef GORO_NETPOLL_H
#define GORO_NETPOLL_H

#include "internal.h"

#include <signal.h>

#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Direction index of slot[], deadline[], evseq[], timer[]. */
enum { PD_R = 0, PD_W = 1 };

/* Registration of the fd with the kernel poll set. */
enum goro__pd_state {
    PD_NEW = 0,  /* not registered (never used, or closed since) */
    PD_POLLED,   /* non-blocking and in the poll set, edge-triggered */
    PD_NOPOLL,   /* the poll set refuses it (regular file): calls never wait */
};

struct goro__pd_waiter;

/*
 * One per fd number, made the first time goro I/O touches the fd and kept
 * (reset at goro_close) until goro_run returns. Fields read on every call
 * come first.
 */
struct goro__pd {
    volatile AO_t slot[2];     /* per direction: enum pd_slot value or G* (netpoll.c) */
    volatile AO_t evseq[2];    /* readiness events delivered per direction; written
                                  only by the poller thread */
    volatile AO_t deadline[2]; /* int64 goro_now() deadline; 0: none */
    volatile AO_t seq;         /* generation, bumped by goro_close: events and
                                  timers carry it, a stale one is ignored */
    volatile AO_t nwait;       /* goroutines inside goro__pd_wait; close waits for 0 */
    volatile AO_t drained;     /* the read direction's "drained" hint (goro__pd_drained):
                                  DRAINED_KEY of the last short read, 0: none */
    /* 32-bit words, in pairs (a record is two cache lines: pdmem.c) */
    volatile uint32_t state;   /* enum goro__pd_state */
    volatile uint32_t closing; /* goro_close in progress: waiters leave with -ECANCELED */
    volatile uint32_t nohint;  /* the poller saw hang-up, error or urgent data: a
                                  short read may not have drained; until close */
    int fd;
    volatile uint32_t lock;    /* spinlock: q, closer, registration */
    volatile uint32_t dlock;   /* spinlock: serializes deadline changes and close;
                                  taken before lock, never by the poller thread */
    volatile uint32_t nqueued; /* waiters on q (read without the lock) */
    bool is_socket;            /* recv instead of read, send(MSG_NOSIGNAL) instead of
                                  write; set before state */
    bool tcp;                  /* a TCP socket: short reads drain (goro__pd_drained) */
    struct goro__pd_waiter *q; /* queued waiters (under lock) */
    G *closer;                 /* goroutine in goro_close waiting for nwait == 0 */
    struct goro__timer *timers; /* the two deadline timers (arg: this pd), made
                                   on the first deadline (pdmem.c), or NULL */
};

/* The record's 32-bit words (state, closing, nohint, nqueued): as AO_load,
 * AO_load_acquire, AO_store and AO_store_release do for an AO_t. */
#define NP_LOAD(p)          __atomic_load_n((p), __ATOMIC_RELAXED)
#define NP_LOAD_ACQ(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define NP_STORE(p, v)      __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define NP_STORE_REL(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* The descriptor table: two levels, fd >> PD_LEAF_BITS picks a leaf of
 * pointers. Lock-free lookup; entries are only ever added until fini. */
#define PD_LEAF_BITS 15
#define PD_LEAF_SIZE (1u << PD_LEAF_BITS)
#define PD_TOP_SIZE (1u << (31 - PD_LEAF_BITS))
extern volatile AO_t goro__pd_table[PD_TOP_SIZE] GORO_HIDDEN; /* struct goro__pd ** */

/* The descriptor of fd, or NULL if it has none yet. */
static inline struct goro__pd *goro__pd_lookup(int fd)
{
    /* acquire: a leaf / record published with a CAS is seen initialized */
    volatile AO_t *leaf = (volatile AO_t *)AO_load_acquire(&goro__pd_table[(unsigned)fd >> PD_LEAF_BITS]);
    if (unlikely(leaf == NULL))
        return NULL;
    return (struct goro__pd *)AO_load_acquire(&leaf[(unsigned)fd & (PD_LEAF_SIZE - 1)]);
}

/* Slow half of goro__pd_get: make the record, register the fd. */
int goro__pd_init(int fd, struct goro__pd **out) GORO_HIDDEN;

/* The descriptor of fd, registered (made non-blocking, added to the poll
 * set) on first use. 0 or -errno (-EBADF for a bad fd). */
static inline int goro__pd_get(int fd, struct goro__pd **out)
{
    if (unlikely(fd < 0))
        return -EBADF;
    struct goro__pd *pd = goro__pd_lookup(fd);
    /* acquire: is_socket and the registration were written before state */
    if (likely(pd != NULL && NP_LOAD_ACQ(&pd->state) != PD_NEW)) {
        *out = pd;
        return 0;
    }
    return goro__pd_init(fd, out);
}

/* A fd the library just created (accept, socket): forget any record left
 * by an fd of the same number closed behind goro's back, register it.
 * kind: PD_FILE, PD_SOCKET (not TCP) or PD_TCP. */
enum { PD_FILE = 0, PD_SOCKET = 1, PD_TCP = 2 };
int goro__pd_fresh(int fd, int kind) GORO_HIDDEN;

/* -ETIMEDOUT if direction d's deadline has passed, else 0. Cheap when no
 * deadline is set (one load). */
static inline int goro__pd_deadline_check(struct goro__pd *pd, int d)
{
    /* no ordering: a deadline set concurrently with the call may or may
     * not apply to it, as in Go */
    int64_t dl = (int64_t)AO_load(&pd->deadline[d]);
    if (likely(dl == 0))
        return 0;
    return goro_now() >= dl ? -ETIMEDOUT : 0;
}

/* The readiness snapshot to take before the system call that may EAGAIN. */
static inline AO_t goro__pd_snap(struct goro__pd *pd, int d)
{
    /* acquire: ordered before the system call that follows */
    return AO_load_acquire(&pd->evseq[d]);
}

/*
 * The "drained" hint (Tokio's readiness clearing, adapted). On a TCP socket
 * a read(2) that returns less than was asked has emptied the receive queue
 * (tcp_recvmsg stops early only with nothing left to copy, or at an urgent
 * mark), and any byte that arrives after it raises a new edge-triggered
 * event. So the next goro_read need not try: if no event was delivered
 * since the snapshot taken before the short read (evseq unchanged), the
 * read would get EAGAIN, and the goroutine parks at once, saving the
 * failed system call every request/response exchange otherwise makes.
 * Two cases where a short read leaves something behind, both made visible
 * to us by the events themselves: a hang-up (the EOF after the data must
 * still be read) and urgent data (the read stops at the mark). Events with
 * EPOLLRDHUP, EPOLLHUP, EPOLLERR or EPOLLPRI set `nohint` before evseq
 * moves, for good: one delivered before our snapshot is seen by the load
 * after the read; one after it moved evseq, which voids the hint anyway.
 * The key holds the fd's generation too, so that a short read racing a
 * goro_close never leaves a hint for the next fd of that number.
 */
static inline AO_t goro__pd_drained_key(struct goro__pd *pd, AO_t snap)
{
    return (AO_t)1 << 63 | (AO_load(&pd->seq) & 0x7fffffff) << 32 | (snap & 0xffffffff);
}

/* After a read on pd (snapshot snap) returned n of len bytes. */
static inline void goro__pd_read_done(struct goro__pd *pd, AO_t snap, size_t n, size_t len)
{
    if (n < len && n > 0 && pd->tcp && !NP_LOAD(&pd->nohint))
        AO_store(&pd->drained, goro__pd_drained_key(pd, snap));
}

/* The last read on pd drained it and no event came since snap. */
static inline bool goro__pd_drained(struct goro__pd *pd, AO_t snap)
{
    return AO_load(&pd->drained) == goro__pd_drained_key(pd, snap);
}

/* The call on pd got EAGAIN in direction d after snapshot snap: park until
 * the fd may be ready. 0: try the call again; -ECANCELED (closed),
 * -ETIMEDOUT (deadline), -EAGAIN (the fd cannot be polled). */
int goro__pd_wait(struct goro__pd *pd, int d, AO_t snap) GORO_HIDDEN;

/* goro_wait_fd: wait for any of modes (GORO_READABLE | GORO_WRITABLE) with
 * snapshots snap[] taken before checking readiness, at most timeout_ns. */
int goro__pd_wait_modes(struct goro__pd *pd, int modes, const AO_t snap[2],
                        int64_t timeout_ns) GORO_HIDDEN;

/* goro_close of a descriptor: wake its waiters with -ECANCELED, wait until
 * they left, reset the record, close the fd. 0 or -errno. */
int goro__pd_close(struct goro__pd *pd) GORO_HIDDEN;

/* Set direction d's deadline (0: none), waking its waiters if it passed. */
int goro__pd_set_deadline(struct goro__pd *pd, int d, int64_t when) GORO_HIDDEN;
void goro__pd_drop_timers(struct goro__pd *pd) GORO_HIDDEN;

/* pdmem.c: records (zeroed), one returned unused, a record's deadline
 * timers (made on first use; NULL when out of memory; under pd.dlock),
 * and freeing them all once no thread runs. */
struct goro__pd *goro__pdmem_alloc(void) GORO_HIDDEN;
void goro__pdmem_unused(struct goro__pd *pd) GORO_HIDDEN;
struct goro__timer *goro__pdmem_timers(struct goro__pd *pd,
                                       void (*fire)(struct goro__timer *)) GORO_HIDDEN;
void goro__pdmem_fini(void) GORO_HIDDEN;

/* The I/O calls' system calls, straight to the kernel: the result, or
 * -errno. libc's read, write and send are cancellation points, and each
 * call brackets the system call with two atomic updates of the thread's
 * cancellation state (__pthread_enable_asynccancel and its pair: 2.2% of
 * the HTTP example's CPU at 1,000 connections); no worker is ever
 * cancelled. No errno either (after a park the goroutine may be on another
 * thread: NP_ERRNO below). Under a sanitizer, libc's calls, which its
 * interceptors check and annotate. */
#if defined(__x86_64__) && !GORO_ANN_FIBERS
static inline long goro__sys3(long nr, long a, long b, long c)
{
    long r;
    __asm__ __volatile__("syscall"
                         : "=a"(r)
                         : "0"(nr), "D"(a), "S"(b), "d"(c)
                         : "rcx", "r11", "memory");
    return r;
}
static inline long goro__sys6(long nr, long a, long b, long c, long d, long e, long f)
{
    long r;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ __volatile__("syscall"
                         : "=a"(r)
                         : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return r;
}
#define goro__sys_write(fd, buf, len) goro__sys3(SYS_write, (fd), (long)(buf), (long)(len))
#define goro__sys_send(fd, buf, len, flags) \
    goro__sys6(SYS_sendto, (fd), (long)(buf), (long)(len), (flags), 0, 0)
/* recvfrom(fd, buf, len, 0, NULL, -) if sock, else read(fd, buf, len): one
 * system call instruction, its number chosen (read ignores the extra
 * registers). Five registers, not goro__sys6's six: recvfrom reads addrlen
 * (r9) only when src_addr is not NULL, and a sixth live register made
 * goro_read's frame 16 bytes bigger, and with it every goroutine parked in
 * goro_read (idle_conns_mem: +33 bytes a connection). */
static inline long goro__sys_recv_or_read(bool sock, long fd, void *buf, size_t len)
{
    long r;
    register long r10 __asm__("r10") = 0; /* recvfrom's flags */
    register long r8 __asm__("r8") = 0;   /* its src_addr: NULL, so the kernel
                                             never reads r9 (addrlen) */
    __asm__ __volatile__("syscall"
                         : "=a"(r)
                         : "0"(sock ? SYS_recvfrom : SYS_read), "D"(fd), "S"(buf), "d"(len),
                           "r"(r10), "r"(r8)
                         : "rcx", "r11", "memory");
    return r;
}
#else
#define GORO__SYS_LIBC(call) ({ long r_ = (long)(call); r_ < 0 ? -(long)NP_ERRNO : r_; })
#define goro__sys_write(fd, buf, len) GORO__SYS_LIBC(write((fd), (buf), (len)))
#define goro__sys_send(fd, buf, len, flags) GORO__SYS_LIBC(send((fd), (buf), (len), (flags)))
#define goro__sys_recv_or_read(sock, fd, buf, len) \
    GORO__SYS_LIBC((sock) ? recv((fd), (buf), (len), 0) : read((fd), (buf), (len)))
#endif

/* errno of the calling thread, read through a pointer the compiler cannot
 * cache across a context switch (glibc declares __errno_location const). */
extern int *(*volatile goro__np_errno)(void) GORO_HIDDEN;
#define NP_ERRNO (*goro__np_errno())

/* A test-and-test-and-set spinlock. Holders never park except by handing
 * the lock to goro__park's unlock function, which releases it at once after
 * the switch; critical sections are short. */
static inline void goro__np_lock(volatile uint32_t *l)
{
    for (unsigned n = 0;; n++) {
        /* acquire: the previous holder's writes are visible once we own it */
        uint32_t free_ = 0;
        if (__atomic_load_n(l, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(l, &free_, 1, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return;
        if (n < 64)
            __asm__ __volatile__("pause" ::: "memory");
        else
            sched_yield(); /* the holder's thread may be descheduled */
    }
}

static inline void goro__np_unlock(volatile uint32_t *l)
{
    /* release: our writes under the lock before the next holder's reads */
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* Threads of the runtime's own (the poller, the goro_blocking helpers) must
 * not take the process's asynchronous signals, which are meant for the
 * workers or the program (a signalfd reader relies on that): create them
 * with all but the synchronous ones blocked. Returns pthread_create's
 * value. */
static inline int goro__np_thread_create(pthread_t *t, const pthread_attr_t *attr,
                                         void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(t, attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return e;
}

#endif /* GORO_NETPOLL_H */
