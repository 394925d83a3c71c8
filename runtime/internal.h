/*
 * internal.h - types and goro__ names shared inside the library.
 *
 * Vocabulary (as in Go's runtime):
 *   G  a goroutine: its saved context, stack, status, wait reason, links.
 *   W  a worker: one OS thread, its local run queue, its runnext slot, its
 *      scheduler context (g0: the thread's own stack) and its current G.
 *
 * Lock order (take them in this order, never the reverse):
 *   channel locks (in address order, select)  >  sync-object locks
 *   >  timer heap lock  >  sched.lock (global queue, idle workers, making G records)
 * Go's wider vocabulary (0.2) adds, above channel locks: a goro_timer's
 * lock (timerchan.c; its BUSY flag, held across waiting for a callback,
 * is above it) and the context tree lock (ctx.c), which close and send on
 * channels; a cond's or sem's lock is a sync-object lock (it arms
 * timers); local.c's key lock and timerchan.c's slab and after-list locks
 * are leaves.
 * No runtime lock is held across a context switch except through park's
 * unlock function, which runs after the switch.
 */
#ifndef GORO_INTERNAL_H
#define GORO_INTERNAL_H

#define GORO_BUILDING_LIBRARY 1
#include "goro.h"

#include <atomic_ops.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GORO_HIDDEN __attribute__((visibility("hidden")))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define GORO_CACHELINE 64

typedef struct goro__g G;
typedef struct goro__w W;

/* Sanitizer builds (runtime/annotate.h): which one, and the fiber state
 * kept at the end of G and W for it (nothing in other builds). */
#if defined(__SANITIZE_ADDRESS__)
#define GORO_ANN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORO_ANN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GORO_ANN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO_ANN_TSAN 1
#endif
#endif
#ifndef GORO_ANN_ASAN
#define GORO_ANN_ASAN 0
#endif
#ifndef GORO_ANN_TSAN
#define GORO_ANN_TSAN 0
#endif
#define GORO_ANN_FIBERS (GORO_ANN_ASAN || GORO_ANN_TSAN)
#if GORO_ANN_FIBERS
struct goro__ann_g {
    void *fake;            /* ASan: this context's fake stack while away */
    void *fiber;           /* TSan: this goroutine's fiber */
};
#define FIBER_KEEP 64 /* at most this many kept, the newest FIBER_AGE not reused */
#define FIBER_AGE 8
struct goro__ann_fibers {  /* TSan: exited goroutines' fibers (annotate.c) */
    void *ring[FIBER_KEEP];
    unsigned head, n;
};
struct goro__ann_w {
    struct goro__ann_g g0; /* the same for the worker's g0 */
    struct goro__ann_fibers fibers;
    const void *g0_lo;     /* g0's stack (the thread's) */
    size_t g0_size;
    bool inflight;         /* a switch started: the next context finishes it */
};
#endif

/* ---------------------------------------------------------------------
 * Context: what runtime/asm/switch_*.S saves and restores. The offsets are
 * used by the assembly: keep them in sync (static-asserted in sched.c).
 * ------------------------------------------------------------------- */
struct goro__ctx {
    void    *rsp;   /*  0: points at the address the context resumes at */
    uint64_t rbx;   /*  8 */
    uint64_t rbp;   /* 16 */
    uint64_t r12;   /* 24: for a new goroutine, the G (entry argument) */
    uint64_t r13;   /* 32 */
    uint64_t r14;   /* 40 */
    uint64_t r15;   /* 48 */
};

/* Save the current context into from, load to, store newg into *cur (the
 * worker's current-G slot, written after the stack switch so that a guard
 * fault is always attributed to the stack it happens on), run the pending
 * action the previous context left in the worker (goro__switch_pend),
 * give newg its errno back (newg NULL: g0, none), and resume to. cur must
 * be &w->curg of the worker we run on (the asm finds W.pend and
 * W.errno_ptr from it: runtime/asm/offsets.h). */
void goro__ctx_switch(struct goro__ctx *from, const struct goro__ctx *to,
                      G **cur, G *newg) GORO_HIDDEN;
/* goro__ctx_switch for goro_yield's one-worker fast path: newg is a
 * goroutine (not g0) and no action is pending (W.pend is NULL), so it
 * checks for neither. */
void goro__ctx_switch_g(struct goro__ctx *from, const struct goro__ctx *to,
                        G **cur, G *newg) GORO_HIDDEN;
/* Called by goro__ctx_switch when the worker has a pending action. */
void goro__switch_pend(G **cur) GORO_HIDDEN;
/* The same into a goroutine that never ran (newg->ctx.rsp == NULL): its
 * stack starts at top. */
void goro__ctx_start(struct goro__ctx *from, void *top, G **cur, G *newg) GORO_HIDDEN;
/* The first code a new goroutine runs (asm): calls goro__g_main(r12). */
void goro__g_entry(void) GORO_HIDDEN;
void goro__g_main(G *g) GORO_HIDDEN __attribute__((noreturn));

/* ---------------------------------------------------------------------
 * Goroutine status. Transitions:
 *   IDLE     -> RUNNABLE   goro_go (record taken from a free list, or new)
 *   RUNNABLE -> RUNNING    a worker switches to it
 *   RUNNING  -> RUNNABLE   goro_yield, or park's unlock function refused
 *   RUNNING  -> WAITING    goro__park
 *   WAITING  -> RUNNABLE   goro__ready (exactly one waker wins the CAS)
 *   RUNNING  -> DEAD       fn returned
 *   DEAD     -> IDLE       record put back on a free list
 * ------------------------------------------------------------------- */
enum goro__gstatus {
    G_IDLE = 0,
    G_RUNNABLE,
    G_RUNNING,
    G_WAITING,
    G_DEAD,
};

/* What a parked goroutine waits on (the goroutine dump prints these). */
enum goro__wait {
    W_NONE = 0,
    W_CHAN_RECV,
    W_CHAN_SEND,
    W_SELECT,
    W_SLEEP,
    W_MUTEX,
    W_WAITGROUP,
    W_IO,
    W_BLOCKING,  /* in goro_blocking: not asleep for deadlock detection */
    W_RWMUTEX,   /* goro_rwmutex_rlock/lock */
    W_COND,      /* goro_cond_wait */
    W_SEM,       /* goro_sem_acquire */
    W_ONCE,      /* goro_once_do while another caller runs fn */
    W_TIMER,     /* a receive from a goro_timer's or goro_after's channel */
    W_NREASONS
};
extern const char *const goro__wait_names[W_NREASONS] GORO_HIDDEN;

/* A stack: the mapping, its guard, the usable range. the stack files own these. */
struct goro__stack {
    char  *lo;      /* lowest usable byte; the guard page lies just below */
    char  *hi;      /* one past the highest usable byte (the guard region,
                       GORO_STACK_GUARD bytes, lies just below lo: stack.h's
                       stk_map and stk_maplen) */
    uint32_t cls;   /* size class in stack_space.c's pools */
    uint32_t flags; /* stack.h: SF_*; GORO_STACK_LENT below */
};

#define GORO_STACK_LENT 8 /* struct goro__stack flags: stack.h's SF_LENT */

#define G_START_PROBE 0x80

struct goro__g {
    struct goro__ctx ctx;      /* saved context while not running; before
                                  the first run, r13 holds the argument
                                  (goro__g_new, goro__g_main) */
    struct goro__stack stack;  /* the goroutine's stack */
    volatile AO_t status;      /* enum goro__gstatus; CAS on WAITING->RUNNABLE */
    int saved_errno;           /* errno across switches (the switch's asm
                                  restores it: asm/offsets.h) */
    uint8_t wait_reason;       /* enum goro__wait, while WAITING */
    bool is_main;              /* main_fn's goroutine */
    uint8_t start_cls;         /* stack class to start at (g.c's hint),
                                  | G_START_PROBE: one below the hint */
    /* Compaction (stack_idle.c): enum goro__cstate, read by every resume
     * (sched.c), so beside status and stack; a byte, atomic only through
     * g_cstate_* below */
    volatile uint8_t cstate;
    uint64_t id;               /* 1 = main; never reused within one goro_run */
    goro_fn fn;                /* what it runs (the hint, debuggers) */
    G *schedlink;              /* global queue, free lists: owner of that list */
    int64_t wait_since;        /* its worker's clock when it parked */

    /* Scratch for whatever the goroutine is blocked on (channels, select,
     * sync, timers, netpoll); owned by that subsystem while WAITING. */
    void *waitobj;             /* the object waited on (for the dump) */
    uintptr_t param;           /* set by the waker before goro__ready */
    volatile AO_t selectdone;  /* select: first case to win sets it */

    /* The record's one-page stack, kept for its life: its lowest usable
     * byte (the rest follows: stack.h's stk_home), bit 0 set while it is
     * guarded (stackcheck). Every stack the record's goroutines run on lies
     * at the home's offset (its top's low 32 bits), so that live goroutines
     * are spread over the stack region (stack_space.c). A pointer, not a
     * struct goro__stack: the record is 176 bytes (g.c says why that
     * matters). */
    uintptr_t home;

    void *locals;              /* goroutine-local values (local.c), or NULL;
                                  only this goroutine touches them */

    void *cbuf;                /* compacted: the used part of the stack,
                                  kept aside (stack_idle.c) */
#if GORO_ANN_FIBERS
    struct goro__ann_g ann;    /* sanitizer builds only (annotate.h) */
#endif
};

/* G.cstate. NONE -> COMPACTING (the idle pass, by CAS) -> COMPACTED (or
 * back to NONE) -> RESTORING (whoever restores, by CAS) -> NONE (restored
 * before it runs) or TOUCHED (restored in place by a fault while still
 * parked: not compacted again in this park) -> NONE when it runs.
 * COMPACTED -> DORMANT (its cluster put to sleep, stack_doze.c) ->
 * COMPACTED (the cluster woken, before any restore in place) or RESTORING
 * (resume(): it leaves the sleeping cluster for a stack elsewhere). */
enum goro__cstate { C_NONE = 0, C_COMPACTING, C_COMPACTED, C_RESTORING, C_TOUCHED, C_DORMANT };

/* G.cstate's atomics: a load that acquires, a store that releases and a
 * full-barrier CAS (lock cmpxchg on its byte), as libatomic_ops' AO_*_full
 * and _acquire/_release forms are for a word. */
static inline unsigned g_cstate_load(const G *g)
{
    return __atomic_load_n(&g->cstate, __ATOMIC_ACQUIRE);
}
static inline void g_cstate_store(G *g, unsigned v)
{
    __atomic_store_n(&g->cstate, (uint8_t)v, __ATOMIC_RELEASE);
}
static inline bool g_cstate_cas(G *g, unsigned old, unsigned nv)
{
    uint8_t o = (uint8_t)old;
    return __atomic_compare_exchange_n(&g->cstate, &o, (uint8_t)nv, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

/* ---------------------------------------------------------------------
 * Worker. The run queue is a ring of GORO_RUNQ slots: only the owner
 * pushes (at tail); the owner and thieves pop from head with CAS.
 *
 *        head (CAS by owner and thieves)         tail (stored by owner only)
 *          v                                       v
 *   [ . . | g | g | g | g | g | . . . . . . . . . ]   slot = index % GORO_RUNQ
 * ------------------------------------------------------------------- */
#define GORO_RUNQ 256
#define GORO_LIFO 256  /* spawn stack entries */

struct goro__w {
    /* run queue: head is contended, keep it apart from the owner's fields */
    /* Each of head, tail and runnext has a cache line of its own: idle
     * workers poll head and tail, and the owner CASes runnext on every
     * hand-off; sharing a line made each poll cost the owner a miss. */
    volatile AO_t runq_head __attribute__((aligned(GORO_CACHELINE)));
    volatile AO_t runq_tail __attribute__((aligned(GORO_CACHELINE)));
    volatile AO_t runnext __attribute__((aligned(GORO_CACHELINE))); /* G * */
    volatile AO_t rn_seq;              /* owner: odd while it touches runnext
                                          with plain loads and stores */
    volatile AO_t rn_thief;            /* a thief is claiming runnext (CAS 0->1) */
    volatile AO_t runq[GORO_RUNQ] __attribute__((aligned(GORO_CACHELINE)));
                                       /* G *; written by owner, read by thieves */
    /* owner-only fields (the worker's own thread, or a goroutine on it).
     * The first cache line holds what goro_yield's one-worker fast path
     * and the switch touch in W besides the lines of the queue (head,
     * tail, runnext, the ring, lifo_top), so that a yield reads and
     * writes one owner line (sched.c checks the fit). */
    G *curg __attribute__((aligned(GORO_CACHELINE))); /* running G; NULL on g0.
                                          Written by the switch (asm) */
    uint32_t schedtick;                /* scheduling rounds */
    uint32_t nextround;                /* schedtick of the next round event */
    uint32_t nextstreak;               /* runnext picks in a row */
    bool round_global;                 /* that event: the global queue first
                                          (else the local queue's head) */
    AO_t lifo_bot_seen;                /* a lifo_bot read by the owner: the
                                          stack is empty when lifo_top equals
                                          it (bot only grows), with no read
                                          of the thieves' line */
    int *errno_ptr;                    /* this thread's errno (its address
                                          never changes for a thread); read
                                          by the switch: asm/offsets.h */
    G *pend;                           /* G switched away from, action pending;
                                          read by the switch: asm/offsets.h */
    uint64_t nswitch;                  /* context switches (read by goro_stats) */
    int pendkind;                      /* what to do with pend after the switch */
    /* a park's unlock function and its argument (goro__park), run by the
     * next context on this worker; unlockarg may point into pend's stack
     * and moves with it if it grows on the way (stack_fault.c's grow) */
    bool (*unlockf)(G *g, void *arg);
    void *unlockarg;
    /* the rest of the owner's fields */
    struct goro__ctx g0ctx;            /* the scheduler context: thread's stack */
    G *g0next;                         /* for g0 to run next, its stack to be
                                          restored or moved first (sched.c,
                                          resume_idle) */
    int id;                            /* 0 .. nprocs-1 */
    uint32_t clocktick;                /* schedtick when clock was read */
    int64_t clock;                     /* CLOCK_MONOTONIC_COARSE, read every
                                          CLOCK_ROUNDS rounds and after the
                                          worker slept: a park's wait_since
                                          (for the dump) without a clock read
                                          per park (~40 ns here, 5% of a
                                          ping-pong). Stale by at most that:
                                          a goroutine that ran 1 s without a
                                          round and then parked shows 1 s
                                          more of waiting. */
    uint32_t sysmon_tick;              /* schedtick at the poller's last look
                                          (poller thread only) */
    uint32_t npoll;                    /* its polls of the netpoller, read by
                                          idle spinners (sched.c, "Idle
                                          spinning"); owner-written */
    uint64_t rand;                     /* xorshift state for victim order */
    G *gfree;                          /* free G records (with stacks) */
    int ngfree;
    bool spinning;                     /* counted in sched.nspinning */
    bool rn_quiet;                     /* a G readied into the empty runnext
                                          woke nobody; the next channel
                                          operation that finishes without
                                          parking wakes a worker if it is
                                          still there (sched.c, "Wakeups") */
    /* Patient stealing (sched.c, "Stealing patiently"): the goroutine this worker
     * last stole and ran first, and when (goro_now) it stole it, until its
     * first park here says whether the steal paid; and the pauses this
     * worker watches a busy worker's short queue before taking from it
     * (0: takes at once). */
    G *steal_g;
    int64_t steal_at;
    uint32_t patience;
    uint64_t nspawn;                   /* goroutines spawned from this worker */
    uint64_t nexit;                    /* goroutines that exited on it */

    /* idle protocol, under sched.lock except the futex word */
    W *idlenext;
    bool onidle;
    volatile int parked;               /* futex word: 1 asleep, 0 woken */

    pthread_t thread;
    void *sigstack;                    /* alternate signal stack (signal.c) */
    size_t sigstack_size;
    void *stack_priv;                  /* stack per-worker state */

    /* Spawn stack (sched.c "Spawning"): children a spawn pushed out of
     * runnext, in a ring: entries [lifo_bot, lifo_top) (indices mod
     * GORO_LIFO), newest at the top. The owner pushes at the top without
     * a lock (a slot, then a release store of top); popping the top,
     * stealing from the bottom and aging take lifo_lock (not taken with
     * one worker). top - bot read without the lock is a hint. */
    volatile AO_t lifo_top __attribute__((aligned(GORO_CACHELINE)));
                                       /* written by the owner only */
    volatile AO_t lifo_lock __attribute__((aligned(GORO_CACHELINE)));
    volatile AO_t lifo_bot;            /* written under lifo_lock only */
    uint32_t lifo_aged;                /* owner's schedtick at the last aged take */
    G *lifo[GORO_LIFO];
    uint32_t lifo_tick[GORO_LIFO];     /* owner's schedtick at each push */
#if GORO_ANN_FIBERS
    struct goro__ann_w ann;            /* sanitizer builds only (annotate.h) */
#endif
};

/* ---------------------------------------------------------------------
 * Scheduler (sched.c)
 * ------------------------------------------------------------------- */

/* Scheduler-wide state. sched.lock protects: the global queue (gq_*), the
 * idle list (idle, W.onidle, W.idlenext), the making of G records (g.c)
 * and the global free list. Fields marked "atomic" are also read without the lock. */
struct goro__sched {
    pthread_mutex_t lock;
    W *ws;                      /* the workers, nprocs of them */
    int nprocs;
    volatile AO_t busy;         /* a goro_run is in progress (CAS 0->1) */
    volatile AO_t running;      /* atomic: workers may run goroutines */
    volatile AO_t shutdown;     /* atomic: main returned, workers stop */
    bool asym;                  /* membarrier(PRIVATE_EXPEDITED) works: owners
                                   touch runnext, and unlockers a goro_mutex,
                                   without locked operations */

    G *gq_head, *gq_tail;       /* global run queue, linked by schedlink */
    volatile AO_t gq_size;      /* atomic read as a hint, written under lock */

    W *idle;                    /* idle workers, linked by idlenext */
    volatile AO_t npidle;       /* atomic read, written under lock */
    volatile AO_t nspinning;    /* atomic: workers looking for work */

    G *gfree;                   /* global free list of G records (g.c's gfree_lock) */
    int ngfree;
    volatile AO_t next_id;      /* atomic: goroutine ids */
    volatile AO_t spawned_foreign; /* atomic: spawns from non-worker threads */

    volatile AO_t foreign;      /* atomic: a non-runtime thread readied or
                                   spawned goroutines: deadlock detection off */
    bool nodeadlock;            /* GORO_DEBUG=nodeadlock */
    bool dump_at_exit;          /* GORO_DEBUG=dump */
    bool idlewindow;            /* GORO_DEBUG=idlewindow (sleep_worker) */
};
extern struct goro__sched goro__sched GORO_HIDDEN;

W *goro__self_w(void) GORO_HIDDEN;
int64_t goro__coarse_now(void) GORO_HIDDEN; /* CLOCK_MONOTONIC_COARSE, ns */
bool goro__debug(const char *what) GORO_HIDDEN; /* GORO_DEBUG has this word */
/* Mark the calling thread as the runtime's own (poller, helper pool): its
 * goro__ready calls do not count as foreign. */
void goro__mark_internal_thread(void) GORO_HIDDEN;

/* sched.c, for g.c */
void goro__sched_spawn(W *w, G *g) GORO_HIDDEN;
void goro__exit_current(W *w, G *g) GORO_HIDDEN __attribute__((noreturn));
void goro__main_returned(void) GORO_HIDDEN;

/* g.c: goroutine records */
G *goro__g_new(W *w, goro_fn fn, void *arg) GORO_HIDDEN; /* RUNNABLE, or NULL */
void goro__g_free(W *w, G *g) GORO_HIDDEN;   /* a DEAD G to a free list */
/* g is about to run for the first time on a stack of another class than
 * its start_cls (the size hint): swap it, or start on what it has. */
void goro__g_first_stack(G *g) GORO_HIDDEN;
void goro__g_free_all(void) GORO_HIDDEN;     /* end of goro_run */
/* Every G record made in this run, by index, oldest first: records are
 * made under sched.lock and published by a release store of the count,
 * and never freed while the runtime runs, so anyone may walk indices
 * below a count it loaded (the dump from a signal handler, the
 * compaction pass, debuggers: tools/gdb). */
#define GORO_G_ARENA_BYTES ((size_t)1 << 20) /* one mmap of records */
#define GORO_G_ARENAS 65536                  /* up to 64 GiB of records */
#define GORO_G_PER_ARENA (GORO_G_ARENA_BYTES / sizeof(G))
extern struct goro__grecs {
    G *volatile arena[GORO_G_ARENAS];
    volatile AO_t n;            /* records made; release-stored */
} goro__grecs GORO_HIDDEN;
static inline size_t goro__g_count(void)
{
    return (size_t)AO_load_acquire(&goro__grecs.n);
}
static inline G *goro__g_at(size_t i)
{
    return &goro__grecs.arena[i / GORO_G_PER_ARENA][i % GORO_G_PER_ARENA];
}
void goro__g_hints_init(bool off) GORO_HIDDEN; /* GORO_DEBUG=nostackhint */
void goro__dump(int fd, const char *why) GORO_HIDDEN; /* the goroutine dump */
void goro__deadlock(void) GORO_HIDDEN __attribute__((noreturn));
void goro__diag_init(void) GORO_HIDDEN;      /* SIGQUIT dump, at goro_run */
void goro__diag_fini(void) GORO_HIDDEN;
void goro__stats_snapshot(void) GORO_HIDDEN;

/* local.c: goroutine-local storage. goro__local_exit runs g's destructors,
 * on g, when its function has returned; goro__local_free drops its values
 * (goro__g_free_all). */
void goro__local_exit(G *g) GORO_HIDDEN;
void goro__local_free(G *g) GORO_HIDDEN;

/* signal.c: per-worker alternate signal stacks and the fault handlers */
void goro__signal_init(void) GORO_HIDDEN;
void goro__signal_fini(void) GORO_HIDDEN;
void goro__signal_worker_init(W *w) GORO_HIDDEN;
void goro__signal_worker_fini(W *w) GORO_HIDDEN;

/* The G running on this thread, or NULL on a thread that is not running a
 * goroutine. Cheap (one TLS load, inline); safe to call again after a
 * switch. goro__tls_w is this thread's worker (NULL on other threads). */
extern __thread W *goro__tls_w GORO_HIDDEN __attribute__((tls_model("initial-exec")));
static inline G *goro__self(void)
{
    W *w = goro__tls_w;
    return w ? w->curg : NULL;
}

/* Park the calling goroutine. After the switch away from it, on the next
 * context, unlockf(g, arg) runs (e.g. to release the lock that protects the
 * wait queue g was put on); if it returns false the park is undone and g is
 * made runnable again. unlockf may be NULL. Returns when someone has called
 * goro__ready(g). Must be called from a goroutine, with no other runtime
 * lock held than the one unlockf releases. */
void goro__park(bool (*unlockf)(G *g, void *arg), void *arg, int reason,
                void *waitobj) GORO_HIDDEN;

/* Make a WAITING goroutine runnable. From a goroutine: into this worker's
 * runnext (runs next, same cache) when next is true, else its local queue.
 * From any other thread (netpoller, timers, foreign threads): the global
 * queue, and an idle worker is woken. */
void goro__ready(G *g, bool next) GORO_HIDDEN;

/* Ready a list of goroutines linked by schedlink, all at once, from any
 * thread (the netpoller's batch). */
void goro__ready_list(G *head, int n) GORO_HIDDEN;

/* A channel operation finished without parking (and readied nobody): if
 * a goroutine readied earlier into this worker's runnext still waits
 * there, the goroutine running is not about to park, so wake an idle
 * worker to take it (sched.c, "Wakeups"). One load when nothing waits. */
void goro__sched_nudge(W *w) GORO_HIDDEN;
static inline void goro__nudge(void)
{
    W *w = goro__tls_w;
    if (__builtin_expect(w != NULL && w->rn_quiet, 0))
        goro__sched_nudge(w);
}

/* True while a runtime is running (between goro_run start and return). */
bool goro__running(void) GORO_HIDDEN;

/* Called by the poller thread about every millisecond while workers run:
 * a goroutine left in a worker's runnext while that worker has been running
 * one goroutine since the last look gets an idle worker woken to steal it
 * (Go's sysmon preempts the hog instead; goro cannot preempt). */
void goro__sched_sysmon(void) GORO_HIDDEN;
/* How many times the workers have polled the netpoller themselves, in
 * all (relaxed reads of a counter each: a hint for the poller thread). */
uint64_t goro__sched_npolls(void) GORO_HIDDEN;
/* membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): 0, or -1 and errno. Only
 * while goro__sched.asym (registered). */
long goro__membarrier(void) GORO_HIDDEN;

/* Called (by the poller thread) to find out whether every goroutine is
 * parked in a way nothing external can end; see deadlock detection. */
void goro__check_deadlock(void) GORO_HIDDEN;

/* Runtime-wide counters (goro_stats). Updated with AO_fetch_and_add1 or
 * per-worker and summed. */
struct goro__counters {
    volatile AO_t spawned;
    volatile AO_t alive;
    volatile AO_t steals;
    volatile AO_t stack_growths;
    volatile AO_t stack_bytes_copied;
    volatile AO_t stack_max;
    volatile AO_t netpoll_wakeups;
    volatile AO_t worker_sleeps;
    volatile AO_t stack_bytes_reserved;
    volatile AO_t blocking_running;   /* goro_blocking calls in flight */
    volatile AO_t io_waiters;         /* goroutines parked on fds */
    volatile AO_t timers_pending;     /* timers in the heap */
    volatile AO_t stack_shrinks;      /* moves to a smaller stack */
    volatile AO_t stack_compactions;  /* stacks compacted (stack_idle.c) */
    volatile AO_t stacks_compacted;   /* compacted now */
    volatile AO_t stack_clusters_asleep; /* stack_doze.c: asleep now */
    volatile AO_t stack_cluster_sleeps;  /* ... put to sleep (for the tests) */
    volatile AO_t stack_cluster_wakes;   /* ... woken */
    volatile AO_t stack_cluster_leaves;  /* goroutines resumed off a sleeping one */
    volatile AO_t stack_lends;           /* guard pages lent (stack_lend.c) ... */
    volatile AO_t stack_unlends;         /* ... and guarded again */
};
extern struct goro__counters goro__ctr GORO_HIDDEN;

void goro__fatal(const char *fmt, ...) GORO_HIDDEN
    __attribute__((noreturn, format(printf, 1, 2)));

/* ---------------------------------------------------------------------
 * Stacks (stack_space.c, stack_guard.c, stack_move.c, stack_fault.c;
 * runtime/stack.h is what they share among themselves)
 * ------------------------------------------------------------------- */
void goro__stack_init(void) GORO_HIDDEN;      /* at goro_run start */
void goro__stack_fini(void) GORO_HIDDEN;      /* at goro_run end: release pools */
int  goro__stack_alloc(struct goro__stack *s) GORO_HIDDEN; /* 0 or -ENOMEM */
void goro__stack_free(struct goro__stack *s) GORO_HIDDEN;  /* back to a pool */
/* Swap s (a stack no goroutine runs on) for one of class cls from the
 * pools; on failure s stays as it is. 0 or -ENOMEM. */
int goro__stack_resize(struct goro__stack *s, int cls) GORO_HIDDEN;
/* G records: g->home = g->stack = a new one-page stack (0 or -ENOMEM);
 * a goroutine that has not run yet starts on class cls at its home's
 * offset (0, or -ENOMEM and it stays home); an exited one goes back home;
 * a record's stacks are freed. */
int  goro__stack_new_home(G *g) GORO_HIDDEN;
int  goro__stack_start(G *g, int cls) GORO_HIDDEN;
void goro__stack_go_home(G *g) GORO_HIDDEN;
void goro__stack_free_g(G *g) GORO_HIDDEN;
/* goro__park, for a G whose stack's guard page is lent (stack.h SF_LENT):
 * the page guarded again if its frames have left it. */
void goro__stack_park_unlend(G *g) GORO_HIDDEN;
/* A goroutine about to run for the first time takes a warm home (one whose
 * last goroutine grew: its bigger stacks are pooled at its offset) when
 * goro__stack_warm says there is one. */
extern volatile AO_t goro__stack_warm GORO_HIDDEN;
void goro__stack_adopt(G *g) GORO_HIDDEN;
size_t goro__pagesize(void) GORO_HIDDEN;
/* The fault handler (signal.c) asks: was this SIGSEGV/SIGBUS a guard hit of
 * the goroutine running on this thread? 1: handled (the stack grew), return
 * from the handler; 0: not a stack fault. Does not return when the stack
 * limit is exceeded or a stale stack pointer is caught (stackcheck). */
int goro__stack_fault(int sig, void *siginfo, void *ucontext) GORO_HIDDEN;
const char *goro__stack_guard_name(void) GORO_HIDDEN; /* madvise, uffd, mprotect */
/* stack_idle.c: shrinking and compaction. goro__stack_idle_resume runs
 * before g runs again when g->cstate is set or g parked on a grown stack
 * (sched.c, resume); goro__stack_idle_pass is the poller thread's pass
 * over long-parked goroutines: it returns when it wants to run again
 * (goro_now() time), or -1. */
void goro__stack_idle_resume(W *w, G *g) GORO_HIDDEN;
/* A system call on [p, p + len) failed with EFAULT: if that memory lies in
 * compacted stacks (another goroutine's, handed over by pointer), restore
 * them and return true (retry the call). */
bool goro__idle_touch(const void *p, size_t len) GORO_HIDDEN;
int64_t goro__stack_idle_pass(int64_t now) GORO_HIDDEN;
/* Growth time per event, ns, at quantile q (0..1) of this run's growths. */
uint64_t goro__stack_growth_quantile(double q) GORO_HIDDEN;

/* ---------------------------------------------------------------------
 * Timers (timer.c): a heap ordered by deadline; the poller thread sleeps
 * until the earliest one.
 * ------------------------------------------------------------------- */
struct goro__timer {
    int64_t when;                          /* goro_now() deadline */
    void (*fn)(struct goro__timer *t);     /* runs on the poller thread,
                                              without the heap lock */
    void *arg;
    size_t idx;                            /* heap slot + 1; 0: not in heap */
    uint64_t seq;                          /* set by goro__timer_add: the
                                              timer's identity (it may move
                                              with a goroutine stack) */
};
void goro__timer_add(struct goro__timer *t) GORO_HIDDEN;
bool goro__timer_del(struct goro__timer *t) GORO_HIDDEN; /* true: removed before it fired */
/* Fire every timer due at now; return the earliest remaining deadline, or
 * -1 when the heap is empty. */
int64_t goro__timers_run(int64_t now) GORO_HIDDEN;
void goro__timers_reset(void) GORO_HIDDEN;
/* timerchan.c: goro_run returned; the goro_timer records' armings become
 * stale (the heap forgot them) and goro_after's are freed. Called by
 * goro__timers_reset. */
void goro__timerchan_reset(void) GORO_HIDDEN;

/* ---------------------------------------------------------------------
 * Poller (netpoll/): netpoll.c runs the poller thread, the descriptor table
 * and the per-direction wait slots; io.c the I/O calls; blocking.c the
 * goro_blocking pool; the backend (netpoll_epoll.c) the kernel poll set.
 * Lock order inside netpoll/: pd.dlock > pd.lock > timer heap lock >
 * sched.lock; blocking pool lock > sched.lock.
 * ------------------------------------------------------------------- */
int  goro__netpoll_start(void) GORO_HIDDEN;  /* goro_run, before the workers */
/* goro_run, after every worker exited: stop the poller thread and the
 * blocking pool, forget every descriptor and the goroutines parked on them. */
void goro__netpoll_stop(void) GORO_HIDDEN;
/* Cut the poller's wait short (a timer earlier than its wait was added). */
void goro__netpoll_break(void) GORO_HIDDEN;
/* Goroutines woken by events, collected to be readied in one batch (linked
 * by schedlink; still WAITING). One per caller: the poller thread's, or a
 * worker's own while it polls. */
struct goro__np_batch {
    G *head, *tail;
    int n;
};
/* A flag of goro__netpoll_ready's modes beyond GORO_READABLE and
 * GORO_WRITABLE: the event carried hang-up, error or urgent data (the
 * drained hint, netpoll.h). */
#define GORO_NP_NOHINT 0x100
/* netpoll.c, called by the backend: the fd whose key (fd | generation <<
 * 32) is given became ready for modes (GORO_READABLE | GORO_WRITABLE,
 * GORO_NP_NOHINT); the goroutines it wakes go into *b. */
void goro__netpoll_ready(uint64_t key, int modes, struct goro__np_batch *b) GORO_HIDDEN;
/* A worker that ran out of work polls without waiting: the goroutines the
 * pending events wake (still WAITING, linked by schedlink), or NULL. */
G *goro__netpoll_poll_now(int *n) GORO_HIDDEN;
/* The last worker is going to sleep: the poller must wait in the kernel
 * again (while workers run, it naps and they poll). */
void goro__netpoll_workers_idle(void) GORO_HIDDEN;
/* A worker left the idle list while every worker was on it: if the poller
 * waits in the kernel, wake it, so that it naps and sweeps instead. */
void goro__netpoll_workers_busy(void) GORO_HIDDEN;

/* The backend: one file per kernel interface (netpoll_epoll.c). */
int  goro__pollset_open(void) GORO_HIDDEN;   /* the poll set and its wake-up fd */
void goro__pollset_close(void) GORO_HIDDEN;
int  goro__pollset_add(int fd, uint64_t key) GORO_HIDDEN; /* edge-triggered, in+out */
int  goro__pollset_del(int fd) GORO_HIDDEN;
/* Wait at most timeout_ns (< 0: no limit; 0: not at all) and deliver the
 * events through goro__netpoll_ready into *b. Poller thread only (its own
 * event buffer), except with timeout 0 and own_buffer, which any thread may
 * call (the wake-up fd's event is then left for the poller). Events
 * delivered (>= 0) or -errno. */
int  goro__pollset_wait(int64_t timeout_ns, struct goro__np_batch *b, bool own_buffer) GORO_HIDDEN;
void goro__pollset_wake(void) GORO_HIDDEN;   /* any thread: end the wait */

/* blocking.c: stop the helper pool (goro__netpoll_stop calls it). */
void goro__blocking_stop(void) GORO_HIDDEN;

/* Small helpers. */
static inline int64_t goro__min64(int64_t a, int64_t b) { return a < b ? a : b; }

#endif /* GORO_INTERNAL_H */
