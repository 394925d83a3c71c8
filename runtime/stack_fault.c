/*
 * stack_fault.c - the fault entry: a goroutine ran off the bottom of its
 * stack, and this file decides the growth and carries it out; also the
 * GORO_DEBUG=stackcheck quarantine and the stacks' set-up.
 *
 * What. Every goroutine runs on a contiguous stack (one page by default,
 * GORO_STACK_MIN; more when goroutines of its function needed more: g.c's
 * start-size hints) above a guard region. Running off the bottom touches
 * the guard; the SIGSEGV/SIGBUS handler (signal.c, on the worker's
 * alternate signal stack) calls goro__stack_fault, which moves the
 * goroutine to a stack at least twice as large and returns: the faulting
 * instruction runs again on the new stack. DESIGN.md "Stacks" is the
 * specification.
 *
 *     high  +------------------------+  hi     entry frame, then g_main, fn ...
 *           |  used part             |
 *           |          v  rsp        |
 *           |  red zone (128 bytes)  |  copied too: leaf code keeps data there
 *           |  free part             |
 *           +------------------------+  lo
 *           |  guard region (64 KiB) |  any access faults (stack_guard.c)
 *     low   +------------------------+  lo - GORO_STACK_GUARD
 *
 * How a growth goes.
 *  1. The size: class c has (GORO_STACK_MIN << c) usable bytes; stacks
 *     below 1 MiB grow eightfold, larger ones twofold, more when the
 *     faulting access lies deeper (one frame may be larger than the whole
 *     stack), never past GORO_STACK_MAX (fatal, as in Go).
 *  2. The place: a stack whose top lies a multiple of 4 GiB from the old
 *     top (stack_space.c), so that relocation changes no byte the program
 *     wrote (stack_move.c says why). Under the allocator lock, held only
 *     for that; when this thread holds it already (the fault interrupted
 *     the allocator) or another holds it long, an own mapping in an
 *     emergency row.
 *  3. The move (stack_move.c): copy, relocate the copy, the registers and
 *     the FP state; here also the running G's own fields that may point
 *     into its stack on the way to park.
 *  4. The old stack: to the lock-free deferred list (the next lock holder
 *     pools it), or into quarantine under stackcheck; or, if it is the
 *     G record's home (its first one-page stack), kept for the record.
 *     Every stack of a record lies at its home's offset, so the record's
 *     next goroutine finds them pooled there (stack_space.c).
 *
 * The guard is 64 KiB (GORO_STACK_GUARD), not a page. Code built with
 * -fstack-clash-protection touches every page of a large frame in order,
 * but the C library usually is not (Debian's glibc has no probes):
 * vfprintf's helper frame is 8.3 KiB, vfwprintf's 33 KiB, fnmatch's
 * 18 KiB, and glibc's alloca goes up to 64 KiB; such a frame's first access
 * can land below a one-page guard, in the stack below it (tools/stackgrow
 * saw snprintf's result corrupted that way). 64 KiB of guard costs no
 * memory: with madvise guards it is page-table markers (and the page-table
 * pages under them, ~130 bytes per goroutine of kernel memory), with uffd
 * and mprotect address space only.
 *
 * Lending (stack_lend.c). A fault in the guard's top page whose code is
 * goro's own, or a user's call into goro, does not move the stack: the
 * page is lent (goro__stack_lend) and the access runs again.
 *
 * GORO_DEBUG=stackcheck: an old stack is not pooled but made inaccessible
 * (guard over its whole range) and kept in a ring of QUARANTINE entries;
 * touching it is reported with the goroutine, the old and the new range.
 * GORO_DEBUG=stackinfo prints the configuration and the guard mechanism,
 * and at the end of goro_run the growths, shrinks and compactions (the
 * goroutine dump shows each goroutine's stack size and "(compacted)").
 *
 * Rejected alternatives. Segmented stacks (Go before 1.3: hot splits, and C
 * code cannot check a stack bound in every prologue). Big fixed stacks (a
 * million goroutines at 64 KiB is 64 GiB of address space and no growth
 * past it). Precise relocation (needs stack maps a C compiler does not
 * emit). Moves by any page-multiple distance with "magic windows" kept
 * free of stacks (addresses whose low 32 bits look like small ints or
 * glibc's FILE flags): relocation still rewrote the NUL of a string, or a
 * char, short or int, stored beside stale stack bytes (issue 12).
 *
 * Invariants:
 *  - A goroutine's stack changes only in the fault handler, on the worker
 *    running that goroutine; a parked goroutine's stack never moves, so
 *    pointers into it held by the runtime while it is parked stay valid.
 *    The only pointers into a running goroutine's stack kept outside it are
 *    its own G's waitobj and param and its worker's unlockarg (set on
 *    the way to park);
 *    grow() moves those with the stack. So a blocking call publishes a
 *    record on its stack only in its park commit (after the switch), and
 *    only if every waker unlinks it before readying the goroutine; records
 *    that stay linked after the wake-up (select's losing cases, an I/O
 *    waiter's timer) live on the heap. tests/test_window.c checks each.
 *  - g->stack.lo - GORO_STACK_GUARD .. g->stack.lo is always a guard,
 *    but for its top page while the stack is SF_LENT; [lo, hi) is always
 *    readable and writable (and, under uffd, populated).
 *  - Every move's distance is a multiple of 4 GiB; every stack lies in the
 *    rows of stack.h (tests/test_stale.c and test_stack.c check both).
 */
#include "stack.h"
#include "annotate.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_GUARD   (64 * 1024)
#define MAX_GUARD       (16ul << 20)
#define FAST_GROW_BELOW (1024 * 1024)   /* stacks below this grow eightfold */
#define QUARANTINE      256             /* old stacks kept by stackcheck */
#define DEFAULT_MAX     (1ul << 30)     /* GORO_STACK_MAX default, as in Go */
/* GORO_STACK_MIN's default: a page; 16 KiB in ThreadSanitizer builds.
 * TSan's runtime runs on the goroutine's stack, and goro makes room for
 * it below rsp before each switch (annotate.h, goro__ann_headroom: 8 KiB):
 * on a one-page stack every goroutine would grow at its first run. With
 * 16 KiB, one that stays shallow never grows, and one that goes deeper
 * grows as in other builds (the suites about growth set one page). */
#if GORO_ANN_TSAN
#define DEFAULT_MIN     (16 * 1024)
#else
#define DEFAULT_MIN     0               /* the page size */
#endif

struct goro__stk goro__stk = { .uffd = -1, .pidfd = -1, .memfd = -1 };

/* A stackcheck quarantine entry. state: Q_EMPTY -> Q_BUSY -> Q_FULL ->
 * Q_BUSY (being replaced) -> Q_FULL ... */
enum { Q_EMPTY, Q_BUSY, Q_FULL };
struct qent {
    volatile AO_t state;
    uint64_t gid;
    bool home;                 /* the goroutine's home: never pooled from here */
    struct goro__stack old;
    char *nlo, *nhi;           /* where the goroutine went */
};

static struct {
    volatile AO_t qhead;       /* quarantine ring cursor */
    struct qent q[QUARANTINE];
    /* growth time histogram: 8 sub-buckets per power of two of ns */
    volatile AO_t hist[64 * 8];
} fs;

size_t goro__pagesize(void)
{
    if (goro__stk.pg == 0)
        goro__stk.pg = (size_t)sysconf(_SC_PAGESIZE);
    return goro__stk.pg;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void hist_add(int64_t ns)
{
    uint64_t v = ns > 0 ? (uint64_t)ns : 1;
    int lg = 63 - __builtin_clzll(v);
    int sub = lg >= 3 ? (int)((v >> (lg - 3)) & 7) : 0;
    /* relaxed: a statistic */
    AO_fetch_and_add1(&fs.hist[lg * 8 + sub]);
}

uint64_t goro__stack_growth_quantile(double q)
{
    uint64_t total = 0;
    for (int i = 0; i < 64 * 8; i++)
        total += AO_load(&fs.hist[i]);
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (int i = 0; i < 64 * 8; i++) {
        seen += AO_load(&fs.hist[i]);
        if (seen > want || (seen == total && seen > 0)) {
            int lg = i / 8, sub = i % 8;
            if (lg < 3)
                return 1ull << lg;
            uint64_t base = 1ull << lg, step = base >> 3;
            return base + (uint64_t)sub * step + step / 2;
        }
    }
    return 0;
}

/* Retire the stack a goroutine left: to the deferred list (the next lock
 * holder pools it) or into quarantine. Its home stays with it, guarded
 * under stackcheck (and listed in the quarantine for the report). */
void goro__stack_retire(G *g, struct goro__stack *old, bool home)
{
    goro__stack_unlend(old);
    if (goro__stk.stackcheck) {
        /* relaxed: only picks a slot; the slot's state word orders the rest */
        size_t i = AO_fetch_and_add1(&fs.qhead) % QUARANTINE;
        struct qent *e = &fs.q[i];
        AO_t was;
        for (;;) {
            was = AO_load(&e->state);
            /* acquire: the previous entry's fields, to evict it */
            if (was != Q_BUSY && AO_compare_and_swap_acquire(&e->state, was, Q_BUSY))
                break;
            __asm__ __volatile__("pause" ::: "memory");
        }
        if (was == Q_FULL && !e->home) {
            struct goro__stack ev = e->old;
            if (goro__guard_off(ev.lo, stk_usable(&ev)) == 0) {
                ev.flags &= ~(uint32_t)SF_TRIMMED;
                goro__space_defer(&ev);
            } /* else: leaked, harmlessly inaccessible */
        }
        e->gid = g->id;
        e->home = home;
        e->old = *old;
        e->nlo = g->stack.lo;
        e->nhi = g->stack.hi;
        if (goro__guard_on(old->lo, stk_usable(old)) == 0 && home)
            g->home |= 1; /* guarded */
        /* release: the entry's fields before it counts as full */
        AO_store_release(&e->state, Q_FULL);
        return;
    }
    if (!home)
        goro__space_defer(old);
}

void goro__space_home_back(G *g)
{
    goro__doze_home(g); /* its cluster may be asleep (stack_doze.c) */
    struct goro__stack h = stk_home(g);
    if ((g->home & 1) && goro__guard_off(h.lo, stk_usable(&h)) == 0)
        g->home &= ~(uintptr_t)1;
}

static void grow(W *w, G *g, uintptr_t addr, ucontext_t *uc)
{
    int64_t t0 = mono_ns();
    struct goro__stack old = g->stack;
    uintptr_t rsp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t hi = (uintptr_t)old.hi;
    uintptr_t low = addr < rsp - REDZONE ? addr : rsp - REDZONE;
    /* Stacks below 1 MiB grow eightfold, larger ones twofold. Each growth
     * is a trap, a signal and a sigreturn (10-20 us on this VM, measured,
     * before any copying), and a stack's untouched pages cost no memory, so
     * skipping classes costs address space, not RSS: a goroutine recursing
     * to 256 KiB grows twice, not 6 times, and copies 36 KiB, not 252 KiB
     * (bench stack_10k_256k: 570 ms twofold, 317 fourfold, 230 eightfold). */
    size_t oldsize = stk_usable(&old), need = (hi - low) + goro__stk.pg;
    int step = oldsize < FAST_GROW_BELOW ? 3 : 1;
    size_t nsz = oldsize << step;
    int cls = (int)old.cls + step;
    while (nsz < need) {
        nsz *= 2;
        cls++;
    }
    while (step > 1 && nsz / 2 >= need && nsz / 2 >= oldsize * 2 &&
           (nsz > goro__stk.max || cls >= NCLS)) {
        nsz /= 2; /* eightfold would pass the limit: a smaller step may not */
        cls--;
    }
    if (nsz > goro__stk.max || cls >= NCLS)
        goro__fatal("goroutine %llu stack exceeds limit of %zu bytes",
                    (unsigned long long)g->id, goro__stk.env_max);

    /* The new place: under the lock, which is held only for that (the
     * copy runs without it); without the lock when this thread holds it
     * (the fault interrupted the allocator) or another thread holds it
     * long: then an emergency mapping, and failing that, the wait. */
    struct goro__stack ns;
    int how = goro__stk.emergency ? 0 : goro__space_trylock();
    int rc = -EAGAIN;
    if (how == 1) {
        rc = goro__space_get_at_locked(cls, hi, &ns);
        goro__space_unlock();
    } else {
        rc = goro__space_get_emergency(cls, hi, &ns);
        if (rc < 0 && how == 0) {
            goro__space_lock();
            rc = goro__space_get_at_locked(cls, hi, &ns);
            goro__space_unlock();
        }
    }
    if (rc < 0)
        goro__fatal("out of memory growing goroutine %llu stack to %zu bytes (%s)%s",
                    (unsigned long long)g->id, nsz, strerror(-rc),
                    goro__stk.guard == GUARD_MPROTECT ? ": the vm.max_map_count limit?" : "");

    goro__ann_move_begin(&old, &ns);
    size_t copied = goro__stack_move(uc, addr, &old, &ns);

    /* The running goroutine's own record, and its worker, may point into
     * its stack while it is on its way to park: goro__park stores its
     * unlock function's argument (a waiter record on this stack) in the
     * worker before the switch, and the switch path still runs on this
     * stack. Those fields move too. */
    uintptr_t glo = (uintptr_t)old.lo - goro__stk.gsz;
    uint64_t delta = (uint64_t)(uintptr_t)ns.hi - hi;
    void **selfp[] = { &w->unlockarg, &g->waitobj, (void **)(void *)&g->param };
    for (size_t i = 0; i < sizeof selfp / sizeof selfp[0]; i++) {
        uint64_t v = (uint64_t)(uintptr_t)*selfp[i];
        if (stk_in(v, glo, hi))
            *selfp[i] = (void *)(uintptr_t)(v + delta);
    }

    bool home = stk_is_home(g, &old);
    g->stack = ns;
    goro__ann_moved(g, &old, uc);
    goro__stack_retire(g, &old, home);

    /* relaxed: statistics */
    AO_fetch_and_add1(&goro__ctr.stack_growths);
    AO_fetch_and_add(&goro__ctr.stack_bytes_copied, (AO_t)copied);
    /* the home stays reserved: the new stack adds its page too */
    AO_fetch_and_add(&goro__ctr.stack_bytes_reserved,
                     (AO_t)(home ? nsz + goro__stk.pg : nsz - oldsize));
    goro__space_note_max(nsz);
    hist_add(mono_ns() - t0);
}

static void stale_report(uintptr_t addr)
{
    for (int i = 0; i < QUARANTINE; i++) {
        struct qent *e = &fs.q[i];
        /* acquire: pairs with the release that filled the entry */
        if (AO_load_acquire(&e->state) != Q_FULL)
            continue;
        uintptr_t lo = (uintptr_t)e->old.lo, hi = (uintptr_t)e->old.hi;
        if (addr >= lo - goro__stk.gsz && addr < hi)
            goro__fatal("goroutine %llu: stale pointer %p into an old stack "
                        "(GORO_DEBUG=stackcheck): the stack moved from %p-%p to %p-%p",
                        (unsigned long long)e->gid, (void *)addr, (void *)lo,
                        (void *)hi, (void *)e->nlo, (void *)e->nhi);
    }
}

int goro__stack_fault(int sig, void *siginfo, void *ucontext)
{
    siginfo_t *si = siginfo;
    if (si->si_code <= 0)
        return 0;                 /* sent by kill(2) and friends: no fault */
    uintptr_t addr = (uintptr_t)si->si_addr;
    W *w = goro__self_w();
    G *g = w ? w->curg : NULL;
    if (g != NULL && g->stack.lo != NULL) {
        uintptr_t lo = (uintptr_t)g->stack.lo;
        if (addr < lo && addr >= lo - goro__stk.gsz) {
            if (goro__stack_lend(g, addr, ucontext))
                return 1;
            if (unlikely(goro__on_valgrind))
                goro__vg_fault(ucontext, addr); /* annotate.c */
            grow(w, g, addr, ucontext);
            return 1;
        }
    }
    /* a compacted goroutine's stack, touched by a waker or by a goroutine
     * it handed a pointer to: restored in place (stack_idle.c) */
    if (goro__idle_fault(addr))
        return 1;
    if (goro__stk.stackcheck)
        stale_report(addr);
    /* uffd: a hole in the running goroutine's usable range (never left
     * there by the stack files, but harmless to fill) */
    if (sig == SIGBUS && goro__stk.guard == GUARD_UFFD && g != NULL &&
        addr >= (uintptr_t)g->stack.lo && addr < (uintptr_t)g->stack.hi) {
        size_t pg = goro__stk.pg;
        if (goro__uffd_fill((char *)(addr & ~(uintptr_t)(pg - 1)), pg) == 0)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------
 * Set-up and tear-down
 * ------------------------------------------------------------------ */

static size_t env_bytes(const char *name, size_t def)
{
    const char *s = getenv(name);
    if (s == NULL || *s == 0)
        return def;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    else if (*end == 'g' || *end == 'G')
        v <<= 30, end++;
    if (*end != 0 || v == 0) {
        fprintf(stderr, "goro: ignoring %s=%s (want a byte count)\n", name, s);
        return def;
    }
    return (size_t)v;
}

/* The fds that name this process (goro__stk.pidfd, .memfd), kept across
 * runs. A child of fork() inherits its parent's, which name the parent:
 * process_madvise through the pidfd would act on it, and /proc/self/mem
 * would read and write its memory. So a run in another process opens its
 * own. */
static void own_fds(void)
{
    static pid_t opened_by;
    if (opened_by != getpid()) {
        if (goro__stk.pidfd >= 0)
            close(goro__stk.pidfd);
        if (goro__stk.memfd >= 0)
            close(goro__stk.memfd);
        goro__stk.pidfd = goro__stk.memfd = -1;
        opened_by = getpid();
    }
    if (goro__stk.pidfd < 0 && !goro__on_valgrind) /* Valgrind lacks pidfd_open */
        goro__stk.pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (goro__stk.memfd < 0)
        goro__stk.memfd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
}

void goro__stack_init(void)
{
    size_t pg = goro__pagesize();
    size_t min = env_bytes("GORO_STACK_MIN", DEFAULT_MIN ? DEFAULT_MIN : pg);
    min = (min + pg - 1) & ~(pg - 1);
    goro__stk.min = min;
    size_t gsz = env_bytes("GORO_STACK_GUARD", DEFAULT_GUARD);
    gsz = (gsz + pg - 1) & ~(pg - 1);
    goro__stk.gsz = gsz < pg ? pg : gsz > MAX_GUARD ? MAX_GUARD : gsz;
    goro__stk.env_max = env_bytes("GORO_STACK_MAX", DEFAULT_MAX);
    if (goro__stk.env_max < min)
        goro__stk.env_max = min;
    goro__stk.max = goro__stk.env_max;
    goro__stk.stackcheck = goro__debug("stackcheck");
    /* not under the sanitizers (their view of a fiber's stack ends at lo)
     * nor Valgrind; a one-page guard has no page to lend */
    goro__stk.lend = !goro__debug("nolend") && !GORO_ANN_FIBERS && !goro__on_valgrind &&
                     goro__stk.gsz >= 2 * pg;
    own_fds();
    if (goro__stk.lend)
        goro__lend_init();
    goro__stk.emergency = goro__debug("stackemergency");
    memset((void *)fs.q, 0, sizeof fs.q);
    memset((void *)fs.hist, 0, sizeof fs.hist);
    fs.qhead = 0;
    goro__move_init();
    goro__guard_choose();
    goro__space_init();
    goro__idle_init();
    char compact[64] = "off (GORO_COMPACT_AFTER=off, or not madvise guards)";
    if (goro__stk.compact)
        snprintf(compact, sizeof compact, "after a park of %lld ms",
                 (long long)(goro__stk.compact_after / 1000000));
    char lend[96] = "";
    if (goro__stk.lend)
        snprintf(lend, sizeof lend, ", the guard's top page lent to goro's own code "
                 "(memory read by %s)", goro__lend_reads());
    if (goro__debug("stackinfo"))
        fprintf(stderr, "goro: stacks: %zu bytes to start, limit %zu, %zu-byte guards by %s, "
                "region %#lx-%#lx, moves by multiples of 4 GiB%s%s\n"
                "goro: stacks: shrink at a run after %lld ms parked using under a quarter; "
                "compaction %s\n",
                goro__stk.min, goro__stk.max, goro__stk.gsz, goro__stack_guard_name(),
                (unsigned long)STK_ADDR(STK_W_LO), (unsigned long)STK_ADDR(STK_W_END),
                goro__stk.stackcheck ? ", stackcheck on" : "",
                lend,
                (long long)(GORO_SHRINK_AFTER_NS / 1000000),
                compact);
}

void goro__stack_fini(void)
{
    if (goro__debug("stackinfo"))
        fprintf(stderr, "goro: stacks: %lu growths, %lu guard pages lent to goro's own code, "
                "%lu shrinks, %lu compactions, "
                "largest %lu bytes; %lu cluster sleeps, %lu wakes, %lu resumed off one\n",
                (unsigned long)AO_load(&goro__ctr.stack_growths),
                (unsigned long)AO_load(&goro__ctr.stack_lends),
                (unsigned long)AO_load(&goro__ctr.stack_shrinks),
                (unsigned long)AO_load(&goro__ctr.stack_compactions),
                (unsigned long)AO_load(&goro__ctr.stack_max),
                (unsigned long)AO_load(&goro__ctr.stack_cluster_sleeps),
                (unsigned long)AO_load(&goro__ctr.stack_cluster_wakes),
                (unsigned long)AO_load(&goro__ctr.stack_cluster_leaves));
    /* quarantined stacks: back to the space (emergency ones unmapped) */
    for (int i = 0; i < QUARANTINE; i++) {
        if (fs.q[i].state == Q_FULL && (fs.q[i].old.flags & SF_EMERG))
            munmap(stk_map(&fs.q[i].old), stk_maplen(&fs.q[i].old));
        fs.q[i].state = Q_EMPTY;
    }
    goro__idle_fini();
    goro__space_fini();
    goro__guard_fini();
}
