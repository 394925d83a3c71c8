/*
 * g.c - goroutine records: create, free lists, ids, the goroutine dump,
 * deadlock reporting and goro_stats.
 *
 * A G record keeps its stack when the goroutine exits: the pair goes on the
 * worker's free list (up to GFREE_LOCAL of them, the surplus to a global
 * list in batches), so a spawn usually costs no allocation and no system
 * call, and a reused stack is not touched again beyond its top frame.
 * Records are freed only when goro_run returns.
 *
 * Records are not malloc'd one by one: they are cut from arenas of
 * GORO_G_ARENA_BYTES (mmap'd, so a page costs only once records are made
 * in it), one after the other, 176 bytes each. A parked goroutine's cost
 * is mostly its record and its compacted stack, and malloc rounded the
 * 232-byte record it was up to a 240-byte chunk (parked_100k: 430 bytes a
 * goroutine then, 350 with this record and a smaller goro__g_main frame).
 * The index of a record is its place in the arenas, and walking the
 * indices below the published count is the walk over every record made
 * (internal.h, goro__g_count): no links in the record, and no lock.
 */
#include "internal.h"
#include "annotate.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GFREE_LOCAL 64   /* records a worker keeps before spilling */
#define GFREE_BATCH 32   /* records moved to/from the global list at once */

const char *const goro__wait_names[W_NREASONS] = {
    [W_NONE] = "running",       [W_CHAN_RECV] = "chan receive",
    [W_CHAN_SEND] = "chan send", [W_SELECT] = "select",
    [W_SLEEP] = "sleep",        [W_MUTEX] = "mutex",
    [W_WAITGROUP] = "WaitGroup", [W_IO] = "IO wait",
    [W_BLOCKING] = "blocking call", [W_RWMUTEX] = "rwmutex",
    [W_COND] = "cond",          [W_SEM] = "sem",
    [W_ONCE] = "once",          [W_TIMER] = "timer",
};

/* The global free list has a lock of its own: under sched.lock, the
 * records a spawner takes and the ones exits on other workers give back
 * queued behind the idle protocol's sleeps and wakes (spawn_join on 2
 * workers spent 8% of its time in futex waits on it). */
static pthread_mutex_t gfree_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;

static G *gfree_get(W *w)
{
    /* relaxed: a hint; the list is taken under gfree_lock (its writers
     * store atomically for this read) */
    if (w != NULL && w->gfree == NULL &&
        __atomic_load_n(&goro__sched.gfree, __ATOMIC_RELAXED) != NULL) {
        pthread_mutex_lock(&gfree_lock);
        while (w->ngfree < GFREE_BATCH && goro__sched.gfree) {
            G *g = goro__sched.gfree;
            __atomic_store_n(&goro__sched.gfree, g->schedlink, __ATOMIC_RELAXED);
            goro__sched.ngfree--;
            g->schedlink = w->gfree;
            w->gfree = g;
            w->ngfree++;
        }
        pthread_mutex_unlock(&gfree_lock);
    }
    if (w != NULL) {
        G *g = w->gfree;
        if (g) {
            w->gfree = g->schedlink;
            w->ngfree--;
        }
        return g;
    }
    /* a foreign thread: straight from the global list */
    pthread_mutex_lock(&gfree_lock);
    G *g = goro__sched.gfree;
    if (g) {
        __atomic_store_n(&goro__sched.gfree, g->schedlink, __ATOMIC_RELAXED);
        goro__sched.ngfree--;
    }
    pthread_mutex_unlock(&gfree_lock);
    return g;
}

/* ------------------------------------------------------------------
 * Start-size hints. Every goroutine starts on one page, unless goroutines
 * of the same function have needed more: then it starts on the stack class
 * they ended on, up to HINT_MAX_CLS (Go 1.19 starts goroutines at the
 * average stack size it has seen; this is the same idea per function). A
 * growth is a trap, a signal and a sigreturn, ~10 us on this VM; a
 * goroutine that recurses to 256 KiB grows twice (4 KiB, 32 KiB, 256 KiB),
 * and ten thousand of them spent 60% of their time there. A function whose
 * goroutines never grow (a parked server connection, skynet's nodes) keeps
 * starting on one page.
 *
 * The hint follows use down too: about one spawn in 32 of a hinted
 * function is a probe that starts one class lower; if it exits without
 * growing, the hint drops to that class. A probe that grows changes
 * nothing (its growth overshoots eightfold). A non-probe that grows raises
 * the hint to the class it ended on.
 *
 * The table is a direct-mapped cache of HINT_SLOTS words, each a function
 * pointer with its class in the top byte, read and written whole without
 * locks: two functions sharing a slot take it from each other, a lost
 * update costs a growth or a page, never correctness.
 * GORO_DEBUG=nostackhint turns it off.
 * ------------------------------------------------------------------ */

#define HINT_SLOTS   512
#define HINT_MAX_CLS 8      /* 1 MiB with 4 KiB pages: bigger still grows */

/* Read on every spawn and exit, written rarely: a line of its own, not
 * goro__sched's (whose next_id every spawn increments: reading the switch
 * from there cost spawn_join on 2 workers a miss per goroutine). */
static struct {
    bool off; /* GORO_DEBUG=nostackhint */
    volatile AO_t slot[HINT_SLOTS];
} hints __attribute__((aligned(GORO_CACHELINE)));

void goro__g_hints_init(bool off)
{
    hints.off = off;
}

static inline volatile AO_t *hint_slot(goro_fn fn)
{
    uintptr_t f = (uintptr_t)fn;
    return &hints.slot[((f >> 4) ^ (f >> 13)) & (HINT_SLOTS - 1)];
}

/* The class a goroutine running fn should start at; *probe when this
 * spawn is a probe. */
static int hint_get(W *w, goro_fn fn, bool *probe)
{
    *probe = false;
    if (hints.off)
        return 0;
    /* relaxed: a hint */
    AO_t v = AO_load(hint_slot(fn));
    if ((v & (((AO_t)1 << 56) - 1)) != (AO_t)(uintptr_t)fn)
        return 0;
    int cls = (int)(v >> 56);
    if (cls > 0 && w != NULL && ((uint32_t)(w->nspawn * 0x9E3779B9u) >> 27) == 0) {
        *probe = true;
        cls--;
    }
    return cls;
}

static void hint_set(goro_fn fn, int cls)
{
    if (cls > HINT_MAX_CLS)
        cls = HINT_MAX_CLS;
    /* relaxed: a hint */
    AO_store(hint_slot(fn), (AO_t)(uintptr_t)fn | ((AO_t)cls << 56));
}

void goro__g_first_stack(G *g)
{
    if (goro__stack_start(g, g->start_cls & ~G_START_PROBE) < 0)
        g->start_cls = (uint8_t)g->stack.cls; /* no memory: one page it is */
}

/* g exits: what did its stack tell about fn? */
static void hint_exit(G *g)
{
    if (hints.off || g->fn == NULL || g->is_main)
        return;
    int start = g->start_cls & ~G_START_PROBE, end = (int)g->stack.cls;
    bool probe = (g->start_cls & G_START_PROBE) != 0;
    if (probe && end == start)
        hint_set(g->fn, start);  /* one class less was enough */
    else if (!probe && end > start)
        hint_set(g->fn, end);    /* the hint (or one page) was not */
}

/* ------------------------------------------------------------------
 * Making records (the arenas: top of file)
 * ------------------------------------------------------------------ */

struct goro__grecs goro__grecs;
/* Records made whose home could not be had (no memory): zeroed but for
 * the link, G_IDLE, reused first. Under sched.lock. */
static G *homeless;

_Static_assert(sizeof(G) % 8 == 0, "G records are cut one after the other");
#if !GORO_ANN_FIBERS
_Static_assert(sizeof(G) <= 176, "G: every byte is paid per parked goroutine (top of file)");
#endif

/* A record with a home, or NULL (errno set). */
static G *g_make(void)
{
    pthread_mutex_lock(&goro__sched.lock);
    G *g = homeless;
    if (g != NULL) {
        homeless = g->schedlink;
        g->schedlink = NULL;
    } else {
        size_t i = (size_t)goro__grecs.n, a = i / GORO_G_PER_ARENA;
        if (a >= GORO_G_ARENAS) {
            pthread_mutex_unlock(&goro__sched.lock);
            errno = ENOMEM;
            return NULL;
        }
        if (goro__grecs.arena[a] == NULL) {
            void *p = mmap(NULL, GORO_G_ARENA_BYTES, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) {
                pthread_mutex_unlock(&goro__sched.lock);
                errno = ENOMEM;
                return NULL;
            }
            goro__grecs.arena[a] = p;
        }
        g = goro__g_at(i);
        /* release: the arena pointer (and a zeroed record, G_IDLE) before
         * a walker that loaded the count may look at it */
        AO_store_release(&goro__grecs.n, (AO_t)(i + 1));
    }
    pthread_mutex_unlock(&goro__sched.lock);
    int rc = goro__stack_new_home(g);
    if (rc < 0) {
        pthread_mutex_lock(&goro__sched.lock);
        g->schedlink = homeless;
        homeless = g;
        pthread_mutex_unlock(&goro__sched.lock);
        errno = -rc;
        return NULL;
    }
    return g;
}

G *goro__g_new(W *w, goro_fn fn, void *arg)
{
    G *g = gfree_get(w);
    if (g == NULL && (g = g_make()) == NULL)
        return NULL;
    /* The stack is swapped when the goroutine first runs (a spawned
     * goroutine may wait long in a queue, and its big stack with it). */
    bool probe;
    int cls = hint_get(w, fn, &probe);
    g->start_cls = (uint8_t)(cls | (probe ? G_START_PROBE : 0));
    g->fn = fn;
    g->ctx.r13 = (uint64_t)(uintptr_t)arg; /* until it first runs: goro__g_main */
    g->is_main = false;
    g->wait_reason = W_NONE;
    g->waitobj = NULL;
    g->param = 0;
    g->schedlink = NULL;
    /* relaxed: only the spawner touches the record until it is published
     * on a run queue (with release) */
    g->id = AO_fetch_and_add1(&goro__sched.next_id);

    /* Never ran: the first switch is goro__ctx_start (switch_x86_64.S).
     * Nothing is written into the stack here. */
    g->ctx.rsp = NULL;
    g->status = G_RUNNABLE;
    if (w != NULL)
        GORO_OWNER_STORE(w->nspawn, w->nspawn + 1); /* read by goro_stats */
    else
        AO_fetch_and_add1(&goro__sched.spawned_foreign);
    return g;
}

void goro__g_free(W *w, G *g)
{
    hint_exit(g);
    g->status = G_IDLE;
    g->fn = NULL;
    /* its record goes to a free list: back to its one-page home */
    goro__stack_go_home(g);
    g->schedlink = w->gfree;
    w->gfree = g;
    if (++w->ngfree > GFREE_LOCAL) {
        G *head = NULL;
        int n = 0;
        while (n < GFREE_BATCH) {
            G *x = w->gfree;
            w->gfree = x->schedlink;
            x->schedlink = head;
            head = x;
            n++;
        }
        w->ngfree -= n;
        G *tail = head;
        while (tail->schedlink)
            tail = tail->schedlink;
        pthread_mutex_lock(&gfree_lock);
        tail->schedlink = goro__sched.gfree;
        __atomic_store_n(&goro__sched.gfree, head, __ATOMIC_RELAXED);
        goro__sched.ngfree += n;
        pthread_mutex_unlock(&gfree_lock);
    }
}

void goro__g_free_all(void)
{
    pthread_mutex_lock(&gfree_lock);
    goro__sched.gfree = NULL;
    goro__sched.ngfree = 0;
    pthread_mutex_unlock(&gfree_lock);
    pthread_mutex_lock(&goro__sched.lock);
    size_t n = goro__g_count();
    homeless = NULL;
    pthread_mutex_unlock(&goro__sched.lock);
    for (size_t i = 0; i < n; i++) {
        G *g = goro__g_at(i);
        /* discarded while alive (goro_run returned): its stack's
         * registration and fiber (annotate.h) go with it */
        AO_t st = g->status;
        if ((st == G_RUNNABLE || st == G_RUNNING || st == G_WAITING) && g->ctx.rsp != NULL)
            goro__ann_g_exit(g);
        goro__stack_free_g(g);
        goro__local_free(g);
    }
    AO_store_release(&goro__grecs.n, 0);
    for (size_t a = 0; a < GORO_G_ARENAS && goro__grecs.arena[a] != NULL; a++) {
        munmap(goro__grecs.arena[a], GORO_G_ARENA_BYTES);
        goro__grecs.arena[a] = NULL;
    }
}

/* ------------------------------------------------------------------
 * Goroutine dump
 * ------------------------------------------------------------------ */

static const char *status_name(const G *g)
{
    switch (g->status) {
    case G_RUNNABLE: return "runnable";
    case G_RUNNING: return "running";
    case G_WAITING: return goro__wait_names[g->wait_reason < W_NREASONS ? g->wait_reason : 0];
    default: return "dead";
    }
}

/* Prints with write(2) into fd and takes no lock, so it can run from a
 * signal handler and while the runtime is wedged. Records are never freed
 * while the runtime runs, so walking them is safe. */
void goro__dump(int fd, const char *why)
{
    char line[256];
    int64_t now = goro__coarse_now();
    int n = snprintf(line, sizeof line, "goro: goroutine dump (%s):\n", why);
    if (write(fd, line, (size_t)n) < 0)
        return;
    size_t count = goro__g_count();
    for (size_t i = 0; i < count; i++) {
        G *g = goro__g_at(i);
        int st = (int)g->status;
        if (st == G_IDLE || st == G_DEAD)
            continue;
        char dur[64] = "";
        if (st == G_WAITING && g->wait_since > 0) {
            int64_t d = now - g->wait_since;
            if (d >= 60 * (int64_t)1000000000)
                snprintf(dur, sizeof dur, ", %lld minutes", (long long)(d / 60000000000LL));
            else if (d >= 1000000)
                snprintf(dur, sizeof dur, ", %lld ms", (long long)(d / 1000000));
            else
                snprintf(dur, sizeof dur, ", %lld us", (long long)(d / 1000));
        }
        char obj[48] = "";
        if (st == G_WAITING && g->waitobj)
            snprintf(obj, sizeof obj, " on %p", g->waitobj);
        /* the stack it runs on now (a racy read of two words: a dump) */
        size_t kib = (size_t)(g->stack.hi - g->stack.lo) / 1024;
        AO_t cs = g->cstate;
        n = snprintf(line, sizeof line, "goroutine %llu [%s%s]%s%s, stack %zu KiB%s\n",
                     (unsigned long long)g->id, status_name(g), dur, obj,
                     g->is_main ? " (main)" : "", kib,
                     cs == C_COMPACTED || cs == C_COMPACTING || cs == C_DORMANT ? " (compacted)"
                                                                                    : "");
        if (write(fd, line, (size_t)n) < 0)
            return;
    }
}

/* SIGQUIT prints the dump and exits with status 2, as in Go. Installed
 * only when the program left SIGQUIT at its default action. */
static struct sigaction old_quit;
static bool quit_installed;

static void on_sigquit(int sig)
{
    (void)sig;
    static const char msg[] = "SIGQUIT: quit\n";
    if (write(2, msg, sizeof msg - 1) >= 0)
        goro__dump(2, "SIGQUIT");
    _exit(2);
}

void goro__diag_init(void)
{
    struct sigaction cur;
    quit_installed = false;
    if (sigaction(SIGQUIT, NULL, &cur) != 0 || cur.sa_handler != SIG_DFL)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigquit;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_ONSTACK;
    if (sigaction(SIGQUIT, &sa, &old_quit) == 0)
        quit_installed = true;
}

void goro__diag_fini(void)
{
    if (quit_installed)
        sigaction(SIGQUIT, &old_quit, NULL);
    quit_installed = false;
}

void goro__deadlock(void)
{
    static const char msg[] = "goro: fatal: all goroutines are asleep - deadlock!\n\n";
    fflush(NULL);
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(2);
    goro__dump(2, "deadlock");
    _exit(2);
}

/* ------------------------------------------------------------------
 * goro_stats
 * ------------------------------------------------------------------ */

static struct goro_stats last_stats;

static void stats_sum(struct goro_stats *st)
{
    uint64_t spawned = AO_load(&goro__sched.spawned_foreign), exited = 0, sw = 0;
    for (int i = 0; i < goro__sched.nprocs && goro__sched.ws; i++) {
        /* racy reads of other workers' counters: a snapshot, not a fence */
        spawned += __atomic_load_n(&goro__sched.ws[i].nspawn, __ATOMIC_RELAXED);
        exited += __atomic_load_n(&goro__sched.ws[i].nexit, __ATOMIC_RELAXED);
        sw += __atomic_load_n(&goro__sched.ws[i].nswitch, __ATOMIC_RELAXED);
    }
    memset(st, 0, sizeof *st);
    /* main is spawned from no worker (spawned_foreign) */
    st->spawned = spawned;
    st->goroutines = spawned >= exited ? spawned - exited : 0;
    st->steals = AO_load(&goro__ctr.steals);
    st->stack_growths = AO_load(&goro__ctr.stack_growths);
    st->stack_bytes_copied = AO_load(&goro__ctr.stack_bytes_copied);
    st->stack_max = AO_load(&goro__ctr.stack_max);
    st->netpoll_wakeups = AO_load(&goro__ctr.netpoll_wakeups);
    st->procs = (uint64_t)goro__sched.nprocs;
    st->context_switches = sw;
    st->worker_sleeps = AO_load(&goro__ctr.worker_sleeps);
    st->stack_bytes_reserved = AO_load(&goro__ctr.stack_bytes_reserved);
    st->stack_shrinks = AO_load(&goro__ctr.stack_shrinks) + AO_load(&goro__ctr.stack_compactions);
    st->stack_compactions = AO_load(&goro__ctr.stack_compactions);
    st->stacks_compacted = AO_load(&goro__ctr.stacks_compacted);
    st->stack_clusters_asleep = AO_load(&goro__ctr.stack_clusters_asleep);
}

void goro__stats_snapshot(void)
{
    stats_sum(&last_stats);
}

void goro_stats(struct goro_stats *out)
{
    if (out == NULL)
        return;
    if (goro__running())
        stats_sum(out);
    else
        *out = last_stats;
}

/* ------------------------------------------------------------------
 * goro_go, goro_id
 * ------------------------------------------------------------------ */

int goro_go(goro_fn fn, void *arg)
{
    if (fn == NULL)
        return -EINVAL;
    if (!goro__running())
        return -EPERM;
    W *w = goro__self_w();
    if (w != NULL && w->curg == NULL)
        w = NULL;
    /* errno is left as it was on success (stack_space.c's get_any_locked
     * restores it after the carve's calls that may fail on the way) */
    G *g = goro__g_new(w, fn, arg);
    if (g == NULL)
        return -errno;
    goro__sched_spawn(w, g);
    return 0;
}

uint64_t goro_id(void)
{
    G *g = goro__self();
    return g ? g->id : 0;
}
