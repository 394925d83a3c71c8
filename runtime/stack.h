/*
 * stack.h - what the stack files share, and nothing else includes:
 *
 *   stack_space.c  the address-space layout (the stack region, its page
 *                  bitmap, placement at a given offset) and the pools
 *   stack_guard.c  the guard mechanisms (madvise, uffd, mprotect)
 *   stack_move.c   the move: copy, relocation, instruction decoding
 *   stack_fault.c  the fault entry: deciding a growth, quarantine, set-up
 *   stack_lend.c   lending: the guard faults of goro's own code, which
 *                  must not move the stack
 *   stack_idle.c   shrinking and compaction of parked goroutines' stacks
 *   stack_doze.c   clusters of compacted homes put to sleep
 *
 * The layout rule every file relies on (DESIGN.md "Stacks" 11; README
 * rule 5): every stack lies in the stack region, whose addresses all read
 * 0x0000_1f_WW_xxxxxxxx with WW (byte 4) in 0x80-0xfe, and every move's
 * distance is a multiple of 4 GiB. So relocation, which adds that distance
 * to a word that lies in the old stack, changes byte 4 of the word and
 * nothing else: bytes 0-3 of every word never change, byte 5 (0x1f, a
 * control character no text holds) never does, and a word is taken for a
 * stack address only if its byte 4 is 0x80-0xfe (no ASCII, no value below
 * 128, no 0 or 0xff fill) followed by 0x1f, 0, 0.
 */
#ifndef GORO_STACK_H
#define GORO_STACK_H

#include "internal.h"

#include <sys/mman.h>
#include <sys/ucontext.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; not in older headers */
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif

/* ---- the stack region ------------------------------------------------- */

#if GORO_ANN_TSAN
/* ThreadSanitizer allows application memory only in some ranges (its
 * shadow takes the rest); 0x7e80_0000_0000.. is one, with the same 127
 * rows. Byte 5 is then '~', text: relocation's guarantee (above) is
 * weaker in such builds, which are for finding races (annotate.h). */
#define STK_B5     0x7eu            /* byte 5 of every stack address */
#else
#define STK_B5     0x1fu            /* byte 5 of every stack address */
#endif
#define STK_W_LO   0x80u            /* byte 4: rows from here ... */
#define STK_W_EMRG 0xf8u            /* ... pooled rows end, emergency rows begin */
#define STK_W_END  0xffu            /* ... and 0xff is never used */
#define STK_ROW    (1ull << 32)     /* a row: one value of byte 4 */
#define STK_ADDR(w) (((uintptr_t)STK_B5 << 40) | ((uintptr_t)(w) << 32))
#define STK_OFF(a)  ((uintptr_t)(a) & (STK_ROW - 1))
#define STK_CHUNK  (64ul << 20)     /* the region is mapped this much at a time */

/* flags in struct goro__stack */
enum {
    SF_EMERG   = 1, /* own mapping in an emergency row: munmap to release */
    SF_TRIMMED = 2, /* pooled with all but its top page given back */
    SF_HUGE    = 4, /* usable part marked MADV_HUGEPAGE */
    SF_LENT    = GORO_STACK_LENT, /* the guard's top page is lent to the runtime's own
                       code on its way into a park: unguarded
                       (stack_lend.c) */
};

enum guard_kind { GUARD_MADVISE, GUARD_UFFD, GUARD_MPROTECT };

/* Configuration, set by goro__stack_init and read-only while goro runs. */
struct goro__stk {
    size_t pg;          /* page size */
    size_t gsz;         /* guard region below each stack (GORO_STACK_GUARD) */
    size_t min, max;    /* usable bytes of class 0; GORO_STACK_MAX */
    size_t env_max;     /* GORO_STACK_MAX as given (for the message) */
    int guard;          /* enum guard_kind */
    int uffd;           /* userfaultfd (GUARD_UFFD), else -1 */
    int pidfd;          /* our own pidfd for process_madvise, else -1 */
    int memfd;          /* /proc/self/mem, read and write, else -1: compaction
                         * copies through it, lending reads through it
                         * where process_vm_readv is forbidden */
    bool stackcheck;    /* GORO_DEBUG=stackcheck */
    bool emergency;     /* GORO_DEBUG=stackemergency: every growth takes the
                         * lock-free path (for the tests) */
    bool shrink;        /* shrinking on (stack_idle.c; off under Valgrind
                         * and the sanitizers) */
    bool compact;       /* compaction on (stack_idle.c) */
    bool lend;          /* the guard's top page may be lent (stack_lend.c;
                         * off: GORO_DEBUG=nolend, sanitizers, Valgrind,
                         * a one-page guard) */
    int64_t compact_after; /* GORO_COMPACT_AFTER, ns */
};
extern struct goro__stk goro__stk GORO_HIDDEN;

#define GORO_SHRINK_AFTER_NS (10 * 1000000) /* parked this long: a shrink may pay */
#define NCLS      40                /* size classes (min << 39 is plenty) */
#define REDZONE   128               /* System V x86-64 red zone below rsp */
#define HUGE_MIN  (4ul << 20)       /* stacks this large get huge pages */

static inline size_t stk_usable(const struct goro__stack *s)
{
    return (size_t)(s->hi - s->lo);
}

/* Where a stack's guard region starts, and its length with the guard. */
static inline char *stk_map(const struct goro__stack *s)
{
    return s->lo - goro__stk.gsz;
}

static inline size_t stk_maplen(const struct goro__stack *s)
{
    return stk_usable(s) + goro__stk.gsz;
}

/* G.home as a stack (class 0), and whether s is it. */
static inline struct goro__stack stk_home(const G *g)
{
    char *lo = (char *)(g->home & ~(uintptr_t)1);
    return (struct goro__stack){ .lo = lo, .hi = lo + goro__stk.min, .cls = 0, .flags = 0 };
}

static inline bool stk_is_home(const G *g, const struct goro__stack *s)
{
    return (uintptr_t)s->lo == (g->home & ~(uintptr_t)1);
}

/* glo <= v <= ghi, one compare (always inlined: into the copy TSan does
 * not see too, stack_move.c) */
static inline __attribute__((always_inline)) bool stk_in(uint64_t v, uintptr_t glo, uintptr_t ghi)
{
    return v - glo <= ghi - glo;
}

/* ---- stack_guard.c ---------------------------------------------------- */

void goro__guard_choose(void) GORO_HIDDEN;   /* picks the mechanism (GORO_GUARD) */
void goro__guard_fini(void) GORO_HIDDEN;
int  goro__guard_on(char *p, size_t len) GORO_HIDDEN;  /* any access faults */
int  goro__guard_off(char *p, size_t len) GORO_HIDDEN; /* readable, writable */
int  goro__uffd_fill(char *p, size_t len) GORO_HIDDEN;
int  goro__uffd_register(char *p, size_t len) GORO_HIDDEN;
void goro__guard_maplimit_message(void) GORO_HIDDEN;

/* ---- stack_space.c: the fault handler's side -------------------------- */

void goro__space_init(void) GORO_HIDDEN;
void goro__space_fini(void) GORO_HIDDEN;
/* Take the allocator lock from the fault handler: 1 taken, -1 this thread
 * holds it already (the fault interrupted it), 0 another thread held it
 * all the while (a bounded wait). goro__space_lock waits as long as it
 * takes: only for a lock another thread holds. */
int  goro__space_trylock(void) GORO_HIDDEN;
void goro__space_lock(void) GORO_HIDDEN;
void goro__space_unlock(void) GORO_HIDDEN;
/* A stack of class cls whose top is at old_hi + k * 4 GiB, k != 0: from a
 * pool, or a free place in the pooled rows. Under the lock. 0 or -errno. */
int  goro__space_get_at_locked(int cls, uintptr_t old_hi, struct goro__stack *s) GORO_HIDDEN;
/* The same without the lock: an own mapping in an emergency row. */
int  goro__space_get_emergency(int cls, uintptr_t old_hi, struct goro__stack *s) GORO_HIDDEN;
void goro__space_put_locked(struct goro__stack *s) GORO_HIDDEN;
void goro__space_defer(struct goro__stack *s) GORO_HIDDEN; /* lock-free */
void goro__space_reserved(const struct goro__stack *s, int sign) GORO_HIDDEN;
void goro__space_note_max(size_t use) GORO_HIDDEN;
/* [p, p+len) (pages) owned for good if no stack owns any of it: true then;
 * false if anything owns a page of it (a claim made before included:
 * stack_doze.c remembers its own). Takes the lock (stack_doze.c's pass). */
bool goro__space_claim(char *p, size_t len) GORO_HIDDEN;

/* stack_fault.c: a home guarded while its goroutine was away (stackcheck)
 * is made usable again. */
void goro__space_home_back(G *g) GORO_HIDDEN;

/* stack_fault.c: an old stack to the pools (or quarantine, stackcheck);
 * home: it is g's home, kept for the record. */
void goro__stack_retire(G *g, struct goro__stack *old, bool home) GORO_HIDDEN;

/* ---- stack_lend.c ----------------------------------------------------- */

/* At goro__stack_init, when lending is on: where the dynamic linker's
 * code is, and how the handler may read memory. */
void goro__lend_init(void) GORO_HIDDEN;
/* How it reads: "process_vm_readv", "/proc/self/mem" or "registers only"
 * (for GORO_DEBUG=stackinfo). */
const char *goro__lend_reads(void) GORO_HIDDEN;
/* The fault at addr, in g's guard: lend the guard's top page to it if it
 * is goro's own code's (or a call into goro): true, run the access again. */
bool goro__stack_lend(G *g, uintptr_t addr, const ucontext_t *uc) GORO_HIDDEN;
/* s's lent guard page (SF_LENT) guarded again. */
void goro__stack_unlend(struct goro__stack *s) GORO_HIDDEN;

/* ---- stack_idle.c ----------------------------------------------------- */

void goro__idle_init(void) GORO_HIDDEN;     /* at goro__stack_init */
void goro__idle_fini(void) GORO_HIDDEN;     /* at goro__stack_fini */
/* The fault handler asks: is addr in a compacted stack? 1: restored (or
 * being restored by another thread), retry the access; 0: not ours. */
int  goro__idle_fault(uintptr_t addr) GORO_HIDDEN;
/* g's record is being freed (end of goro_run): forget its compaction. */
void goro__idle_forget(G *g) GORO_HIDDEN;

/* The compacted (or dormant) goroutine whose stack's top is hi, by the
 * table of compacted stacks, or NULL: a hint, check its stack. */
G   *goro__idle_top(uintptr_t hi) GORO_HIDDEN;

/* ---- stack_doze.c ----------------------------------------------------- */

void goro__doze_init(void) GORO_HIDDEN;      /* at goro__idle_init */
/* The pass compacted g: if it was the last of its cluster's homes, the
 * cluster to sleep (its page-table page given back). Poller thread. -1, or
 * when to try again (the pass's clock, ns): the backoff put it off. */
int64_t goro__doze_try(G *g, int64_t now) GORO_HIDDEN;
/* The pass saw g compacted: its cluster's sleep, if the backoff put it off
 * and its time has come. Poller thread. As goro__doze_try. */
int64_t goro__doze_retry(G *g, int64_t now) GORO_HIDDEN;
/* g is C_DORMANT: wake its cluster, or wait for whoever does (it is
 * C_COMPACTED when this returns, or restored meanwhile).
 * Async-signal-safe. */
void goro__doze_wake(G *g) GORO_HIDDEN;
/* resume(): g is C_DORMANT; if its cluster is asleep, g leaves it without
 * waking it: true, and g is C_RESTORING with its home still asleep (the
 * caller moves it to another stack, or wakes the cluster with
 * goro__doze_home and restores it in place). False: the cluster is awake
 * (g is C_COMPACTED, or was restored meanwhile). */
bool goro__doze_leave(G *g) GORO_HIDDEN;
/* g's home is about to be used again (its goroutine goes home, or the
 * record is freed): its cluster woken if asleep. Async-signal-safe. */
void goro__doze_home(G *g) GORO_HIDDEN;
/* The runs of adjacent sleeping clusters counted now (for the tests: 0
 * once every cluster is awake). */
long goro__doze_runs(void) GORO_HIDDEN;

/* ---- stack_move.c ----------------------------------------------------- */

void goro__move_init(void) GORO_HIDDEN;
/* Copy the used part of old (from rsp - REDZONE up) to the same offset
 * below ns->hi, relocate it, the registers and the FP state in uc. Returns
 * the bytes copied. */
size_t goro__stack_move(ucontext_t *uc, uintptr_t addr, const struct goro__stack *old,
                        const struct goro__stack *ns) GORO_HIDDEN;
/* Copy len bytes (a multiple of 8) from src to dst, adding delta to every
 * aligned word that lies in [glo, ghi]: the move's relocation, for a copy
 * made outside the fault handler (stack_idle.c's shrink). */
void goro__stack_copy_reloc(void *dst, const void *src, size_t len, uintptr_t glo,
                            uintptr_t ghi, intptr_t delta) GORO_HIDDEN;

#endif
