/*
 * annotate.c - the out-of-line half of annotate.h: Valgrind's stack
 * registrations, and the sanitizers' fiber switches. annotate.h says what
 * each tool is told and why.
 *
 * Valgrind. A stack registration has an id, needed to change or drop it.
 * G has no room for one (a parked goroutine's record must stay in its
 * malloc chunk: parked_1m's bar); the id lives in the stack's own top
 * word, which nothing else uses, and moves with the stack. No lock, no
 * allocation: the move's hook runs in the fault handler.
 *
 * Invariants:
 *  - A goroutine's stack is registered from its first run to its exit,
 *    as [stack.lo, stack.hi), and changed with every move (stack_fault.c,
 *    on its own worker, while it runs): no two registrations overlap.
 *  - Under the sanitizers, W.ann.inflight is set by goro__ann_switch on
 *    the worker it runs on and cleared by the first goro__ann_resumed on
 *    the same worker, in the context switched to, before anything else
 *    runs there but the switch's own tail (annotate.h, "Protocol").
 */
#include "annotate.h"
#include "stack.h"   /* goro__stk, REDZONE */

#include <pthread.h>
#include <stdio.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#if __has_include(<valgrind/libvex_guest_amd64.h>) && defined(__x86_64__)
#include <valgrind/libvex_guest_amd64.h>
#define HAVE_VEX_AMD64 1
#endif
#endif
#endif
#ifndef HAVE_VEX_AMD64
#define HAVE_VEX_AMD64 0
#endif
#ifndef HAVE_VALGRIND
#define HAVE_VALGRIND 0
#endif

#if GORO_ANN_ASAN
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/asan_interface.h>
#endif
#if GORO_ANN_TSAN
#include <sanitizer/tsan_interface.h>
#endif

bool goro__on_valgrind;

/* ---- Valgrind --------------------------------------------------------- */

void goro__ann_init(void)
{
#if HAVE_VALGRIND
    goro__on_valgrind = RUNNING_ON_VALGRIND != 0;
#endif
}

/* The registration's id, in the top word of the stack: the 16 bytes above
 * the entry frame are never used (switch_x86_64.S), and a move copies
 * them with the rest (a small integer is never taken for a pointer). */
static unsigned long *vg_id(G *g)
{
    return (unsigned long *)(void *)g->stack.hi - 1;
}

static char *vg_lo(G *g)
{
    return g->stack.lo;
}

/* Before the copy: the new place may carry "inaccessible" from its last
 * user's popped frames, and the copy writes it. */
void goro__vg_move_begin(const struct goro__stack *ns)
{
#if HAVE_VALGRIND
    VALGRIND_MAKE_MEM_UNDEFINED(ns->lo, (size_t)(ns->hi - ns->lo));
#else
    (void)ns;
#endif
}

void goro__vg_start(G *g)
{
#if HAVE_VALGRIND
    *vg_id(g) = VALGRIND_STACK_REGISTER(vg_lo(g), g->stack.hi);
#else
    (void)g;
#endif
}

void goro__vg_exit(G *g)
{
#if HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(*vg_id(g));
#else
    (void)g;
#endif
}

/* From the fault handler, before a growth: undo what Valgrind did ahead
 * of the fault. VEX translates some instructions into a register update
 * followed by a store, and a store that faults on the guard is reported
 * with the update made and rip at the instruction, which then runs again
 * from there (goro needs --px-default=allregs-at-mem-access, README, so
 * that the other registers in the signal frame are exact):
 *  - push and call lower rsp first: rsp ends one slot too low, the
 *    frame's return address is lost and the stack misaligned (seen:
 *    movaps faulting in the stack allocator, test_select's hundred_cases;
 *    a recursion of 16-byte frames returning into its stack). On hardware
 *    the store lands at rsp - 8 with rsp unchanged; under Valgrind at rsp.
 *  - a rep-prefixed string instruction decrements rcx before each
 *    element: one element fewer is done (seen: the last word of a struct
 *    that rep stos was zeroing left as it was, test_window's cond sweep).
 * Each case gets its register back; nothing else is touched. */
void goro__vg_fault(void *ucontext, uintptr_t addr)
{
    ucontext_t *uc = ucontext;
    greg_t *r = uc->uc_mcontext.gregs;
    const uint8_t *p = (const uint8_t *)r[REG_RIP];
    bool rep = false;
    if (p == NULL)
        return;
    /* prefixes; 0x3e: notrack (CET); 0x67: addr32, which the linker puts
     * before a call it relaxed from `call *f@GOTPCREL(%rip)` (-fno-plt)
     * to a direct one (seen: test_window's cond sweep returning into its
     * stack under Valgrind once the runtime was built with -fno-plt) */
    for (int n = 0; n < 4; n++, p++) {
        if (*p == 0xf3 || *p == 0xf2)
            rep = true;
        else if (*p != 0x3e && *p != 0x66 && *p != 0x67)
            break;
    }
    if ((*p & 0xf0) == 0x40) /* REX */
        p++;
    uint8_t op = *p, sub = (p[1] >> 3) & 7;
    if (rep && (op & 0xf0) == 0xa0 && op >= 0xa4 && op != 0xa8 && op != 0xa9) {
        r[REG_RCX]++; /* movs, cmps, stos, lods, scas */
        return;
    }
    bool push_call = (op >= 0x50 && op <= 0x57) || op == 0x68 || op == 0x6a || op == 0x9c ||
                     op == 0xe8 || (op == 0xff && (sub == 2 || sub == 6));
    if (push_call && addr == (uintptr_t)r[REG_RSP])
        r[REG_RSP] += 8;
}

#if HAVE_VEX_AMD64
/* The vector registers under Valgrind. Its amd64 signal frame
 * (coregrind/m_sigframe/sigframe-amd64-linux.c) leaves the FP and SSE
 * part of the ucontext unwritten and, at sigreturn, takes those registers
 * from its own copy of the guest state, saved in the frame after the
 * fpstate: struct vg_sigframe { magicPI, handlerflags, sigNo, the tool's
 * two shadow states, the guest state, the signal mask, magicE }. A stack
 * pointer held in a vector register across a growth (glibc's memcpy and
 * printf keep pointer pairs in xmm registers; tools/stackgrow does it on
 * purpose) is moved there, as stack_move.c does in a real frame. Only
 * when both magic words are where that layout puts them (Valgrind 3.19's,
 * unchanged for years); else nothing is touched and such a pointer stays
 * stale, as the README says. */
struct vg_sigframe_tail {
    unsigned magic_pi, handlerflags;
    int signo;
    VexGuestAMD64State shadow1, shadow2, vex;
    uint64_t mask;
    unsigned magic_e;
};

static void vg_reloc_vex(ucontext_t *uc, uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
    char *fp = (char *)uc->uc_mcontext.fpregs;
    if (fp == NULL)
        return;
    struct vg_sigframe_tail *t = (struct vg_sigframe_tail *)(void *)(fp + 512);
    /* Valgrind wrote these words itself; memcheck holds them undefined */
    VALGRIND_MAKE_MEM_DEFINED(t, sizeof *t);
    if (t->magic_pi != 0x31415927u || t->magic_e != 0x27182818u)
        return;
    uint64_t *lane = (uint64_t *)(void *)&t->vex.guest_YMM0;
    size_t n = (size_t)((char *)&t->vex.guest_FTOP - (char *)lane) / 8; /* YMM0-16 */
    for (size_t i = 0; i < n; i++)
        if (stk_in(lane[i], glo, ghi))
            lane[i] += (uint64_t)delta;
}
#endif

/* From the fault handler, on the new stack's copy of the id. Memcheck
 * tracks which bits of memory are defined; the move copied the stack with
 * arithmetic (relocation) that memcheck takes to make a partly written word
 * wholly undefined: a char written beside stale bytes would then read as
 * uninitialised. The copy's definedness is the old stack's, bit for bit:
 * say so, a chunk at a time (the handler runs on the small alternate
 * signal stack). */
void goro__vg_moved(G *g, const struct goro__stack *old, void *ucontext)
{
#if HAVE_VALGRIND
    /* rsp is the new stack's already (stack_move.c relocated it) */
    ucontext_t *uc = ucontext;
    uintptr_t rsp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t nlo = (uintptr_t)g->stack.lo, nhi = (uintptr_t)g->stack.hi;
    uintptr_t from = rsp - REDZONE;
    if (from < nlo)
        from = nlo;
    intptr_t delta = (intptr_t)(nhi - (uintptr_t)old->hi);
    if (from < nhi) {
        char bits[1024];
        for (uintptr_t a = from; a < nhi; a += sizeof bits) {
            size_t n = nhi - a < sizeof bits ? nhi - a : sizeof bits;
            if (VALGRIND_GET_VBITS((char *)(a - (uintptr_t)delta), bits, n) == 1)
                VALGRIND_SET_VBITS((char *)a, bits, n);
        }
    }
#if HAVE_VEX_AMD64
    vg_reloc_vex(uc, (uintptr_t)old->lo - goro__stk.gsz, (uintptr_t)old->hi, delta);
#endif
    VALGRIND_STACK_CHANGE(*vg_id(g), vg_lo(g), g->stack.hi);
#else
    (void)g, (void)old, (void)ucontext;
#endif
}

/* ---- the sanitizers --------------------------------------------------- */

#if GORO_ANN_FIBERS

void goro__ann_worker_start(W *w)
{
    pthread_attr_t a;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &lo, &size);
        pthread_attr_destroy(&a);
    }
    w->ann.g0_lo = lo;
    w->ann.g0_size = size;
    w->ann.inflight = false;
    w->ann.fibers.head = w->ann.fibers.n = 0;
#if GORO_ANN_TSAN
    w->ann.g0.fiber = __tsan_get_current_fiber();
#endif
}

static struct goro__ann_g *slot(W *w, G *g)
{
    return g ? &g->ann : &w->ann.g0;
}

#if GORO_ANN_TSAN
/* ThreadSanitizer's fibers are costly to make: __tsan_create_fiber clears
 * a ThreadState of 900 KB here (gcc 12's libtsan: 785 KB of it, its clock
 * 127 KB more), 400 us a goroutine, and a spawn-and-exit then cost 0.4 ms.
 * A fiber whose goroutine exited is kept instead, on the worker it exited
 * on, in a ring of FIBER_KEEP, and a goroutine starting there takes the
 * oldest while the ring holds more than FIBER_AGE (so a fiber is reused
 * only after FIBER_AGE more exits on that worker, as TSan itself keeps a
 * dead thread's record for a while before it reuses its number). Reuse loses
 * no report: the new goroutine starts on the worker the old one ended on,
 * after it, and TSan orders what ran on one worker before what runs there
 * later anyway (annotate.h: a switch synchronizes), so the old
 * goroutine's accesses happen before the new one's with or without a
 * shared fiber. What changes is a report's name for an access made long
 * ago by an exited goroutine: the fiber's name is its newest goroutine's
 * (TSan's own reuse of a thread's number does the same). W.ann.fibers is
 * the worker's own (its thread, or a goroutine on it): no lock. */
static void *fiber_get(W *w)
{
    struct goro__ann_fibers *r = &w->ann.fibers;
    if (r->n <= FIBER_AGE)
        return __tsan_create_fiber(0);
    void *f = r->ring[r->head];
    r->head = (r->head + 1) % FIBER_KEEP;
    r->n--;
    return f;
}

static void fiber_put(W *w, void *f)
{
    struct goro__ann_fibers *r = &w->ann.fibers;
    if (r->n == FIBER_KEEP) {
        __tsan_destroy_fiber(r->ring[r->head]);
        r->head = (r->head + 1) % FIBER_KEEP;
        r->n--;
    }
    r->ring[(r->head + r->n) % FIBER_KEEP] = f;
    r->n++;
}
#endif

void goro__ann_worker_stop(W *w)
{
#if GORO_ANN_TSAN
    struct goro__ann_fibers *r = &w->ann.fibers;
    for (; r->n > 0; r->n--) {
        __tsan_destroy_fiber(r->ring[r->head]);
        r->head = (r->head + 1) % FIBER_KEEP;
    }
#else
    (void)w;
#endif
}

static void switch_common(W *w, G *from, G *to, bool exiting)
{
    goro__ann_headroom(); /* TSan switches on the leaving stack */
    w->ann.inflight = true;
#if GORO_ANN_ASAN
    const void *lo = to ? (const void *)to->stack.lo : w->ann.g0_lo;
    size_t size = to ? (size_t)(to->stack.hi - to->stack.lo) : w->ann.g0_size;
    /* a goroutine leaving for good gives its fake stack up (NULL) */
    __sanitizer_start_switch_fiber(exiting ? NULL : &slot(w, from)->fake, lo, size);
#else
    (void)from, (void)exiting;
#endif
#if GORO_ANN_TSAN
    __tsan_switch_to_fiber(slot(w, to)->fiber, 0);
#endif
}

void goro__ann_switch(W *w, G *from, G *to)
{
    switch_common(w, from, to, false);
}

void goro__ann_switch_exit(W *w, G *from, G *to)
{
    switch_common(w, from, to, true);
}

void goro__ann_resumed_slow(W *w)
{
    goro__ann_headroom(); /* the pending action comes next, on this stack */
    w->ann.inflight = false;
#if GORO_ANN_ASAN
    G *g = w->curg;
    __sanitizer_finish_switch_fiber(slot(w, g)->fake, NULL, NULL);
#endif
}

void goro__ann_g_start(W *w, G *g)
{
    g->ann.fake = NULL;
#if GORO_ANN_ASAN
    /* a reused or new stack may carry poison from the frames its last
     * goroutine left behind */
    __asan_unpoison_memory_region(g->stack.lo, (size_t)(g->stack.hi - g->stack.lo));
#endif
#if GORO_ANN_TSAN
    g->ann.fiber = fiber_get(w);
    char name[32];
    snprintf(name, sizeof name, "goroutine %llu", (unsigned long long)g->id);
    __tsan_set_fiber_name(g->ann.fiber, name);
#endif
    if (unlikely(goro__on_valgrind))
        goro__vg_start(g);
}

void goro__ann_g_exit(G *g)
{
#if GORO_ANN_TSAN
    if (g->ann.fiber) {
        /* on the next context of its worker, or after goro_run (no worker) */
        W *w = goro__self_w();
        if (w)
            fiber_put(w, g->ann.fiber);
        else
            __tsan_destroy_fiber(g->ann.fiber);
        g->ann.fiber = NULL;
    }
#endif
    if (unlikely(goro__on_valgrind))
        goro__vg_exit(g);
}

void goro__ann_move_begin(const struct goro__stack *old, const struct goro__stack *ns)
{
#if GORO_ANN_ASAN
    /* the copy reads the old frames' red zones and writes over whatever
     * the new stack's last user left poisoned */
    __asan_unpoison_memory_region(old->lo, (size_t)(old->hi - old->lo));
    __asan_unpoison_memory_region(ns->lo, (size_t)(ns->hi - ns->lo));
#else
    (void)old;
#endif
    if (unlikely(goro__on_valgrind))
        goro__vg_move_begin(ns);
}

#if GORO_ANN_ASAN
/* The saved shadow addresses are not relocated. An instrumented function
 * computes its frame's shadow address once, in its prologue (addr >> 3,
 * the offset added by the instruction that uses it, with gcc 12 and clang
 * 14), and keeps it in a register or a stack slot; in a frame that lives
 * across a move it still names the old stack's shadow. Relocating such
 * words, as the first version did, shifts them by an eighth of the move:
 * a multiple of 512 MiB, which changes bits 29-31, so a word that the
 * program wrote only in part over a stale shadow address changed in bytes
 * 0-3 (test_stale saw it; README rule 5 promises they never change).
 * Left stale, the address is used only by the frame's epilogue, which
 * writes zeros there (objdump of both compilers: the prologue poisons the
 * red zones through the fresh address, the epilogue unpoisons through the
 * saved one; a frame on a fake stack, detect_stack_use_after_return, has
 * a shadow address outside every goroutine stack). Zeros on the old
 * stack's shadow, which the move unpoisoned, or on another goroutine's
 * that reuses the place, only drop red zones: lost detection, never a
 * false report. The one use between prologue and epilogue is
 * use-after-scope poisoning of scoped variables (a loop's array poisoned
 * at each iteration's end: false reports on whatever lies at the old place
 * by then: seen, a loop's array in a goroutine's first frame), which the Makefile turns off in
 * ASan builds (-fno-sanitize-address-use-after-scope); a program linked
 * with them needs the same flag (README). */
#endif

void goro__ann_moved(G *g, const struct goro__stack *old, void *ucontext)
{
#if GORO_ANN_ASAN
    /* the thread runs on the new stack from the handler's return on */
    void *fake;
    __sanitizer_start_switch_fiber(&fake, g->stack.lo, (size_t)(g->stack.hi - g->stack.lo));
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    if (unlikely(goro__on_valgrind))
        goro__vg_moved(g, old, ucontext);
}

#endif /* GORO_ANN_FIBERS */

#if GORO_ANN_TSAN
/* Reads the runtime makes without synchronization on purpose, for every
 * program linked with a ThreadSanitizer build of goro (weak: a program's
 * own __tsan_default_suppressions replaces it). The goroutine dump runs
 * from a signal handler (SIGQUIT) or with the runtime wedged (deadlock):
 * it takes no lock and reads every goroutine's record as it is. */
__attribute__((weak, visibility("default"))) const char *__tsan_default_suppressions(void);
__attribute__((weak, visibility("default"))) const char *__tsan_default_suppressions(void)
{
    return "race:goro__dump\n"
           "race:status_name\n";
}
#endif
