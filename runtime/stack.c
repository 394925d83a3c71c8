/*
 * stack.c - goroutine stacks: allocation, guards, grow-by-copy, relocation,
 * pools.
 *
 * What. Every goroutine runs on a contiguous stack of one page (by default,
 * GORO_STACK_MIN; more when goroutines of its function needed more: g.c's
 * start-size hints) above a guard page. Running off the bottom touches the
 * guard; the fault handler (signal.c, on the worker's alternate signal stack)
 * calls goro__stack_fault, which moves the goroutine to a stack at least
 * twice as large, copies the used part, relocates pointers into the old
 * stack, releases the old one and returns: the faulting instruction runs
 * again on the new stack. DESIGN.md "Stacks" is the specification.
 *
 *     high  +------------------------+  hi     entry frame, then g_main, fn ...
 *           |  used part             |
 *           |          v  rsp        |
 *           |  red zone (128 bytes)  |  copied too: leaf code keeps data there
 *           |  free part             |
 *           +------------------------+  lo
 *           |  guard region          |  any access faults (madvise guard,
 *           |  (64 KiB: see          |  uffd hole or PROT_NONE)
 *           |   DEFAULT_GUARD)       |
 *     low   +------------------------+  lo - GORO_STACK_GUARD
 *
 * How.
 *  - Size classes: class c has (GORO_STACK_MIN << c) usable bytes. Growth
 *    goes up at least one class, more when the faulting access lies deeper
 *    (one frame may be larger than the whole stack), and never past
 *    GORO_STACK_MAX (fatal, as in Go).
 *  - Guards that do not split mappings (DESIGN.md 9). Stacks of up to
 *    ARENA_MAX usable bytes are carved out of 256 MiB chunks, one slot after
 *    the other (guard, usable, guard, usable, ...). The guard is made by one
 *    of three mechanisms, chosen at goro_run (GORO_GUARD forces one):
 *      madvise   MADV_GUARD_INSTALL (Linux 6.13+): a page table marker that
 *                faults on any access, costs no mapping and survives
 *                MADV_DONTNEED.
 *      uffd      the chunk is registered with a userfaultfd in missing mode
 *                with UFFD_FEATURE_SIGBUS; usable pages are filled with the
 *                shared zero page at once (UFFDIO_ZEROPAGE: no memory until
 *                written, and syscalls writing there never see a hole), guard
 *                pages never are, so touching one raises SIGBUS.
 *      mprotect  one mapping per stack with a PROT_NONE page: two kernel
 *                mappings per stack, so about 32,000 goroutines under the
 *                default vm.max_map_count; at that limit goro_go fails with
 *                -ENOMEM after one message saying so.
 *    Larger stacks get a mapping of their own (there are few of them).
 *  - Copy and relocation (DESIGN.md 3) in one pass: every aligned word of the
 *    used part (from rsp - 128 up) is copied to the same offset below the new
 *    top, shifted by the distance moved if it lies in [old guard, old hi];
 *    then the general registers and every 8-byte lane of the x87/MMX, XMM,
 *    YMM, ZMM and opmask registers in the signal frame's FP state.
 *  - Pools: free stacks wait in one list per class, linked through a node
 *    written at the top of the free stack itself (no malloc: the fault
 *    handler uses the pools). A class keeps up to POOL_KEEP bytes resident;
 *    beyond that a pooled arena stack is trimmed (MADV_DONTNEED of all but
 *    its top page, which holds the node) and a pooled stack with a mapping
 *    of its own is unmapped. Chunks are unmapped when goro_run ends.
 *
 * Signal safety. The fault can hit runtime code anywhere on a goroutine
 * stack, including code in this file that holds the pool lock. So the
 * handler only *tries* the lock (a short bounded spin); when it cannot get
 * it, it maps a fresh stack with mmap and pushes the old one on a lock-free
 * "deferred" list, which the next lock holder drains into the pools. The
 * handler never calls malloc and never waits for anything.
 *
 * GORO_DEBUG=stackcheck: an old stack is not pooled but made inaccessible
 * (guard over its whole range) and kept in a ring of QUARANTINE entries;
 * touching it is reported with the goroutine, the old and the new range.
 * GORO_DEBUG=stackinfo prints the configuration and the guard mechanism.
 *
 * Rejected alternatives. Segmented stacks (Go before 1.3: hot splits, and C
 * code cannot check a stack bound in every prologue). Big fixed stacks (a
 * million goroutines at 64 KiB is 64 GiB of address space and no growth
 * past it). One mprotect guard per stack (the mapping limit: DESIGN.md 9;
 * kept only as the last resort). Precise relocation (needs stack maps a C
 * compiler does not emit). Lazily populated uffd pages (a read(2) into an
 * untouched page of a uffd stack would fail with EFAULT instead of
 * faulting in).
 *
 * Invariants:
 *  - A goroutine's stack changes only in the fault handler, on the worker
 *    running that goroutine; a parked goroutine's stack never moves, so
 *    pointers into it held by the runtime while it is parked stay valid.
 *    The only pointers into a running goroutine's stack kept outside it are
 *    its own G's unlockarg, waitobj and param (set on the way to park);
 *    the handler moves those with the stack. So a blocking call publishes
 *    a record on its stack only in its park commit (after the switch), and
 *    only if every waker unlinks it before readying the goroutine; records
 *    that stay linked after the wake-up (select's losing cases, an I/O
 *    waiter's timer) live on the heap. tests/test_window.c checks each.
 *  - g->stack.lo - page is always a guard page; [lo, hi) is always
 *    readable and writable (and, under uffd, populated).
 *  - A stack is in exactly one place: attached to a G record, in a pool,
 *    on the deferred list, or in quarantine.
 *  - A pooled or deferred stack's top page is resident and holds its node.
 *  - stack_bytes_reserved == the size (guard + usable) of every stack
 *    attached to a G record (live or on g.c's free lists).
 *  - st.lock protects pools[], carve[] and the chunk list head; the handler
 *    never waits for it.
 */
#include "internal.h"

#include <cpuid.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; not in older headers */
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif

#define NCLS        40                  /* size classes (min << 39 is plenty) */
#define ARENA_MAX   (1024 * 1024)       /* largest usable size carved from chunks */
/* The guard region below each stack (GORO_STACK_GUARD). One page is enough
 * for code built with -fstack-clash-protection, which touches every page of
 * a large frame in order. The C library usually is not (Debian's glibc has
 * no probes): vfprintf's helper frame is 8.3 KiB, vfwprintf's 33 KiB,
 * fnmatch's 18 KiB, and glibc's alloca goes up to 64 KiB; such a frame's
 * first access can land below a one-page guard, in the stack below it
 * (tools/stackgrow saw snprintf's result corrupted that way). 64 KiB of
 * guard costs no memory: with madvise guards it is page-table markers (and
 * the page-table pages under them, ~130 bytes per goroutine of kernel
 * memory), with uffd and mprotect address space only. */
#define DEFAULT_GUARD (64 * 1024)
#define MAX_GUARD     (16ul << 20)
#define CHUNK_BYTES (256ul << 20)       /* target size of one arena chunk (address space) */
#define POOL_KEEP   (16ul << 20)        /* resident bytes a class's pool keeps */
#define FAST_GROW_BELOW (1024 * 1024)   /* stacks below this grow eightfold */
#define REDZONE     128                 /* System V x86-64 red zone below rsp */
#define QUARANTINE  256                 /* old stacks kept by stackcheck */
#define LOCK_TRIES  256                 /* the handler's bounded spin */
#define DEFAULT_MAX (1ul << 30)         /* GORO_STACK_MAX default, as in Go */

/* flags in struct goro__stack */
enum {
    SF_OWNMAP  = 1, /* a mapping of its own (map, maplen): munmap to release */
    SF_TRIMMED = 2, /* pooled with all but its top page given back */
};

enum guard_kind { GUARD_MADVISE, GUARD_UFFD, GUARD_MPROTECT };
static const char *const guard_names[] = { "madvise", "uffd", "mprotect" };

/* A free stack, written at its own top. */
struct node {
    struct node *next;
    struct goro__stack s;
};

/* First page of every arena chunk. */
struct chunk {
    struct chunk *next;
    size_t len;
};

/* A stackcheck quarantine entry. state: Q_EMPTY -> Q_BUSY -> Q_FULL ->
 * Q_BUSY (being replaced) -> Q_FULL ... */
enum { Q_EMPTY, Q_BUSY, Q_FULL };
struct qent {
    volatile AO_t state;
    uint64_t gid;
    struct goro__stack old;
    char *nlo, *nhi;           /* where the goroutine went */
};

static struct {
    size_t pg;
    size_t gsz;                /* guard region below each stack (GORO_STACK_GUARD) */
    size_t min, max;           /* usable bytes of class 0; GORO_STACK_MAX */
    size_t env_max;            /* GORO_STACK_MAX as given (for the message) */
    int guard;                 /* enum guard_kind */
    int uffd;                  /* userfaultfd (GUARD_UFFD), else -1 */
    int pidfd;                 /* our own pidfd for process_madvise, else -1 */
    bool stackcheck;
    volatile AO_t maplimit_said; /* the mapping-limit message was printed */

    volatile AO_t lock;        /* 0 free, 1 held: pools, carve, chunks */
    struct pool {
        struct node *hot, *cold; /* resident / trimmed */
        size_t resident;         /* bytes in hot */
    } pools[NCLS];
    struct { char *cur, *end; } carve[NCLS];
    struct chunk *chunks;

    volatile AO_t deferred;    /* struct node *: lock-free push, take-all */
    volatile AO_t qhead;       /* quarantine ring cursor */
    struct qent q[QUARANTINE];

    /* XSAVE layout of the FP state in signal frames (CPUID leaf 0xD) */
    uint32_t xoff[8], xsize[8];

    /* growth time histogram: 8 sub-buckets per power of two of ns */
    volatile AO_t hist[64 * 8];
} st = { .uffd = -1, .pidfd = -1 };

size_t goro__pagesize(void)
{
    if (st.pg == 0)
        st.pg = (size_t)sysconf(_SC_PAGESIZE);
    return st.pg;
}

const char *goro__stack_guard_name(void)
{
    return guard_names[st.guard];
}

/* ------------------------------------------------------------------
 * Lock (a test-and-test-and-set spinlock the handler can try)
 * ------------------------------------------------------------------ */

static bool trylock(int tries)
{
    for (int i = 0; tries < 0 || i < tries; i++) {
        /* acquire: the pool lists written by the last holder are visible */
        if (AO_load(&st.lock) == 0 && AO_compare_and_swap_acquire(&st.lock, 0, 1))
            return true;
        if (i > 1000)
            sched_yield();
        else
            __asm__ __volatile__("pause" ::: "memory");
    }
    return false;
}

static void lock(void)
{
    trylock(-1);
}

static void unlock(void)
{
    /* release: our writes to the pools before the next holder's reads */
    AO_store_release(&st.lock, 0);
}

/* ------------------------------------------------------------------
 * Guards, per mechanism. Each is a few system calls, async-signal-safe.
 * ------------------------------------------------------------------ */

/* Fill [p, p+len) with the zero page in a uffd-registered range. */
static int uffd_fill(char *p, size_t len)
{
    while (len > 0) {
        struct uffdio_zeropage z = {
            .range = { .start = (uintptr_t)p, .len = len }, .mode = 0 };
        if (ioctl(st.uffd, UFFDIO_ZEROPAGE, &z) == 0)
            return 0;
        size_t done = z.zeropage > 0 ? (size_t)z.zeropage : 0;
        if (errno == EEXIST && done == 0)
            done = st.pg;            /* this page is there already */
        else if (errno != EAGAIN && errno != EEXIST)
            return -errno;
        p += done;
        len -= done;
    }
    return 0;
}

static int uffd_register(char *p, size_t len)
{
    struct uffdio_register r = {
        .range = { .start = (uintptr_t)p, .len = len },
        .mode = UFFDIO_REGISTER_MODE_MISSING };
    return ioctl(st.uffd, UFFDIO_REGISTER, &r) == 0 ? 0 : -errno;
}

/* Make [p, p+len) a guard: any access faults. Contents are lost
 * (except under mprotect). */
static int guard_on(char *p, size_t len)
{
    switch (st.guard) {
    case GUARD_MADVISE:
        return madvise(p, len, MADV_GUARD_INSTALL) == 0 ? 0 : -errno;
    case GUARD_UFFD:
        return madvise(p, len, MADV_DONTNEED) == 0 ? 0 : -errno;
    default:
        return mprotect(p, len, PROT_NONE) == 0 ? 0 : -errno;
    }
}

/* Undo guard_on: [p, p+len) readable and writable (zeros, except under
 * mprotect). */
static int guard_off(char *p, size_t len)
{
    switch (st.guard) {
    case GUARD_MADVISE:
        return madvise(p, len, MADV_GUARD_REMOVE) == 0 ? 0 : -errno;
    case GUARD_UFFD:
        return uffd_fill(p, len);
    default:
        return mprotect(p, len, PROT_READ | PROT_WRITE) == 0 ? 0 : -errno;
    }
}

static size_t usable(const struct goro__stack *s)
{
    return (size_t)(s->hi - s->lo);
}

/* ------------------------------------------------------------------
 * Getting stacks: own mappings and arena slots
 * ------------------------------------------------------------------ */

static void *map_anon(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/*
 * Addresses no stack may cover. Relocation takes any word that lies in the
 * old stack's range for a pointer into it. A 32-bit field followed by 4
 * bytes of padding reads, as one word, as [garbage : int]; stack garbage is
 * often the high half of a stack address (0x00007fxx), so the word reads as
 * an address in the stacks' own 4 GiB block whose low 32 bits are the int.
 * Two kinds of int are common enough to be hit:
 *  - glibc's FILE begins with `int _flags` = 0xfbadxxxx (_IO_MAGIC), and
 *    snprintf, sscanf and the like keep a FILE on the stack: tools/stackgrow
 *    saw snprintf return a wrong result and vfprintf unlock a NULL lock
 *    (core: a stack at 0x7f03fbad8000, the word 0x00007f03fbad8001);
 *  - small ints, positive and negative (counts, lengths, -1).
 * So no stack's range (guard to top) is placed where the low 32 bits of an
 * address are below 1 MiB, above 4 GiB - 1 MiB, or 0xfbadxxxx: 2 MiB and
 * 64 KiB skipped in every 4 GiB of address space.
 */
static const struct { uint32_t start, len; } magic_windows[] = {
    { 0x00000000u, 0x100000u },  /* small ints */
    { 0xfff00000u, 0x100000u },  /* small negative ints */
    { 0xfbad0000u, 0x10000u },   /* glibc _IO_MAGIC */
};

/* If [lo, hi] (inclusive) overlaps a magic window, the lowest such window
 * it overlaps, in *ws and *we (end, exclusive); else false. */
bool goro__stack_magic_overlap(uintptr_t lo, uintptr_t hi, uintptr_t *ws, uintptr_t *we)
{
    bool found = false;
    for (uintptr_t b = lo >> 32; b <= hi >> 32; b++) {
        for (size_t i = 0; i < sizeof magic_windows / sizeof magic_windows[0]; i++) {
            uintptr_t s0 = (b << 32) + magic_windows[i].start, e0 = s0 + magic_windows[i].len;
            if (s0 <= hi && e0 > lo && (!found || s0 < *ws)) {
                *ws = s0;
                *we = e0;
                found = true;
            }
        }
        if (found)
            return true;
    }
    return false;
}

/* A stack of class cls in a mapping of its own. 0 or -errno.
 *
 * Stacks of HUGE_MIN usable bytes and more are backed by transparent huge
 * pages where the kernel offers them (THP "madvise" mode, as here): their
 * usable range starts on a 2 MiB boundary and is marked MADV_HUGEPAGE. A
 * goroutine recursing to 64 MiB otherwise takes 16,384 page faults, at
 * 12-13 us each on this virtual machine (measured); Go's stacks live in its
 * heap, which Go backs with huge pages. The guard page sits just below, in
 * the previous 2 MiB region, so it never splits a huge page. */
#define HUGE_SIZE (2ul << 20)
#define HUGE_MIN  (4ul << 20)

/* Over-map, then keep [p, p + len): the first place from the start that
 * covers no magic window and, for a huge stack, whose usable part (after
 * gsz bytes of guard) starts on a 2 MiB boundary. The windows are at most
 * 2 MiB wide; the farthest the start may have to move is past the 0xfbad
 * window, the 68 MiB after it and the 2 MiB around the 4 GiB boundary,
 * plus len: len + 80 MiB of slack (8 MiB below 2 MiB, where the farthest
 * move is len + 2 MiB). tests/test_window.c checks every class from 4 KiB
 * to 1 GiB at starts across a 4 GiB boundary. */
size_t goro__stack_slack(size_t len, bool huge)
{
    return (len < (2ul << 20) ? (8ul << 20) : len + (80ul << 20)) + (huge ? HUGE_SIZE : 0);
}

/* Where in [raw, raw + len + slack) the stack goes, or 0 if nowhere. */
uintptr_t goro__stack_place(uintptr_t raw, size_t len, size_t gsz, bool huge)
{
    uintptr_t a = raw, end = raw + len + goro__stack_slack(len, huge), ws, we;
    for (;;) {
        if (huge)
            a = ((a + gsz + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1)) - gsz;
        if (a + len > end)
            return 0;
        if (!goro__stack_magic_overlap(a, a + len, &ws, &we))
            return a;
        a = we;
    }
}

static int ownmap_new(int cls, struct goro__stack *s)
{
    size_t use = st.min << cls, len = use + st.gsz;
    bool huge = use >= HUGE_MIN && st.guard != GUARD_UFFD;
    size_t slack = goro__stack_slack(len, huge);
    char *raw = map_anon(len + slack);
    if (raw == NULL)
        return -errno;
    uintptr_t a = goro__stack_place((uintptr_t)raw, len, st.gsz, huge),
              end = (uintptr_t)raw + len + slack;
    if (a == 0) {
        munmap(raw, len + slack);
        return -ENOMEM;
    }
    char *p = (char *)a;
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (end > a + len)
        munmap(p + len, end - (a + len));
    if (huge)
        madvise(p + st.gsz, use, MADV_HUGEPAGE); /* best effort */
    int rc = 0;
    if (st.guard == GUARD_UFFD) {
        rc = uffd_register(p, len);
        if (rc == 0)
            rc = uffd_fill(p + st.gsz, use);
    } else {
        rc = guard_on(p, st.gsz);
    }
    if (rc < 0) {
        munmap(p, len);
        return rc;
    }
    *s = (struct goro__stack){ .lo = p + st.gsz, .hi = p + len, .map = p,
                               .maplen = len, .cls = (uint32_t)cls,
                               .flags = SF_OWNMAP };
    return 0;
}

/* Move a class's carving cursor past a magic window its next slot would
 * cover. Under lock. */
static void carve_skip_magic(int cls, size_t slot)
{
    for (;;) {
        uintptr_t cur = (uintptr_t)st.carve[cls].cur, ws, we;
        if (!goro__stack_magic_overlap(cur, cur + slot, &ws, &we))
            return;
        if (we >= (uintptr_t)st.carve[cls].end) {
            st.carve[cls].cur = st.carve[cls].end; /* chunk used up */
            return;
        }
        st.carve[cls].cur = (char *)we; /* page-aligned */
    }
}

/* Carve up to CARVE_BATCH one-page stacks at once (madvise guards only):
 * their guards installed and their pages populated by two process_madvise
 * calls over iovecs, instead of a madvise and a page fault per stack. On
 * this VM a first touch of a page costs 12-13 us and a madvise 1.5 us;
 * batched, 0.4 us per guard and 0.7 us per populated page (measured),
 * and spawning many goroutines at once (skynet: 83,000 alive at the peak)
 * is mostly that. The first stack is returned, the rest pooled. Returns
 * -EAGAIN when batching is not possible, so the caller carves one. */
#define CARVE_BATCH 64

static void pool_put_locked(struct goro__stack *s);

static int carve_batch_locked(struct goro__stack *s)
{
    size_t use = st.min, slot = use + st.gsz;
    size_t room = (size_t)(st.carve[0].end - st.carve[0].cur) / slot;
    if (st.pidfd < 0 || st.guard != GUARD_MADVISE || room < 2)
        return -EAGAIN;
    size_t n = room < CARVE_BATCH ? room : CARVE_BATCH;
    struct iovec guards[CARVE_BATCH], pages[CARVE_BATCH];
    char *g = st.carve[0].cur;
    /* no slot over a magic window (the caller skipped any the first one
     * would cover): stop short of the next */
    uintptr_t ws, we;
    if (goro__stack_magic_overlap((uintptr_t)g, (uintptr_t)g + n * slot, &ws, &we))
        n = (ws - (uintptr_t)g - 1) / slot;
    if (n < 2)
        return -EAGAIN;
    for (size_t i = 0; i < n; i++) {
        guards[i] = (struct iovec){ .iov_base = g + i * slot, .iov_len = st.gsz };
        pages[i] = (struct iovec){ .iov_base = g + i * slot + st.gsz, .iov_len = use };
    }
    long r = syscall(SYS_process_madvise, st.pidfd, guards, n, MADV_GUARD_INSTALL, 0);
    if (r != (long)(n * st.gsz))
        return -EAGAIN; /* guards already installed are harmless: redone one by one */
    /* best effort: a page not populated now faults in later */
    syscall(SYS_process_madvise, st.pidfd, pages, n, MADV_POPULATE_WRITE, 0);
    st.carve[0].cur += n * slot;
    for (size_t i = 1; i < n; i++) {
        struct goro__stack t = { .lo = g + i * slot + st.gsz, .hi = g + (i + 1) * slot,
                                 .map = g + i * slot, .maplen = slot, .cls = 0, .flags = 0 };
        pool_put_locked(&t);
    }
    *s = (struct goro__stack){ .lo = g + st.gsz, .hi = g + slot, .map = g,
                               .maplen = slot, .cls = 0, .flags = 0 };
    return 0;
}

/* Carve a stack of class cls from the class's current chunk. Under lock. */
static int carve_locked(int cls, struct goro__stack *s)
{
    size_t use = st.min << cls, slot = use + st.gsz;
    if (st.carve[cls].cur == NULL || (size_t)(st.carve[cls].end - st.carve[cls].cur) < slot) {
        size_t n = (CHUNK_BYTES - st.pg) / slot;
        if (n < 16)
            n = 16;
        size_t len = st.pg + n * slot;
        char *p = map_anon(len);
        if (p == NULL)
            return -errno;
        madvise(p, len, MADV_NOHUGEPAGE); /* a huge page under 4 KiB stacks */
        struct chunk *c = (struct chunk *)(void *)p;
        c->len = len;
        if (st.guard == GUARD_UFFD) {
            int rc = uffd_register(p, len); /* after the header is written */
            if (rc < 0) {
                munmap(p, len);
                return rc;
            }
        }
        c->next = st.chunks;
        st.chunks = c;
        st.carve[cls].cur = p + st.pg;
        st.carve[cls].end = p + len;
    }
    carve_skip_magic(cls, slot);
    if ((size_t)(st.carve[cls].end - st.carve[cls].cur) < slot) {
        st.carve[cls].cur = NULL; /* the window took the rest: a new chunk */
        return carve_locked(cls, s);
    }
    if (cls == 0 && !st.stackcheck && carve_batch_locked(s) == 0)
        return 0;
    char *g = st.carve[cls].cur;
    int rc = st.guard == GUARD_UFFD ? uffd_fill(g + st.gsz, use) : guard_on(g, st.gsz);
    if (rc < 0)
        return rc;
    st.carve[cls].cur += slot;
    *s = (struct goro__stack){ .lo = g + st.gsz, .hi = g + slot, .map = g,
                               .maplen = slot, .cls = (uint32_t)cls, .flags = 0 };
    return 0;
}

static bool use_arena(int cls)
{
    return st.guard != GUARD_MPROTECT && (st.min << cls) <= ARENA_MAX;
}

static struct node *node_of(const struct goro__stack *s)
{
    return (struct node *)(void *)(s->hi - sizeof(struct node));
}

/* Put s in its pool, trimming or unmapping it when the pool holds enough.
 * Under lock. */
static void pool_put_locked(struct goro__stack *s)
{
    struct pool *p = &st.pools[s->cls];
    size_t use = usable(s);
    if (p->resident + use > POOL_KEEP && p->hot != NULL) {
        if (s->flags & SF_OWNMAP) {
            munmap(s->map, s->maplen);
            return;
        }
        if (use > st.pg && madvise(s->lo, use - st.pg, MADV_DONTNEED) == 0) {
            s->flags |= SF_TRIMMED;
            struct node *n = node_of(s);
            n->s = *s;
            n->next = p->cold;
            p->cold = n;
            return;
        }
    }
    struct node *n = node_of(s);
    n->s = *s;
    n->next = p->hot;
    p->hot = n;
    p->resident += use;
}

/* A stack of class cls from the pool or a chunk or a new mapping. Under
 * lock. */
static int get_locked(int cls, struct goro__stack *s)
{
    struct pool *p = &st.pools[cls];
    if (p->hot) {
        struct node *n = p->hot;
        p->hot = n->next;
        *s = n->s;
        p->resident -= usable(s);
        return 0;
    }
    if (p->cold) {
        struct node *n = p->cold;
        struct goro__stack t = n->s;
        if (st.guard == GUARD_UFFD && uffd_fill(t.lo, usable(&t) - st.pg) < 0)
            return -ENOMEM;
        p->cold = n->next;
        t.flags &= ~(uint32_t)SF_TRIMMED;
        *s = t;
        return 0;
    }
    return use_arena(cls) ? carve_locked(cls, s) : ownmap_new(cls, s);
}

/* Stacks the handler could not pool: pushed lock-free, taken all at once. */
static void defer_push(struct goro__stack *s)
{
    struct node *n = node_of(s);
    n->s = *s;
    AO_t h;
    do {
        h = AO_load(&st.deferred);
        n->next = (struct node *)h;
        /* release: the node's contents before it is reachable */
    } while (!AO_compare_and_swap_release(&st.deferred, h, (AO_t)n));
}

static void drain_locked(void)
{
    AO_t h;
    do {
        /* acquire: pairs with defer_push's release */
        h = AO_load_acquire(&st.deferred);
    } while (h != 0 && !AO_compare_and_swap_full(&st.deferred, h, 0));
    for (struct node *n = (struct node *)h; n;) {
        struct node *next = n->next;
        struct goro__stack s = n->s;
        pool_put_locked(&s);
        n = next;
    }
}

static void reserved_add(const struct goro__stack *s, int sign)
{
    /* usable bytes and one page: the rest of the guard region is address
     * space and page-table markers, no memory */
    AO_t sz = (AO_t)(usable(s) + st.pg);
    /* relaxed (fetch_and_add without a barrier): a statistic */
    AO_fetch_and_add(&goro__ctr.stack_bytes_reserved, sign > 0 ? sz : (AO_t)0 - sz);
}

static void note_max(size_t use)
{
    AO_t cur;
    do {
        cur = AO_load(&goro__ctr.stack_max);
        if (cur >= use)
            return;
        /* relaxed is enough for a statistic; CAS so no larger value is lost */
    } while (!AO_compare_and_swap(&goro__ctr.stack_max, cur, (AO_t)use));
}

static void maplimit_message(void)
{
    /* once per run: full so two workers cannot both print */
    if (!AO_compare_and_swap_full(&st.maplimit_said, 0, 1))
        return;
    char buf[400];
    long lim = 0;
    int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char t[32] = "";
        ssize_t n = read(fd, t, sizeof t - 1);
        if (n > 0)
            lim = strtol(t, NULL, 10);
        close(fd);
    }
    int n = snprintf(buf, sizeof buf,
                     "goro: cannot map another goroutine stack: the kernel's limit of "
                     "%ld memory mappings (vm.max_map_count) is reached. Stack guards "
                     "use mprotect here (no MADV_GUARD_INSTALL, no userfaultfd), which "
                     "costs two mappings per goroutine; goro_go returns -ENOMEM. "
                     "Raise vm.max_map_count or run on Linux 6.13+.\n", lim);
    if (n > 0 && write(2, buf, (size_t)n) < 0)
        return;
}

int goro__stack_alloc(struct goro__stack *s)
{
    lock();
    drain_locked();
    int rc = get_locked(0, s);
    unlock();
    if (rc < 0) {
        if (st.guard == GUARD_MPROTECT && rc == -ENOMEM)
            maplimit_message();
        return -ENOMEM;
    }
    reserved_add(s, 1);
    note_max(usable(s));
    return 0;
}

void goro__stack_free(struct goro__stack *s)
{
    if (s->lo == NULL)
        return;
    reserved_add(s, -1);
    lock();
    drain_locked();
    pool_put_locked(s);
    unlock();
    memset(s, 0, sizeof *s);
}

int goro__stack_resize(struct goro__stack *s, int cls)
{
    if (s->lo == NULL || (int)s->cls == cls)
        return 0;
    if (cls < 0 || cls >= NCLS)
        return -EINVAL;
    struct goro__stack t;
    lock();
    drain_locked();
    int rc = get_locked(cls, &t);
    if (rc == 0)
        pool_put_locked(s);
    unlock();
    if (rc < 0)
        return -ENOMEM; /* keep the old one: still a valid stack */
    reserved_add(s, -1);
    reserved_add(&t, 1);
    note_max(usable(&t));
    *s = t;
    return 0;
}

/* ------------------------------------------------------------------
 * Growth (the fault handler's side)
 * ------------------------------------------------------------------ */

static inline bool in_old(uint64_t v, uintptr_t glo, uintptr_t ghi)
{
    return v - glo <= ghi - glo; /* glo <= v <= ghi, one compare */
}

/* Copy nw words from src to dst, shifting by delta every word that lies in
 * [glo, ghi]. The scalar loop runs at ~2 GB/s here and was the largest
 * cost of growing many stacks (bench stack_10k_256k copies 2.4 GB per
 * round); with AVX2, four words per step. */
static void copy_reloc_scalar(uint64_t *dst, const uint64_t *src, size_t nw,
                              uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
    for (size_t i = 0; i < nw; i++) {
        uint64_t v = src[i];
        dst[i] = in_old(v, glo, ghi) ? v + (uint64_t)delta : v;
    }
}

#if defined(__x86_64__)
typedef uint64_t v4u64 __attribute__((vector_size(32), aligned(8)));
typedef int64_t v4i64 __attribute__((vector_size(32), aligned(8)));

__attribute__((target("avx2")))
static void copy_reloc_avx2(uint64_t *dst, const uint64_t *src, size_t nw,
                            uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
    /* v - glo <= span, unsigned, as a signed compare with the sign bit
     * flipped (AVX2 has only signed 64-bit compares) */
    const uint64_t flip = 1ull << 63;
    const v4u64 vglo = { glo, glo, glo, glo };
    const v4i64 vspan = { (int64_t)((ghi - glo) ^ flip), (int64_t)((ghi - glo) ^ flip),
                          (int64_t)((ghi - glo) ^ flip), (int64_t)((ghi - glo) ^ flip) };
    const v4u64 vflip = { flip, flip, flip, flip };
    const v4u64 vdelta = { (uint64_t)delta, (uint64_t)delta, (uint64_t)delta, (uint64_t)delta };
    size_t i = 0;
    for (; i + 4 <= nw; i += 4) {
        v4u64 v;
        __builtin_memcpy(&v, src + i, sizeof v);
        v4i64 off = (v4i64)((v - vglo) ^ vflip);
        v4u64 in = (v4u64)(off <= vspan);  /* all ones where in range */
        v = v + (vdelta & in);
        __builtin_memcpy(dst + i, &v, sizeof v);
    }
    copy_reloc_scalar(dst + i, src + i, nw - i, glo, ghi, delta);
}
#endif

static bool have_avx2;

static void copy_reloc(uint64_t *dst, const uint64_t *src, size_t nw,
                       uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
#if defined(__x86_64__)
    if (have_avx2) {
        copy_reloc_avx2(dst, src, nw, glo, ghi, delta);
        return;
    }
#endif
    copy_reloc_scalar(dst, src, nw, glo, ghi, delta);
}

static void reloc_lanes(unsigned char *p, size_t len, uintptr_t glo, uintptr_t ghi,
                        intptr_t delta)
{
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (in_old(v, glo, ghi)) {
            v += (uint64_t)delta;
            memcpy(p + i, &v, 8);
        }
    }
}

/* Every 8-byte lane of the vector and MMX registers in the signal frame. */
static void reloc_fpstate(ucontext_t *uc, uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
    unsigned char *fx = (unsigned char *)uc->uc_mcontext.fpregs;
    if (fx == NULL)
        return;
    for (int i = 0; i < 8; i++)            /* x87/MMX: the 64-bit significand */
        reloc_lanes(fx + 32 + 16 * i, 8, glo, ghi, delta);
    reloc_lanes(fx + 160, 16 * 16, glo, ghi, delta); /* XMM0-15 */
    /* XSAVE extension: software bytes at 464 in the FXSAVE area (magic1,
     * extended size, xfeatures, xstate size), XSAVE header at 512 */
    uint32_t magic, xsize;
    memcpy(&magic, fx + 464, 4);
    memcpy(&xsize, fx + 464 + 16, 4);
    if (magic != 0x46505853u /* FP_XSTATE_MAGIC1 */)
        return;
    uint64_t bv;
    memcpy(&bv, fx + 512, 8);
    static const int comps[] = { 2, 5, 6, 7 }; /* YMM_Hi128, opmask, ZMM_Hi256, Hi16_ZMM */
    for (size_t k = 0; k < sizeof comps / sizeof comps[0]; k++) {
        int c = comps[k];
        if (!(bv & (1ull << c)) || st.xsize[c] == 0 || st.xoff[c] + st.xsize[c] > xsize)
            continue;
        reloc_lanes(fx + st.xoff[c], st.xsize[c], glo, ghi, delta);
    }
}

/*
 * A stack-clash probe loop (gcc and clang, -fstack-clash-protection) keeps
 * the end of the frame it is allocating in a register, below the guard:
 *
 *   gcc, fixed frame:   1: sub $4096,%rsp; orq $0,(%rsp);      cmp %r11,%rsp; jne 1b
 *   gcc, VLA/alloca:    1: sub $4096,%rsp; orq $0,0xff8(%rsp); cmp %rcx,%rsp; jne 1b
 *   clang, fixed frame: 1: sub $4096,%rsp; movq $0,(%rsp);     cmp %r11,%rsp; jne 1b
 *   clang, VLA/alloca:  1: xorq $0,(%rsp); sub $4096,%rsp;     cmp %rsp,%rdi; jl 1b
 *
 * That register lies below the old stack, so the rule of DESIGN.md 3 leaves
 * it alone, and the loop would then run down the new stack forever. When the
 * faulting instruction is such a probe (or, xor or mov of 0 to a slot
 * addressed from rsp alone), followed by `sub $n,%rsp` or not, and then by a
 * cmp of rsp with a register, that register is moved with the stack if it
 * lies below the guard, within GORO_STACK_MAX of the old top. Only this
 * register: a value below the guard elsewhere may be a pointer into another
 * goroutine's stack, which must not move.
 */
static const uint8_t x86_to_greg[16] = {
    REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
    REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
};

/* The instruction after a probe at ip, or NULL if ip is not a probe:
 * [REX.W] 83 /1 ib (or), 83 /6 ib (xor) or C7 /0 id (mov), immediate 0,
 * memory operand (%rsp), disp8(%rsp) or disp32(%rsp). */
static const uint8_t *skip_probe(const uint8_t *p)
{
    if ((p[0] & 0xf0) == 0x40)
        p++;
    uint8_t op = *p++, modrm = *p++;
    int mod = modrm >> 6, ext = (modrm >> 3) & 7;
    if (!((op == 0x83 && (ext == 1 || ext == 6)) || (op == 0xc7 && ext == 0)))
        return NULL;
    if ((modrm & 7) != 4 || *p++ != 0x24) /* SIB: base rsp, no index */
        return NULL;
    if (mod == 1)
        p += 1;
    else if (mod == 2)
        p += 4;
    else if (mod != 0)
        return NULL;
    size_t imm = op == 0x83 ? 1 : 4;
    for (size_t i = 0; i < imm; i++)
        if (*p++ != 0)
            return NULL;
    return p;
}

/* Returns the gregs index it moved, or -1: the caller must not move that
 * register a second time. */
static int reloc_probe_end(ucontext_t *uc, uintptr_t glo, uintptr_t hi, intptr_t delta)
{
    const uint8_t *ip = skip_probe((const uint8_t *)uc->uc_mcontext.gregs[REG_RIP]);
    if (ip == NULL)
        return -1;
    if (ip[0] == 0x48 && ip[1] == 0x81 && ip[2] == 0xec)
        ip += 7; /* sub $imm32,%rsp */
    /* cmp r64, r/m64 (REX.W 39 /r) or cmp r/m64, r64 (REX.W 3B /r), one
     * operand rsp, both registers */
    if ((ip[0] & 0xf8) != 0x48 || (ip[2] & 0xc0) != 0xc0)
        return -1;
    int reg = ((ip[2] >> 3) & 7) | ((ip[0] & 4) ? 8 : 0);
    int rm = (ip[2] & 7) | ((ip[0] & 1) ? 8 : 0);
    int other;
    if ((ip[1] == 0x39 || ip[1] == 0x3b) && rm == 4)
        other = reg;
    else if ((ip[1] == 0x39 || ip[1] == 0x3b) && reg == 4)
        other = rm;
    else
        return -1;
    if (other == 4)
        return -1;
    uint64_t v = (uint64_t)uc->uc_mcontext.gregs[x86_to_greg[other]];
    if (v >= glo || hi - v > st.max)
        return -1;
    uc->uc_mcontext.gregs[x86_to_greg[other]] = (greg_t)(v + (uint64_t)delta);
    return x86_to_greg[other];
}

/*
 * The faulting access's base register may hold a derived pointer that lies
 * outside the old stack although the access itself lands in it: a loop
 * over a[h + i] compiles to `mov %rdi,(%rcx,%rsi,8)` with rcx = a - 8h and
 * rsi = h + i, and rcx can be pages below the guard (seen in
 * runq_put_slow, whose batch array is indexed from the queue head). Left
 * alone, the instruction runs again with rsp moved and rcx not, and writes
 * into the old stack: freed, or another goroutine's by then. So the
 * faulting instruction is decoded far enough to find its memory operand
 * (prefixes, REX, VEX, EVEX, the opcode maps, ModRM, SIB, displacement);
 * when base + index * scale + disp is the faulting address (checked, so a
 * decoding mistake moves nothing), and the base is outside the old stack
 * but within GORO_STACK_MAX of it, the base moves with the stack. With
 * scale 1 the two registers are interchangeable: the one that looks like
 * such an address moves.
 *
 * This covers the register the fault is about. A derived pointer kept
 * elsewhere (another register, a spill slot) for a later access is beyond
 * conservative relocation; GORO_DEBUG=stackcheck reports such an access.
 */

/* One-byte opcodes that take a ModRM byte (x86-64). */
static bool op1_has_modrm(uint8_t op)
{
    if (op < 0x40)
        return (op & 7) < 4;
    switch (op) {
    case 0x63: case 0x69: case 0x6b: case 0x84: case 0x85: case 0x86: case 0x87:
    case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8c: case 0x8e: case 0x8f:
    case 0x80: case 0x81: case 0x83: case 0xc0: case 0xc1: case 0xc6: case 0xc7:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: case 0xf6: case 0xf7: case 0xfe:
    case 0xff:
        return true;
    default:
        return op >= 0xd8 && op <= 0xdf; /* x87 */
    }
}

static int reloc_fault_base(ucontext_t *uc, uintptr_t addr, uintptr_t glo, uintptr_t hi,
                            intptr_t delta)
{
    const uint8_t *p = (const uint8_t *)uc->uc_mcontext.gregs[REG_RIP];
    int rex_b = 0, rex_x = 0, map = 0, n = 0;
    bool evex = false;
    /* legacy prefixes */
    while (n++ < 14 && (*p == 0x66 || *p == 0x67 || *p == 0xf2 || *p == 0xf3 || *p == 0xf0 ||
                        *p == 0x2e || *p == 0x3e || *p == 0x26 || *p == 0x36 || *p == 0x64 ||
                        *p == 0x65)) {
        if (*p == 0x67 || *p == 0x64 || *p == 0x65)
            return -1; /* 32-bit addressing or fs/gs-based: not a stack access */
        p++;
    }
    if ((*p & 0xf0) == 0x40) { /* REX */
        rex_b = *p & 1;
        rex_x = (*p >> 1) & 1;
        p++;
    }
    if (*p == 0xc5) { /* two-byte VEX: map 0F, no X or B */
        map = 1;
        p += 3;
    } else if (*p == 0xc4) { /* three-byte VEX: inverted R X B, then the map */
        rex_x = !((p[1] >> 6) & 1);
        rex_b = !((p[1] >> 5) & 1);
        map = p[1] & 0x1f;
        p += 4;
    } else if (*p == 0x62) { /* EVEX */
        rex_x = !((p[1] >> 6) & 1);
        rex_b = !((p[1] >> 5) & 1);
        map = p[1] & 7;
        evex = true;
        p += 5;
    } else if (*p == 0x0f) {
        if (p[1] == 0x38 || p[1] == 0x3a) {
            map = p[1] == 0x38 ? 2 : 3;
            p += 3;
        } else {
            map = 1;
            p += 2;
        }
    } else {
        if (!op1_has_modrm(*p))
            return -1;
        p++;
    }
    if (map > 3)
        return -1;
    uint8_t modrm = *p++;
    int mod = modrm >> 6, rm = modrm & 7;
    if (mod == 3 || (mod == 0 && rm == 5))
        return -1; /* a register operand, or rip-relative */
    int base = rm | rex_b << 3, index = -1, scale = 1;
    if (rm == 4) {
        uint8_t sib = *p++;
        scale = 1 << (sib >> 6);
        int ix = ((sib >> 3) & 7) | rex_x << 3;
        if (ix != 4)
            index = ix;
        base = (sib & 7) | rex_b << 3;
        if ((sib & 7) == 5 && mod == 0) {
            base = -1; /* disp32, no base */
            mod = 2;
        }
    }
    int64_t disp = 0;
    if (mod == 1)
        disp = (int8_t)*p;
    else if (mod == 2)
        disp = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24);
    greg_t *gr = uc->uc_mcontext.gregs;
    uint64_t b = base >= 0 ? (uint64_t)gr[x86_to_greg[base]] : 0;
    uint64_t x = index >= 0 ? (uint64_t)gr[x86_to_greg[index]] : 0;
    uint64_t ea = b + x * (uint64_t)scale + (uint64_t)disp;
    /* The fault address is the access's first byte in the guard: at most
     * 64 bytes (a ZMM access) past ea. EVEX scales a disp8 by up to 64. */
    bool match = addr - ea < 64;
    for (int N = 2; evex && mod == 1 && !match && N <= 64; N *= 2)
        match = addr - (ea + (uint64_t)(disp * (N - 1))) < 64;
    if (!match)
        return -1;
    /* which register holds the pointer: out of the old stack, but near */
    int cand[2] = { base, scale == 1 ? index : -1 };
    for (int k = 0; k < 2; k++) {
        int r = cand[k];
        if (r < 0 || r == 4)
            continue;
        uint64_t v = (uint64_t)gr[x86_to_greg[r]];
        if (in_old(v, glo, hi))
            return -1; /* a pointer into the stack: moved with the rest */
        bool near = v < glo ? glo - v <= st.max : v - hi <= st.max;
        if (!near)
            continue;
        gr[x86_to_greg[r]] = (greg_t)(v + (uint64_t)delta);
        return x86_to_greg[r];
    }
    return -1;
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
    AO_fetch_and_add1(&st.hist[lg * 8 + sub]);
}

uint64_t goro__stack_growth_quantile(double q)
{
    uint64_t total = 0;
    for (int i = 0; i < 64 * 8; i++)
        total += AO_load(&st.hist[i]);
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (int i = 0; i < 64 * 8; i++) {
        seen += AO_load(&st.hist[i]);
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

/* Retire the stack a goroutine left: pool, deferred list or quarantine. */
static void retire(G *g, struct goro__stack *old, bool locked)
{
    if (st.stackcheck) {
        /* relaxed: only picks a slot; the slot's state word orders the rest */
        size_t i = AO_fetch_and_add1(&st.qhead) % QUARANTINE;
        struct qent *e = &st.q[i];
        AO_t was;
        for (;;) {
            was = AO_load(&e->state);
            /* acquire: the previous entry's fields, to evict it */
            if (was != Q_BUSY && AO_compare_and_swap_acquire(&e->state, was, Q_BUSY))
                break;
            __asm__ __volatile__("pause" ::: "memory");
        }
        if (was == Q_FULL) {
            struct goro__stack ev = e->old;
            if (guard_off(ev.lo, usable(&ev)) == 0) {
                ev.flags &= ~(uint32_t)SF_TRIMMED;
                defer_push(&ev);
            } /* else: leaked, harmlessly inaccessible */
        }
        e->gid = g->id;
        e->old = *old;
        e->nlo = g->stack.lo;
        e->nhi = g->stack.hi;
        guard_on(old->lo, usable(old));
        /* release: the entry's fields before it counts as full */
        AO_store_release(&e->state, Q_FULL);
        return;
    }
    if (locked)
        pool_put_locked(old);
    else
        defer_push(old);
}

static void grow(W *w, G *g, uintptr_t addr, ucontext_t *uc)
{
    int64_t t0 = mono_ns();
    struct goro__stack old = g->stack;
    uintptr_t rsp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t lo = (uintptr_t)old.lo, hi = (uintptr_t)old.hi;
    uintptr_t low = addr < rsp - REDZONE ? addr : rsp - REDZONE;
    /* Stacks below 1 MiB grow eightfold, larger ones twofold. Each growth
     * is a trap, a signal and a sigreturn (10-20 us on this VM, measured,
     * before any copying), and a stack's untouched pages cost no memory, so
     * skipping classes costs address space, not RSS: a goroutine recursing
     * to 256 KiB grows twice, not 6 times, and copies 36 KiB, not 252 KiB
     * (bench stack_10k_256k: 570 ms twofold, 317 fourfold, 230 eightfold). */
    size_t oldsize = usable(&old), need = (hi - low) + st.pg;
    int step = oldsize < FAST_GROW_BELOW ? 3 : 1;
    size_t nsz = oldsize << step;
    int cls = (int)old.cls + step;
    while (nsz < need) {
        nsz *= 2;
        cls++;
    }
    while (step > 1 && nsz / 2 >= need && nsz / 2 >= oldsize * 2 &&
           (nsz > st.max || cls >= NCLS)) {
        nsz /= 2; /* eightfold would pass the limit: a smaller step may not */
        cls--;
    }
    if (nsz > st.max || cls >= NCLS)
        goro__fatal("goroutine %llu stack exceeds limit of %zu bytes",
                    (unsigned long long)g->id, st.env_max);

    struct goro__stack ns;
    bool locked = trylock(LOCK_TRIES);
    int rc = -EAGAIN;
    if (locked) {
        drain_locked();
        rc = get_locked(cls, &ns);
    }
    if (rc < 0)
        rc = ownmap_new(cls, &ns);
    if (rc < 0)
        goro__fatal("out of memory growing goroutine %llu stack to %zu bytes (%s)%s",
                    (unsigned long long)g->id, nsz, strerror(-rc),
                    st.guard == GUARD_MPROTECT ? ": the vm.max_map_count limit?" : "");

    /* Copy the used part, red zone included, to the same offset from the
     * new top, relocating every aligned word that points into the old
     * stack (guard included, one past the top included). */
    uintptr_t from = rsp - REDZONE;
    if (from < lo)
        from = lo;
    from &= ~(uintptr_t)7;
    intptr_t delta = (intptr_t)((uintptr_t)ns.hi - hi);
    uintptr_t glo = lo - st.gsz;
    const uint64_t *src = (const uint64_t *)from;
    uint64_t *dst = (uint64_t *)(from + (uintptr_t)delta);
    size_t nw = (hi - from) / 8;
    copy_reloc(dst, src, nw, glo, hi, delta);
    int done = reloc_probe_end(uc, glo, hi, delta);
    /* rsp may lie below the guard: a variable-sized allocation (a VLA, or
     * alloca) under -fstack-clash-protection probes once per page and then
     * moves rsp by the rest, up to a page more, before probing that; with
     * a one-page guard, rsp is then below it when the probe hits it (seen
     * with gcc 12: `sub %rdx,%rsp; orq $0,-8(%rsp,%rdx)`). rsp always
     * belongs to the running goroutine, and need counted it: move it. */
    if (rsp < glo) {
        uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(rsp + (uint64_t)delta);
    }
    int based = reloc_fault_base(uc, addr, glo, hi, delta);
    for (int r = 0; r < NGREG; r++) {
        if (r == done || r == based || (r == REG_RSP && rsp < glo) || r == REG_RIP || r == REG_EFL || r == REG_CSGSFS || r == REG_ERR ||
            r == REG_TRAPNO || r == REG_OLDMASK || r == REG_CR2)
            continue;
        uint64_t v = (uint64_t)uc->uc_mcontext.gregs[r];
        if (in_old(v, glo, hi))
            uc->uc_mcontext.gregs[r] = (greg_t)(v + (uint64_t)delta);
    }
    reloc_fpstate(uc, glo, hi, delta);

    /* The running goroutine's own record may point into its stack while it
     * is on its way to park: goro__park stores its unlock function's
     * argument (a waiter record on this stack) before the switch, and the
     * switch path still runs on this stack. Those fields move too. */
    void **selfp[] = { &g->unlockarg, &g->waitobj, (void **)(void *)&g->param };
    for (size_t i = 0; i < sizeof selfp / sizeof selfp[0]; i++) {
        uint64_t v = (uint64_t)(uintptr_t)*selfp[i];
        if (in_old(v, glo, hi))
            *selfp[i] = (void *)(uintptr_t)(v + (uint64_t)delta);
    }

    g->stack = ns;
    retire(g, &old, locked);
    if (locked)
        unlock();
    (void)w;

    /* relaxed: statistics */
    AO_fetch_and_add1(&goro__ctr.stack_growths);
    AO_fetch_and_add(&goro__ctr.stack_bytes_copied, (AO_t)(hi - from));
    AO_fetch_and_add(&goro__ctr.stack_bytes_reserved, (AO_t)(nsz - oldsize));
    note_max(nsz);
    hist_add(mono_ns() - t0);
}

static void stale_report(uintptr_t addr)
{
    for (int i = 0; i < QUARANTINE; i++) {
        struct qent *e = &st.q[i];
        /* acquire: pairs with the release that filled the entry */
        if (AO_load_acquire(&e->state) != Q_FULL)
            continue;
        uintptr_t lo = (uintptr_t)e->old.lo, hi = (uintptr_t)e->old.hi;
        if (addr >= lo - st.gsz && addr < hi)
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
        if (addr < lo && addr >= lo - st.gsz) {
            grow(w, g, addr, ucontext);
            return 1;
        }
    }
    if (st.stackcheck)
        stale_report(addr);
    /* uffd: a hole in the running goroutine's usable range (never left
     * there by this file, but harmless to fill) */
    if (sig == SIGBUS && st.guard == GUARD_UFFD && g != NULL &&
        addr >= (uintptr_t)g->stack.lo && addr < (uintptr_t)g->stack.hi) {
        if (uffd_fill((char *)(addr & ~(uintptr_t)(st.pg - 1)), st.pg) == 0)
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

static bool madvise_guard_works(void)
{
    char *p = map_anon(2 * st.pg);
    if (p == NULL)
        return false;
    bool ok = madvise(p, st.pg, MADV_GUARD_INSTALL) == 0;
    munmap(p, 2 * st.pg);
    return ok;
}

static int uffd_open(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
    if (ioctl(fd, UFFDIO_API, &api) != 0 || !(api.features & UFFD_FEATURE_SIGBUS) ||
        !(api.ioctls & (1ull << _UFFDIO_REGISTER))) {
        close(fd);
        return -1;
    }
    return fd;
}

void goro__stack_init(void)
{
    size_t pg = goro__pagesize();
    size_t min = env_bytes("GORO_STACK_MIN", pg);
    min = (min + pg - 1) & ~(pg - 1);
    st.min = min;
    size_t gsz = env_bytes("GORO_STACK_GUARD", DEFAULT_GUARD);
    gsz = (gsz + pg - 1) & ~(pg - 1);
    st.gsz = gsz < pg ? pg : gsz > MAX_GUARD ? MAX_GUARD : gsz;
    st.env_max = env_bytes("GORO_STACK_MAX", DEFAULT_MAX);
    if (st.env_max < min)
        st.env_max = min;
    st.max = st.env_max;
    st.stackcheck = goro__debug("stackcheck");
    if (st.pidfd < 0)
        st.pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0); /* kept across runs */
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
#endif
    memset((void *)st.pools, 0, sizeof st.pools);
    memset((void *)st.carve, 0, sizeof st.carve);
    memset((void *)st.q, 0, sizeof st.q);
    memset((void *)st.hist, 0, sizeof st.hist);
    st.chunks = NULL;
    st.deferred = 0;
    st.qhead = 0;
    st.maplimit_said = 0;
    st.lock = 0;

    for (int c = 2; c < 8; c++) {
        unsigned a, b, cc, d;
        st.xoff[c] = st.xsize[c] = 0;
        if (__get_cpuid_max(0, NULL) >= 0xD) {
            __cpuid_count(0xD, c, a, b, cc, d);
            st.xsize[c] = a;
            st.xoff[c] = b;
        }
    }

    /* The guard mechanism: GORO_GUARD forces one; else the best there is. */
    const char *force = getenv("GORO_GUARD");
    int want = -1;
    if (force && *force) {
        for (int i = 0; i < 3; i++)
            if (strcmp(force, guard_names[i]) == 0)
                want = i;
        if (want < 0)
            fprintf(stderr, "goro: ignoring GORO_GUARD=%s (want madvise, uffd or mprotect)\n",
                    force);
    }
    st.uffd = -1;
    bool have_madvise = (want < 0 || want == GUARD_MADVISE) && madvise_guard_works();
    if (have_madvise) {
        st.guard = GUARD_MADVISE;
    } else {
        if (want < 0 || want == GUARD_UFFD)
            st.uffd = uffd_open();
        st.guard = st.uffd >= 0 ? GUARD_UFFD : GUARD_MPROTECT;
    }
    if (want >= 0 && want != st.guard)
        fprintf(stderr, "goro: GORO_GUARD=%s is not available here; using %s guards\n",
                guard_names[want], guard_names[st.guard]);
    if (goro__debug("stackinfo"))
        fprintf(stderr, "goro: stacks: %zu bytes to start, limit %zu, %zu-byte guards by %s%s\n",
                st.min, st.max, st.gsz, guard_names[st.guard],
                st.stackcheck ? ", stackcheck on" : "");
}

void goro__stack_fini(void)
{
    lock();
    drain_locked();
    /* quarantined stacks with their own mapping */
    for (int i = 0; i < QUARANTINE; i++) {
        if (st.q[i].state == Q_FULL && (st.q[i].old.flags & SF_OWNMAP))
            munmap(st.q[i].old.map, st.q[i].old.maplen);
        st.q[i].state = Q_EMPTY;
    }
    for (int c = 0; c < NCLS; c++) {
        struct node *lists[2] = { st.pools[c].hot, st.pools[c].cold };
        for (int k = 0; k < 2; k++) {
            for (struct node *n = lists[k]; n;) {
                struct node *next = n->next;
                if (n->s.flags & SF_OWNMAP)
                    munmap(n->s.map, n->s.maplen);
                n = next;
            }
        }
        st.pools[c].hot = st.pools[c].cold = NULL;
        st.pools[c].resident = 0;
        st.carve[c].cur = st.carve[c].end = NULL;
    }
    for (struct chunk *c = st.chunks; c;) {
        struct chunk *next = c->next;
        munmap(c, c->len);
        c = next;
    }
    st.chunks = NULL;
    if (st.uffd >= 0)
        close(st.uffd);
    st.uffd = -1;
    unlock();
}
