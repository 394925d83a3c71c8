/*
 * annotate.h - what Valgrind, AddressSanitizer and ThreadSanitizer are told
 * about goroutines: their stacks, their switches, their lives. Called from
 * the switch sites (sched.c), the goroutine's start and exit, and the stack
 * move (stack_fault.c); annotate.c holds the out-of-line parts.
 *
 * Why. Each tool models one stack per thread. goro runs many stacks on a
 * thread and moves them, and each tool, not told, goes wrong its own way:
 *
 *  - Valgrind takes a jump of rsp between two goroutine stacks closer than
 *    --max-stackframe (2 MB; goroutine homes lie 68 KiB apart) for a frame
 *    pushed or popped, and marks the memory between undefined or
 *    inaccessible: errors on the next goroutine's stack. Told each stack
 *    (VALGRIND_STACK_REGISTER at a goroutine's first run, _CHANGE on every
 *    move, _DEREGISTER at its exit), it takes such a jump for a switch.
 *    Valgrind also lacks some system calls goro makes (pidfd_open,
 *    epoll_pwait2; annotate.c's goro__on_valgrind picks fallbacks). Its
 *    signal frame for a guard fault differs from the kernel's: push, call
 *    and rep string instructions have already changed rsp or rcx (undone
 *    by goro__vg_fault), and the vector registers are not in the
 *    ucontext (moved in Valgrind's own copy, annotate.c).
 *  - AddressSanitizer keeps, per thread, the bounds of the stack it runs
 *    on (to unpoison it at a noreturn call, for fake frames and reports):
 *    __sanitizer_start_switch_fiber before each switch names the stack
 *    about to run, __sanitizer_finish_switch_fiber on it completes the
 *    switch. Its shadow marks each live frame's red zones; a stack copied
 *    by the fault handler does not carry its shadow along, so a move
 *    unpoisons both stacks (the moved frames lose their red zones, the
 *    memory they leave keeps no stale poison) and names the new stack.
 *  - ThreadSanitizer gives each goroutine a fiber (__tsan_create_fiber at
 *    its first run, __tsan_destroy_fiber after it exits, on the next
 *    context; annotate.c keeps the last few exited ones of each worker
 *    for reuse), __tsan_switch_to_fiber just before each switch. A switch
 *    synchronizes (flags 0): what ran on a worker before a switch happens
 *    before what runs after it, which is true of one thread. Races between
 *    goroutines on different workers are reported, with both goroutines'
 *    stacks (each fiber is named "goroutine N"); two goroutines on one
 *    worker are ordered by their switches and never reported against each
 *    other (Go's race detector, which knows the scheduler, would).
 *    A stack move needs no word to TSan: the fault handler runs on the
 *    goroutine's fiber, takes the new stack under the allocator's lock
 *    (an acquire TSan sees, after the release of whoever pooled it),
 *    copies unseen by TSan (the new place's shadow keeps its earlier
 *    owners' accesses, which that lock orders before the goroutine's;
 *    stack_move.c says why unseen), and retires the old stack through the
 *    deferred list (a release the next lock holder acquires): memory
 *    handed over under a lock, as TSan knows it. What TSan cannot bear is
 *    the handler running in the middle of its own code:
 *    goro__ann_headroom, below.
 *
 * Cost. Under neither sanitizer every fiber hook below is an empty inline
 * function: the switch path is unchanged (checked with the yield and
 * pingpong benchmarks). The Valgrind hooks stay in a normal build, so
 * that `valgrind ./prog` works on any build: a goroutine's start and exit
 * and a stack move test one global flag (set once per goro_run from
 * RUNNING_ON_VALGRIND); the switch has none.
 *
 * Protocol at a switch from context A to context B (a goroutine or g0, the
 * worker thread's own stack), with w the worker:
 *   goro__ann_switch(w, A, B)        on A: ASan start (A's fake stack saved
 *                                    in A's slot), TSan switch to B
 *   goro__ctx_switch / _start        ...
 *   goro__ann_resumed(tls_w)         on B, first: ASan finish with B's slot.
 * B resumes in one of several places: after its own call of the switch, in
 * goro__switch_pend (which the switch tail-calls when A left an action),
 * or in goro__g_main (its first run); each calls goro__ann_resumed, and
 * W.ann.inflight makes the second call on one resumption a no-op.
 */
#ifndef GORO_ANNOTATE_H
#define GORO_ANNOTATE_H

#include "internal.h"

/* annotate.c */
extern bool goro__on_valgrind GORO_HIDDEN;   /* RUNNING_ON_VALGRIND, at goro_run */
void goro__ann_init(void) GORO_HIDDEN;       /* goro_run start */
void goro__vg_start(G *g) GORO_HIDDEN;
void goro__vg_exit(G *g) GORO_HIDDEN;
void goro__vg_moved(G *g, const struct goro__stack *old, void *ucontext) GORO_HIDDEN;
void goro__vg_move_begin(const struct goro__stack *ns) GORO_HIDDEN;
void goro__vg_fault(void *ucontext, uintptr_t addr) GORO_HIDDEN; /* before a growth */

#if GORO_ANN_FIBERS
void goro__ann_worker_start(W *w) GORO_HIDDEN;
void goro__ann_worker_stop(W *w) GORO_HIDDEN;  /* on the worker, its g0, at its end */
void goro__ann_switch(W *w, G *from, G *to) GORO_HIDDEN;
void goro__ann_switch_exit(W *w, G *from, G *to) GORO_HIDDEN;
void goro__ann_resumed_slow(W *w) GORO_HIDDEN;
void goro__ann_g_start(W *w, G *g) GORO_HIDDEN;
void goro__ann_g_exit(G *g) GORO_HIDDEN;
void goro__ann_move_begin(const struct goro__stack *old, const struct goro__stack *ns) GORO_HIDDEN;
/* g->stack is the new stack; ucontext the fault's (its registers) */
void goro__ann_moved(G *g, const struct goro__stack *old, void *ucontext) GORO_HIDDEN;

static inline void goro__ann_resumed(W *w)
{
    if (w->ann.inflight)
        goro__ann_resumed_slow(w);
}
#else
static inline void goro__ann_worker_start(W *w) { (void)w; }
static inline void goro__ann_worker_stop(W *w) { (void)w; }
static inline void goro__ann_switch(W *w, G *from, G *to) { (void)w, (void)from, (void)to; }
static inline void goro__ann_switch_exit(W *w, G *from, G *to) { (void)w, (void)from, (void)to; }
static inline void goro__ann_resumed(W *w) { (void)w; }
static inline void goro__ann_g_start(W *w, G *g)
{
    (void)w;
    if (unlikely(goro__on_valgrind))
        goro__vg_start(g);
}
static inline void goro__ann_g_exit(G *g)
{
    if (unlikely(goro__on_valgrind))
        goro__vg_exit(g);
}
static inline void goro__ann_move_begin(const struct goro__stack *old,
                                        const struct goro__stack *ns)
{
    (void)old;
    if (unlikely(goro__on_valgrind))
        goro__vg_move_begin(ns);
}
static inline void goro__ann_moved(G *g, const struct goro__stack *old, void *ucontext)
{
    if (unlikely(goro__on_valgrind))
        goro__vg_moved(g, old, ucontext);
}
#endif

/* Headroom for ThreadSanitizer's runtime. TSan's code runs on the stack
 * of whatever calls it: a goroutine's. When a frame of TSan's own reaches
 * the guard, the growth's fault interrupts TSan halfway through an
 * operation, and the handler, instrumented, calls back into it: seen here
 * as deadlocks (an atomic store on the stack allocator's lock faulted
 * holding that word's TSan lock, and the handler's load of it waited for
 * it; __tsan_create_fiber faulted holding TSan's thread registry, and a
 * report from the handler waited for it) and as false reports (the handler
 * ran while TSan's current fiber was the one __tsan_create_fiber was
 * starting, or between a switch's release and the switch: its errno
 * accesses ordered after nothing). So before goro calls into TSan where it
 * calls it most and deepest (the switch path: fibers, the allocator, the
 * pending action), goro__ann_headroom reads a byte of each page of the
 * TSAN_HEADROOM bytes below rsp, nearest first: if one lies in the guard,
 * the stack grows there, in goro's code, with TSan's state whole, and what
 * TSan then runs has room. TSan's calls from the switch path use up to
 * 3.2 KiB of stack here (gcc 12's libtsan, measured: creating a fiber, an
 * atomic on a word TSan has not seen yet); a report needs more, and fails
 * the run anyway. Reads, not writes: the pages stay the zero page until
 * used. Code that TSan instruments elsewhere (a program's, the runtime's
 * outside the switch path) can still fault inside TSan, mostly in its
 * hooks on every access and call: those hold nothing the handler needs
 * but once in 8,192 events (a new part of the fiber's trace, under a
 * lock); no hang or report of that kind was seen in the README's runs,
 * but it is not excluded. Empty in other builds. */
#if GORO_ANN_TSAN
#define TSAN_HEADROOM (8 * 1024)
static inline __attribute__((always_inline)) void goro__ann_headroom(void)
{
    /* rsp as the base: a growth moves it, and the read then runs again
     * on the new stack (stack_move.c relocates the registers) */
    for (long d = 4096; d <= TSAN_HEADROOM; d += 4096)
        __asm__ volatile("testb $0, (%%rsp,%0)" : : "r"(-d) : "memory");
}
/* A function TSan must not see: the fault handler's errno save and
 * restore (TSan's wrapper of a handler does the same around it). */
#define GORO_ANN_UNSEEN __attribute__((no_sanitize("thread")))
#else
static inline void goro__ann_headroom(void) {}
#define GORO_ANN_UNSEEN
#endif

/* A field its owner writes with plain stores and other threads read with
 * relaxed atomic loads, as hints (W.schedtick): on x86-64 a relaxed store
 * is the same mov, but the compiler may then not merge or defer it, so
 * only ThreadSanitizer builds, which must see the store as atomic, get it. */
#if GORO_ANN_TSAN
#define GORO_OWNER_STORE(lv, v) __atomic_store_n(&(lv), (v), __ATOMIC_RELAXED)
#else
#define GORO_OWNER_STORE(lv, v) ((lv) = (v))
#endif

/* A pthread mutex that a goroutine takes and its park's unlock function
 * releases, on the next context after the switch (blocking.c's pool
 * lock). One OS thread holds it throughout, but ThreadSanitizer gives each
 * context a fiber of its own and takes the unlock for another thread's:
 * it reports "unlock of an unlocked mutex", never releases the mutex's
 * clock, and then reports every access the lock orders. Told, it sees the
 * hand-over: goro__ann_lock_leave(m) on the goroutine just before it
 * parks (it released m), goro__ann_lock_enter(m) in the unlock function
 * before the real unlock (the next context took m); the switch between
 * them synchronizes. Nothing in other builds. */
#if GORO_ANN_TSAN
#include <sanitizer/tsan_interface.h>
static inline void goro__ann_lock_leave(void *m)
{
    __tsan_mutex_pre_unlock(m, 0);
    __tsan_mutex_post_unlock(m, 0);
}
static inline void goro__ann_lock_enter(void *m)
{
    __tsan_mutex_pre_lock(m, 0);
    __tsan_mutex_post_lock(m, 0, 0);
}
#else
static inline void goro__ann_lock_leave(void *m) { (void)m; }
static inline void goro__ann_lock_enter(void *m) { (void)m; }
#endif

/* ThreadSanitizer cannot see membarrier's ordering (sched.c's asymmetric
 * runnext claims): use CAS on both sides there. */
#define GORO_ANN_NO_MEMBARRIER GORO_ANN_TSAN

#endif
