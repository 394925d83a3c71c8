/*
 * rwmutex.c - goro_rwmutex, Go's sync.RWMutex (sync/rwmutex.go), algorithm
 * and all.
 *
 * State:
 *   w             a goro_mutex that writers hold from lock to unlock, so
 *                 writers queue among themselves as on any goro_mutex
 *                 (its starvation mode included);
 *   readers       the number of readers holding or entering, minus
 *                 RW_MAX_READERS while a writer holds or waits for it
 *                 (negative: "a writer is pending");
 *   departing     how many of the readers a writer found inside still have
 *                 to leave before it may enter;
 *   rsem, wsem    two counting semaphores with hand-off (below): readers
 *                 that found a writer pending wait on rsem; the writer that
 *                 waits for departing readers waits on wsem.
 *
 * The protocol (Go's):
 *   rlock:    readers += 1; if that went negative, a writer is pending:
 *             wait on rsem.
 *   runlock:  readers -= 1; if negative, a writer is pending: departing -= 1,
 *             and the last departing reader posts wsem.
 *   lock:     lock w; readers -= MAX (new readers now queue); r = the old
 *             count; if r readers are inside, departing += r, and unless
 *             they have all left meanwhile, wait on wsem.
 *   unlock:   readers += MAX; r = the readers that queued meanwhile; post
 *             rsem r times; unlock w.
 * So a pending writer holds off every later reader (no writer starvation),
 * and at unlock every reader that queued behind the writer is let in before
 * the next writer can subtract MAX again (no reader starvation: the next
 * writer then waits for exactly those readers to leave).
 *
 * The semaphores count posts that found no waiter (a reader that has added
 * itself to `readers` but not queued yet takes that post instead of
 * parking), and hand a post directly to the first waiter otherwise. Their
 * waiters are G records linked through G.schedlink, as the WaitGroup's are:
 * nothing on a goroutine stack is published, so the stack rule
 * (stack_fault.c) has nothing to check here.
 *
 * Lock order: w (a goro_mutex, held across parks) is taken before any
 * semaphore lock; a semaphore lock is a leaf (never held across anything
 * but its own park commit).
 *
 * Rejected: one lock around all of it (every rlock and runlock would take
 * it: readers on two workers would bounce its line on every call, the
 * thing a read-mostly lock is for avoiding; here an uncontended rlock is one
 * fetch-and-add); a reader count per worker (Go declined it too: readers
 * may unlock on another worker, and the writer would have to sum them).
 */
#include "internal.h"
#include "spin.h"
#include "sync.h"

#define RW_MAX_READERS ((AO_t)1 << 30)

/* A counting semaphore with FIFO hand-off. */
struct rsema {
    goro__spin lock;        /* protects count, head, tail */
    AO_t count;             /* posts no waiter took yet */
    G *head, *tail;         /* parked waiters, FIFO, via schedlink */
};

struct rwmutex {
    goro_mutex w;                /* held by the writer (and writers waiting) */
    struct rsema wsem;           /* the writer waits here for departing readers */
    struct rsema rsem;           /* readers wait here while a writer is pending */
    volatile AO_t readers;       /* signed: see above; fetch-and-add only */
    volatile AO_t departing;     /* signed: see above; fetch-and-add only */
};
_Static_assert(sizeof(struct rwmutex) <= sizeof(goro_rwmutex), "goro_rwmutex too small");
_Static_assert(_Alignof(struct rwmutex) <= _Alignof(goro_rwmutex), "goro_rwmutex misaligned");

static inline struct rwmutex *rw_of(goro_rwmutex *rw)
{
    return (struct rwmutex *)(void *)rw;
}

static bool rsema_park_commit(G *g, void *arg)
{
    (void)g;
    goro__spin_unlock(arg);
    return true;
}

/* Take a post, or park until one is handed to us. From a goroutine. */
static void rsema_acquire(struct rsema *s, goro_rwmutex *obj)
{
    goro__spin_lock(&s->lock);
    if (s->count > 0) {
        s->count--;
        goro__spin_unlock(&s->lock);
        return;
    }
    G *self = goro__self();
    self->schedlink = NULL;
    if (s->tail)
        s->tail->schedlink = self;
    else
        s->head = self;
    s->tail = self;
    goro__park(rsema_park_commit, (void *)&s->lock, W_RWMUTEX, obj);
    /* the post was handed to us: nothing to take */
}

static void rsema_release(struct rsema *s)
{
    goro__spin_lock(&s->lock);
    G *g = s->head;
    if (g == NULL) {
        s->count++;
        goro__spin_unlock(&s->lock);
        return;
    }
    s->head = g->schedlink;
    if (s->head == NULL)
        s->tail = NULL;
    goro__spin_unlock(&s->lock);
    /* full barrier in goro__ready: what the poster did before is visible */
    goro__ready(g, false);
}

void goro_rwmutex_init(goro_rwmutex *pub)
{
    struct rwmutex *rw = rw_of(pub);
    goro_mutex_init(&rw->w);
    rw->wsem = (struct rsema){ 0 };
    rw->rsem = (struct rsema){ 0 };
    rw->readers = 0;
    rw->departing = 0;
}

int goro_rwmutex_rlock(goro_rwmutex *pub)
{
    struct rwmutex *rw = rw_of(pub);
    if (unlikely(goro__self() == NULL))
        return -EPERM;
    /* full: acquire for the writer's critical section before ours (its
     * unlock's add is full too); the count itself must be exact */
    if (unlikely((long)(AO_fetch_and_add_full(&rw->readers, 1) + 1) < 0))
        rsema_acquire(&rw->rsem, pub);   /* a writer is pending */
    return 0;
}

int goro_rwmutex_tryrlock(goro_rwmutex *pub)
{
    struct rwmutex *rw = rw_of(pub);
    for (;;) {
        AO_t c = AO_load(&rw->readers);
        if ((long)c < 0)
            return -EBUSY;
        /* full: as rlock */
        if (AO_compare_and_swap_full(&rw->readers, c, c + 1))
            return 0;
    }
}

static __attribute__((noinline)) void runlock_slow(struct rwmutex *rw, long r)
{
    if (r + 1 == 0 || r + 1 == -(long)RW_MAX_READERS)
        goro__fatal("sync: runlock of unlocked rwmutex");
    /* full: our read section happens-before the writer's; the last one out
     * posts the writer */
    if ((long)(AO_fetch_and_add_full(&rw->departing, (AO_t)-1) - 1) == 0)
        rsema_release(&rw->wsem);
}

void goro_rwmutex_runlock(goro_rwmutex *pub)
{
    struct rwmutex *rw = rw_of(pub);
    /* full: release for our read section; exact count */
    long r = (long)(AO_fetch_and_add_full(&rw->readers, (AO_t)-1) - 1);
    if (unlikely(r < 0))
        runlock_slow(rw, r);
}

int goro_rwmutex_lock(goro_rwmutex *pub)
{
    struct rwmutex *rw = rw_of(pub);
    /* No spinning for w: its holder is often parked waiting for readers to
     * leave, and a spinning writer holds the worker those readers (and
     * the holder) need. With spinning, rwmutex_read_heavy spent half its
     * time in the spin: 150-170 ns an operation, against 60-75 without. */
    int rc = goro__mutex_lock_as(&rw->w, W_RWMUTEX, pub, false);
    if (rc < 0)
        return rc;
    /* full: announce the writer; the old value is the readers inside */
    long r = (long)AO_fetch_and_add_full(&rw->readers, -RW_MAX_READERS);
    if (r != 0 && (long)(AO_fetch_and_add_full(&rw->departing, (AO_t)r) + (AO_t)r) != 0)
        rsema_acquire(&rw->wsem, pub);
    return 0;
}

int goro_rwmutex_trylock(goro_rwmutex *pub)
{
    struct rwmutex *rw = rw_of(pub);
    if (goro_mutex_trylock(&rw->w) != 0)
        return -EBUSY;
    /* full: as lock; only when no reader is inside */
    if (!AO_compare_and_swap_full(&rw->readers, 0, -RW_MAX_READERS)) {
        goro_mutex_unlock(&rw->w);
        return -EBUSY;
    }
    return 0;
}

void goro_rwmutex_unlock(goro_rwmutex *pub)
{
    struct rwmutex *rw = rw_of(pub);
    /* full: our write section happens-before the readers let in */
    long r = (long)(AO_fetch_and_add_full(&rw->readers, RW_MAX_READERS) + RW_MAX_READERS);
    if (unlikely(r >= (long)RW_MAX_READERS))
        goro__fatal("sync: unlock of unlocked rwmutex");
    for (long i = 0; i < r; i++)
        rsema_release(&rw->rsem);
    goro_mutex_unlock(&rw->w);
}
