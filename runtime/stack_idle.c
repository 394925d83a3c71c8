/*
 * stack_idle.c - giving stack memory back: shrinking a stack a goroutine
 * no longer uses, and compacting the stacks of goroutines parked for long.
 *
 * Shrinking. A goroutine that once ran deep keeps its big stack (growth
 * only ever moves up). When such a goroutine is about to run again after
 * a park of at least GORO_SHRINK_AFTER_NS (10 ms), using under a quarter
 * of its stack, it is moved to a smaller one first: the smallest class
 * whose size is at least four times the used part, and at least one class
 * down (so at least halving, as Go does at a collection). The move is the
 * growth's sound move (stack_move.c's relocation, a distance that is a
 * multiple of 4 GiB: every stack of a G record lies at its home's offset),
 * made by the worker that resumes the goroutine, on its way into it
 * (sched.c, resume), not in a signal handler.
 *   Why then. A stack may move only while no pointer into it is held
 *   outside it that relocation cannot see (DESIGN.md "Stacks" 3): while a
 *   goroutine is parked, its wakers and the goroutines it handed pointers
 *   to may use them (README rule 5: "while the owner is blocked waiting for
 *   the answer"); once it has been readied, the answer is in, and the
 *   runtime unlinks every record on its stack before readying it
 *   (stack_fault.c's invariants). So the moment between ready and run is
 *   the one where a move is as safe as a growth at its first instruction.
 *   Why 10 ms. A goroutine that parks and wakes in a tight loop (a
 *   ping-pong, a busy channel) never waits that long, so it never pays a
 *   move; one that does shrink and then needs the depth again pays a few
 *   growth faults (~20 us each) per 10 ms or more of sleep: at most ~1%.
 *   The parked time is the worker's coarse clock (W.clock), stale by at
 *   most a scheduling round: it can only make a wait look longer, once.
 *
 * Compaction. A goroutine parked for GORO_COMPACT_AFTER (1 s by default)
 * gives its whole stack back: the used part (from its saved rsp to the top,
 * a few hundred bytes for most parks) is copied into a malloc'd buffer,
 * and the stack's range gets guard markers (MADV_GUARD_INSTALL), which
 * drops its pages: the RSS falls, and the page is no longer the cost of a
 * parked goroutine (parked_100k: 4,476 bytes of RSS and page tables before,
 * 725 after, 566 since the table below and the buffer shrank; idle_conns:
 * 1,812 bytes a connection, Go 7,460). Before it runs again the worker
 * that resumes it copies the used part back (in place, or into a smaller
 * stack: shrinking, or into a one-page stack in another row when its
 * home's cluster sleeps: stack_doze.c, which also gives back the page
 * table under clusters of compacted homes). The poller thread makes the pass
 * (goro__stack_idle_pass, from netpoll.c's loop), a slice at a time.
 *   Who may touch a compacted stack. Its waker (a channel sender copying
 *   into the receiver's variable, a queue unlinking a waiter record on the
 *   stack, a timer heap comparing deadlines) and any goroutine or thread
 *   it handed a pointer to. Every such access from user space hits a
 *   guard marker; the fault handler (stack_fault.c) asks
 *   goro__idle_fault, which finds the goroutine by the stack's top (the
 *   ctop tables, one per row, a slot per granule of the row: the largest
 *   power of two that is at most the smallest stack's span, guard
 *   included, 64 KiB by default; live stacks in one row do not overlap,
 *   so their tops lie in distinct granules; across rows they may share
 *   one, as homes fill row 0x80 and then take the same positions in 0x81)
 *   and restores the stack in place; the access runs again. A slot per
 *   page instead cost a table page per cluster of 30 homes, 136 bytes a
 *   compacted goroutine (parked_1m: 709 bytes a goroutine, 581 without).
 *   A system call that writes into a compacted stack gets EFAULT instead
 *   (the kernel does not raise the fault): README rule 5 says so; goro's
 *   own I/O calls restore it and retry (netpoll/io.c, goro__idle_touch).
 *   Nobody may see a stack half compacted or half restored: the used pages
 *   are made inaccessible (PROT_NONE) first, so that any access faults and
 *   waits for the end, and copied out (or back) through /proc/self/mem,
 *   which can read and write them; then guarded (or unguarded) and made
 *   accessible again (the kernel merges the mappings back: four system
 *   calls, ~8 us). Read-only is not enough: MADV_GUARD_INSTALL drops the
 *   pages before it places its markers, and a read in between gets a fresh
 *   zero page (tests/test_compact.c saw a sender read a zero waiter
 *   record). The restore at resume() needs none of it (nobody else may
 *   touch the stack then): guard removal and a copy, ~4 us.
 *   Which parks: all but goro_sleep (its timer record on the stack is
 *   compared by every heap operation nearby: each would restore it) and
 *   goro_blocking (a helper thread is running on the goroutine's data,
 *   and a system call there would get EFAULT). Only under madvise guards
 *   (Linux 6.13+), whose guard markers cost no kernel mapping.
 *
 * Invariants and races:
 *  - cstate (internal.h) is claimed NONE -> COMPACTING by CAS before the
 *    pass looks at status, so: either a waker's CAS of status WAITING ->
 *    RUNNABLE came first and the pass sees it and backs off, or the
 *    resumer's later load of cstate sees COMPACTING and waits. A G whose
 *    park is not finished (status WAITING, still a worker's curg) is
 *    skipped: its context is not saved yet.
 *  - A G runs only with cstate NONE and its stack readable and writable:
 *    resume() restores (or waits for a restore) first.
 *  - ctop[row][granule of its last byte] is the G while its stack is
 *    COMPACTING, COMPACTED, DORMANT or RESTORING, and is cleared before
 *    cstate leaves RESTORING.
 *  - The buffer belongs to the G until it runs: the fault handler never
 *    frees (it may have interrupted malloc), resume() does.
 *  - Nothing on the restore path takes a lock or allocates: it runs in the
 *    fault handler, on any thread, under any runtime lock.
 */
#include "stack.h"
#include "annotate.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEFAULT_COMPACT_AFTER (1000 * (int64_t)1000000) /* 1 s */
#define COMPACT_MAX    (16 * 1024)  /* a bigger used part is not compacted */
#define PASS_LOOKS     4096         /* G records looked at per pass slice */
#define PASS_COMPACTS  32           /* compactions per pass slice ... */
#define PASS_GAP_NS    1000000      /* ... and then a pause: see the pass */

/* G.cbuf holds the used part of a compacted stack, the bytes [rsp, hi):
 * its length is not stored, since neither the saved rsp nor the top moves
 * while the goroutine is compacted (a length word made parked_1m's buffer
 * a 192-byte malloc chunk instead of 176: the used part is always 8 modulo
 * 16, a return address above an aligned call). */
static inline size_t used_len(const G *g)
{
    return (size_t)((uintptr_t)g->stack.hi - (uintptr_t)g->ctx.rsp);
}

#define NROWS (STK_W_END - STK_W_LO)

static struct {
    /* per row (lazily mapped), by the granule of a stack's last byte.
     * Granules are unique among live stacks only within a row: homes
     * fill row 0x80 first, then take the same cluster positions in 0x81. */
    G *volatile *volatile ctop[NROWS];
    size_t nctop;           /* slots a row */
    unsigned gshift;        /* log2 of the granule */
    /* the pass: poller thread only */
    size_t cursor;          /* next record to look at: its index (g.c) */
    bool walking;
    int64_t next_walk;      /* -1: none due */
    int64_t earliest;       /* this walk: the first future due time */
    uint64_t switches;      /* context switches seen at the last walk */
} idle = { .next_walk = -1 };

static __thread uintptr_t retry_addr __attribute__((tls_model("initial-exec")));

/* The row and granule of a stack's last byte, hi - 1 (hi itself may be
 * the next row's first byte). */
static inline size_t top_index(uintptr_t hi)
{
    return (size_t)(((hi - 1) & (STK_ROW - 1)) >> idle.gshift);
}

static inline unsigned top_row(uintptr_t hi)
{
    return (unsigned)(((hi - 1) >> 32) & 0xff) - STK_W_LO;
}

/* The slot of the stack whose top is hi, or NULL when its row has no table
 * (create: map it; the pass only). */
static G *volatile *ctop_slot(uintptr_t hi, bool create)
{
    unsigned r = top_row(hi);
    if (r >= NROWS)
        return NULL;
    G *volatile *t = idle.ctop[r];
    if (t == NULL && create) {
        /* 512 KiB of address space a row (64 KiB granules), touched
         * where compacted goroutines' tops are (kept across runs) */
        void *p = mmap(NULL, idle.nctop * sizeof(G *), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        t = p;
        /* release: the zeroed table before it is reachable */
        __atomic_store_n(&idle.ctop[r], t, __ATOMIC_RELEASE);
    }
    return t ? &t[top_index(hi)] : NULL;
}

G *goro__idle_top(uintptr_t hi)
{
    G *volatile *slot = ctop_slot(hi, false);
    return slot ? *slot : NULL;
}

static inline uintptr_t page_down(uintptr_t a)
{
    return a & ~(uintptr_t)(goro__stk.pg - 1);
}

static void pause_a_little(int *spins)
{
    if (++*spins < 1000)
        __asm__ __volatile__("pause" ::: "memory");
    else
        sched_yield(); /* the compacting thread was descheduled */
}

static int64_t env_ms(const char *name, int64_t def, bool *off)
{
    const char *s = getenv(name);
    *off = false;
    if (s == NULL || *s == 0)
        return def;
    if (strcmp(s, "off") == 0) {
        *off = true;
        return def;
    }
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end != 0 || v < 0) {
        fprintf(stderr, "goro: ignoring %s=%s (want milliseconds or off)\n", name, s);
        return def;
    }
    return (int64_t)v * 1000000;
}

void goro__idle_init(void)
{
    bool off;
    goro__stk.compact_after = env_ms("GORO_COMPACT_AFTER", DEFAULT_COMPACT_AFTER, &off);
    /* Under Valgrind and ThreadSanitizer neither: their shadow of a stack
     * does not follow a copy they do not see (annotate.h tells them about
     * growth only). AddressSanitizer's shadow of a moved stack is reset
     * as at a growth (shrink_to), and stays where it is for a compacted
     * one (restored in place, at the same addresses). */
    goro__stk.shrink = !goro__on_valgrind && !GORO_ANN_TSAN;
    goro__stk.compact = !off && goro__stk.shrink && goro__stk.guard == GUARD_MADVISE &&
                        goro__stk.memfd >= 0;
    /* the granule: a power of two no larger than any stack's span (its
     * guard and at least a page). The tables are kept across runs (all
     * slots empty between them) unless GORO_STACK_GUARD changed it */
    unsigned shift = 12;
    while ((2ul << shift) <= goro__stk.gsz + goro__stk.pg)
        shift++;
    if (shift != idle.gshift) {
        for (unsigned r = 0; r < NROWS; r++)
            if (idle.ctop[r] != NULL) {
                munmap((void *)idle.ctop[r], idle.nctop * sizeof(G *));
                idle.ctop[r] = NULL;
            }
        idle.gshift = shift;
        idle.nctop = (size_t)(STK_ROW >> shift);
    }
    idle.cursor = 0;
    idle.walking = false;
    idle.next_walk = -1;
    idle.switches = 0;
    goro__doze_init();
}

void goro__idle_fini(void)
{
    idle.cursor = 0;
    idle.walking = false;
    idle.next_walk = -1;
}

/* ------------------------------------------------------------------
 * Restoring
 * ------------------------------------------------------------------ */

/* Wait until g's stack is not being compacted or restored by someone
 * else, and claim the restore if it is compacted: true if we own it
 * (RESTORING) now. */
static bool claim_restore(G *g)
{
    int spins = 0;
    for (;;) {
        /* acquire: the compaction's buffer and g->cbuf */
        AO_t s = g_cstate_load(g);
        if (s == C_COMPACTED) {
            if (g_cstate_cas(g, C_COMPACTED, C_RESTORING))
                return true;
            continue;
        }
        if (s == C_DORMANT) { /* its cluster is asleep: wake it first */
            goro__doze_wake(g);
            continue;
        }
        if (s != C_COMPACTING && s != C_RESTORING)
            return false;
        pause_a_little(&spins);
    }
}

static void unguard(const struct goro__stack *s)
{
    if (madvise(s->lo, stk_usable(s), MADV_GUARD_REMOVE) != 0)
        goro__fatal("restoring a compacted stack %p-%p: madvise: %s", (void *)s->lo,
                    (void *)s->hi, strerror(errno));
}

/* g (RESTORING) has its stack back, restored where its top was: out of
 * the table, and cstate then. */
static void uncompacted(G *g, uintptr_t top, AO_t then)
{
    *ctop_slot(top, false) = NULL;
    AO_fetch_and_sub1(&goro__ctr.stacks_compacted); /* relaxed: a statistic */
    /* release: the restored bytes before anyone sees the stack usable */
    g_cstate_store(g, then);
}

/* g is RESTORING: the used part back where it was. Async-signal-safe.
 * then: C_TOUCHED from the fault handler, while g is parked and others
 * may be touching its stack (two goroutines it handed pointers to, say):
 * the used pages are made inaccessible first, so that nobody reads or
 * writes them between the guards' removal (zero pages) and the copy,
 * which goes through /proc/self/mem (it can write into them). C_NONE
 * from resume(), where nobody else may touch the stack: the copy. */
static void restore_in_place(G *g, AO_t then)
{
    const unsigned char *b = g->cbuf;
    size_t len = used_len(g);
    char *used = g->stack.hi - len;
    if (then == C_TOUCHED) {
        char *from = (char *)page_down((uintptr_t)used);
        size_t span = (size_t)(g->stack.hi - from);
        if (mprotect(from, span, PROT_NONE) != 0)
            goro__fatal("restoring a compacted stack: mprotect: %s", strerror(errno));
        unguard(&g->stack);
        if (pwrite(goro__stk.memfd, b, len, (off_t)(uintptr_t)used) != (ssize_t)len)
            goro__fatal("restoring a compacted stack: writing /proc/self/mem: %s",
                        strerror(errno));
        if (mprotect(from, span, PROT_READ | PROT_WRITE) != 0)
            goro__fatal("restoring a compacted stack: mprotect: %s", strerror(errno));
    } else {
        unguard(&g->stack);
        if (GORO_ANN_ASAN) {
            /* the parked frames' red zones are still poisoned in the
             * shadow (same addresses): a copy that does not check */
            if (pwrite(goro__stk.memfd, b, len, (off_t)(uintptr_t)used) != (ssize_t)len)
                goro__fatal("restoring a compacted stack: writing /proc/self/mem: %s",
                            strerror(errno));
        } else {
            memcpy(used, b, len);
        }
    }
    uncompacted(g, (uintptr_t)g->stack.hi, then);
}

/* The goroutine in the table (compacted, or being compacted or restored)
 * whose stack holds addr, or NULL. Its used part, the only part anyone may
 * touch, lies within COMPACT_MAX below its top. */
static G *compacted_at(uintptr_t addr)
{
    if (idle.nctop == 0 || addr < STK_ADDR(STK_W_LO) || addr >= STK_ADDR(STK_W_END))
        return NULL;
    /* the tops that may be: above addr, at most COMPACT_MAX above its page */
    uintptr_t last = page_down(addr) + goro__stk.pg + COMPACT_MAX;
    uintptr_t gran = (uintptr_t)1 << idle.gshift;
    for (uintptr_t a = addr + 1;; a += gran) {
        if (a > last)
            a = last;
        G *volatile *slot = ctop_slot(a, false); /* the granule of byte a - 1 */
        G *g = slot ? *slot : NULL;
        if (g != NULL && addr >= (uintptr_t)g->stack.lo && addr < (uintptr_t)g->stack.hi &&
            (uintptr_t)g->stack.hi <= last)
            return g;
        if (a == last)
            return NULL;
    }
}

int goro__idle_fault(uintptr_t addr)
{
    G *g = compacted_at(addr);
    if (g == NULL)
        return 0;
    if (claim_restore(g)) {
        restore_in_place(g, C_TOUCHED);
        retry_addr = 0;
        return 1;
    }
    /* not compacted (any more): someone restored it between the fault and
     * now, so the access can run again; but only once, in case the fault
     * was something else */
    if (retry_addr == addr)
        return 0;
    retry_addr = addr;
    return 1;
}

bool goro__idle_touch(const void *p, size_t len)
{
    uintptr_t a = (uintptr_t)p, end = a + len;
    bool any = false;
    for (uintptr_t q = page_down(a); q < end && q >= page_down(a); q += goro__stk.pg) {
        G *g = compacted_at(q < a ? a : q);
        if (g != NULL && claim_restore(g)) {
            restore_in_place(g, C_TOUCHED);
            any = true;
        }
    }
    return any;
}

void goro__idle_forget(G *g)
{
    if (g->cstate == C_NONE && g->cbuf == NULL)
        return;
    if (claim_restore(g))
        restore_in_place(g, C_NONE);
    free(g->cbuf);
    g->cbuf = NULL;
    g->cstate = C_NONE;
}

/* ------------------------------------------------------------------
 * Shrinking (and restoring into a smaller stack)
 * ------------------------------------------------------------------ */

/* The class to shrink to with `used` bytes in use, or -1. */
static int shrink_class(const G *g, size_t used)
{
    size_t size = stk_usable(&g->stack);
    if (g->stack.cls == 0 || used * 4 > size || !goro__stk.shrink)
        return -1;
    int c = 0;
    while ((goro__stk.min << c) < used * 4)
        c++;
    return c < (int)g->stack.cls ? c : (int)g->stack.cls - 1;
}

/* A stack of class cls whose top is at hi plus a multiple of 4 GiB, in
 * another row: 0 or -errno. */
static int stack_at(int cls, uintptr_t hi, struct goro__stack *ns)
{
    goro__space_lock();
    int rc = goro__space_get_at_locked(cls, hi, ns);
    goro__space_unlock();
    return rc;
}

/* g onto ns: its used part (len bytes at src) copied below ns's top and
 * relocated, as a growth moves a stack; then the saved context and the
 * record's own fields that may point into the old stack (as grow() does
 * for the running goroutine). The old stack is the caller's to keep or
 * retire. */
static void move_to(G *g, const void *src, size_t len, const struct goro__stack *ns)
{
    struct goro__stack old = g->stack;
    uintptr_t glo = (uintptr_t)old.lo - goro__stk.gsz, hi = (uintptr_t)old.hi;
    intptr_t delta = (intptr_t)((uintptr_t)ns->hi - hi);
    goro__ann_move_begin(&old, ns); /* as a growth: annotate.h */
    goro__stack_copy_reloc(ns->hi - len, src, len, glo, hi, delta);
    uint64_t *regs[] = { (uint64_t *)(void *)&g->ctx.rsp, &g->ctx.rbx, &g->ctx.rbp,
                         &g->ctx.r12, &g->ctx.r13, &g->ctx.r14, &g->ctx.r15,
                         (uint64_t *)(void *)&g->waitobj, (uint64_t *)(void *)&g->param };
    for (size_t i = 0; i < sizeof regs / sizeof regs[0]; i++)
        if (stk_in(*regs[i], glo, hi))
            *regs[i] += (uint64_t)delta;
    g->stack = *ns;
}

/* Move g's used part (len bytes at src: its stack's own, or a compaction
 * buffer) to a stack of class cls at its offset. guarded: the old stack
 * carries guard markers (compacted) and is unguarded before it is
 * retired. False if no stack was to be had (g keeps its own). */
static bool shrink_to(G *g, const void *src, size_t len, int cls, bool guarded)
{
    struct goro__stack old = g->stack, ns;
    if (cls == 0) {
        goro__space_home_back(g);
        ns = stk_home(g);
    } else if (stack_at(cls, (uintptr_t)old.hi, &ns) < 0) {
        return false;
    }
    move_to(g, src, len, &ns);
    if (guarded)
        unguard(&old);
    bool home = cls == 0;
    goro__stack_retire(g, &old, false);
    /* relaxed: statistics. Reserved: the old stack's bytes go, the new
     * one's come (the home's are counted already). */
    AO_fetch_and_add(&goro__ctr.stack_bytes_reserved,
                     home ? (AO_t)0 - (AO_t)(stk_usable(&old) + goro__stk.pg)
                          : (AO_t)stk_usable(&ns) - (AO_t)stk_usable(&old));
    AO_fetch_and_add1(&goro__ctr.stack_shrinks);
    return true;
}

/* g (RESTORING, at home in a sleeping cluster: stack_doze.c) to a stack of
 * its home's class at its offset in another row, its used part (len bytes
 * at src) moved there as a growth moves it. Its home stays with the record,
 * asleep, until the record's goroutine goes home (goro__space_home_back
 * wakes it). A one-page stack is carved for it (class 0 is not pooled by
 * offset): a guard installed and a first touch, against a guard removed
 * and a first touch in place, and waking the cluster costs ~16 us more
 * (idle_conns_wake: even with a restore in place). False if no stack was
 * to be had. */
static bool leave_home(G *g, const void *src, size_t len)
{
    struct goro__stack ns;
    if (stack_at((int)g->stack.cls, (uintptr_t)g->stack.hi, &ns) < 0)
        return false;
    move_to(g, src, len, &ns);
    goro__space_reserved(&ns, 1); /* the home stays counted */
    AO_fetch_and_add1(&goro__ctr.stack_cluster_leaves); /* relaxed: statistics */
    return true;
}

void goro__stack_idle_resume(W *w, G *g)
{
    for (;;) {
        /* acquire: a compaction's or a restore's writes */
        AO_t cs = g_cstate_load(g);
        if (cs == C_NONE)
            break;
        if (cs == C_TOUCHED) {
            /* restored in place by a fault while parked (its waker wrote
             * into it); the pass may be taking it again: CAS */
            if (g_cstate_cas(g, C_TOUCHED, C_NONE)) {
                free(g->cbuf);
                g->cbuf = NULL;
                break; /* a shrink may still be due */
            }
            continue;
        }
        if (cs == C_DORMANT && goro__doze_leave(g)) {
            /* its cluster asleep: it runs elsewhere, the cluster sleeps on */
            unsigned char *b = g->cbuf;
            size_t len = used_len(g);
            uintptr_t top = (uintptr_t)g->stack.hi;
            if (leave_home(g, b, len)) {
                uncompacted(g, top, C_NONE);
            } else {
                goro__doze_home(g); /* no stack to be had: woken after all */
                restore_in_place(g, C_NONE);
            }
            free(b);
            g->cbuf = NULL;
            return;
        }
        if (!claim_restore(g))
            continue; /* restored meanwhile, or the compaction gave up */
        unsigned char *b = g->cbuf;
        size_t len = used_len(g);
        int cls = shrink_class(g, len);
        uintptr_t top = (uintptr_t)g->stack.hi;
        if (cls >= 0 && shrink_to(g, b, len, cls, true))
            uncompacted(g, top, C_NONE);
        else
            restore_in_place(g, C_NONE);
        free(b);
        g->cbuf = NULL;
        return;
    }
    if (g->wait_reason == W_NONE || w->clock - g->wait_since < GORO_SHRINK_AFTER_NS)
        return;
    size_t used = (size_t)((uintptr_t)g->stack.hi - (uintptr_t)g->ctx.rsp);
    int cls = shrink_class(g, used);
    if (cls >= 0)
        shrink_to(g, g->ctx.rsp, used, cls, false);
}

/* ------------------------------------------------------------------
 * Compacting (the poller thread's pass)
 * ------------------------------------------------------------------ */

static bool compactable(int reason)
{
    return reason != W_NONE && reason != W_SLEEP && reason != W_BLOCKING;
}

static bool running_somewhere(const G *g)
{
    for (int i = 0; i < goro__sched.nprocs; i++)
        if (__atomic_load_n(&goro__sched.ws[i].curg, __ATOMIC_ACQUIRE) == g)
            return true;
    return false;
}

/* -1, or when the pass should look at g's cluster again (stack_doze.c) */
static int64_t compact(G *g, int64_t now)
{
    uintptr_t rsp = (uintptr_t)g->ctx.rsp, hi = (uintptr_t)g->stack.hi;
    if (rsp == 0 || hi - rsp > COMPACT_MAX || rsp >= hi)
        return -1;
    unsigned char *b = malloc(hi - rsp);
    if (b == NULL)
        return -1;
    /* full: the claim before the status read (file comment). TOUCHED: it
     * was restored in this park by a fault, at least one pass ago */
    AO_t was = g->cstate;
    if ((was != C_NONE && was != C_TOUCHED) ||
        !g_cstate_cas(g, was, C_COMPACTING)) {
        free(b);
        return -1;
    }
    if (was == C_TOUCHED) {
        free(g->cbuf); /* the last compaction's, which resume() did not see */
        g->cbuf = NULL;
    }
    /* SF_LENT: its guard's top page is lent (stack_lend.c), and its
     * frames may be there, outside the range the guard markers cover */
    struct goro__stack s = g->stack;
    if (AO_load_acquire(&g->status) != G_WAITING || !compactable(g->wait_reason) ||
        running_somewhere(g) || (uintptr_t)g->ctx.rsp != rsp || (uintptr_t)s.hi != hi ||
        (s.flags & SF_LENT)) {
        g_cstate_store(g, C_NONE);
        free(b);
        return -1;
    }
    size_t len = hi - rsp;
    uintptr_t used_lo = page_down(rsp);
    G *volatile *slot = ctop_slot(hi, true);
    if (slot == NULL) {
        g_cstate_store(g, C_NONE);
        free(b);
        return -1;
    }
    *slot = g;
    AO_nop_full();
    /* From here on any access faults and waits for the end
     * (goro__idle_fault). Not just writes: MADV_GUARD_INSTALL zaps the
     * pages before it places its markers, and a read in between would get
     * a fresh zero page (seen: a sender read a zero sudog). The copy goes
     * through /proc/self/mem, which can read inaccessible pages. */
    if (mprotect((void *)used_lo, hi - used_lo, PROT_NONE) != 0) {
        *slot = NULL;
        g_cstate_store(g, C_NONE);
        free(b);
        return -1;
    }
    if (pread(goro__stk.memfd, b, len, (off_t)rsp) != (ssize_t)len)
        goro__fatal("compacting goroutine %llu's stack: reading /proc/self/mem: %s",
                    (unsigned long long)g->id, strerror(errno));
    if (madvise(s.lo, stk_usable(&s), MADV_GUARD_INSTALL) != 0)
        goro__fatal("compacting goroutine %llu's stack: madvise: %s",
                    (unsigned long long)g->id, strerror(errno));
    if (mprotect((void *)used_lo, hi - used_lo, PROT_READ | PROT_WRITE) != 0)
        goro__fatal("compacting goroutine %llu's stack: mprotect: %s",
                    (unsigned long long)g->id, strerror(errno));
    /* its home page, when it runs elsewhere, holds nothing of value */
    if (!stk_is_home(g, &s) && !(g->home & 1)) {
        struct goro__stack h = stk_home(g);
        madvise(h.lo, stk_usable(&h), MADV_DONTNEED);
    }
    g->cbuf = b;
    /* relaxed: statistics */
    AO_fetch_and_add1(&goro__ctr.stack_compactions);
    AO_fetch_and_add1(&goro__ctr.stacks_compacted);
    /* release: the buffer before COMPACTED */
    g_cstate_store(g, C_COMPACTED);
    return goro__doze_try(g, now); /* the last of its cluster: the cluster to sleep */
}

static uint64_t switches(void)
{
    uint64_t sw = 0;
    for (int i = 0; i < goro__sched.nprocs; i++)
        sw += __atomic_load_n(&goro__sched.ws[i].nswitch, __ATOMIC_RELAXED);
    return sw;
}

/* The next walk at due at the latest (due < 0: nothing). */
static void note_due(int64_t due)
{
    if (due >= 0 && (idle.earliest < 0 || due < idle.earliest))
        idle.earliest = due;
}

/*
 * The pass. A walk over every G record by index (g.c: records are never
 * freed while the runtime runs, and new ones come at the end)
 * compacts every goroutine parked for compact_after and notes when the
 * first of the others will be. A walk starts when that time comes, or
 * compact_after after goroutines switched since the last walk (someone
 * may have parked); with nothing parked and nothing switching, none: an
 * idle runtime stays idle. A walk goes PASS_LOOKS records at a time so
 * that timers and I/O are not held up, and at most PASS_COMPACTS
 * compactions a millisecond: each changes the protection of the stack
 * region's mapping twice, which write-locks it, and every stack page fault
 * and guard removal in the region waits for that (idle_conns_wake, woken
 * goroutines restoring while 256 a slice were being compacted: p99 of a
 * round trip 20 ms; a thread preempted while it holds the lock stalls
 * them all). 32,000 a second: a million in half a minute.
 */
int64_t goro__stack_idle_pass(int64_t now)
{
    if (!goro__stk.compact || goro__sched.ws == NULL)
        return -1;
    int64_t after = goro__stk.compact_after;
    if (!idle.walking) {
        uint64_t sw = switches();
        if (sw != idle.switches && (idle.next_walk < 0 || idle.next_walk > now + after))
            idle.next_walk = now + after;
        idle.switches = sw;
        if (idle.next_walk < 0 || now < idle.next_walk)
            return idle.next_walk;
        idle.walking = true;
        idle.earliest = -1;
        idle.next_walk = -1;
        idle.cursor = 0;
    }
    int looks = 0, compacts = 0;
    size_t i = idle.cursor, n = goro__g_count();
    for (; i < n && looks < PASS_LOOKS && compacts < PASS_COMPACTS; i++) {
        G *g = goro__g_at(i);
        looks++;
        if (g->cstate == C_COMPACTED) {
            note_due(goro__doze_retry(g, now)); /* its cluster's sleep, put off */
            continue;
        }
        if (AO_load(&g->status) != G_WAITING ||
            (g->cstate != C_NONE && g->cstate != C_TOUCHED) ||
            !compactable(g->wait_reason) || g->ctx.rsp == NULL)
            continue;
        int64_t due = g->wait_since + after;
        if (due <= now) {
            note_due(compact(g, now));
            compacts++;
        } else {
            note_due(due);
        }
    }
    idle.cursor = i;
    if (i < n) /* more to walk: at once, or after a pause if this slice
                  compacted its fill (below) */
        return compacts < PASS_COMPACTS ? now : now + PASS_GAP_NS;
    idle.walking = false;
    idle.next_walk = idle.earliest;
    return idle.next_walk;
}
