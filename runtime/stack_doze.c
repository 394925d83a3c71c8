/*
 * stack_doze.c - clusters of compacted homes put to sleep: the page-table
 * page under them given back.
 *
 * Why. A compacted goroutine (stack_idle.c) keeps no stack page, but its
 * guard markers are entries in a page table: a 4 KiB page-table page
 * under each 2 MiB cluster of 30 homes (stack_space.c), 138 bytes a
 * compacted goroutine, a quarter of what one cost (parked_1m, 565 bytes:
 * README "Where a peer is ahead"). The kernel frees a page-table page when
 * a zap (MADV_DONTNEED) of at least 2 MiB leaves it empty
 * (CONFIG_PT_RECLAIM, Linux 6.14+): markers are entries, so while they are
 * there it stays.
 *
 * What. When the pass compacts the last goroutine of a cluster in which
 * every home holds a goroutine compacted at home (on its home stack), it
 * puts the cluster to sleep:
 *   1. the cluster DZ_AWAKE -> DZ_SLEEPING, and each of its goroutines'
 *      cstate C_COMPACTED -> C_DORMANT (by CAS: a restore that claimed one
 *      first wins, and the sleep is undone);
 *   2. the 2 MiB made inaccessible (PROT_NONE): every access still faults,
 *      now without markers;
 *   3. the markers removed and the 2 MiB zapped: nothing was resident, the
 *      page-table page goes;
 *   4. DZ_ASLEEP.
 * A goroutine readied without its stack touched (by the poller, a timer, a
 * WaitGroup) leaves the cluster asleep: resume() claims it DORMANT ->
 * RESTORING (goro__doze_leave, the cluster held DZ_LEAVING meanwhile) and
 * moves its used part to a one-page stack at its offset in another row,
 * as a shrink moves a stack (stack_idle.c, leave_home); its home stays
 * with the record, empty and asleep. Anyone who touches a dormant stack
 * in place (the fault handler, goro__idle_touch, the end of the run: all
 * through stack_idle.c's claim_restore), and whoever takes a home back
 * (goro__space_home_back: a goroutine going home, a record freed), wakes
 * the whole cluster first (wake_cluster): DZ_ASLEEP -> DZ_WAKING by CAS,
 * markers back (MADV_GUARD_INSTALL works under PROT_NONE) over the homes
 * of dormant goroutines and the guards of the homes whose goroutines left,
 * readable and writable again, every dormant goroutine C_COMPACTED,
 * DZ_AWAKE. Then a stack is restored as any compacted one.
 * idle_conns_wake (poller wakes) paid ~14 us a round trip more when
 * every resume woke its cluster; leaving, it pays what it did.
 *
 * Kernel mappings. A sleeping cluster is a mapping of its own (a PROT_NONE
 * range splits the region's one): a run of adjacent sleeping clusters costs
 * at most two mappings, against the kernel's limit (vm.max_map_count,
 * 65,530) that the whole process shares. Homes fill row 0x80's 2,048
 * cluster positions first, so a million parked goroutines are a few dozen
 * runs; but wakes can split runs, and a wake must not fail (the goroutine
 * needs its stack). So a cluster falls asleep only while the runs
 * (counted exactly as they form, merge and split: count_asleep) stay
 * within an eighth of the limit and the sleeping clusters within a
 * quarter. A wake splits one run in two at most and takes a cluster out,
 * so the runs never exceed half the sum of the two caps: two mappings
 * each, 3/8 of the limit at worst. Beyond the caps a cluster keeps its
 * markers, as before this file.
 *
 * Churn. A sleep costs the poller ~20 us (three system calls) and a wake
 * ~16 us (the markers of 30 homes, 510 page-table entries, ~11 us; the
 * protection, ~5 us), on top of the restore, measured on this VM. A
 * cluster whose goroutines wake every few seconds would pay both each
 * time. So a cluster woken within QUICK_WAKE * GORO_COMPACT_AFTER (10 s)
 * of its sleep sleeps again only 2, 4, ... 256 GORO_COMPACT_AFTERs after
 * the wake (the pass comes back for it then: goro__doze_retry); one that
 * slept longer than that sleeps again as soon as all its goroutines are
 * compacted.
 *
 * Where the cluster is not all homes. The pages after its last home (2 MiB
 * less 30 homes: 8 KiB) belong to no stack. Before a first sleep they are
 * claimed for good (stack_space.c, goro__space_claim), so that nothing is
 * ever carved into a sleeping cluster; a cluster whose spare pages
 * something else holds never sleeps.
 *
 * Invariants and races:
 *  - A G is C_DORMANT only while its cluster is DZ_SLEEPING, DZ_ASLEEP,
 *    DZ_LEAVING or DZ_WAKING; a DORMANT G's stack is its home, and its
 *    home's range (guard and page) is in the cluster, found by the table
 *    of compacted stacks (goro__idle_top). A home of the cluster whose G
 *    is not DORMANT while it sleeps is one whose G left: empty, and no G
 *    runs on it until goro__space_home_back has woken the cluster.
 *  - DZ_WAKING and DZ_LEAVING are held by one thread at a time (CAS from
 *    DZ_ASLEEP), so no G leaves while a wake decides which homes are
 *    dormant.
 *  - Only the pass (the poller thread) puts clusters to sleep: no two
 *    sleeps race. Wakes race with each other (one CAS wins, the others
 *    wait for DZ_AWAKE) and with a sleep (they wait for DZ_ASLEEP).
 *  - The sleep takes the space lock (the claim) before any G is DORMANT:
 *    a thread waiting for a wake never holds up the sleep.
 *  - Nothing on the wake path takes a lock or allocates: it runs in the
 *    fault handler, on any thread, under any runtime lock.
 */
#include "stack.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CLUSTER   (2ul << 20)                 /* a page-table page's reach */
#define NPOS      (STK_ROW / CLUSTER)         /* cluster positions a row */
#define NCLUSTERS ((size_t)(STK_W_EMRG - STK_W_LO) * NPOS)
#define MAX_HOMES 512                         /* a cluster's homes, at most */
#define QUICK_WAKE 10       /* woken within this many GORO_COMPACT_AFTERs of a sleep: ... */
#define BACKOFF_MAX 8       /* ... the next waits 2, 4, ... 256 of them */
#define BACKOFF_LIMIT_MS (1ll << 30) /* and 12 days at most */

enum { DZ_AWAKE = 0, DZ_SLEEPING, DZ_ASLEEP, DZ_WAKING, DZ_LEAVING };

static struct {
    bool on;                      /* decided at the first try of a run */
    bool tried;
    bool used;                    /* a cluster was claimed: reset at init */
    long asleep_cap, runs_cap;    /* see "Kernel mappings" */
    volatile AO_t asleep;         /* clusters asleep */
    /* The runs of adjacent clusters counted asleep, exactly: counted[] and
     * runs change together under runs_lock (a few instructions that cannot
     * fault, so the fault handler may take it). Read from the state bytes,
     * two wakes of neighbours at once each saw the other awake and the
     * count drifted for good (a review found it). */
    volatile AO_t runs_lock;
    long runs;
    uint8_t counted[NCLUSTERS];
    volatile uint8_t state[NCLUSTERS];
    uint8_t claimed[NCLUSTERS];   /* its spare pages are claimed (pass only) */
    /* backoff (see "Churn"): ms on the coarse clock, written by the sleep
     * and by the wake (the thread that won DZ_WAKING), relaxed */
    uint32_t slept_at[NCLUSTERS];
    uint32_t not_before[NCLUSTERS];
    uint8_t backoff[NCLUSTERS];
    volatile uint8_t retry[NCLUSTERS]; /* refused by the backoff: the pass retries */
    G *gs[MAX_HOMES];             /* the sleep's goroutines (pass only) */
} dz;

static inline size_t nhomes(void)
{
    return (CLUSTER - goro__stk.pg) / (goro__stk.gsz + goro__stk.min);
}

static inline size_t slot_len(void)
{
    return goro__stk.gsz + goro__stk.min;
}

/* The cluster holding a home (its lowest usable byte), or SIZE_MAX. */
static size_t cluster_of(uintptr_t home_lo)
{
    uintptr_t a = home_lo - goro__stk.gsz;
    if (a < STK_ADDR(STK_W_LO) || a >= STK_ADDR(STK_W_EMRG))
        return SIZE_MAX;
    return (size_t)((a - STK_ADDR(STK_W_LO)) / CLUSTER);
}

static inline char *cluster_base(size_t c)
{
    return (char *)(STK_ADDR(STK_W_LO) + c * CLUSTER);
}

/* The goroutine compacted at home i of cluster c, by the compacted stacks'
 * table, or NULL. */
static G *home_g(size_t c, size_t i)
{
    uintptr_t hi = (uintptr_t)cluster_base(c) + (i + 1) * slot_len();
    G *g = goro__idle_top(hi);
    if (g == NULL || (uintptr_t)g->stack.hi != hi || !stk_is_home(g, &g->stack))
        return NULL;
    return g;
}

static long read_long(const char *path, long def)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return def;
    char t[32] = "";
    ssize_t n = read(fd, t, sizeof t - 1);
    close(fd);
    return n > 0 ? strtol(t, NULL, 10) : def;
}

static long vm_pte_kib(void)
{
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strstr(buf, "VmPTE:");
    return p ? strtol(p + 6, NULL, 10) : -1;
}

/* Does a 2 MiB zap free an emptied page-table page here? Sixteen of them
 * made and zapped: without CONFIG_PT_RECLAIM a sleep would cost system
 * calls and a mapping and give nothing back. Asked once a process, at the
 * first goro_run's start, before its threads run: VmPTE counts the whole
 * process, and a busy one (ASan's shadow, thousands of goroutines being
 * spawned) grew its tables by more than the 64 KiB this gives back, and
 * the answer came out no. */
static bool zap_frees_tables(void)
{
    static int known = -1; /* kept across runs */
    enum { N = 16 };
    size_t len = (N + 1) * CLUSTER;
    for (int tries = 0; known < 0 && tries < 3; tries++) {
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return false;
        char *a = (char *)(((uintptr_t)m + CLUSTER - 1) & ~(uintptr_t)(CLUSTER - 1));
        for (int i = 0; i < N; i++)
            a[(size_t)i * CLUSTER] = 1;
        long before = vm_pte_kib();
        madvise(a, N * CLUSTER, MADV_DONTNEED);
        long after = vm_pte_kib();
        munmap(m, len);
        /* 64 KiB of tables expected back; other threads may add some:
         * a no is asked again, a yes is not */
        if (before > 0 && after >= 0 && before - after >= (long)(N * goro__stk.pg * 3 / 4 / 1024))
            known = 1;
    }
    if (known < 0)
        known = 0;
    return known;
}

/* Milliseconds on the coarse clock (async-signal-safe: the vDSO), wrapping
 * every 49 days: compared by signed difference. */
static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static inline uint32_t rd32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void wr32(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

void goro__doze_init(void)
{
    dz.tried = false;
    dz.on = false;
    if (goro__stk.compact)
        zap_frees_tables(); /* now, while the process is quiet */
    AO_store(&dz.asleep, 0);
    dz.runs = 0;
    if (dz.used) { /* every cluster was woken at the run's end (forget) */
        memset(dz.counted, 0, sizeof dz.counted);
        memset((void *)dz.state, 0, sizeof dz.state);
        memset(dz.claimed, 0, sizeof dz.claimed); /* the space was unmapped */
        memset(dz.not_before, 0, sizeof dz.not_before);
        memset(dz.backoff, 0, sizeof dz.backoff);
        memset((void *)dz.retry, 0, sizeof dz.retry);
        dz.used = false;
    }
}

static void runs_lock(void)
{
    for (int spins = 0; !AO_compare_and_swap_acquire(&dz.runs_lock, 0, 1);)
        if (++spins < 1000)
            __asm__ __volatile__("pause" ::: "memory");
        else
            sched_yield(); /* its holder was descheduled */
}

static void runs_unlock(void)
{
    AO_store_release(&dz.runs_lock, 0);
}

/* How the runs change when c is counted asleep: one more, one fewer for
 * each neighbour counted asleep (it joins or bridges their runs). Under
 * runs_lock. */
static long runs_delta_locked(size_t c)
{
    return 1 - (long)(c > 0 && dz.counted[c - 1]) - (long)(c + 1 < NCLUSTERS && dz.counted[c + 1]);
}

/* The runs there would be with c asleep (the sleep's cap check). */
static long runs_with(size_t c)
{
    runs_lock();
    long r = dz.runs + runs_delta_locked(c);
    runs_unlock();
    return r;
}

/* c counted asleep (on) or awake. */
static void count_asleep(size_t c, bool on)
{
    runs_lock();
    long d = runs_delta_locked(c);
    dz.runs += on ? d : -d;
    dz.counted[c] = on;
    runs_unlock();
}

static void undo(size_t c, size_t k)
{
    for (size_t i = 0; i < k; i++)
        g_cstate_store(dz.gs[i], C_COMPACTED);
    __atomic_store_n(&dz.state[c], DZ_AWAKE, __ATOMIC_RELEASE);
}

/* The pass's time (ns) when cluster c's backoff ends. */
static int64_t due_ns(size_t c, int64_t now)
{
    int32_t left = (int32_t)(rd32(&dz.not_before[c]) - now_ms());
    return now + (left > 0 ? (int64_t)left * 1000000 : 0);
}

int64_t goro__doze_try(G *g, int64_t now_pass)
{
    if (!dz.tried) {
        dz.tried = true;
        long lim = read_long("/proc/sys/vm/max_map_count", 65530);
        dz.asleep_cap = lim / 4;
        dz.runs_cap = lim / 8;
        dz.on = goro__stk.compact && !goro__stk.stackcheck && nhomes() <= MAX_HOMES &&
                nhomes() >= 2 && zap_frees_tables();
    }
    if (!dz.on || !stk_is_home(g, &g->stack))
        return -1;
    size_t c = cluster_of((uintptr_t)g->stack.lo), nh = nhomes(), slot = slot_len();
    if (c == SIZE_MAX || (uintptr_t)g->stack.hi - (uintptr_t)cluster_base(c) > nh * slot ||
        ((uintptr_t)g->stack.hi - (uintptr_t)cluster_base(c)) % slot != 0)
        return -1; /* not at a cluster's home position (carved on its own) */
    if (__atomic_load_n(&dz.state[c], __ATOMIC_RELAXED) != DZ_AWAKE ||
        (long)AO_load(&dz.asleep) >= dz.asleep_cap)
        return -1;
    uint32_t now = now_ms();
    if ((int32_t)(now - rd32(&dz.not_before[c])) < 0) {
        __atomic_store_n(&dz.retry[c], 1, __ATOMIC_RELAXED);
        return due_ns(c, now_pass);
    }
    for (size_t i = 0; i < nh; i++) {
        G *h = home_g(c, i);
        if (h == NULL || g_cstate_load(h) != C_COMPACTED)
            return -1;
    }
    char *base = cluster_base(c);
    if (!dz.claimed[c]) {
        if (!goro__space_claim(base + nh * slot, CLUSTER - nh * slot))
            return -1;
        dz.claimed[c] = 1;
        dz.used = true;
    }
    if (runs_with(c) > dz.runs_cap)
        return -1;

    __atomic_store_n(&dz.state[c], DZ_SLEEPING, __ATOMIC_SEQ_CST);
    for (size_t i = 0; i < nh; i++) {
        G *h = home_g(c, i);
        /* full: the claim against a restorer's claim (claim_restore) */
        if (h == NULL || !g_cstate_cas(h, C_COMPACTED, C_DORMANT)) {
            undo(c, i);
            return -1;
        }
        dz.gs[i] = h;
        /* a DORMANT stack does not move: still the home it was */
        if (home_g(c, i) != h) {
            undo(c, i + 1);
            return -1;
        }
    }
    /* From here any access faults (PROT_NONE, then no markers) and waits
     * for DZ_ASLEEP, then wakes the cluster. */
    if (mprotect(base, CLUSTER, PROT_NONE) != 0) {
        /* ENOMEM: the kernel's mapping limit. Linux may have changed a
         * first part of the range before failing: all of it back */
        if (mprotect(base, CLUSTER, PROT_READ | PROT_WRITE) != 0)
            goro__fatal("putting stacks %p-%p to sleep: mprotect: %s", (void *)base,
                        (void *)(base + CLUSTER), strerror(errno));
        undo(c, nh);
        return -1;
    }
    if (madvise(base, CLUSTER, MADV_GUARD_REMOVE) != 0)
        goro__fatal("putting stacks %p-%p to sleep: madvise: %s", (void *)base,
                    (void *)(base + CLUSTER), strerror(errno));
    madvise(base, CLUSTER, MADV_DONTNEED); /* frees the page-table page */
    wr32(&dz.slept_at[c], now);
    count_asleep(c, true);
    AO_fetch_and_add1(&dz.asleep);
    AO_fetch_and_add1(&goro__ctr.stack_clusters_asleep); /* relaxed: statistics */
    AO_fetch_and_add1(&goro__ctr.stack_cluster_sleeps);
    __atomic_store_n(&dz.state[c], DZ_ASLEEP, __ATOMIC_RELEASE);
    return -1;
}

/* Wait until cluster c is stable: DZ_AWAKE (false) or claimed by us from
 * DZ_ASLEEP as `to` (true). */
static bool claim(size_t c, uint8_t to)
{
    for (int spins = 0;;) {
        uint8_t s = __atomic_load_n(&dz.state[c], __ATOMIC_ACQUIRE);
        if (s == DZ_AWAKE)
            return false; /* woken by another thread, or the sleep was undone */
        if (s == DZ_ASLEEP) {
            uint8_t want = DZ_ASLEEP;
            if (__atomic_compare_exchange_n(&dz.state[c], &want, to, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                return true;
            continue;
        }
        if (++spins < 1000)
            __asm__ __volatile__("pause" ::: "memory");
        else
            sched_yield(); /* the thread in a transition was descheduled */
    }
}

/* Guard markers back: over the whole of a dormant goroutine's home, over
 * the guard of one whose goroutine left (its page stays unguarded and
 * empty, as a home's whose goroutine runs elsewhere), in as few calls as
 * the homes allow (one when none left). */
static void remark(size_t c)
{
    size_t nh = nhomes(), slot = slot_len(), gsz = goro__stk.gsz;
    char *base = cluster_base(c), *from = base;
    for (size_t i = 0; i <= nh; i++) {
        char *end;
        if (i == nh) {
            end = base + nh * slot;
        } else {
            G *h = home_g(c, i);
            if (h != NULL && g_cstate_load(h) == C_DORMANT)
                continue;
            end = base + i * slot + gsz;
        }
        if (end > from && madvise(from, (size_t)(end - from), MADV_GUARD_INSTALL) != 0)
            goro__fatal("waking stacks %p-%p: madvise: %s", (void *)base,
                        (void *)(base + CLUSTER), strerror(errno));
        from = base + (i + 1) * slot;
    }
}

static void wake_cluster(size_t c)
{
    if (!claim(c, DZ_WAKING))
        return;
    size_t nh = nhomes();
    char *base = cluster_base(c);
    remark(c);
    if (mprotect(base, CLUSTER, PROT_READ | PROT_WRITE) != 0)
        goro__fatal("waking stacks %p-%p: mprotect: %s (vm.max_map_count reached?)",
                    (void *)base, (void *)(base + CLUSTER), strerror(errno));
    /* the backoff: woken soon after it fell asleep, it sleeps again only
     * after twice as long as the last time (a limit); asleep for long, at once */
    int64_t after = goro__stk.compact_after / 1000000; /* ms */
    int64_t quick = QUICK_WAKE * (after > 100 ? after : 100);
    uint32_t now = now_ms();
    uint8_t b = dz.backoff[c];
    if ((int64_t)(int32_t)(now - rd32(&dz.slept_at[c])) < quick)
        b = b < BACKOFF_MAX ? (uint8_t)(b + 1) : b;
    else
        b = 0;
    dz.backoff[c] = b;
    int64_t wait = b ? after << b : 0;
    if (wait > BACKOFF_LIMIT_MS) /* a signed 32-bit difference must hold it */
        wait = BACKOFF_LIMIT_MS;
    wr32(&dz.not_before[c], now + (uint32_t)wait);
    count_asleep(c, false);
    AO_fetch_and_sub1(&dz.asleep);
    AO_fetch_and_sub1(&goro__ctr.stack_clusters_asleep);
    AO_fetch_and_add1(&goro__ctr.stack_cluster_wakes);
    for (size_t i = 0; i < nh; i++) {
        G *h = home_g(c, i);
        /* release: its stack's markers before anyone claims its restore */
        if (h != NULL && g_cstate_load(h) == C_DORMANT)
            g_cstate_store(h, C_COMPACTED);
    }
    __atomic_store_n(&dz.state[c], DZ_AWAKE, __ATOMIC_RELEASE);
}

void goro__doze_wake(G *g)
{
    size_t c = cluster_of((uintptr_t)g->stack.lo);
    if (c == SIZE_MAX)
        goro__fatal("goroutine %llu is dormant outside the clusters",
                    (unsigned long long)g->id);
    wake_cluster(c);
}

void goro__doze_home(G *g)
{
    size_t c = cluster_of(g->home & ~(uintptr_t)1);
    if (c != SIZE_MAX && __atomic_load_n(&dz.state[c], __ATOMIC_ACQUIRE) != DZ_AWAKE)
        wake_cluster(c);
}

bool goro__doze_leave(G *g)
{
    size_t c = cluster_of((uintptr_t)g->stack.lo);
    if (c == SIZE_MAX || !claim(c, DZ_LEAVING))
        return false; /* awake: g is COMPACTED, or restored meanwhile */
    /* full: against the wake's and the others' reads of cstate */
    bool ok = g_cstate_cas(g, C_DORMANT, C_RESTORING);
    __atomic_store_n(&dz.state[c], DZ_ASLEEP, __ATOMIC_RELEASE);
    return ok;
}

int64_t goro__doze_retry(G *g, int64_t now_pass)
{
    if (!dz.on || !stk_is_home(g, &g->stack))
        return -1;
    size_t c = cluster_of((uintptr_t)g->stack.lo);
    if (c == SIZE_MAX || !__atomic_load_n(&dz.retry[c], __ATOMIC_RELAXED))
        return -1;
    if ((int32_t)(now_ms() - rd32(&dz.not_before[c])) < 0)
        return due_ns(c, now_pass);
    __atomic_store_n(&dz.retry[c], 0, __ATOMIC_RELAXED);
    return goro__doze_try(g, now_pass);
}

long goro__doze_runs(void)
{
    runs_lock();
    long r = dz.runs;
    runs_unlock();
    return r;
}
