/*
 * netpoll.c - the poller thread, the descriptor table and the wait slots.
 *
 * Design (Go's netpoll and pollDesc, adapted to C fds). A goroutine does
 * the system call itself, on a non-blocking fd. Only when it gets EAGAIN does
 * it park, in its fd's descriptor: one wait slot per direction (read,
 * write). One dedicated thread blocks in the kernel poll set (the backend,
 * netpoll_epoll.c), where each fd was added once, edge-triggered, the first
 * time goro I/O touched it. For each event the poller moves the slot to
 * "ready" and takes out the goroutine parked there; after the wait's last
 * event it readies every goroutine it took, in one batch, onto the global
 * run queue, which wakes idle workers. The same thread runs the timer heap
 * (timer.c): its earliest deadline is the wait's timeout, and the backend's
 * wake-up fd cuts the wait short when an earlier timer arrives.
 *
 * Who polls (Go's findrunnable does the same). The poller thread waits in
 * the kernel only while every worker is asleep. While any worker runs, the
 * poller naps on a futex (until the next timer, at most NAP_NS, or a kick)
 * and then sweeps the poll set without waiting, unless a worker polled it
 * since the last look (then the sweep has nothing to add, and with one
 * worker the naps stretch to NAP_MAX_NS: the poller's loop says why); a
 * worker that runs out of work polls without waiting itself
 * (goro__netpoll_poll_now) and runs what it woke. The last worker to go
 * to sleep kicks the poller back into the kernel. Before this, every
 * readiness woke the poller thread, which then competed with the workers
 * for the CPUs: TCP echo with 64 connections on 2 workers took 43,000
 * context switches for 128,000 round trips (2,700 after), and went from
 * 0.69x to 1.1x Go's round-trip rate.
 *
 * No readiness is lost between EAGAIN and the park. The slot is a state
 * machine (enum pd_slot below): the waiter first publishes "waiting" with a
 * CAS, then parks; the commit from "waiting" to "parked" is a second CAS run
 * by goro__park's unlock function after the switch. An event that arrives
 * in between turns "waiting" into "ready", the commit fails and the waiter
 * retries its call at once. Each direction also counts the events delivered
 * (evseq); a waiter snapshots the count before its system call and, once it
 * has published itself, goes back to the call if the count moved: that
 * covers a second goroutine that consumed the "ready" meant for both.
 *
 * A read that skips its system call. On a TCP socket a read shorter than
 * its buffer drained the socket, and goro_read's next call parks without
 * trying (unless an event came since), as Tokio does: a request/response
 * exchange no longer pays a failed read per message. netpoll.h ("the
 * drained hint") says why no readiness is lost by it; the poller marks fds
 * whose events say a short read may have left something (hang-up, error,
 * urgent data).
 *
 * Several goroutines may wait on one fd and direction (several acceptors on
 * one listener), and goro_wait_fd may wait on both directions at once. The
 * slot holds one goroutine; the others wait on the descriptor's queue (q,
 * under pd.lock), which every event, deadline and close of a matching
 * direction empties. The slot is the fast path: one goroutine reading and
 * one writing, the common case, never take a lock.
 *
 * Close and fd reuse. The table is indexed by fd number, so a record is
 * reused when the kernel hands the number out again. goro_close marks the
 * record closing, wakes every waiter (-ECANCELED), waits until all of them
 * have left goro__pd_wait (nwait == 0), unregisters the fd, bumps the
 * record's generation (seq) and only then closes the fd: no goroutine of the
 * old fd can touch a slot of the new one. Events carry the generation they
 * were registered with and a stale one is dropped; a stale wakeup that slips
 * through anyway costs the waiter one retried system call, never a wrong
 * result, since every waiter retries its call after waking.
 *
 * Rejected: level-triggered epoll (an epoll_ctl or a repeat event per wait
 * for a busy fd); registering per wait (a system call per EAGAIN: the echo
 * server parks on nearly every read); one lock per descriptor on every wait
 * (the slot CASes are enough for the common single waiter); a generation in
 * each slot word (needs a double-width CAS).
 *
 * Invariants:
 *  - a goroutine is in at most one slot or queue entry at a time;
 *  - a slot holds WAITING(g) or PARKED(g) only while g is inside
 *    goro__pd_wait (counted in nwait); after it resumes, g never writes
 *    a slot it was taken out of;
 *  - whoever delivers an event (the poller thread, or a worker polling)
 *    increments evseq, atomically, before it looks at the slot and the
 *    queue;
 *  - seq changes only while closing is set and nwait is 0;
 *  - a queue entry lives on its goroutine's stack and is linked only while
 *    that goroutine is parked (or about to, holding pd.lock); whoever unlinks
 *    it readies the goroutine and never touches the entry again.
 */
#include "netpoll.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * A wait slot (pd.slot[d]) holds one of:
 *
 *   SLOT_NIL      nobody waits and no readiness is pending
 *   SLOT_READY    readiness arrived while no goroutine was parked; the next
 *                 waiter consumes it and retries its call instead of parking
 *   WAITING(g)    g got EAGAIN and is on its way to park  (g | SLOT_WAITING)
 *   PARKED(g)     g is parked here                          (g)
 *
 * Transitions (who makes them; every one a CAS):
 *   NIL        -> WAITING(g)  g, after EAGAIN                     (prepare)
 *   READY      -> NIL         g, instead of parking; g retries    (consume)
 *   WAITING(g) -> PARKED(g)   g's park unlock function            (commit)
 *   WAITING(g) -> NIL         g, when it decides not to park       (retract)
 *   NIL        -> READY       poller: readiness, nobody waiting
 *   WAITING(g) -> READY       poller: readiness before the commit; commit fails
 *   PARKED(g)  -> NIL         poller: readiness; g is readied in the batch
 *   WAITING(g) -> NIL         close / deadline; commit fails, g sees the error
 *   PARKED(g)  -> NIL         close / deadline; g is readied, sees the error
 *   READY      -> NIL         close, once every waiter has left (reset)
 * G records are at least 8-byte aligned, so SLOT_WAITING fits in the low bits.
 */
enum pd_slot {
    SLOT_NIL = 0,
    SLOT_READY = 1,
    SLOT_WAITING = 2, /* tag bit on a G pointer */
};

/* Why a queued waiter was woken (pd_waiter.why). */
enum { WAKE_NONE = 0, WAKE_EVENT, WAKE_CANCEL, WAKE_DEADLINE, WAKE_TIMEOUT };

/* A goroutine waiting on pd.q: a second waiter in a direction whose slot
 * is taken, or goro_wait_fd. Lives on the waiter's stack. */
struct goro__pd_waiter {
    G *g;
    int modes;                       /* GORO_READABLE | GORO_WRITABLE */
    int why;                         /* WAKE_*: set by whoever unlinks it */
    struct goro__pd_waiter *next;
    struct goro__pd_waiter **pprev;  /* NULL when not linked */
    struct goro__pd *pd;
    struct goro__timer timer;        /* goro_wait_fd's timeout */
};

volatile AO_t goro__pd_table[PD_TOP_SIZE];
int *(*volatile goro__np_errno)(void) = __errno_location;

static struct {
    pthread_t thread;
    bool started;
    volatile AO_t stop;
    volatile AO_t top_used;  /* highest table index + 1 with a leaf (fini) */
    /* the batch the poller readies after each wait; poller thread only */
    struct goro__np_batch batch;
    /* While any worker runs or spins, the poller naps on this futex word
     * (bumped to wake it) instead of waiting in the kernel: the workers
     * poll when they run out of work, as Go's do, so a busy runtime takes
     * no poller-thread wakeup per event. */
    volatile int napseq;
    /* 1 while the poller waits in the kernel (every worker was idle when
     * it looked). A worker that leaves the idle list first, with every
     * worker idle before it, wakes that wait (goro__netpoll_workers_busy),
     * so that the poller naps and sweeps again: otherwise it stayed in
     * the kernel until the next event or timer, and goro__sched_sysmon
     * with it (seen: 0.96 s, until the next compaction pass). */
    volatile AO_t inwait;
} np;

/* ------------------------------------------------------------------
 * Descriptor table
 * ------------------------------------------------------------------ */

static void deadline_fire(struct goro__timer *t);

static struct goro__pd *pd_create(int fd)
{
    unsigned top = (unsigned)fd >> PD_LEAF_BITS;
    volatile AO_t *leaf = (volatile AO_t *)AO_load_acquire(&goro__pd_table[top]);
    if (leaf == NULL) {
        volatile AO_t *nl = calloc(PD_LEAF_SIZE, sizeof(AO_t));
        if (nl == NULL)
            return NULL;
        /* full: the zeroed leaf before its pointer; losers free theirs */
        if (AO_compare_and_swap_full(&goro__pd_table[top], 0, (AO_t)nl)) {
            leaf = nl;
            AO_t used;
            /* no ordering: only fini reads it, after every thread stopped */
            while ((used = AO_load(&np.top_used)) < top + 1 &&
                   !AO_compare_and_swap(&np.top_used, used, top + 1))
                ;
        } else {
            free((void *)nl);
            leaf = (volatile AO_t *)AO_load_acquire(&goro__pd_table[top]);
        }
    }
    volatile AO_t *cell = &leaf[(unsigned)fd & (PD_LEAF_SIZE - 1)];
    struct goro__pd *pd = (struct goro__pd *)AO_load_acquire(cell);
    if (pd != NULL)
        return pd;
    pd = goro__pdmem_alloc(); /* zeroed */
    if (pd == NULL)
        return NULL;
    pd->fd = fd;
    /* full: the initialized record before its pointer (readers acquire) */
    if (!AO_compare_and_swap_full(cell, 0, (AO_t)pd)) {
        goro__pdmem_unused(pd);
        pd = (struct goro__pd *)AO_load_acquire(cell);
    }
    return pd;
}

static inline uint64_t pd_key(struct goro__pd *pd)
{
    return (uint64_t)(uint32_t)pd->fd | (uint64_t)(uint32_t)AO_load(&pd->seq) << 32;
}

/* A closer is between unregistering and closing the fd: wait it out (it
 * never parks there; a few microseconds). */
static void wait_not_closing(struct goro__pd *pd)
{
    /* acquire: the closer's reset of the record before closing = 0 */
    while (NP_LOAD_ACQ(&pd->closing))
        sched_yield();
}

/* Register pd's fd. Under pd.lock. known_socket: -1, unknown: find out
 * (and make it non-blocking); else the creator made it non-blocking
 * already (accept4, socket with SOCK_NONBLOCK) and says what it is
 * (PD_FILE, PD_SOCKET, PD_TCP). */
static int pd_register_locked(struct goro__pd *pd, int known_socket)
{
    int fd = pd->fd, fl = 0;
    if (known_socket < 0) {
        fl = fcntl(fd, F_GETFL);
        if (fl < 0)
            return -NP_ERRNO;
    }
    int rc = goro__pollset_add(fd, pd_key(pd));
    if (rc == -EPERM) {
        /* a regular file: always ready, calls never wait; leave its flags */
        NP_STORE_REL(&pd->state, PD_NOPOLL);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (known_socket < 0) {
        if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            rc = -NP_ERRNO;
            goro__pollset_del(fd);
            return rc;
        }
        struct stat st;
        pd->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
        /* TCP: the drained hint (netpoll.h) */
        int proto = 0;
        socklen_t plen = sizeof proto;
        pd->tcp = pd->is_socket &&
                  getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &plen) == 0 &&
                  proto == IPPROTO_TCP;
    } else {
        pd->is_socket = known_socket != PD_FILE;
        pd->tcp = known_socket == PD_TCP;
    }
    /* release: is_socket and the registration before a reader of state */
    NP_STORE_REL(&pd->state, PD_POLLED);
    return 0;
}

int goro__pd_init(int fd, struct goro__pd **out)
{
    if (!goro__running())
        return -EPERM;
    struct goro__pd *pd = pd_create(fd);
    if (pd == NULL)
        return -ENOMEM;
    wait_not_closing(pd);
    goro__np_lock(&pd->lock);
    int rc = 0;
    if (NP_LOAD(&pd->state) == PD_NEW)
        rc = pd_register_locked(pd, -1);
    goro__np_unlock(&pd->lock);
    if (rc == 0)
        *out = pd;
    return rc;
}

static int pd_evict(struct goro__pd *pd, bool close_fd);

int goro__pd_fresh(int fd, int kind)
{
    if (!goro__running())
        return 0; /* registered on first use by the next runtime */
    struct goro__pd *pd = pd_create(fd);
    if (pd == NULL)
        return -ENOMEM;
    /* the kernel handed this number out again: a close of its last owner
     * has finished its close(2), perhaps not yet its bookkeeping */
    wait_not_closing(pd);
    if (NP_LOAD_ACQ(&pd->state) != PD_NEW)
        pd_evict(pd, false); /* closed behind goro's back: forget it */
    goro__np_lock(&pd->lock);
    int rc = 0;
    if (NP_LOAD(&pd->state) == PD_NEW)
        rc = pd_register_locked(pd, kind);
    goro__np_unlock(&pd->lock);
    return rc;
}

/* ------------------------------------------------------------------
 * Slots and queue
 * ------------------------------------------------------------------ */

/* Take the slot off whoever waits in it. ioready: readiness (the slot
 * becomes READY unless a parked goroutine takes it); otherwise close or
 * deadline. Returns the parked goroutine to ready, or NULL. */
static G *slot_unblock(struct goro__pd *pd, int d, bool ioready)
{
    volatile AO_t *s = &pd->slot[d];
    for (;;) {
        AO_t v = AO_load(s);
        if (v == SLOT_READY || (v == SLOT_NIL && !ioready))
            return NULL;
        AO_t nv = SLOT_NIL;
        if (ioready && (v == SLOT_NIL || (v & SLOT_WAITING)))
            nv = SLOT_READY;
        /* full: pairs with the waiter's prepare/commit CAS; a parked G's
         * record is ours to ready once we moved it out */
        if (AO_compare_and_swap_full(s, v, nv))
            return (v == SLOT_NIL || (v & SLOT_WAITING)) ? NULL : (G *)v;
    }
}

/* Unlink every queued waiter with a mode in modes, set why, and chain their
 * goroutines by schedlink onto *head. Returns how many. */
static int queue_take(struct goro__pd *pd, int modes, int why, G **head)
{
    int n = 0;
    goro__np_lock(&pd->lock);
    struct goro__pd_waiter *w = pd->q;
    while (w) {
        struct goro__pd_waiter *next = w->next;
        if (w->modes & modes) {
            *w->pprev = next;
            if (next)
                next->pprev = w->pprev;
            w->pprev = NULL;
            w->why = why;
            G *g = w->g; /* w may vanish once g is readied: read it first */
            g->schedlink = *head;
            *head = g;
            n++;
            /* no ordering: a hint read by wakers; the lock orders the queue */
            __atomic_fetch_sub(&pd->nqueued, 1, __ATOMIC_RELAXED);
        }
        w = next;
    }
    goro__np_unlock(&pd->lock);
    return n;
}

static void ready_chain(G *head, int n)
{
    if (n > 0)
        goro__ready_list(head, n);
}

/* Wake direction d's waiters without readiness (close, deadline). */
static void unblock_dir(struct goro__pd *pd, int dmodes, int why)
{
    G *head = NULL;
    int n = 0;
    for (int d = 0; d < 2; d++) {
        if (!(dmodes & (1 << d)))
            continue;
        G *g = slot_unblock(pd, d, false);
        if (g) {
            g->schedlink = head;
            head = g;
            n++;
        }
    }
    /* full (in the CASes above and the lock): closing / the deadline are
     * visible to the queued waiters we wake */
    if (NP_LOAD(&pd->nqueued) != 0)
        n += queue_take(pd, dmodes, why, &head);
    ready_chain(head, n);
}

/* The error a waiter in direction d must see now, or 0. */
static int wait_err(struct goro__pd *pd, int modes)
{
    if (NP_LOAD(&pd->closing))
        return -ECANCELED;
    for (int d = 0; d < 2; d++)
        if ((modes & (1 << d)) && goro__pd_deadline_check(pd, d) != 0)
            return -ETIMEDOUT;
    return 0;
}

static void pd_enter(struct goro__pd *pd)
{
    /* full: our count before our read of closing; the closer writes
     * closing before it reads the count (neither can miss the other) */
    AO_fetch_and_add1_full(&pd->nwait);
}

static void pd_leave(struct goro__pd *pd)
{
    /* full: everything we did to the record before the closer, which waits
     * for 0, may reset it */
    if (AO_fetch_and_sub1_full(&pd->nwait) == 1 && NP_LOAD(&pd->closing)) {
        goro__np_lock(&pd->lock);
        G *c = pd->closer;
        pd->closer = NULL;
        goro__np_unlock(&pd->lock);
        if (c)
            goro__ready(c, false);
    }
}

static bool slot_commit(G *g, void *arg)
{
    /* full: once PARKED(g) is visible, a waker may ready g */
    return AO_compare_and_swap_full((volatile AO_t *)arg, (AO_t)g | SLOT_WAITING, (AO_t)g);
}

static bool unlock_pd(G *g, void *arg)
{
    (void)g;
    goro__np_unlock(&((struct goro__pd *)arg)->lock);
    return true;
}

static void waiter_timeout(struct goro__timer *t)
{
    struct goro__pd_waiter *w = t->arg;
    struct goro__pd *pd = w->pd;
    G *g = NULL;
    goro__np_lock(&pd->lock);
    if (w->pprev != NULL) {
        *w->pprev = w->next;
        if (w->next)
            w->next->pprev = w->pprev;
        w->pprev = NULL;
        w->why = WAKE_TIMEOUT;
        g = w->g;
        __atomic_fetch_sub(&pd->nqueued, 1, __ATOMIC_RELAXED); /* a hint: see queue_take */
    }
    goro__np_unlock(&pd->lock);
    if (g)
        goro__ready(g, false);
}

/* Wait on pd.q for any of modes. Inside pd_enter/pd_leave.
 * The waiter record is on the heap, not on our stack: it is linked into
 * pd.q, and its timer into the timer heap, while we still run (on the way
 * to the park, and after an event wakes us, until goro__timer_del), and a
 * stack may move in any call then (stack_fault.c: nothing outside a running
 * goroutine's stack may point into it). */
static int queue_wait(struct goro__pd *pd, int modes, const AO_t snap[2], int64_t timeout_ns)
{
    G *g = goro__self();
    struct goro__pd_waiter *w = malloc(sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    *w = (struct goro__pd_waiter){ .g = g, .modes = modes, .pd = pd };
    goro__np_lock(&pd->lock);
    int rc = wait_err(pd, modes);
    if (rc != 0) {
        goro__np_unlock(&pd->lock);
        free(w);
        return rc;
    }
    w->next = pd->q;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = &pd->q;
    pd->q = w;
    /* full: our entry counted before we read evseq; the poller bumps evseq
     * before it reads nqueued */
    __atomic_fetch_add(&pd->nqueued, 1, __ATOMIC_SEQ_CST);
    for (int d = 0; d < 2; d++) {
        if ((modes & (1 << d)) && AO_load(&pd->evseq[d]) != snap[d]) {
            /* an event since the caller's check: retry instead */
            *w->pprev = w->next;
            if (w->next)
                w->next->pprev = w->pprev;
            __atomic_fetch_sub(&pd->nqueued, 1, __ATOMIC_RELAXED);
            goro__np_unlock(&pd->lock);
            free(w);
            return 0;
        }
    }
    if (timeout_ns > 0) {
        int64_t now = goro_now();
        w->timer.when = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
        w->timer.fn = waiter_timeout;
        w->timer.arg = w;
        goro__timer_add(&w->timer); /* lock order: pd.lock > timer heap */
    }
    AO_fetch_and_add1(&goro__ctr.io_waiters); /* before the park: deadlock detection */
    goro__park(unlock_pd, pd, W_IO, pd);
    /* full: lowered only now that we run again (sched.c deadlock check) */
    AO_fetch_and_sub1_full(&goro__ctr.io_waiters);
    if (timeout_ns > 0)
        goro__timer_del(&w->timer); /* waits for a firing callback */
    int why = w->why; /* unlinked by whoever woke us: ours alone now */
    free(w);
    switch (why) {
    case WAKE_EVENT:
        return 0;
    case WAKE_TIMEOUT:
        return -ETIMEDOUT;
    default:
        return wait_err(pd, modes);
    }
}

int goro__pd_wait(struct goro__pd *pd, int d, AO_t snap)
{
    if (unlikely(NP_LOAD(&pd->state) == PD_NOPOLL))
        return -EAGAIN;
    G *g = goro__self();
    volatile AO_t *s = &pd->slot[d];
    const AO_t me = (AO_t)g | SLOT_WAITING;
    int rc;
    pd_enter(pd);
    if ((rc = wait_err(pd, 1 << d)) != 0)
        goto out;
    for (;;) {
        AO_t v = AO_load(s);
        /* full CASes: pair with slot_unblock */
        if (v == SLOT_READY) {
            if (AO_compare_and_swap_full(s, SLOT_READY, SLOT_NIL))
                goto out; /* consumed: retry the call */
        } else if (v == SLOT_NIL) {
            if (AO_compare_and_swap_full(s, SLOT_NIL, me))
                break;
        } else {
            /* another goroutine holds the slot: queue behind it */
            AO_t snaps[2] = { AO_load(&pd->evseq[0]), AO_load(&pd->evseq[1]) };
            snaps[d] = snap;
            rc = queue_wait(pd, 1 << d, snaps, -1);
            goto out;
        }
    }
    /* WAITING(g) is published (full CAS above): an event from now on finds
     * it. One from before our call's EAGAIN moved evseq; close and deadlines
     * set their flag before they unblock. */
    if (AO_load(&pd->evseq[d]) != snap || (rc = wait_err(pd, 1 << d)) != 0) {
        if (!AO_compare_and_swap_full(s, me, SLOT_NIL))
            AO_compare_and_swap_full(s, SLOT_READY, SLOT_NIL); /* ours to consume */
        goto out;
    }
    AO_fetch_and_add1(&goro__ctr.io_waiters); /* before the park: deadlock detection */
    goro__park(slot_commit, (void *)s, W_IO, pd);
    /* full: lowered only now that we run again (sched.c deadlock check) */
    AO_fetch_and_sub1_full(&goro__ctr.io_waiters);
    /* Woken (the waker moved the slot off us) or the commit failed (an event
     * made it READY, or close/deadline NIL). A READY left is ours: we retry. */
    AO_compare_and_swap_full(s, SLOT_READY, SLOT_NIL);
    rc = wait_err(pd, 1 << d);
out:
    pd_leave(pd);
    return rc;
}

int goro__pd_wait_modes(struct goro__pd *pd, int modes, const AO_t snap[2], int64_t timeout_ns)
{
    if (NP_LOAD(&pd->state) == PD_NOPOLL)
        return 0; /* regular files are always ready */
    pd_enter(pd);
    int rc = queue_wait(pd, modes, snap, timeout_ns);
    pd_leave(pd);
    return rc;
}

/* ------------------------------------------------------------------
 * Deadlines and close
 * ------------------------------------------------------------------ */

/* Timer callback on the poller thread. goro__pd_set_deadline and close
 * delete the timer (waiting for a running callback) before they change the
 * deadline or reset the record, so a callback always belongs to the
 * current deadline. */
static void deadline_fire(struct goro__timer *t)
{
    struct goro__pd *pd = t->arg;
    /* pd->timers was stored under dlock before the timer went into the
     * heap, whose lock orders it before this callback */
    int d = t == &pd->timers[PD_W] ? PD_W : PD_R;
    unblock_dir(pd, 1 << d, WAKE_DEADLINE);
}

/* 0, or -ENOMEM when a first deadline finds no memory for the record's
 * timers (nothing is changed then). */
int goro__pd_set_deadline(struct goro__pd *pd, int d, int64_t when)
{
    goro__np_lock(&pd->dlock);
    struct goro__timer *t = pd->timers;
    if (t == NULL && when != 0 && (t = goro__pdmem_timers(pd, deadline_fire)) == NULL) {
        goro__np_unlock(&pd->dlock);
        return -ENOMEM;
    }
    if (t != NULL)
        goro__timer_del(&t[d]); /* the callback never takes dlock */
    /* release: the new deadline before the waiters we may wake read it */
    AO_store_release(&pd->deadline[d], (AO_t)when);
    if (when != 0) {
        if (when <= goro_now()) {
            unblock_dir(pd, 1 << d, WAKE_DEADLINE);
        } else {
            t[d].when = when;
            goro__timer_add(&t[d]);
        }
    }
    goro__np_unlock(&pd->dlock);
    return 0;
}

/* Give back the record's timers while it has no deadline: a dial's timeout
 * needs them only while it connects (idle_conns: 96 bytes of heap a
 * connection otherwise). A deleted timer's callback has finished. */
void goro__pd_drop_timers(struct goro__pd *pd)
{
    goro__np_lock(&pd->dlock);
    struct goro__timer *t = pd->timers;
    if (t != NULL && AO_load(&pd->deadline[PD_R]) == 0 && AO_load(&pd->deadline[PD_W]) == 0) {
        goro__timer_del(&t[PD_R]);
        goro__timer_del(&t[PD_W]);
        pd->timers = NULL;
        free(t);
    }
    goro__np_unlock(&pd->dlock);
}

/* Wake every waiter with -ECANCELED, wait until they all left, reset the
 * record for the next fd of this number, and close the fd if close_fd.
 * Returns close's result, or -EBADF if another close is in progress. */
static int pd_evict(struct goro__pd *pd, bool close_fd)
{
    goro__np_lock(&pd->dlock);
    if (NP_LOAD(&pd->closing)) {
        goro__np_unlock(&pd->dlock);
        return -EBADF;
    }
    NP_STORE(&pd->closing, 1);
    /* full: closing before we read nwait and the slots (pd_enter's pair) */
    AO_nop_full();
    for (int d = 0; d < 2; d++) {
        if (pd->timers != NULL)
            goro__timer_del(&pd->timers[d]);
        AO_store(&pd->deadline[d], 0);
    }
    goro__np_unlock(&pd->dlock);

    unblock_dir(pd, GORO_READABLE | GORO_WRITABLE, WAKE_CANCEL);

    /* Wait for the waiters to leave; the last one readies us. */
    G *g = goro__self();
    while (AO_load(&pd->nwait) != 0) {
        if (g == NULL) {
            sched_yield(); /* a foreign thread cannot park */
            continue;
        }
        goro__np_lock(&pd->lock);
        if (AO_load(&pd->nwait) == 0) {
            goro__np_unlock(&pd->lock);
            break;
        }
        pd->closer = g;
        AO_fetch_and_add1(&goro__ctr.io_waiters); /* before the park */
        goro__park(unlock_pd, pd, W_IO, pd);
        AO_fetch_and_sub1_full(&goro__ctr.io_waiters); /* after our ready */
    }

    if (NP_LOAD(&pd->state) == PD_POLLED && close_fd)
        goro__pollset_del(pd->fd);
    NP_STORE(&pd->state, PD_NEW);
    AO_store(&pd->slot[PD_R], SLOT_NIL);
    AO_store(&pd->slot[PD_W], SLOT_NIL);
    /* no ordering of its own: published by the release of closing below;
     * the poller compares it without a lock, a stale match costs one
     * spurious wakeup */
    AO_store(&pd->seq, AO_load(&pd->seq) + 1);
    pd->is_socket = false;
    pd->tcp = false;
    AO_store(&pd->drained, 0);
    NP_STORE(&pd->nohint, 0);
    int rc = 0;
    if (close_fd && close(pd->fd) != 0 && NP_ERRNO != EINTR)
        rc = -NP_ERRNO; /* Linux frees the fd even on EINTR */
    /* release: the reset record before anyone waiting in wait_not_closing */
    NP_STORE_REL(&pd->closing, 0);
    return rc;
}

int goro__pd_close(struct goro__pd *pd)
{
    return pd_evict(pd, true);
}

/* ------------------------------------------------------------------
 * The poller thread
 * ------------------------------------------------------------------ */

static void batch_add(struct goro__np_batch *b, G *g)
{
    g->schedlink = NULL;
    if (b->tail)
        b->tail->schedlink = g;
    else
        b->head = g;
    b->tail = g;
    b->n++;
}

void goro__netpoll_ready(uint64_t key, int modes, struct goro__np_batch *b)
{
    int fd = (int)(uint32_t)key;
    struct goro__pd *pd = goro__pd_lookup(fd);
    /* no ordering: a stale generation seen as current costs one spurious
     * wakeup (see the top) */
    if (pd == NULL || (uint32_t)AO_load(&pd->seq) != (uint32_t)(key >> 32))
        return;
    /* before evseq moves (the full increment below orders it): see the
     * drained hint in netpoll.h */
    if ((modes & GORO_NP_NOHINT) && !NP_LOAD(&pd->nohint))
        NP_STORE(&pd->nohint, 1);
    for (int d = 0; d < 2; d++) {
        if (!(modes & (1 << d)))
            continue;
        /* full: the count before we look at the slot and the queue; the
         * waiters publish themselves there before they read the count */
        AO_fetch_and_add1_full(&pd->evseq[d]);
        G *g = slot_unblock(pd, d, true);
        if (g)
            batch_add(b, g);
    }
    if (NP_LOAD(&pd->nqueued) != 0) {
        G *head = NULL;
        queue_take(pd, modes, WAKE_EVENT, &head);
        while (head) {
            G *next = head->schedlink;
            batch_add(b, head);
            head = next;
        }
    }
}

/* Ready what the last wait woke, in one batch. */
static void flush(struct goro__np_batch *b)
{
    if (b->n == 0)
        return;
    AO_fetch_and_add(&goro__ctr.netpoll_wakeups, (AO_t)b->n); /* a counter */
    goro__ready_list(b->head, b->n);
    b->head = b->tail = NULL;
    b->n = 0;
}

static long futex(volatile int *addr, int op, int val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

/* Every worker asleep: nobody else will look at the poll set. */
static bool workers_idle(void)
{
    return AO_load(&goro__sched.npidle) == (AO_t)goro__sched.nprocs;
}

#define NAP_NS 1000000      /* longest poll-free stretch while workers are busy */
#define NAP_MAX_NS 10000000 /* ... unless they poll themselves: see below */

static void *poller_main(void *arg)
{
    (void)arg;
    goro__mark_internal_thread();
    int64_t nap_max = NAP_NS;
    uint64_t polls_seen = goro__sched_npolls();
    /* acquire: pairs with the release in goro__netpoll_stop */
    while (!AO_load_acquire(&np.stop)) {
        int64_t next = goro__timers_run(goro_now());
        /* compaction of long-parked goroutines' stacks, a slice at a time */
        int64_t pass = goro__stack_idle_pass(goro_now());
        if (pass >= 0 && (next < 0 || pass < next))
            next = pass;
        int64_t timeout = -1;
        if (next >= 0) {
            timeout = next - goro_now();
            if (timeout < 0)
                timeout = 0;
        }
        int seq = __atomic_load_n(&np.napseq, __ATOMIC_ACQUIRE);
        if (!workers_idle() && timeout != 0) {
            /* Workers are running: they poll themselves when they run out
             * of work. Nap until the next timer, a kick (the last worker
             * went to sleep, an earlier timer, stop) or NAP_NS, then sweep
             * the poll set once without waiting, so events are never left
             * longer than that; and look at the workers' runnext slots
             * (goro__sched_sysmon). A shorter nap (100 us) while a runnext
             * was occupied got rescues in 1.4 ms instead of 2.3 (medians),
             * but busy workloads nearly always have one occupied:
             * rwmutex_read_heavy went from 25.6 to 28.5 ns, with 3x the
             * futex calls and runnext steals that did not pay. */
            int64_t nap = timeout < 0 || timeout > nap_max ? nap_max : timeout;
            struct timespec ts = { .tv_sec = nap / 1000000000, .tv_nsec = nap % 1000000000 };
            futex(&np.napseq, FUTEX_WAIT_PRIVATE, seq, &ts);
            goro__sched_sysmon();
            /* A worker that runs out of work polls the poll set itself
             * (goro__netpoll_poll_now): if one did since our last look,
             * the events are not waiting on us, and the sweep is a system
             * call and a batch of readies the worker would have made (and
             * on a shared CPU, the nap's end is a context switch each
             * way). So we skip it, and with one worker, whose runnext no
             * other worker can rescue (goro__sched_sysmon has nothing to
             * do), we nap twice as long each time, up to NAP_MAX_NS (Go's
             * sysmon polls once 10 ms have gone by without a poll). Once a
             * nap passes with no poll of theirs, we sweep and are back at
             * NAP_NS: a worker that stays busy has its events delivered
             * within two naps (20 ms at most) of the last poll it made.
             * http_wrk_1000 (one worker, pinned): the poller thread woke
             * 840 times a second and took 7% of the CPU (365 ms in 5 s);
             * after, 36 ms. */
            uint64_t polls = goro__sched_npolls();
            if (polls != polls_seen) {
                polls_seen = polls;
                if (goro__sched.nprocs == 1)
                    nap_max = nap_max * 2 > NAP_MAX_NS ? NAP_MAX_NS : nap_max * 2;
                continue;
            }
            nap_max = NAP_NS;
            timeout = 0;
        } else if (timeout != 0) {
            /* Every worker was idle: wait in the kernel. Announced first,
             * then idle checked again (full fence between): a worker that
             * left the idle list meanwhile either sees inwait and wakes
             * us, or we see it here and nap instead. */
            AO_store(&np.inwait, 1);
            AO_nop_full();
            if (!workers_idle()) {
                AO_store(&np.inwait, 0);
                continue;
            }
        }
        int n = goro__pollset_wait(timeout, &np.batch, false);
        AO_store(&np.inwait, 0);
        if (n < 0)
            goro__fatal("netpoll: waiting for events: %s", strerror(-n));
        flush(&np.batch);
    }
    return NULL;
}

static void kick(void)
{
    __atomic_fetch_add(&np.napseq, 1, __ATOMIC_RELEASE);
    futex(&np.napseq, FUTEX_WAKE_PRIVATE, 1, NULL);
}

void goro__netpoll_workers_idle(void)
{
    kick();
}

void goro__netpoll_workers_busy(void)
{
    /* full: our npidle decrement before the look at inwait (the other
     * half of the poller's announce-then-check) */
    AO_nop_full();
    if (AO_load(&np.inwait))
        goro__pollset_wake();
}

G *goro__netpoll_poll_now(int *n)
{
    struct goro__np_batch b = { NULL, NULL, 0 };
    if (!np.started || goro__pollset_wait(0, &b, true) <= 0 || b.n == 0) {
        *n = 0;
        return NULL;
    }
    AO_fetch_and_add(&goro__ctr.netpoll_wakeups, (AO_t)b.n); /* a counter */
    *n = b.n;
    return b.head;
}

int goro__netpoll_start(void)
{
    int rc = goro__pollset_open();
    if (rc < 0)
        return rc;
    AO_store(&np.stop, 0);
    np.batch = (struct goro__np_batch){ NULL, NULL, 0 };
    int e = goro__np_thread_create(&np.thread, NULL, poller_main, NULL);
    if (e != 0) {
        goro__pollset_close();
        return -e;
    }
    np.started = true;
    return 0;
}

void goro__netpoll_break(void)
{
    kick();               /* napping */
    goro__pollset_wake(); /* or waiting in the kernel */
}

/* Forget every descriptor: the goroutines parked on them are discarded
 * with their runtime, and fds are registered afresh by the next one. */
static void table_fini(void)
{
    AO_t used = AO_load(&np.top_used);
    for (AO_t i = 0; i < used; i++) {
        AO_t *leaf = (AO_t *)AO_load(&goro__pd_table[i]);
        if (leaf == NULL)
            continue;
        free(leaf);
        AO_store(&goro__pd_table[i], 0);
    }
    AO_store(&np.top_used, 0);
    goro__pdmem_fini(); /* the records the leaves pointed at */
}

void goro__netpoll_stop(void)
{
    if (!np.started)
        return;
    /* release: pairs with the poller's acquire */
    AO_store_release(&np.stop, 1);
    goro__pollset_wake();
    pthread_join(np.thread, NULL);
    np.started = false;
    goro__blocking_stop();
    table_fini();
    np.batch = (struct goro__np_batch){ NULL, NULL, 0 };
    goro__pollset_close();
}
