/*
 * goro.h - the public API of goro, an M:N goroutine runtime for C.
 *
 * Goroutines are stackful green threads run by a few worker threads; blocking
 * calls below park the calling goroutine, never its worker thread.
 *
 * Conventions (they hold for every call in this header):
 *  - A call that can fail returns a negative errno value (-ENOMEM, -EINVAL,
 *    -EPIPE, -ETIMEDOUT, -ECANCELED, -EPERM, ...). Constructors that return a
 *    pointer return NULL and set errno. Never "-1 and errno": a goroutine may
 *    resume on another thread than the one it blocked on.
 *  - Only unrecoverable conditions (stack limit exceeded, deadlock, corrupted
 *    runtime state, a real segmentation fault) print "goro: fatal: ..." and
 *    end the process.
 *  - timeout_ns: < 0 waits without limit, 0 does not wait, > 0 waits at most
 *    that many nanoseconds.
 *  - A blocking call made from a thread that is not a goroutine returns
 *    -EPERM (goro_sleep: does nothing). goro_go, the try channel calls and
 *    goro_chan_close work from any thread while the runtime runs.
 */
#ifndef GORO_H
#define GORO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(GORO_BUILDING_LIBRARY)
#define GORO_API __attribute__((visibility("default")))
#else
#define GORO_API
#endif

/* ======================================================================
 * Runtime
 * ==================================================================== */

typedef void (*goro_fn)(void *arg);

/* Start the worker threads (GORO_PROCS, default: online CPUs), run
 * main_fn(arg) as goroutine 1 and return 0 when it returns. Goroutines still
 * alive then are discarded, as when Go's main returns. May be called again
 * afterwards, from any thread, but not from inside a goroutine (-EPERM) nor
 * while another goro_run is running (-EBUSY). -EINVAL if main_fn is NULL,
 * -ENOMEM / -EAGAIN if the workers cannot be started. */
GORO_API int goro_run(goro_fn main_fn, void *arg);

/* Spawn a goroutine running fn(arg). 0, -EINVAL (fn NULL), -ENOMEM (no memory
 * for a stack), -EPERM (no runtime is running). Callable from any thread
 * while the runtime runs; from a goroutine the child runs next on the same
 * worker. */
GORO_API int goro_go(goro_fn fn, void *arg);

/* Let other runnable goroutines run; the caller stays runnable. Does nothing
 * outside a goroutine. */
GORO_API void goro_yield(void);

/* The calling goroutine's id: 1 for main_fn, then 2, 3, ... in spawn order
 * (ids are never reused within one goro_run). 0 outside a goroutine. */
GORO_API uint64_t goro_id(void);

/* Number of worker threads of the running runtime; 0 when none runs. */
GORO_API int goro_procs(void);

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
GORO_API int64_t goro_now(void);

/* Park the calling goroutine for at least ns nanoseconds (ns <= 0: a yield).
 * Outside a goroutine: does nothing. */
GORO_API void goro_sleep(int64_t ns);

/* ======================================================================
 * Channels
 * ==================================================================== */

typedef struct goro_chan goro_chan;

/* Channels follow Go: FIFO per channel; a send on an unbuffered channel
 * completes only when a receiver takes the value (handed over directly, and
 * the woken goroutine runs next on the same worker); close wakes every
 * blocked receiver (0) and sender (-EPIPE).
 *
 * A NULL channel is never ready: the try calls return -EAGAIN and a select
 * skips the case. Where Go would block forever (send or receive on a nil
 * channel) the blocking calls return -EINVAL instead; goro_chan_close(NULL)
 * is -EINVAL; len and cap of NULL are 0; goro_chan_free(NULL) does nothing.
 * Argument errors are reported before -EPERM. */

/* A channel of cap elements of elem_size bytes (cap 0: unbuffered;
 * elem_size 0: a signal-only channel, Go's chan struct{}, whose elem
 * arguments may be NULL). NULL with errno EINVAL when elem_size * cap
 * overflows, ENOMEM when it cannot be allocated. */
GORO_API goro_chan *goro_chan_make(size_t elem_size, size_t cap);

/* Free a channel no goroutine uses any more. A channel that still has
 * blocked senders or receivers (or selects waiting on it) is NOT freed,
 * since they would wake on freed memory: a warning goes to stderr and the
 * channel stays valid (close it first, or let its waiters finish). */
GORO_API void goro_chan_free(goro_chan *ch);

/* Send elem (elem_size bytes copied from it). Blocks until a receiver takes
 * it or there is room in the buffer. 0; -EPIPE if the channel is closed or
 * is closed while blocked; -EINVAL if ch is NULL, or elem is NULL while
 * elem_size > 0; -EPERM outside a goroutine. */
GORO_API int goro_chan_send(goro_chan *ch, const void *elem);

/* Receive into elem (may be NULL to discard). 1: a value; 0: the channel is
 * closed and drained (elem zero-filled); -EINVAL if ch is NULL; -EPERM
 * outside a goroutine. */
GORO_API int goro_chan_recv(goro_chan *ch, void *elem);

/* Non-blocking forms, callable from any thread while the runtime runs (or
 * when none runs and no goroutine waits on ch). trysend: 0, -EAGAIN (full,
 * no receiver, or ch NULL), -EPIPE (closed), -EINVAL (elem NULL while
 * elem_size > 0). tryrecv: 1, 0 (closed and drained, elem zero-filled),
 * -EAGAIN (empty, no sender, or ch NULL). */
GORO_API int goro_chan_trysend(goro_chan *ch, const void *elem);
GORO_API int goro_chan_tryrecv(goro_chan *ch, void *elem);

/* Close: every blocked receiver wakes with 0, every blocked sender with
 * -EPIPE; buffered values can still be received. 0; -EPIPE if already
 * closed; -EINVAL if ch is NULL. Callable from any thread. */
GORO_API int goro_chan_close(goro_chan *ch);

/* Elements buffered now (a snapshot), and the buffer's capacity; 0 for
 * NULL. */
GORO_API size_t goro_chan_len(goro_chan *ch);
GORO_API size_t goro_chan_cap(goro_chan *ch);

/* ======================================================================
 * Select
 * ==================================================================== */

enum { GORO_SEND = 1, GORO_RECV = 2 };

typedef struct goro_case {
    goro_chan *ch;     /* NULL: this case is never ready (skipped) */
    int        op;     /* GORO_SEND or GORO_RECV */
    void      *elem;   /* value to send, or buffer to receive into (may be NULL
                          for RECV, and for SEND when elem_size is 0) */
    int        result; /* out, for the chosen case only: RECV 1 value / 0 closed
                          (elem zero-filled); SEND 0 sent / -EPIPE closed */
} goro_case;

/* Wait until one of n cases can proceed, and proceed with it. Returns the
 * index of that case. timeout_ns < 0: wait forever; 0: never block (Go's
 * default clause), -EAGAIN if none is ready; > 0: -ETIMEDOUT when it passes.
 * When several cases are ready one is chosen uniformly at random. The same
 * channel may appear in several cases, sends and receives mixed; a send
 * case on a closed channel is ready (result -EPIPE), as is a receive case.
 * Any number of cases (more than a few cost one malloc per call).
 * Errors, checked before any channel is touched (nothing is sent or
 * received): -EINVAL if cases is NULL with n > 0, a case's op is not
 * GORO_SEND/GORO_RECV, a SEND case has elem NULL while elem_size > 0, or no
 * case has a channel (n == 0 or all NULL) and timeout_ns < 0, which would
 * wait forever (with a timeout such a select just waits: -EAGAIN or
 * -ETIMEDOUT); -EPERM outside a goroutine unless timeout_ns is 0; -ENOMEM. */
GORO_API int goro_select(goro_case *cases, size_t n, int64_t timeout_ns);

/* ======================================================================
 * Sync
 * ==================================================================== */

/* Complete types so they can live on the stack or inside other structs; the
 * fields are private to the runtime. Initialise with the _init calls (or
 * zero-fill). They must not move while in use. */
typedef struct goro_wg    { uintptr_t goro_private_[4]; } goro_wg;
typedef struct goro_mutex { uintptr_t goro_private_[6]; } goro_mutex;

GORO_API void goro_wg_init(goro_wg *wg);
/* Add delta (may be negative) to the counter; a counter that goes below zero
 * or beyond INT32_MAX is a fatal misuse, as in Go. When it reaches zero every
 * waiter wakes; once Wait has returned the runtime no longer touches the
 * WaitGroup (its one waiter may free it). */
GORO_API void goro_wg_add(goro_wg *wg, int64_t delta);
GORO_API void goro_wg_done(goro_wg *wg);
/* Park until the counter is zero. 0; -EPERM outside a goroutine. */
GORO_API int  goro_wg_wait(goro_wg *wg);

/* Mutex, as Go's sync.Mutex. Uncontended lock and unlock are one atomic
 * compare-and-swap each. A contended lock spins briefly, then parks the
 * goroutine (not the thread). Fairness is Go's: normally a goroutine that
 * arrives while the lock is free may take it ahead of a woken waiter (fast);
 * once a waiter has waited more than 1 ms the mutex hands itself directly
 * from unlocker to the oldest waiter until the queue drains, so no waiter
 * starves. The mutex is not tied to a goroutine: another goroutine (or
 * thread) may unlock it. Unlocking an unlocked mutex is fatal, as in Go. */
GORO_API void goro_mutex_init(goro_mutex *mu);
/* 0; -EPERM outside a goroutine. */
GORO_API int  goro_mutex_lock(goro_mutex *mu);
/* 0 or -EBUSY (also while waiters are owed the lock); any thread. */
GORO_API int  goro_mutex_trylock(goro_mutex *mu);
GORO_API void goro_mutex_unlock(goro_mutex *mu);

/* ======================================================================
 * Go's wider vocabulary (added in 0.2): Once, RWMutex, Cond, weighted
 * semaphores, timers and tickers, contexts, goroutine-local storage.
 * The sync types are complete, like goro_mutex (private fields), and must
 * not move while in use. Blocking calls park the goroutine and return
 * -EPERM outside one.
 * ==================================================================== */

/* sync.Once. A zero-filled goro_once (static storage, or memset) is ready
 * to use; there is no init call. */
typedef struct goro_once { uintptr_t goro_private_[4]; } goro_once;
/* Run fn(arg) once for all callers of o: the first caller runs it; a caller
 * that comes while it runs parks until it has returned; later callers
 * return at once. Everything fn did is visible to every caller when it
 * returns. 0; -EINVAL if fn is NULL; -EPERM when called outside a
 * goroutine while another caller is running fn (outside a goroutine it
 * cannot wait). fn calling goro_once_do on the same o waits for itself
 * forever (deadlock), as in Go. */
GORO_API int goro_once_do(goro_once *o, goro_fn fn, void *arg);

/* sync.RWMutex with Go's algorithm and fairness: many readers or one
 * writer. A writer that waits holds off readers that come after it (no
 * writer starvation); when a writer unlocks, every reader that waited for
 * it gets in before the next writer (no reader starvation). Writers among
 * themselves are ordered as by goro_mutex. Not tied to a goroutine: any
 * goroutine (or thread) may unlock. A runlock or unlock of a mutex not so
 * locked is fatal, as in Go. Zero-filled is the same as init. */
typedef struct goro_rwmutex { uintptr_t goro_private_[16]; } goro_rwmutex;
GORO_API void goro_rwmutex_init(goro_rwmutex *rw);
/* Read lock: 0; -EPERM outside a goroutine. */
GORO_API int  goro_rwmutex_rlock(goro_rwmutex *rw);
/* 0, or -EBUSY when a writer holds or waits for it; any thread. */
GORO_API int  goro_rwmutex_tryrlock(goro_rwmutex *rw);
GORO_API void goro_rwmutex_runlock(goro_rwmutex *rw);
/* Write lock: 0; -EPERM outside a goroutine. */
GORO_API int  goro_rwmutex_lock(goro_rwmutex *rw);
/* 0, or -EBUSY when anyone holds it (or a writer is owed it); any thread. */
GORO_API int  goro_rwmutex_trylock(goro_rwmutex *rw);
GORO_API void goro_rwmutex_unlock(goro_rwmutex *rw);

/* sync.Cond over a goro_mutex. Zero-filled is the same as init. */
typedef struct goro_cond { uintptr_t goro_private_[4]; } goro_cond;
GORO_API void goro_cond_init(goro_cond *c);
/* mu must be held. Atomically unlocks mu and parks until signalled,
 * broadcast or timeout_ns passes; locks mu again before returning (also on
 * timeout). 0 woken (which, as in Go, does not mean the condition holds:
 * check it in a loop), -ETIMEDOUT; timeout_ns 0 returns -ETIMEDOUT at once
 * without unlocking mu. -EPERM outside a goroutine. Go's Cond has no
 * timeouts; here a signal and a timeout never share a waiter: a signal
 * wakes a waiter that returns 0, never one that returns -ETIMEDOUT (a
 * waiter whose timeout has fired has left the queue, and the signal goes
 * to the next in line), so no signal is swallowed by a timeout. */
GORO_API int  goro_cond_wait(goro_cond *c, goro_mutex *mu, int64_t timeout_ns);
/* Wake the longest waiting goroutine, if any (mu need not be held); any
 * thread. */
GORO_API void goro_cond_signal(goro_cond *c);
/* Wake every waiting goroutine; any thread. */
GORO_API void goro_cond_broadcast(goro_cond *c);

/* Weighted semaphore, as golang.org/x/sync/semaphore: size units; waiters
 * are served strictly first-come first-served, and a newcomer never takes
 * units ahead of a waiter (no barging), so a big request is not starved by
 * a stream of small ones. */
typedef struct goro_sem { uintptr_t goro_private_[8]; } goro_sem;
GORO_API void goro_sem_init(goro_sem *s, int64_t size);
/* Take n units, waiting up to timeout_ns for them. 0; -ETIMEDOUT (nothing
 * taken; a waiter that gives up may let the ones behind it through);
 * -EINVAL when n < 0 or n > size; -EPERM outside a goroutine when it would
 * have to wait. As in x/sync, n == 0 too queues behind earlier waiters. */
GORO_API int  goro_sem_acquire(goro_sem *s, int64_t n, int64_t timeout_ns);
/* Take n units only if that needs no wait: 0, -EAGAIN (not enough, or
 * others are waiting), -EINVAL (n < 0 or n > size); any thread. */
GORO_API int  goro_sem_tryacquire(goro_sem *s, int64_t n);
/* Give back n units and wake the waiters they satisfy, in order; releasing
 * more than is held is fatal, as in x/sync. Any thread. */
GORO_API void goro_sem_release(goro_sem *s, int64_t n);

/* context.Context: cancellation and deadlines, as a tree. Every call works
 * from any thread. */
typedef struct goro_ctx goro_ctx;
/* A new context, a child of parent (NULL: a root). deadline_ns is an
 * absolute goro_now() time, 0 for none; the effective deadline is the
 * earlier of it and the parent's (a child never outlives its parent's
 * deadline). A child of a cancelled parent starts cancelled with the
 * parent's error; a deadline already past cancels it at once (-ETIMEDOUT).
 * Deadlines fire only while a runtime runs. NULL and errno EINVAL
 * (deadline_ns < 0) or ENOMEM. */
GORO_API goro_ctx  *goro_ctx_new(goro_ctx *parent, int64_t deadline_ns);
/* Cancel c and every descendant (their error: -ECANCELED, or the error c
 * was cancelled with); closes their done channels, waking every goroutine
 * receiving from one or selecting on one. Idempotent; any thread. */
GORO_API void       goro_ctx_cancel(goro_ctx *c);
/* A signal channel (elem_size 0) closed when c is cancelled or its
 * deadline passes: receive from it or put it in a goro_select. Owned by c:
 * never goro_chan_free it. */
GORO_API goro_chan *goro_ctx_done(goro_ctx *c);
/* 0 while live, -ECANCELED after a cancel, -ETIMEDOUT after the deadline
 * (of c or of the ancestor whose cancellation reached it). */
GORO_API int        goro_ctx_err(goro_ctx *c);
/* The effective deadline, 0 for none. */
GORO_API int64_t    goro_ctx_deadline(goro_ctx *c);
/* Cancel c and drop the caller's reference: its memory goes once every
 * descendant has been freed too; parents and children may be freed in any
 * order. No goroutine may use c (or its done channel) afterwards. */
GORO_API void       goro_ctx_free(goro_ctx *c);

/* Goroutine-local storage. A worker thread's TLS (__thread) is shared by
 * every goroutine that runs on it, and a goroutine may resume on another
 * worker after any blocking call; these values belong to the goroutine and
 * follow it. Keys are process-wide (they outlive goro_run); values are per
 * goroutine and start NULL. */
typedef unsigned goro_key;
/* A new key (at least 128 exist at once; 0 is never a key). destructor
 * (may be NULL) runs when a goroutine that set a non-NULL value under the
 * key returns from its function: destructor(value), on that goroutine,
 * with the value already cleared. A destructor may set values again; up to
 * 4 passes are made, as for pthread keys. Goroutines discarded when
 * goro_run returns run none. 0; -EAGAIN when every key is in use; -EINVAL
 * if key is NULL. Any thread. */
GORO_API int   goro_key_create(goro_key *key, void (*destructor)(void *value));
/* Delete a key: values set under it are dropped without a destructor call
 * (as pthread_key_delete) and read as NULL. 0; -EINVAL unknown key. */
GORO_API int   goro_key_delete(goro_key key);
/* This goroutine's value under key; NULL if unset, for an unknown or
 * deleted key, or outside a goroutine. A few nanoseconds. */
GORO_API void *goro_local_get(goro_key key);
/* Set this goroutine's value under key. 0; -EPERM outside a goroutine;
 * -EINVAL unknown key; -ENOMEM. The value is kept outside the stack: a
 * pointer into the goroutine's own stack (&local) goes stale when the
 * stack moves (README, rule 5): store heap or static pointers. */
GORO_API int   goro_local_set(goro_key key, void *value);

/* time.Timer, time.Ticker, time.AfterFunc and time.After. A timer's
 * channel has elem int64_t: the goro_now() of the firing. Go 1.23's
 * semantics: once goro_timer_stop or goro_timer_reset has returned, no
 * receive gets a value from before it. The calls on one timer may come
 * from any goroutine or thread, concurrently, and while it fires. */
typedef struct goro_timer goro_timer;
/* A timer that fires once after delay_ns (0: at once), then every
 * period_ns when period_ns > 0 (a ticker). A ticker whose previous tick
 * is still unreceived drops the new one: a slow receiver gets the latest
 * tick, never a backlog, and missed ticks are skipped, not made up.
 * NULL and errno EINVAL when delay_ns < 0 or period_ns < 0, EPERM when no
 * runtime runs, ENOMEM. */
GORO_API goro_timer *goro_timer_new(int64_t delay_ns, int64_t period_ns);
/* time.AfterFunc: when it fires (once), fn(arg) runs in a new goroutine.
 * NULL and errno EINVAL (delay_ns < 0, fn NULL), EPERM, ENOMEM. */
GORO_API goro_timer *goro_timer_func(int64_t delay_ns, goro_fn fn, void *arg);
/* The timer's channel (do not free it: goro_timer_free does); NULL for a
 * goro_timer_func timer. */
GORO_API goro_chan  *goro_timer_chan(goro_timer *t);
/* Stop it: 1 if this stopped a firing that was still to come (the timer
 * was armed, or its value was sent but not yet received: that value is
 * dropped), 0 otherwise (it had fired and its value was received, or it
 * was stopped already). For a goro_timer_func timer, 1 means fn will not
 * run; 0 that it was started. -EINVAL if t is NULL. */
GORO_API int  goro_timer_stop(goro_timer *t);
/* Stop (same return) and arm it again: first firing after delay_ns, then
 * every period_ns if > 0 (a goro_timer_func timer too). -EINVAL for t
 * NULL or negative times, -EPERM when no runtime runs. */
GORO_API int  goro_timer_reset(goro_timer *t, int64_t delay_ns, int64_t period_ns);
/* Stop it and free it; no goroutine may still use its channel (one still
 * blocked on it: a warning on stderr, and the timer is stopped but not
 * freed, as goro_chan_free does). Timers outlive goro_run (they are stopped when it returns) and may be reset in
 * the next run. */
GORO_API void goro_timer_free(goro_timer *t);
/* time.After: a channel that receives one int64_t after delay_ns. The
 * runtime reclaims it after its value is received (do not use it after
 * that) or when goro_run returns; never pass it to goro_chan_free. An
 * unreceived one is kept until goro_run returns: in a loop, prefer one
 * goro_timer and goro_timer_reset. NULL and errno EINVAL, EPERM, ENOMEM. */
GORO_API goro_chan  *goro_after(int64_t delay_ns);

/* ======================================================================
 * I/O through the netpoller
 * ==================================================================== */

/*
 * Every call tries the system call itself and, when the fd is not ready
 * (EAGAIN), parks the goroutine until the netpoller sees the fd become
 * ready. The first time an fd is used it is made non-blocking (O_NONBLOCK,
 * shared with every process holding the same open file) and registered
 * with the netpoller, edge-triggered. Sockets, pipes, FIFOs, eventfds,
 * timerfds, signalfds and terminals wait; regular files are always ready,
 * so their calls block the worker like read(2) (use goro_blocking for slow
 * disks).
 *
 * Rules:
 *  - Close an fd that goro I/O has used with goro_close, not close(2): the
 *    netpoller keeps per-fd state indexed by number. (fds made by
 *    goro_accept, goro_listen_tcp and goro_dial_tcp are checked for stale
 *    state anyway.)
 *  - Outside a goroutine, the calls that may wait (read, write, accept,
 *    connect, wait_fd, dial_tcp, blocking) return -EPERM; goro_close,
 *    goro_fd_deadline (while a runtime runs) and goro_listen_tcp work from
 *    any thread (goro_listen_tcp and goro_close also with no runtime).
 *  - Several goroutines may wait on one fd in the same direction (several
 *    acceptors on one listener); each readiness wakes all of them and they
 *    retry their calls.
 *  - Bad fds: -EBADF (-1, or closed); goro_accept on something that is not
 *    a socket: -ENOTSOCK; on a socket that is not listening: -EINVAL.
 *  - Writes to a socket whose peer is gone return -EPIPE (MSG_NOSIGNAL);
 *    writes to such a pipe raise SIGPIPE as write(2) does.
 */
enum { GORO_READABLE = 1, GORO_WRITABLE = 2 };

/* Read up to len bytes: >0 bytes read, 0 at end of file, -errno. */
GORO_API ssize_t goro_read(int fd, void *buf, size_t len);
/* Write all len bytes, waiting as often as the fd's buffer fills: len, or
 * -errno (bytes already written are then lost to the caller). */
GORO_API ssize_t goro_write(int fd, const void *buf, size_t len);
/* A new connection's fd, non-blocking and close-on-exec (TCP_NODELAY set
 * on TCP, as in Go), or -errno. addr/addrlen as accept(2), may be NULL. */
GORO_API int     goro_accept(int listen_fd, struct sockaddr *addr, socklen_t *addrlen);
/* Connect fd and wait for the connection: 0, or -ECONNREFUSED,
 * -ETIMEDOUT (the write deadline passed), -ENETUNREACH, ... */
GORO_API int     goro_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* Wait until fd is readable or writable (events: GORO_READABLE and/or
 * GORO_WRITABLE; errors and hang-up count as ready). 0 ready; -ETIMEDOUT
 * after timeout_ns (0: check only) or past the fd's deadline; -ECANCELED if
 * goro_close'd meanwhile; -EINVAL for bad events. */
GORO_API int     goro_wait_fd(int fd, int events, int64_t timeout_ns);
/* Absolute goro_now() times; 0: none. A blocked or later call past its
 * deadline returns -ETIMEDOUT (read deadline: read, accept, wait_fd
 * READABLE; write deadline: write, connect, wait_fd WRITABLE). Setting a
 * new deadline, later or 0, applies to calls already blocked. -EINVAL for a
 * negative time; -EPERM when no runtime runs; -ENOMEM when an fd's first
 * deadline finds no memory for its timers (nothing changed). */
GORO_API int     goro_fd_deadline(int fd, int64_t read_deadline_ns, int64_t write_deadline_ns);
/* Goroutines blocked on fd wake with -ECANCELED, then fd is closed. 0 or
 * -errno (-EBADF: not open, or another goro_close of it is under way). */
GORO_API int     goro_close(int fd);
/* A listening TCP socket on host (NULL: every address, IPv6 and IPv4) and
 * port (0: a free port; getsockname tells which); backlog <= 0: SOMAXCONN.
 * host may be an IPv4 or IPv6 literal ("::1", "[::1]") or a name, resolved
 * on a goro_blocking helper; the first address that binds is used.
 * fd or -errno (-ENOENT: no such host). */
GORO_API int     goro_listen_tcp(const char *host, int port, int backlog);
/* Connect to host:port, trying each resolved address in turn within one
 * overall timeout_ns (< 0: no limit; 0: only if it connects at once).
 * fd (TCP_NODELAY) or -errno (-ECONNREFUSED, -ETIMEDOUT, -ENOENT ...). */
GORO_API int     goro_dial_tcp(const char *host, int port, int64_t timeout_ns);

/* Run fn(arg) on a helper thread while the goroutine is parked; returns fn's
 * value. For calls that block the thread: files, getaddrinfo, compression.
 * Helpers are started on demand up to GORO_BLOCKING_MAX (default 128) and
 * exit after 10 s idle; beyond the cap calls wait their turn. When goro_run
 * returns, a call still running finishes on its (detached) helper and its
 * result is dropped. -EPERM outside a goroutine, -EINVAL if fn is NULL. */
GORO_API intptr_t goro_blocking(intptr_t (*fn)(void *arg), void *arg);

/* ======================================================================
 * Introspection
 * ==================================================================== */

struct goro_stats {
    uint64_t goroutines;         /* alive now, the main goroutine included */
    uint64_t spawned;            /* since goro_run started */
    uint64_t steals;             /* successful steals between workers */
    uint64_t stack_growths;      /* copy-on-overflow events */
    uint64_t stack_bytes_copied;
    uint64_t stack_max;          /* largest stack any goroutine reached, bytes */
    uint64_t netpoll_wakeups;    /* goroutines woken by the netpoller */
    /* fields added after API.md's list */
    uint64_t procs;              /* worker threads */
    uint64_t context_switches;   /* goroutine switches on all workers */
    uint64_t worker_sleeps;      /* times a worker went to sleep on its futex */
    uint64_t stack_bytes_reserved; /* bytes of stack memory owned by live and pooled goroutines */
    uint64_t stack_shrinks;      /* stacks moved to a smaller place, plus compactions */
    uint64_t stack_compactions;  /* parked goroutines' stacks compacted (given back) */
    uint64_t stacks_compacted;   /* goroutines whose stack is compacted now */
    uint64_t stack_clusters_asleep; /* clusters of compacted stacks whose page
                                       table is given back now */
};
/* A snapshot of the counters of the running runtime, or of the last one that
 * ran (all zero before the first goro_run). Callable from any thread. */
GORO_API void goro_stats(struct goro_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* GORO_H */
