/*
 * stack_space.c - where goroutine stacks live: the stack region, placing a
 * stack at a given offset in it, and the pools of free stacks.
 *
 * What. Every stack (guard region below, usable part above) lies in the
 * stack region of stack.h: the 4 GiB rows 0x1f80_0000_0000 to
 * 0x1ff8_0000_0000, byte 4 of every address 0x80-0xf7 and byte 5 0x1f
 * (rows 0xf8-0xfe are for emergency mappings, below). When a stack grows,
 * the new one must have its top at the old top plus a multiple of 4 GiB,
 * which is what makes the move sound (stack_move.c). So a goroutine keeps
 * the low 32 bits of its stack top for life, its stack's "offset", and
 * every growth needs a free place of the new size with that same offset in
 * another row. Stacks that overlap in offset need rows of their own, and
 * there are 120: offsets must be spread, or goroutines that grow together
 * run out of rows while the region is nearly empty.
 *
 *     row 0xf7  |   [== grown 256K ==]|          [= 32K =]|         growth: from
 *     row 0xf6  |        [= 32K =]|           [== 256K ==]|         the top row down
 *      ...      |                 |                       |
 *     row 0x81  |        [homes]  |      [homes]          |         clusters of homes:
 *     row 0x80  |[homes]     [homes]    [homes]   [homes]   [homes] lowest free row
 *               0            offset = top & 0xffffffff     4 GiB
 *
 * How.
 *  - Homes. A G record's first stack (one page) is its home for life
 *    (G.home, g.c), and every stack its goroutines run on lies at the
 *    home's offset: live goroutines have distinct offsets, and a record's
 *    next goroutine finds the stacks its last one grew into pooled at that
 *    offset. A goroutine that leaves home (grows, or starts on a hinted
 *    size) keeps the home page; it goes back home when it exits.
 *  - Homes are carved in clusters of 30 (CLUSTER, 2 MiB: one page-table
 *    page, so they cost what packed ones do), at cluster positions taken
 *    in a golden-ratio order over the row and each in the lowest row where
 *    it is free: a prefix of any length is spread evenly over the 4 GiB of
 *    offsets, and an 8 MiB window holds at most one cluster's homes until
 *    the first row is full (2,048 clusters, 61,000 homes). Up to
 *    CARVE_BATCH at a time, with two process_madvise calls (guards, then
 *    populating), as skynet spawns tens of thousands at once.
 *  - One bit per page of the region says whether a stack (live, pooled or
 *    quarantined) owns it. A growth looks for its range from the top row
 *    down, a few words of the bitmap per row; other new stacks (when no
 *    cluster is free, or hinted sizes with nothing at their offset) are
 *    carved first-fit from a cursor.
 *  - The region is mapped lazily, 64 MiB chunks at their fixed address with
 *    MAP_FIXED_NOREPLACE. A chunk something else already occupies is
 *    marked owned for good and never used.
 *  - Pools keep free stacks hot: one list per class, linked through a node
 *    written at the top of the free stack itself (no malloc: the fault
 *    handler uses the pools), and a hash of (class, offset) over the same
 *    nodes (classes above 0), so a growth first takes a pooled stack with
 *    its offset. A class keeps up to POOL_KEEP bytes resident; beyond that
 *    a pooled stack is trimmed (MADV_DONTNEED of all but its top page,
 *    which holds the node). When a search finds no room, trimmed stacks,
 *    then all pooled ones, give their range back to the bitmap (guard
 *    removed, pages dropped) and the search runs again. Stacks of
 *    HUGE_MIN and more get MADV_HUGEPAGE; their ends, off the 2 MiB grid
 *    when the offset is, are small pages.
 *
 * Signal safety. The fault can hit runtime code anywhere on a goroutine
 * stack, this file's locked code included. The lock word holds its
 * holder's thread tag: the handler never waits for a lock its own thread
 * holds, and waits only a bounded time for another thread. Without the
 * lock it maps an own mapping in an emergency row (0xf8-0xfe: same byte 5,
 * same offset, kernel-arbitrated by MAP_FIXED_NOREPLACE, so two handlers
 * never collide) and pushes the old stack on a lock-free "deferred" list
 * that the next lock holder drains into the pools. Emergency stacks are
 * unmapped when released; the next growth moves back into the region.
 *
 * Rejected. A fresh own mapping per growth at old top + k * 4 GiB (the
 * experiment that proved the layout: one kernel mapping per grown stack,
 * 65,530 at most, and no hot pools: stack_10k_256k 1.5x slower). Fixed
 * "column" layouts where each class owns rows (the rows a class needs grow
 * with its size: 31 rows for 2 MiB stacks). A region-wide reservation in
 * one mmap (508 GiB of commit under overcommit mode 2). One-page stacks
 * packed from offset 0 and recycled last-in first-out (the first version:
 * a few hundred offsets served thousands of live goroutines, and
 * tools/stackgrow ran out of rows with 2,000 of them). Putting a hinted
 * start at the offset of a bigger pooled stack (every concurrent one got
 * the same offset). Growing into a pooled stack at another offset (no
 * sound move can).
 *
 * Invariants:
 *  - A stack is in exactly one place: attached to a G record, in a pool
 *    (hot or cold list and its hash bucket), on the deferred list, or in
 *    quarantine (stack_fault.c). Its pages' bits are set in each case.
 *  - A page whose bit is clear carries no guard and, under uffd, no page
 *    (stack_guard.c): any range of clear bits can be laid out anew.
 *  - No stack's top lies on a row boundary (the last page of a row that
 *    carving reaches is marked owned for good), so a stack's top, which
 *    relocation counts as in the stack, has its row's byte 4 too; a
 *    growth keeps the top's offset, so it holds for every stack.
 *  - A pooled or deferred stack's top page is resident and holds its node.
 *  - stack_bytes_reserved == usable bytes + one page of every stack
 *    attached to a G record (live or on g.c's free lists).
 *  - sp.lock protects everything in sp but `deferred`; the handler never
 *    waits for it unboundedly.
 */
#include "stack.h"

#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000 /* Linux 4.17 */
#endif

#define REGION_LO   STK_ADDR(STK_W_LO)
#define REGION_HI   STK_ADDR(STK_W_EMRG)
#define EMRG_LO     STK_ADDR(STK_W_EMRG)
#define EMRG_HI     STK_ADDR(STK_W_END)
#define CHUNK_BYTES STK_CHUNK
#define NCHUNK      ((REGION_HI - REGION_LO) / CHUNK_BYTES)
#define POOL_KEEP   (16ul << 20)        /* resident bytes a class's pool keeps */
#define COLD_KEEP   1024                /* trimmed stacks a class keeps (a page each) */
#define HBITS       18                  /* (class, offset) hash buckets: 2^18 */
#define HUGE_SIZE   (2ul << 20)
#define CARVE_BATCH 64
#define WARM_MAX    256                 /* warm homes kept for adoption */
#define CLUSTER     HUGE_SIZE           /* one-page stacks are carved this much at a time */
#define CLUSTER_STEP 1265               /* odd, ~ 2048 / golden ratio: a Weyl sequence */
#define SPIN_PAUSES 1000                /* the handler's wait: pauses, then */
#define SPIN_YIELDS 10000               /* sched_yields, then an emergency mapping */

/* A free stack, written at its own top. */
struct node {
    struct node *next, *prev;   /* its class's hot or cold list */
    struct node *hnext, *hprev; /* its (class, offset) bucket (class > 0) */
    struct goro__stack s;
};

static struct {
    volatile AO_t lock;         /* 0 free, else the holder's thread tag */
    uint64_t *bits;             /* a bit per page of [REGION_LO, REGION_HI) */
    size_t npages, bits_len;
    uint64_t mapped[NCHUNK / 64];  /* chunks looked at ... */
    uint64_t foreign[NCHUNK / 64]; /* ... and those something else holds */
    size_t cursor;              /* carving: first page to look at */
    size_t cseq;                /* clusters handed out (their order) */
    size_t cpage, cleft;        /* the current cluster: next page, slots left */
    struct pool {
        struct node *hot, *cold; /* resident (newest first) / trimmed */
        struct node *hot_tail;   /* the least recently pooled resident one */
        size_t resident;         /* bytes in hot */
        size_t ncold;            /* stacks in cold */
    } pools[NCLS];
    struct node **buckets;      /* 2^HBITS heads */
    char *warm[WARM_MAX];       /* homes of goroutines that grew and exited */
    size_t nwarm;
    volatile AO_t deferred;     /* struct node *: lock-free push, take-all */
    struct iovec guards[CARVE_BATCH], pages[CARVE_BATCH]; /* carve_batch_locked */
} sp;

static __thread char lock_tag __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------------
 * The lock: a test-and-test-and-set spinlock that knows its holder
 * ------------------------------------------------------------------ */

static AO_t self_tag(void)
{
    return (AO_t)(uintptr_t)&lock_tag;
}

static void lock(void)
{
    AO_t me = self_tag();
    for (int i = 0;; i++) {
        /* acquire: the pools written by the last holder are visible */
        if (AO_load(&sp.lock) == 0 && AO_compare_and_swap_acquire(&sp.lock, 0, me))
            return;
        if (i > SPIN_PAUSES)
            sched_yield();
        else
            __asm__ __volatile__("pause" ::: "memory");
    }
}

static void unlock(void)
{
    /* release: our writes to the pools before the next holder's reads */
    AO_store_release(&sp.lock, 0);
}

int goro__space_trylock(void)
{
    AO_t me = self_tag();
    for (int i = 0; i < SPIN_PAUSES + SPIN_YIELDS; i++) {
        AO_t v = AO_load(&sp.lock);
        if (v == me)
            return -1; /* the fault interrupted this thread's own holder */
        /* acquire: as in lock() */
        if (v == 0 && AO_compare_and_swap_acquire(&sp.lock, 0, me))
            return 1;
        if (i > SPIN_PAUSES)
            sched_yield();
        else
            __asm__ __volatile__("pause" ::: "memory");
    }
    return 0;
}

void goro__space_lock(void)
{
    lock();
}

void goro__space_unlock(void)
{
    unlock();
}

/* ------------------------------------------------------------------
 * The page bitmap
 * ------------------------------------------------------------------ */

static inline size_t page_of(uintptr_t a)
{
    return (a - REGION_LO) / goro__stk.pg;
}

static inline uint64_t bit_mask(size_t from, size_t k) /* k bits from bit `from` */
{
    return (k >= 64 ? ~0ull : (1ull << k) - 1) << from;
}

static void bits_mark(size_t p, size_t n, bool owned)
{
    while (n > 0) {
        size_t b = p & 63, k = 64 - b < n ? 64 - b : n;
        if (owned)
            sp.bits[p >> 6] |= bit_mask(b, k);
        else
            sp.bits[p >> 6] &= ~bit_mask(b, k);
        p += k;
        n -= k;
    }
}

/* One past the highest owned page in [p, p+n), or 0 if all are free. */
static size_t bits_last(size_t p, size_t n)
{
    size_t end = p + n;
    while (end > p) {
        size_t last = end - 1, lo = last & ~(size_t)63;
        if (lo < p)
            lo = p;
        uint64_t v = sp.bits[last >> 6] & bit_mask(lo & 63, last - lo + 1);
        if (v)
            return (last & ~(size_t)63) + (size_t)(63 - __builtin_clzll(v)) + 1;
        end = lo;
    }
    return 0;
}

/* The first free page at or after p (limit if none before it). */
static size_t bits_next_free(size_t p, size_t limit)
{
    while (p < limit) {
        uint64_t v = ~sp.bits[p >> 6] >> (p & 63);
        if (v) {
            p += (size_t)__builtin_ctzll(v);
            return p < limit ? p : limit;
        }
        p = (p | 63) + 1;
    }
    return limit;
}

/* The first p >= from with [p, p+n) free and p + n <= limit, or SIZE_MAX. */
static size_t bits_find(size_t from, size_t n, size_t limit)
{
    size_t p = from;
    for (;;) {
        p = bits_next_free(p, limit);
        if (p + n > limit)
            return SIZE_MAX;
        size_t l = bits_last(p, n);
        if (l == 0)
            return p;
        p = l;
    }
}

/* ------------------------------------------------------------------
 * Mapping the region and laying out a stack in it
 * ------------------------------------------------------------------ */

static void *map_fixed(uintptr_t a, size_t len)
{
    return mmap((void *)a, len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
}

/* Map the chunks under [a, a+len). -EAGAIN when one turned out to be
 * occupied by something else: it is marked owned, search again. */
static int ensure_mapped(uintptr_t a, size_t len)
{
    size_t c0 = (a - REGION_LO) / CHUNK_BYTES, c1 = (a + len - 1 - REGION_LO) / CHUNK_BYTES;
    for (size_t c = c0; c <= c1; c++) {
        if (sp.mapped[c >> 6] >> (c & 63) & 1)
            continue;
        uintptr_t want = REGION_LO + c * CHUNK_BYTES;
        void *p = map_fixed(want, CHUNK_BYTES);
        if (p != (void *)want) {
            if (p == MAP_FAILED && errno != EEXIST)
                return -errno;
            if (p != MAP_FAILED)
                munmap(p, CHUNK_BYTES); /* an old kernel took it as a hint */
            /* not ours: owned for good, never unmapped */
            bits_mark(page_of(want), CHUNK_BYTES / goro__stk.pg, true);
            sp.mapped[c >> 6] |= 1ull << (c & 63);
            sp.foreign[c >> 6] |= 1ull << (c & 63);
            return -EAGAIN;
        }
        if (goro__stk.guard == GUARD_UFFD) {
            int rc = goro__uffd_register(p, CHUNK_BYTES);
            if (rc < 0) {
                munmap(p, CHUNK_BYTES);
                return rc;
            }
        } else {
            madvise(p, CHUNK_BYTES, MADV_NOHUGEPAGE); /* a huge page under 4 KiB stacks */
        }
        sp.mapped[c >> 6] |= 1ull << (c & 63);
    }
    return 0;
}

/* A stack of class cls whose guard starts at a, on pages that are free.
 * 0, -EAGAIN (search again) or -errno. Under lock. */
static int place_locked(uintptr_t a, int cls, struct goro__stack *s)
{
    size_t gsz = goro__stk.gsz, use = goro__stk.min << cls, slot = use + gsz;
    int rc = ensure_mapped(a, slot);
    if (rc < 0)
        return rc;
    char *g = (char *)a;
    if (goro__stk.guard == GUARD_UFFD) {
        rc = goro__uffd_fill(g + gsz, use); /* the guard stays without pages */
        if (rc < 0)
            madvise(g, slot, MADV_DONTNEED); /* free pages have none */
    } else {
        rc = goro__guard_on(g, gsz);
        if (rc < 0 && goro__stk.guard == GUARD_MADVISE)
            madvise(g, gsz, MADV_GUARD_REMOVE); /* a partial install */
    }
    if (rc < 0)
        return rc;
    uint32_t flags = 0;
    if (use >= HUGE_MIN && goro__stk.guard != GUARD_UFFD &&
        madvise(g + gsz, use, MADV_HUGEPAGE) == 0)
        flags |= SF_HUGE;
    bits_mark(page_of(a), slot / goro__stk.pg, true);
    *s = (struct goro__stack){ .lo = g + gsz, .hi = g + slot,
                               .cls = (uint32_t)cls, .flags = flags };
    return 0;
}

/* Give a stack's range back to the bitmap. Under lock. */
static void release_locked(struct goro__stack *s)
{
    if (s->flags & SF_EMERG) {
        munmap(stk_map(s), stk_maplen(s));
        return;
    }
    size_t use = stk_usable(s);
    if (s->flags & SF_HUGE)
        madvise(s->lo, use, MADV_NOHUGEPAGE); /* merges back into the chunk's mapping */
    madvise(s->lo, use, MADV_DONTNEED);
    if (goro__stk.guard != GUARD_UFFD && goro__guard_off(stk_map(s), goro__stk.gsz) < 0)
        return; /* the guard stays: so does its bit (leaked, harmless) */
    bits_mark(page_of((uintptr_t)stk_map(s)), stk_maplen(s) / goro__stk.pg, false);
}

/* ------------------------------------------------------------------
 * Pools
 * ------------------------------------------------------------------ */

static struct node *node_of(const struct goro__stack *s)
{
    return (struct node *)(void *)(s->hi - sizeof(struct node));
}

static struct node **bucket_of(uint32_t cls, const char *hi)
{
    uint64_t k = (uint64_t)(STK_OFF(hi) / goro__stk.pg) * 0x9E3779B97F4A7C15ull;
    k ^= (uint64_t)(cls + 1) * 0xC2B2AE3D27D4EB4Full;
    k *= 0x9E3779B97F4A7C15ull;
    return &sp.buckets[k >> (64 - HBITS)];
}

static void pool_link(struct node *n)
{
    struct pool *p = &sp.pools[n->s.cls];
    bool cold = (n->s.flags & SF_TRIMMED) != 0;
    struct node **head = cold ? &p->cold : &p->hot;
    n->prev = NULL;
    n->next = *head;
    if (*head)
        (*head)->prev = n;
    else if (!cold)
        p->hot_tail = n;
    *head = n;
    if (n->s.cls > 0) { /* nothing asks for one page at an offset */
        struct node **b = bucket_of(n->s.cls, n->s.hi);
        n->hprev = NULL;
        n->hnext = *b;
        if (*b)
            (*b)->hprev = n;
        *b = n;
    }
    if (!cold)
        p->resident += stk_usable(&n->s);
    else
        p->ncold++;
}

static void pool_unlink(struct node *n)
{
    struct pool *p = &sp.pools[n->s.cls];
    bool cold = (n->s.flags & SF_TRIMMED) != 0;
    struct node **head = cold ? &p->cold : &p->hot;
    if (n->prev)
        n->prev->next = n->next;
    else
        *head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else if (!cold)
        p->hot_tail = n->prev;
    if (n->s.cls > 0) {
        struct node **b = bucket_of(n->s.cls, n->s.hi);
        if (n->hprev)
            n->hprev->hnext = n->hnext;
        else
            *b = n->hnext;
        if (n->hnext)
            n->hnext->hprev = n->hprev;
    }
    if (!cold)
        p->resident -= stk_usable(&n->s);
    else
        p->ncold--;
}

/* Take n out of its pool into *s, ready to run on. Under lock. */
static int take_locked(struct node *n, struct goro__stack *s)
{
    struct goro__stack t = n->s;
    if ((t.flags & SF_TRIMMED) && goro__stk.guard == GUARD_UFFD &&
        goro__uffd_fill(t.lo, stk_usable(&t) - goro__stk.pg) < 0)
        return -ENOMEM;
    pool_unlink(n);
    t.flags &= ~(uint32_t)SF_TRIMMED;
    *s = t;
    return 0;
}

void goro__space_put_locked(struct goro__stack *s)
{
    if (s->flags & SF_EMERG) {
        munmap(stk_map(s), stk_maplen(s));
        return;
    }
    struct pool *p = &sp.pools[s->cls];
    size_t pg = goro__stk.pg;
    struct node *n = node_of(s);
    n->s = *s;
    n->s.flags &= ~(uint32_t)SF_TRIMMED;
    pool_link(n);
    /* Over POOL_KEEP, the least recently pooled resident stacks are
     * trimmed, not this one: a stack is taken back mostly by its own G
     * record's next goroutine (at its offset), and g.c reuses the most
     * recently freed records first. Trimming the newest instead made
     * stack_10k_256k without hints fault its stacks in again and again
     * (3-5x slower). One-page stacks are never trimmed (their top page
     * holds the node). */
    while (p->resident > POOL_KEEP && p->hot_tail != NULL && p->hot_tail != n &&
           stk_usable(&p->hot_tail->s) > pg) {
        struct node *t = p->hot_tail;
        if (p->ncold >= COLD_KEEP) {
            /* a trimmed stack keeps its top page (the node): past
             * COLD_KEEP of them, the range goes back whole, so that the
             * RSS falls, not only moves into a pool (stacks shrunk or
             * compacted by stack_idle.c end up here) */
            struct goro__stack r = t->s;
            pool_unlink(t);
            release_locked(&r);
            continue;
        }
        if (madvise(t->s.lo, stk_usable(&t->s) - pg, MADV_DONTNEED) != 0)
            break;
        pool_unlink(t);
        t->s.flags |= SF_TRIMMED;
        pool_link(t);
    }
}

/* Give pooled stacks' ranges back: the cold ones (what == 0) or all. True
 * if any was. Under lock. */
static bool relieve_locked(int what)
{
    bool any = false;
    for (int c = 0; c < NCLS; c++) {
        for (int k = what == 0 ? 1 : 0; k < 2; k++) {
            struct node *n;
            while ((n = k == 0 ? sp.pools[c].hot : sp.pools[c].cold) != NULL) {
                struct goro__stack t = n->s;
                pool_unlink(n);
                release_locked(&t);
                any = true;
            }
        }
    }
    return any;
}

void goro__space_defer(struct goro__stack *s)
{
    struct node *n = node_of(s);
    n->s = *s;
    AO_t h;
    do {
        h = AO_load(&sp.deferred);
        n->next = (struct node *)h;
        /* release: the node's contents before it is reachable */
    } while (!AO_compare_and_swap_release(&sp.deferred, h, (AO_t)n));
}

static void drain_locked(void)
{
    AO_t h;
    do {
        /* acquire: pairs with goro__space_defer's release */
        h = AO_load_acquire(&sp.deferred);
    } while (h != 0 && !AO_compare_and_swap_full(&sp.deferred, h, 0));
    for (struct node *n = (struct node *)h; n;) {
        struct node *next = n->next;
        struct goro__stack s = n->s;
        goro__space_put_locked(&s);
        n = next;
    }
}

/* ------------------------------------------------------------------
 * New stacks: from the pool, else carved from the bottom up
 * ------------------------------------------------------------------ */

/* Up to CARVE_BATCH class-0 stacks from page p on (madvise guards only):
 * their guards installed and their pages populated by two process_madvise
 * calls over iovecs, instead of a madvise and a page fault per stack. On
 * this VM a first touch of a page costs 12-13 us and a madvise 1.5 us;
 * batched, 0.4 us per guard and 0.7 us per populated page (measured), and
 * spawning many goroutines at once (skynet: 83,000 alive at the peak) is
 * mostly that. The first is returned, the rest pooled. -EAGAIN: carve one. */
static int carve_batch_locked(size_t p, size_t kmax, struct goro__stack *s)
{
    size_t pg = goro__stk.pg, gsz = goro__stk.gsz, use = goro__stk.min, slot = use + gsz;
    size_t np = slot / pg, k = 1;
    if (kmax > CARVE_BATCH)
        kmax = CARVE_BATCH;
    if (goro__stk.pidfd < 0 || goro__stk.guard != GUARD_MADVISE || goro__stk.stackcheck)
        return -EAGAIN;
    uintptr_t a = REGION_LO + p * pg;
    while (k < kmax && p + (k + 1) * np <= sp.npages &&
           STK_OFF(a + (k + 1) * slot) != 0 && bits_last(p + k * np, np) == 0)
        k++;
    if (k < 2 || ensure_mapped(a, k * slot) < 0)
        return -EAGAIN;
    for (size_t i = 0; i < k; i++) {
        char *g = (char *)a + i * slot;
        sp.guards[i] = (struct iovec){ .iov_base = g, .iov_len = gsz };
        sp.pages[i] = (struct iovec){ .iov_base = g + gsz, .iov_len = use };
    }
    long r = syscall(SYS_process_madvise, goro__stk.pidfd, sp.guards, k, MADV_GUARD_INSTALL, 0);
    if (r != (long)(k * gsz)) {
        madvise((void *)a, k * slot, MADV_GUARD_REMOVE); /* free pages carry none */
        return -EAGAIN;
    }
    /* best effort: a page not populated now faults in later */
    syscall(SYS_process_madvise, goro__stk.pidfd, sp.pages, k, MADV_POPULATE_WRITE, 0);
    bits_mark(p, k * np, true);
    sp.cursor = p + k * np;
    for (size_t i = 1; i < k; i++) {
        char *g = (char *)a + i * slot;
        struct goro__stack t = { .lo = g + gsz, .hi = g + slot };
        goro__space_put_locked(&t);
    }
    char *g = (char *)a;
    *s = (struct goro__stack){ .lo = g + gsz, .hi = g + slot };
    return 0;
}

/* The next free cluster for one-page stacks, or SIZE_MAX: cluster
 * positions in a row are visited in the order of a golden-ratio Weyl
 * sequence (every prefix of it is spread evenly over the row), each taken
 * in the lowest row where it is free. Under lock. */
static size_t cluster_find_locked(void)
{
    size_t pg = goro__stk.pg, cpg = CLUSTER / pg, rowpg = STK_ROW / pg;
    size_t npos = STK_ROW / CLUSTER, rows = sp.npages / rowpg;
    for (size_t tries = 0; tries < npos; tries++) {
        size_t pos = (sp.cseq++ * CLUSTER_STEP) & (npos - 1);
        for (size_t r = 0; r < rows; r++) {
            size_t p = r * rowpg + pos * cpg;
            if (bits_last(p, cpg) == 0)
                return p;
        }
    }
    return SIZE_MAX;
}

/* A one-page stack from the current cluster (a new one when it is used
 * up). -ENOSPC when no cluster is free. Under lock. */
static int carve_cluster_locked(struct goro__stack *s)
{
    size_t pg = goro__stk.pg, slot = goro__stk.min + goro__stk.gsz, np = slot / pg;
    for (int tries = 0; tries < 2; tries++) {
        if (sp.cleft == 0) {
            size_t p = cluster_find_locked();
            if (p == SIZE_MAX)
                return -ENOSPC;
            sp.cpage = p;
            sp.cleft = (CLUSTER - pg) / slot; /* the last page stays free: no top on its end */
        }
        size_t p = sp.cpage;
        if (bits_last(p, np) != 0) { /* a growth took the rest meanwhile */
            sp.cleft = 0;
            continue;
        }
        size_t before = sp.cleft;
        if (carve_batch_locked(p, sp.cleft, s) == 0) {
            size_t k = (sp.cursor - p) / np; /* carve_batch_locked set the cursor */
            sp.cpage = p + k * np;
            sp.cleft = before - k;
            return 0;
        }
        int rc = place_locked(REGION_LO + p * pg, 0, s);
        if (rc == -EAGAIN) {
            sp.cleft = 0;
            continue;
        }
        if (rc == 0) {
            sp.cpage = p + np;
            sp.cleft--;
        }
        return rc;
    }
    return -EAGAIN;
}

/* Carve a stack of class cls: one-page stacks in clusters spread over the
 * region (cluster_find_locked), others at the first free place from the
 * cursor on (then from the bottom); stacks with huge pages get their
 * usable part on a 2 MiB boundary. Under lock.
 *
 * Why spread: a goroutine keeps its home's offset for life (G.home), and
 * stacks that overlap in offset must lie in different rows, of which there
 * are 120. Packed from offset 0 up, 1,000 homes would lie within 68 MiB,
 * and 120 of them within any 8 MiB: a thousand goroutines recursing to
 * 8 MiB (8 GiB of the region's 480) would find no row. Spread, an 8 MiB
 * window holds one cluster (30 homes) until the first row is full. A
 * cluster is 2 MiB, one page-table page: packed, its homes cost what they
 * did (137 bytes of page tables each). */
static int carve_locked(int cls, struct goro__stack *s)
{
    if (cls == 0 && goro__stk.min + goro__stk.gsz <= CLUSTER - goro__stk.pg) {
        int rc = carve_cluster_locked(s);
        if (rc != -ENOSPC)
            return rc;
    }
    size_t pg = goro__stk.pg, gsz = goro__stk.gsz, use = goro__stk.min << cls;
    size_t np = (use + gsz) / pg;
    bool huge = use >= HUGE_MIN && goro__stk.guard != GUARD_UFFD;
    size_t want = np + (huge ? HUGE_SIZE / pg : 0);
    if (want > sp.npages)
        return -ENOSPC;
    size_t p = bits_find(sp.cursor, want, sp.npages);
    if (p == SIZE_MAX)
        p = bits_find(0, want, sp.npages);
    if (p == SIZE_MAX)
        return -ENOSPC;
    if (huge) {
        uintptr_t lo = REGION_LO + p * pg + gsz;
        lo = (lo + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1);
        p = page_of(lo - gsz);
    }
    /* No stack's top on a row boundary: one past it would read 0x1fWW+1
     * with bytes 0-3 zero, a word relocation would take (and in the last
     * emergency row, byte 4 0xff). That page is never used. */
    uintptr_t hi = REGION_LO + (p + np) * pg;
    if (STK_OFF(hi) == 0) {
        bits_mark(page_of(hi) - 1, 1, true);
        return -EAGAIN;
    }
    if (cls == 0 && carve_batch_locked(p, CARVE_BATCH, s) == 0)
        return 0;
    int rc = place_locked(REGION_LO + p * pg, cls, s);
    if (rc == 0)
        sp.cursor = p + np;
    return rc;
}

/* A stack of class cls, any offset. Under lock. */
static int get_any_locked(int cls, struct goro__stack *s)
{
    struct pool *p = &sp.pools[cls];
    if (p->hot && take_locked(p->hot, s) == 0)
        return 0;
    if (p->cold && take_locked(p->cold, s) == 0)
        return 0;
    /* Carving makes calls that may fail on the way to a stack (a seccomp
     * profile that forbids process_madvise, a kernel without
     * MADV_POPULATE_WRITE, a chunk someone else mapped): on success the
     * caller's errno is left as it was (README rule 2: it is the
     * goroutine's). Here, off the pool's path: saved in goro_go on every
     * spawn it made skynet_1m 16% slower (117 -> 137 ms). */
    int saved_errno = errno;
    for (int relieved = 0;;) {
        int rc = carve_locked(cls, s);
        if (rc == -EAGAIN)
            continue; /* a chunk was someone else's: marked, search again */
        if (rc == 0)
            errno = saved_errno;
        if (rc != -ENOSPC || relieved == 2 || !relieve_locked(relieved++))
            return rc == -ENOSPC ? -ENOMEM : rc;
    }
}

/* ------------------------------------------------------------------
 * Growth: a place at the same offset, another row
 * ------------------------------------------------------------------ */

/* The highest top <= limit that lies a multiple of 4 GiB from old_hi. */
static uintptr_t top_row_hi(uintptr_t old_hi, uintptr_t limit)
{
    uintptr_t hi = (limit - STK_ROW) + STK_OFF(old_hi);
    return STK_OFF(old_hi) == 0 ? limit : hi;
}

static int place_at_locked(int cls, uintptr_t old_hi, struct goro__stack *s)
{
    size_t pg = goro__stk.pg, slot = (goro__stk.min << cls) + goro__stk.gsz;
    if (slot > REGION_HI - REGION_LO)
        return -ENOMEM;
    for (uintptr_t hi = top_row_hi(old_hi, REGION_HI); hi >= REGION_LO + slot; hi -= STK_ROW) {
        if (bits_last(page_of(hi - slot), slot / pg) != 0)
            continue;
        int rc = place_locked(hi - slot, cls, s);
        if (rc != -EAGAIN)
            return rc;
    }
    return -ENOSPC;
}

/* A stack of class cls with its top at hi + k * 4 GiB: pooled, else
 * placed; when nothing is free there, pooled stacks give their ranges back
 * first if relieve. Under lock. */
/* A pooled stack of class cls at hi's offset: a resident one, else NULL
 * and *cold a trimmed one (or NULL). Under lock. */
static struct node *bucket_find(int cls, uintptr_t hi, struct node **cold)
{
    *cold = NULL;
    for (struct node *n = *bucket_of((uint32_t)cls, (const char *)hi); n; n = n->hnext) {
        if (n->s.cls != (uint32_t)cls || STK_OFF(n->s.hi) != STK_OFF(hi))
            continue;
        if (!(n->s.flags & SF_TRIMMED))
            return n;
        if (*cold == NULL)
            *cold = n;
    }
    return NULL;
}

static int at_offset_locked(int cls, uintptr_t hi, bool relieve, struct goro__stack *s)
{
    struct node *cold, *n = bucket_find(cls, hi, &cold);
    if (n && take_locked(n, s) == 0)
        return 0;
    if (cold && take_locked(cold, s) == 0)
        return 0;
    for (int relieved = 0;;) {
        int rc = place_at_locked(cls, hi, s);
        if (rc != -ENOSPC || !relieve || relieved == 2 || !relieve_locked(relieved++))
            return rc == -ENOSPC ? -ENOMEM : rc;
    }
}

int goro__space_get_at_locked(int cls, uintptr_t old_hi, struct goro__stack *s)
{
    drain_locked();
    return at_offset_locked(cls, old_hi, true, s);
}

int goro__space_get_emergency(int cls, uintptr_t old_hi, struct goro__stack *s)
{
    size_t gsz = goro__stk.gsz, use = goro__stk.min << cls, slot = use + gsz;
    for (uintptr_t hi = top_row_hi(old_hi, EMRG_HI); hi >= EMRG_LO + slot; hi -= STK_ROW) {
        if (hi == old_hi)
            continue;
        void *p = map_fixed(hi - slot, slot);
        if (p == MAP_FAILED && errno == EEXIST)
            continue; /* another stack's, or another handler's */
        if (p == MAP_FAILED)
            return -errno;
        if (p != (void *)(hi - slot)) {
            munmap(p, slot);
            return -ENOMEM;
        }
        char *g = p;
        int rc = goro__stk.guard == GUARD_UFFD ? goro__uffd_register(g, slot) : goro__guard_on(g, gsz);
        if (rc == 0 && goro__stk.guard == GUARD_UFFD)
            rc = goro__uffd_fill(g + gsz, use);
        if (rc < 0) {
            munmap(g, slot);
            return rc;
        }
        *s = (struct goro__stack){ .lo = g + gsz, .hi = g + slot,
                                   .cls = (uint32_t)cls, .flags = SF_EMERG };
        return 0;
    }
    return -ENOMEM;
}

/* ------------------------------------------------------------------
 * The runtime's side: stacks for G records
 * ------------------------------------------------------------------ */

void goro__space_reserved(const struct goro__stack *s, int sign)
{
    /* usable bytes and one page: the rest of the guard region is address
     * space and page-table markers, no memory */
    AO_t sz = (AO_t)(stk_usable(s) + goro__stk.pg);
    /* relaxed (fetch_and_add without a barrier): a statistic */
    AO_fetch_and_add(&goro__ctr.stack_bytes_reserved, sign > 0 ? sz : (AO_t)0 - sz);
}

void goro__space_note_max(size_t use)
{
    AO_t cur;
    do {
        cur = AO_load(&goro__ctr.stack_max);
        if (cur >= use)
            return;
        /* relaxed is enough for a statistic; CAS so no larger value is lost */
    } while (!AO_compare_and_swap(&goro__ctr.stack_max, cur, (AO_t)use));
}

bool goro__space_claim(char *p, size_t len)
{
    size_t first = page_of((uintptr_t)p), n = len / goro__stk.pg;
    lock();
    bool ok = sp.bits != NULL && first + n <= sp.npages && bits_last(first, n) == 0;
    if (ok)
        bits_mark(first, n, true); /* owned for good: nothing carved there */
    unlock();
    return ok;
}

int goro__stack_alloc(struct goro__stack *s)
{
    lock();
    drain_locked();
    int rc = get_any_locked(0, s);
    unlock();
    if (rc < 0) {
        if (rc == -ENOMEM)
            goro__guard_maplimit_message();
        return -ENOMEM;
    }
    goro__space_reserved(s, 1);
    goro__space_note_max(stk_usable(s));
    return 0;
}

void goro__stack_free(struct goro__stack *s)
{
    if (s->lo == NULL)
        return;
    goro__space_reserved(s, -1);
    lock();
    drain_locked();
    goro__space_put_locked(s);
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
    int rc = get_any_locked(cls, &t);
    if (rc == 0)
        goro__space_put_locked(s);
    unlock();
    if (rc < 0)
        return -ENOMEM; /* keep the old one: still a valid stack */
    goro__space_reserved(s, -1);
    goro__space_reserved(&t, 1);
    goro__space_note_max(stk_usable(&t));
    *s = t;
    return 0;
}

int goro__stack_new_home(G *g)
{
    int rc = goro__stack_alloc(&g->stack);
    if (rc == 0)
        g->home = (uintptr_t)g->stack.lo;
    return rc;
}

/* A goroutine that has not run starts on class cls: on a resident pooled
 * stack at its home's offset, where the record's last goroutine left its
 * stacks (a growth of this one finds its places there too); else on any
 * resident pooled one (hot memory first: goroutines that start big and
 * run briefly, stack_10k_256k's, cycle through a few hundred records while
 * the pool keeps 64 stacks of 256 KiB resident: 50 page faults a
 * goroutine at their own offsets, none this way); else a trimmed one at
 * its offset, a new place there, anything. */
int goro__stack_start(G *g, int cls)
{
    if ((int)g->stack.cls == cls || cls < 0 || cls >= NCLS)
        return 0;
    if (!stk_is_home(g, &g->stack))
        goro__stack_go_home(g);
    if (cls == 0)
        return 0;
    struct goro__stack t;
    lock();
    drain_locked();
    struct node *cold, *n = bucket_find(cls, (uintptr_t)stk_home(g).hi, &cold);
    int rc = -ENOMEM;
    if (n == NULL)
        n = sp.pools[cls].hot;
    if (n != NULL)
        rc = take_locked(n, &t);
    if (rc < 0)
        rc = at_offset_locked(cls, (uintptr_t)stk_home(g).hi, false, &t);
    if (rc < 0)
        rc = get_any_locked(cls, &t);
    unlock();
    if (rc < 0)
        return -ENOMEM; /* it starts at home */
    goro__space_reserved(&t, 1);
    goro__space_note_max(stk_usable(&t));
    g->stack = t;
    return 0;
}

/* Warm homes. A goroutine that grew leaves its bigger stacks pooled at its
 * home's offset, resident (the pools trim the least recently used). The
 * next goroutine to grow finds them only if it runs at that offset, and a
 * record freed now is reused by a spawn that may wait behind hundreds of
 * others before it runs (stack_10k_256k: its first round faulted 17,000
 * pages in where the pools of any-offset stacks had faulted 1,000). So
 * such a home leaves its record for a list of warm homes, the record takes
 * another one-page stack, and a goroutine about to run for the first time
 * adopts the newest warm home (sched.c, resume). A warm home belongs to no
 * goroutine, so live goroutines still have distinct homes.
 * goro__stack_warm says the list is not empty (read without the lock). */
volatile AO_t goro__stack_warm;

void goro__stack_go_home(G *g)
{
    goro__stack_unlend(&g->stack); /* its frames are gone */
    if (stk_is_home(g, &g->stack))
        return;
    goro__space_reserved(&g->stack, -1);
    goro__space_home_back(g);
    lock();
    drain_locked();
    goro__space_put_locked(&g->stack);
    struct goro__stack fresh;
    /* madvise guards only: under GORO_GUARD=uffd, stackgrow (3,000
     * goroutines, 2 workers) started a goroutine on a home read as NULL
     * about once in ten 5 s runs with warm homes and never in ten without;
     * not understood yet (the session note of 2026-12-03 says what was
     * ruled out). A goroutine away on a one-page stack (it left a
     * sleeping cluster: stack_doze.c) grew nothing there: it goes home,
     * and its home stays in its cluster. */
    if (goro__stk.guard == GUARD_MADVISE && sp.nwarm < WARM_MAX && g->stack.cls > 0 &&
        get_any_locked(0, &fresh) == 0) {
        sp.warm[sp.nwarm++] = (char *)(g->home & ~(uintptr_t)1);
        g->home = (uintptr_t)fresh.lo;
        /* relaxed: a hint; the list itself is read under the lock */
        AO_store(&goro__stack_warm, sp.nwarm);
    }
    unlock();
    g->stack = stk_home(g);
}

void goro__stack_adopt(G *g)
{
    if (!stk_is_home(g, &g->stack))
        return;
    lock();
    if (sp.nwarm > 0) {
        struct goro__stack mine = g->stack;
        g->home = (uintptr_t)sp.warm[--sp.nwarm];
        AO_store(&goro__stack_warm, sp.nwarm); /* relaxed: a hint */
        goro__space_put_locked(&mine);
        g->stack = stk_home(g);
    }
    unlock();
}

void goro__stack_free_g(G *g)
{
    goro__idle_forget(g);
    goro__stack_unlend(&g->stack);
    if (!stk_is_home(g, &g->stack))
        goro__stack_free(&g->stack);
    if (g->home != 0) {
        goro__space_home_back(g);
        struct goro__stack h = stk_home(g);
        goro__stack_free(&h);
    }
    memset(&g->stack, 0, sizeof g->stack);
    g->home = 0;
}

/* ------------------------------------------------------------------
 * Set-up and tear-down
 * ------------------------------------------------------------------ */

void goro__space_init(void)
{
    size_t pg = goro__stk.pg;
    sp.npages = (REGION_HI - REGION_LO) / pg;
    sp.bits_len = sp.npages / 8;
    /* untouched parts of the bitmap and the buckets cost nothing */
    void *b = mmap(NULL, sp.bits_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *h = mmap(NULL, sizeof(struct node *) << HBITS, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b == MAP_FAILED || h == MAP_FAILED)
        goro__fatal("cannot map the stack allocator's tables: %s", strerror(errno));
    sp.bits = b;
    sp.buckets = h;
    memset(sp.mapped, 0, sizeof sp.mapped);
    memset(sp.foreign, 0, sizeof sp.foreign);
    memset(sp.pools, 0, sizeof sp.pools);
    sp.cursor = 0;
    sp.cseq = sp.cpage = sp.cleft = 0;
    sp.nwarm = 0;
    goro__stack_warm = 0;
    sp.deferred = 0;
    sp.lock = 0;
}

void goro__space_fini(void)
{
    lock();
    drain_locked(); /* emergency stacks are unmapped there */
    for (size_t c = 0; c < NCHUNK; c++) {
        if ((sp.mapped[c >> 6] & ~sp.foreign[c >> 6]) >> (c & 63) & 1)
            munmap((void *)(REGION_LO + c * CHUNK_BYTES), CHUNK_BYTES);
    }
    munmap(sp.bits, sp.bits_len);
    munmap(sp.buckets, sizeof(struct node *) << HBITS);
    sp.bits = NULL;
    sp.buckets = NULL;
    memset(sp.pools, 0, sizeof sp.pools);
    unlock();
}
