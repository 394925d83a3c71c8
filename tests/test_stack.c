/*
 * test_stack.c - growable stacks: growth by recursion, inside libc, by
 * frames larger than the stack; relocation of pointers to locals; growth on
 * every worker, across migration; the stack limit; real faults; stale
 * pointers under GORO_DEBUG=stackcheck; many parked goroutines; each guard
 * mechanism (GORO_GUARD=madvise|uffd|mprotect).
 */
#define TEST_PAGE_STACKS 1 /* util.h */
#include "util.h"
#include "internal.h"
#include "stack.h"   /* STK_B5 */

#include <atomic_ops.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Goroutines here must start on one page and grow, as the tests count:
 * start-size hints (g.c) are off in this suite, but for the test of them. */
static void no_hints(void)
{
    setenv("GORO_DEBUG", "nostackhint", 1);
}

TestSuite(stack, .init = no_hints);

#define MiB (1024ul * 1024)

/* Can this process have a userfaultfd (as stack_guard.c asks for one)?
 * Not where a seccomp profile forbids it (Docker's default, without
 * CAP_SYS_PTRACE) or vm.unprivileged_userfaultfd says no. */
static bool uffd_allowed(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static void use_guard(const char *g)
{
    if (g && strcmp(g, "uffd") == 0 && !uffd_allowed())
        cr_skip_test("userfaultfd is not permitted here: GORO_GUARD=uffd falls back "
                     "to mprotect");
    if (g)
        setenv("GORO_GUARD", g, 1);
    else
        unsetenv("GORO_GUARD");
}

/* ---- deep recursion, pointers to locals and to callers' locals ---------- */

/* Values that can never look like a stack address (non-canonical: the top
 * 16 bits set), so conservative relocation leaves them alone (an integer
 * that happens to fall in the old stack's range *is* rewritten: rule 4). */
/* A value no relocation may touch. k must keep d * k far below any mapped
 * address for every depth used: the compiler keeps the product in a
 * callee-saved register, which deeper frames save on the stack, and a
 * product that lands inside the old stack's address range is, to
 * conservative relocation, a pointer into it (README rule 5). With k = 2654435761 the products of depths up to
 * 419,430 swept through 0x7fxx... and hit a 64 MiB stack's range in ~3% of
 * runs (one "wrong value"). */
#define TAG(d, k) (0xA5A5000000000000ull | (((uint64_t)(d) * (k)) & 0xffffffffffull))
#define TAG_K_DEEP 2654435u /* 419,430 * 2654435 < 2^41: far below any mapping */

struct frame {
    uint64_t val;
    struct frame *parent;   /* the caller's local */
    uint64_t *selfp;        /* our own local */
    char pad[80];
};

/* Recurse depth frames; each checks on the way back up that its pointers
 * still point at the right (moved) locals. Returns the number of errors. */
__attribute__((noinline)) static unsigned long
chain(struct frame *parent, unsigned long depth, unsigned long *max_checked)
{
    struct frame me;
    me.val = TAG(depth, TAG_K_DEEP);
    me.parent = parent;
    me.selfp = &me.val;
    memset(me.pad, (int)(depth & 0x7f), sizeof me.pad);
    unsigned long bad = 0;
    if (depth > 0)
        bad += chain(&me, depth - 1, max_checked);
    else
        *max_checked = 0;
    /* everything the frame holds, after whatever growth happened below */
    if (me.selfp != &me.val || *me.selfp != TAG(depth, TAG_K_DEEP))
        bad++;
    if (me.parent != parent)
        bad++;
    if (parent && parent->val != TAG(depth + 1, TAG_K_DEEP))
        bad++;
    if (me.pad[0] != (char)(depth & 0x7f) || me.pad[79] != (char)(depth & 0x7f))
        bad++;
    (*max_checked)++;
    return bad;
}

struct deep_arg {
    unsigned long depth, bad, checked;
};

static void deep_main(void *arg)
{
    struct deep_arg *a = arg;
    a->bad = chain(NULL, a->depth, &a->checked);
}

Test(stack, recursion_to_64mib, .timeout = 60)
{
    /* TSan keeps a call stack of its own per fiber, of a fixed size: a
     * recursion of 70,000 frames crashes it here (60,000 runs); this one
     * is 419,430 */
    if (TEST_TSAN)
        cr_skip_test("deeper than ThreadSanitizer's shadow call stack");
    /* 128-byte frames plus call overhead: ~64 MiB of stack */
    struct deep_arg a = { .depth = 64 * MiB / 160 };
    run_on(1, deep_main, &a);
    cr_assert_eq(a.bad, 0, "%lu wrong values after growth", a.bad);
    cr_assert_eq(a.checked, a.depth + 1);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_geq(st.stack_max, 64 * MiB, "stack_max %llu", (unsigned long long)st.stack_max);
    /* eightfold to 2 MiB (3 growths), then twofold to 64 MiB (5) */
    cr_assert_geq(st.stack_growths, 8);
    cr_assert_gt(st.stack_bytes_copied, 32 * MiB);
    cr_assert_eq(st.stack_bytes_reserved, 0, "stacks left after goro_run");
}

/* ---- growth inside libc -------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* At a given depth, call snprintf into a stack buffer and qsort a stack
 * array: with every depth tried once, the guard is crossed inside libc. */
__attribute__((noinline)) static int libc_at(int depth)
{
    volatile char pad[64];
    pad[0] = (char)depth;
    if (depth > 0)
        return libc_at(depth - 1) + pad[0] - (char)depth;
    char buf[512];
    uint64_t arr[64];
    for (int i = 0; i < 64; i++)
        arr[i] = (uint64_t)((i * 7919) % 64);
    qsort(arr, 64, sizeof arr[0], cmp_u64);
    int n = snprintf(buf, sizeof buf, "%d %s %5.2f %llx %p %-20s|", 42, "forty-two", 3.25,
                     0xdeadbeefull, (void *)buf, "x");
    int bad = 0;
    for (int i = 0; i < 64; i++)
        bad += arr[i] != (uint64_t)i;
    char want[512];
    snprintf(want, sizeof want, "%d %s %5.2f %llx %p %-20s|", 42, "forty-two", 3.25,
             0xdeadbeefull, (void *)buf, "x");
    bad += n <= 0 || strcmp(buf, want) != 0;
    return bad;
}

static volatile AO_t libc_bad;
static goro_wg libc_wg;

static void libc_one(void *arg)
{
    AO_fetch_and_add(&libc_bad, (AO_t)libc_at((int)(uintptr_t)arg));
    goro_wg_done(&libc_wg);
}

static void libc_main(void *arg)
{
    goro_wg_init(&libc_wg);
    goro_wg_add(&libc_wg, 200);
    for (uintptr_t d = 0; d < 200; d++)
        cr_assert_eq(goro_go(libc_one, (void *)d), 0);
    goro_wg_wait(&libc_wg);
}

Test(stack, growth_inside_libc, .timeout = 60)
{
    libc_bad = 0;
    run_on(2, libc_main, NULL);
    cr_assert_eq(libc_bad, 0);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_geq(st.stack_growths, 100);
}

/* ---- frames larger than the stack ---------------------------------------- */

#define BIGFRAME(name, size)                                                   \
    __attribute__((noinline)) static int name(int x)                           \
    {                                                                          \
        volatile char big[size];                                               \
        volatile char *p = &big[size - 1], *q = &big[0];                       \
        big[0] = (char)x;                                                      \
        big[size - 1] = (char)(x + 1);                                         \
        for (size_t i = 0; i < size; i += 4096)                                \
            big[i] = (char)x;                                                  \
        return (*q == (char)x && *p == (char)(x + 1) && q == &big[0]) ? 0 : 1; \
    }
BIGFRAME(frame64k, 64 * 1024)
BIGFRAME(frame1m, 1024 * 1024)

static volatile int bigframe_bad;

static void bigframe_main(void *arg)
{
    bigframe_bad = frame64k(3) + frame1m(5) + frame64k(7) + frame1m(9);
}

Test(stack, frames_of_64k_and_1m, .timeout = 30)
{
    run_on(1, bigframe_main, NULL);
    cr_assert_eq(bigframe_bad, 0);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_geq(st.stack_max, 1 * MiB);
}

/* Big frames entered from many small stacks: the probe loop's end register
 * moves with the stack exactly once, wherever the new stack lands. */
static goro_wg bf_wg;
static volatile AO_t bf_bad;

static void bigframe_one(void *arg)
{
    AO_fetch_and_add(&bf_bad, (AO_t)(frame64k(1) + frame64k(2)));
    goro_wg_done(&bf_wg);
}

static void bigframes_main(void *arg)
{
    goro_wg_init(&bf_wg);
    goro_wg_add(&bf_wg, 2000);
    for (int i = 0; i < 2000; i++)
        cr_assert_eq(goro_go(bigframe_one, NULL), 0);
    goro_wg_wait(&bf_wg);
}

Test(stack, big_frames_in_many_goroutines, .timeout = 60)
{
    bf_bad = 0;
    /* every goroutine grows from one page (start-size hints are off in
     * this suite: a probe one class below a hint grows eightfold) */
    run_on(2, bigframes_main, NULL);
    cr_assert_eq(bf_bad, 0);
    struct goro_stats st;
    goro_stats(&st);
    /* small stacks grow eightfold, then twofold to fit: 4 KiB, 32 KiB, then
     * 64 and 128 KiB; at most one class past that */
    cr_assert_leq(st.stack_max, 256 * 1024, "a 64 KiB frame grew a stack to %llu bytes",
                  (unsigned long long)st.stack_max);
}

/* ---- many growths, every worker at once, with yields --------------------- */

__attribute__((noinline)) static unsigned long
chain_yield(struct frame *parent, unsigned long depth)
{
    struct frame me;
    me.val = TAG(depth, 40503u);
    me.parent = parent;
    me.selfp = &me.val;
    memset(me.pad, 1, sizeof me.pad);
    if (depth % 512 == 0)
        goro_yield();
    unsigned long bad = depth > 0 ? chain_yield(&me, depth - 1) : 0;
    if (me.selfp != &me.val || *me.selfp != TAG(depth, 40503u) || me.parent != parent)
        bad++;
    if (parent && parent->val != TAG(depth + 1, 40503u))
        bad++;
    return bad;
}

static volatile AO_t all_bad;
static goro_wg all_wg;

static void all_one(void *arg)
{
    for (int rep = 0; rep < 3; rep++)
        AO_fetch_and_add(&all_bad, chain_yield(NULL, 4 * MiB / 160));
    goro_wg_done(&all_wg);
}

static void all_main(void *arg)
{
    goro_wg_init(&all_wg);
    goro_wg_add(&all_wg, 16);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(goro_go(all_one, NULL), 0);
    goro_wg_wait(&all_wg);
}

Test(stack, growth_on_every_worker, .timeout = 60)
{
    all_bad = 0;
    run_on(2, all_main, NULL);
    cr_assert_eq(all_bad, 0);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_geq(st.stack_growths, 16 * 4); /* 4 KiB x8 x8 x8, x2: 4 MiB */
    cr_assert_eq(st.stack_bytes_reserved, 0);
}

/* ---- grow, park, migrate, grow again ------------------------------------- */

static volatile AO_t hog_stop;
static volatile int migrated, mig_bad;

static void hog(void *arg)
{
    /* holds its worker for a while (no yield: cooperative), then sleeps,
     * so that a sleeping goroutine's wake-up lands on some other worker */
    while (!AO_load_acquire(&hog_stop)) {
        int64_t until = goro_now() + 3000000;
        while (goro_now() < until && !AO_load_acquire(&hog_stop))
            __asm__ __volatile__("pause");
        goro_sleep(2000000);
    }
    goro_wg_done(&all_wg);
}

__attribute__((noinline)) static unsigned long
chain_migrate(struct frame *parent, unsigned long depth, unsigned long at, int *w0)
{
    struct frame me;
    me.val = TAG(depth, 7u);
    me.parent = parent;
    me.selfp = &me.val;
    unsigned long bad = 0;
    if (depth == at) {
        /* grown to here; park and come back on another worker */
        *w0 = goro__self_w()->id;
        goro_wg_init(&all_wg);
        goro_wg_add(&all_wg, 2);
        cr_assert_eq(goro_go(hog, NULL), 0);
        cr_assert_eq(goro_go(hog, NULL), 0);
        for (int i = 0; i < 2000 && goro__self_w()->id == *w0; i++)
            goro_sleep(1000000);
        migrated = goro__self_w()->id != *w0;
        AO_store_release(&hog_stop, 1);
        goro_wg_wait(&all_wg);
    }
    if (depth > 0)
        bad += chain_migrate(&me, depth - 1, at, w0);
    if (me.selfp != &me.val || *me.selfp != TAG(depth, 7u) || me.parent != parent)
        bad++;
    if (parent && parent->val != TAG(depth + 1, 7u))
        bad++;
    return bad;
}

static void migrate_main(void *arg)
{
    int w0 = -1;
    /* 1 MiB of frames above the park, 4 MiB more after it */
    unsigned long total = 5 * MiB / 160;
    mig_bad = (int)chain_migrate(NULL, total, total - MiB / 160, &w0);
}

Test(stack, grow_park_migrate_grow, .timeout = 60)
{
    hog_stop = 0;
    run_on(2, migrate_main, NULL);
    cr_assert(migrated, "the goroutine never resumed on another worker");
    cr_assert_eq(mig_bad, 0);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_geq(st.stack_max, 4 * MiB);
}

/* ---- the limit ----------------------------------------------------------- */

static void limit_main(void *arg)
{
    unsigned long checked;
    chain(NULL, 8 * MiB / 160, &checked);
}

Test(stack, limit_exceeded_is_fatal, .timeout = 30, .signal = SIGABRT)
{
    setenv("GORO_STACK_MAX", "1048576", 1);
    run_on(1, limit_main, NULL);
}

/* ---- a real fault -------------------------------------------------------- */

static void null_main(void *arg)
{
    volatile int *p = (volatile int *)(uintptr_t)arg;
    *p = 1;
}

Test(stack, null_dereference_kills_with_sigsegv, .timeout = 30, .signal = SIGSEGV)
{
    run_on(1, null_main, NULL);
}

/* A SIGSEGV handler installed before goro_run still sees its own faults. */
static char *own_page;
static volatile int own_hits;

static void own_handler(int sig, siginfo_t *si, void *uc)
{
    if ((char *)si->si_addr >= own_page && (char *)si->si_addr < own_page + 4096) {
        own_hits++;
        mprotect(own_page, 4096, PROT_READ | PROT_WRITE);
        return;
    }
    signal(sig, SIG_DFL);
}

static void own_main(void *arg)
{
    unsigned long checked;
    chain(NULL, MiB / 160, &checked);    /* growth still works */
    own_page[10] = 1;                    /* the program's own fault */
    cr_assert_eq(own_page[10], 1);
}

Test(stack, previous_handler_sees_its_faults, .timeout = 30)
{
    own_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(own_page, MAP_FAILED);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = own_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    run_on(2, own_main, NULL);
    cr_assert_eq(own_hits, 1);
    /* and after goro_run, the program's handler is back in place */
    struct sigaction cur;
    sigaction(SIGSEGV, NULL, &cur);
    cr_assert_eq((void *)cur.sa_sigaction, (void *)own_handler);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_gt(st.stack_growths, 0);
}

/* ---- GORO_DEBUG=stackcheck ----------------------------------------------- */

static volatile uint64_t *volatile stale;

static void stale_main(void *arg)
{
    uint64_t local = 12345;
    stale = &local;                     /* breaks the rule: kept outside */
    unsigned long checked;
    chain(NULL, MiB / 160, &checked);   /* the stack moves */
    cr_assert_eq(local, 12345);         /* fine: relocated */
    (void)*stale;                       /* the old address: must be caught */
    cr_assert_fail("stale read not caught");
}

Test(stack, stackcheck_catches_stale_pointer, .timeout = 30, .signal = SIGABRT)
{
    setenv("GORO_DEBUG", "stackcheck,nostackhint", 1);
    run_on(1, stale_main, NULL);
}

/* ---- many parked goroutines ---------------------------------------------- */

static goro_wg park_started, park_release, park_done;
static long park_n;
static struct goro_stats park_st;
static long park_rss_kb, park_rss0_kb;
static int64_t park_ns;

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (long)(sysconf(_SC_PAGESIZE) / 1024);
}

static long park_maps, park_pte0_kb, park_pte_kb;

/* kernel memory in page tables (not part of RSS): the guard regions' markers
 * live there */
static long pte_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmPTE: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* Kernel mappings in the stack region (stack.h): the stacks' own, not the
 * libraries' or a sanitizer's (TSan maps a few per goroutine's fiber). */
/* Mappings in the stack region, less what sleeping clusters of compacted
 * stacks cost (runtime/stack_doze.c: a run of them is an inaccessible
 * mapping that splits the region's one in two: two more each). */
static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0, asleep = 0;
    char line[512];
    if (f) {
        while (fgets(line, sizeof line, f)) {
            unsigned long lo, hi;
            char perms[8];
            if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo >= STK_ADDR(STK_W_LO) &&
                hi <= STK_ADDR(STK_W_END)) {
                n++;
                asleep += strcmp(perms, "---p") == 0;
            }
        }
        fclose(f);
    }
    return n - 2 * asleep;
}

static void parked_one(void *arg)
{
    goro_wg_done(&park_started);
    goro_wg_wait(&park_release);
    goro_wg_done(&park_done);
}

static void parked_main(void *arg)
{
    goro_wg_init(&park_started);
    goro_wg_init(&park_release);
    goro_wg_init(&park_done);
    goro_wg_add(&park_started, park_n);
    goro_wg_add(&park_release, 1);
    goro_wg_add(&park_done, park_n);
    park_rss0_kb = rss_kb();
    park_pte0_kb = pte_kb();
    int64_t t0 = goro_now();
    for (long i = 0; i < park_n; i++) {
        int rc = goro_go(parked_one, NULL);
        cr_assert_eq(rc, 0, "goro_go #%ld: %d", i, rc);
    }
    goro_wg_wait(&park_started);
    park_ns = goro_now() - t0;
    goro_stats(&park_st);
    park_rss_kb = rss_kb();
    park_pte_kb = pte_kb();
    park_maps = count_maps();
    goro_wg_done(&park_release);
    goro_wg_wait(&park_done);
}

static void parked_many(long n, const char *guard)
{
    /* GORO_TEST_PARKED=N overrides the count (tests/stress.sh) */
    const char *env = getenv("GORO_TEST_PARKED");
    park_n = env ? atol(env) : TSAN_ALIVE(n);
    use_guard(guard);
    run_on(2, parked_main, NULL);
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    cr_assert_geq(park_st.goroutines, (uint64_t)park_n + 1);
    cr_assert_geq(park_st.stack_bytes_reserved, (uint64_t)park_n * 2 * pg);
    cr_assert_leq(park_st.stack_bytes_reserved, (uint64_t)(park_n + 64) * SMALL_PARKED_PAGES * pg);
    double per = (double)(park_rss_kb - park_rss0_kb) * 1024.0 / (double)park_n;
    double pte = (double)(park_pte_kb - park_pte0_kb) * 1024.0 / (double)park_n;
    test_note("%ld goroutines parked (guard %s) in %.2f s: RSS %.0f bytes each "
              "(and %.0f bytes of page tables), stack_bytes_reserved %llu",
              park_n, guard ? guard : "default", (double)park_ns / 1e9, per, pte,
              (unsigned long long)park_st.stack_bytes_reserved);
    fprintf(stderr, "parked: %ld goroutines, guard %s, %.2f s, RSS %.0f bytes per goroutine, "
            "page tables %.0f bytes per goroutine\n",
            park_n, guard ? guard : "default", (double)park_ns / 1e9, per, pte);
#if !GORO_ANN_FIBERS
    cr_assert_lt(per, (double)pg + 1024, "RSS per parked goroutine: %.0f bytes", per);
#else
    /* the sanitizer's shadow and red zones count in RSS: no bar here */
    test_note("(sanitizer build: the RSS bar is not checked)");
#endif
    /* guards that do not split mappings: far fewer mappings than stacks */
    cr_assert_lt(park_maps, 2000, "%ld mappings for %ld stacks", park_maps, park_n);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_eq(st.stack_bytes_reserved, 0);
}

/* 200,000 here; tests/stress.sh runs it with GORO_TEST_PARKED=1000000
 * (one million: ~12 s and ~4.4 GB on an idle machine). */
Test(stack, parked_200k_madvise, .timeout = 300)
{
    parked_many(200000, "madvise");
}

Test(stack, parked_100k_uffd, .timeout = 120)
{
    parked_many(100000, "uffd");
}

/* ---- each guard mechanism grows stacks ----------------------------------- */

static void guard_growth(const char *guard)
{
    use_guard(guard);
    struct deep_arg a = { .depth = 8 * MiB / 160 };
    run_on(1, deep_main, &a);
    cr_assert_eq(a.bad, 0);
    all_bad = 0;
    run_on(2, all_main, NULL);
    cr_assert_eq(all_bad, 0);
    bigframe_bad = 1;
    run_on(1, bigframe_main, NULL);
    cr_assert_eq(bigframe_bad, 0);
    cr_assert_str_eq(goro__stack_guard_name(), guard);
}

Test(stack, guard_madvise_grows, .timeout = 60) { guard_growth("madvise"); }
Test(stack, guard_uffd_grows, .timeout = 60) { guard_growth("uffd"); }
Test(stack, guard_mprotect_grows, .timeout = 60) { guard_growth("mprotect"); }

/* In a child, so that the test can be skipped where userfaultfd is not
 * permitted (a test that expects a signal cannot skip). ThreadSanitizer
 * cannot start threads after a multi-threaded fork (Criterion's process
 * has several): there, in the test's own process, as before. */
#if TEST_TSAN
Test(stack, stackcheck_uffd_catches_stale_pointer, .timeout = 30, .signal = SIGABRT)
{
    use_guard("uffd");
    setenv("GORO_DEBUG", "stackcheck,nostackhint", 1);
    run_on(1, stale_main, NULL);
}
#else
Test(stack, stackcheck_uffd_catches_stale_pointer, .timeout = 30)
{
    use_guard("uffd");
    setenv("GORO_DEBUG", "stackcheck,nostackhint", 1);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        run_on(1, stale_main, NULL);
        _exit(0); /* not caught */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "the stale pointer was not caught (status %#x)", status);
}
#endif

Test(stack, stackcheck_mprotect_catches_stale_pointer, .timeout = 30, .signal = SIGABRT)
{
    use_guard("mprotect");
    setenv("GORO_DEBUG", "stackcheck,nostackhint", 1);
    run_on(1, stale_main, NULL);
}

/* ---- mprotect guards: the mapping limit is -ENOMEM, not a crash ---------- */

static volatile long limit_spawned;
static volatile int limit_rc;

static void limit_parked(void *arg)
{
    goro_wg_wait(&park_release);
    goro_wg_done(&park_done);
}

/* Grow the calling goroutine's stack to more than it will need: once the
 * mapping limit is reached, no stack can grow (the goroutine that needs to
 * is ended with a fatal message), and how deep this test's own code goes
 * depends on the compiler (clang's frames here need a second page). */
static __attribute__((noinline)) void pregrow(void)
{
    volatile char big[64 * 1024];
    for (size_t i = 0; i < sizeof big; i += 512)
        big[i] = (char)i;
}

static void maplimit_main(void *arg)
{
    pregrow();
    goro_wg_init(&park_release);
    goro_wg_init(&park_done);
    goro_wg_add(&park_release, 1);
    long n = 0;
    int rc;
    for (;;) {
        goro_wg_add(&park_done, 1);
        rc = goro_go(limit_parked, NULL);
        if (rc != 0) {
            goro_wg_add(&park_done, -1);
            break;
        }
        n++;
        if (n % 1024 == 0)
            goro_yield();
        cr_assert_lt(n, 200000, "no mapping limit reached");
    }
    limit_rc = rc;
    limit_spawned = n;
    goro_wg_done(&park_release);
    goro_wg_wait(&park_done);
}

/* The runtime runs in a child process: reaching the kernel's mapping limit
 * would otherwise also starve Criterion's own process of mappings (its
 * reporting then fails and the suite exits 1 although every test passed). */
Test(stack, mprotect_mapping_limit_is_enomem, .timeout = 60)
{
    if (TEST_TSAN) /* util.h, TSAN_ALIVE */
        cr_skip_test("32,000 goroutines alive: ThreadSanitizer stops at 8,128");
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(pipefd[0]);
        use_guard("mprotect");
        setenv("GORO_PROCS", "2", 1);
        long out[3] = { -1, -1, -1 };
        if (goro_run(maplimit_main, NULL) == 0) {
            struct goro_stats st;
            goro_stats(&st);
            out[0] = limit_rc;
            out[1] = limit_spawned;
            out[2] = (long)st.stack_bytes_reserved;
        }
        ssize_t r = write(pipefd[1], out, sizeof out);
        _exit(r == (ssize_t)sizeof out ? 0 : 1);
    }
    close(pipefd[1]);
    long got[3];
    ssize_t r = read(pipefd[0], got, sizeof got);
    int status;
    waitpid(pid, &status, 0);
    cr_assert_eq(r, (ssize_t)sizeof got, "the child reported nothing");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(got[0], -ENOMEM);
    cr_assert_gt(got[1], 20000);
    test_note("mprotect guards: goro_go returned -ENOMEM after %ld goroutines", got[1]);
    cr_assert_eq(got[2], 0, "stack_bytes_reserved after the run");
}

/* ---- pools: grown stacks are swapped back when a goroutine exits -------- */

static goro_wg pool_wg;

static void pool_one(void *arg)
{
    unsigned long checked;
    chain(NULL, 256 * 1024 / 160, &checked);
    goro_wg_done(&pool_wg);
}

static void pool_main(void *arg)
{
    goro_wg_init(&pool_wg);
    for (int round = 0; round < 5; round++) {
        goro_wg_add(&pool_wg, 200);
        for (int i = 0; i < 200; i++)
            cr_assert_eq(goro_go(pool_one, NULL), 0);
        goro_wg_wait(&pool_wg);
    }
    goro_sleep(1000000);
    struct goro_stats st;
    goro_stats(&st);
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    /* every exited record holds a one-page stack again (plus main's) */
    cr_assert_leq(st.stack_bytes_reserved, (uint64_t)(st.spawned) * 2 * pg + 64 * 1024,
                  "reserved %llu", (unsigned long long)st.stack_bytes_reserved);
}

Test(stack, exited_goroutines_give_back_grown_stacks, .timeout = 60 * SLOW) /* util.h */
{
    run_on(2, pool_main, NULL);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_geq(st.stack_growths, 1000 * 2); /* 4 KiB x8 x8: 256 KiB */
}

Test(stack, exited_goroutines_give_back_hinted_stacks, .timeout = 60)
{
    /* most start on 256 KiB (the hint) and give it back the same way */
    unsetenv("GORO_DEBUG");
    run_on(2, pool_main, NULL);
    struct goro_stats st;
    goro_stats(&st);
    cr_assert_lt(st.stack_growths, 1000, "%llu growths: the hint did not take",
                 (unsigned long long)st.stack_growths);
}

/* ---- the layout that makes moves sound (runtime/stack.h) ----------------- */

/* Every stack lies in the stack region: addresses 0x00001fWW_xxxxxxxx with
 * WW (byte 4) 0x80-0xfe; and every move's distance is a nonzero multiple of
 * 4 GiB, so relocation never changes bytes 0-3 of a word (tests/test_stale.c
 * checks what that buys). Enough goroutines that carving spans several rows,
 * and each grows through 32 KiB and 256 KiB (and some to 2 MiB). */
#define LAYOUT_GOROUTINES 100000
#define GUARD_BYTES (64 * 1024ul)

static volatile AO_t layout_outside, layout_bad_move, layout_moves, layout_bad_data, layout_emrg;
static goro_wg layout_wg;

static bool in_region(uintptr_t lo, uintptr_t hi)
{
    return (lo >> 40) == STK_B5 && (hi >> 40) == STK_B5 && ((lo >> 32) & 0xff) >= 0x80 &&
           ((hi - 1) >> 32 & 0xff) <= 0xfe;
}

static void layout_check(const struct goro__stack *s)
{
    /* the top too (relocation counts one past the top as in the stack):
     * never on a row boundary, where it would read 0x1fWW+1_00000000 */
    if (!in_region((uintptr_t)s->lo - GUARD_BYTES, (uintptr_t)s->hi) ||
        ((uintptr_t)s->hi & 0xffffffffu) == 0)
        AO_fetch_and_add1(&layout_outside);
}

__attribute__((noinline)) static uint64_t layout_dive(int n, uint64_t tag)
{
    volatile uint64_t pad[60]; /* ~512 bytes a frame */
    for (int i = 0; i < 60; i++)
        pad[i] = tag ^ (uint64_t)i;
    uint64_t r = n > 0 ? layout_dive(n - 1, tag) : 0;
    for (int i = 0; i < 60; i++)
        if (pad[i] != (tag ^ (uint64_t)i))
            AO_fetch_and_add1(&layout_bad_data);
    return r + pad[n % 60];
}

static void layout_g(void *arg)
{
    long i = (long)arg;
    G *g = goro__self();
    layout_check(&g->stack);
    /* kept off the stack: a copy of the top on it would be relocated */
    static uintptr_t first_his[LAYOUT_GOROUTINES];
    first_his[i] = (uintptr_t)g->stack.hi;
    /* 1.5 MiB, 200 KiB, 20 KiB; 50 KiB under TSan, whose first switch
     * grew the stack to 32 KiB already (util.h, SMALL_PARKED_PAGES) */
    int depth = i % 50 == 0 ? 3000 : i % 5 == 0 ? 400 : TEST_TSAN ? 100 : 40;
    layout_dive(depth, 0xA5A5000000000000ull | (uint64_t)i);
    __asm__ volatile("" ::: "memory"); /* the dive changed g->stack */
    layout_check(&g->stack);
    uintptr_t now_hi = (uintptr_t)g->stack.hi;
    if (now_hi != first_his[i]) {
        AO_fetch_and_add1(&layout_moves);
        if (((now_hi - 1) >> 32 & 0xff) >= 0xf8) /* an emergency row */
            AO_fetch_and_add1(&layout_emrg);
        if (((now_hi - first_his[i]) & 0xffffffffu) != 0)
            AO_fetch_and_add1(&layout_bad_move);
    }
    goro_wg_done(&layout_wg);
}

static void layout_main(void *arg)
{
    goro_wg_init(&layout_wg);
    goro_wg_add(&layout_wg, LAYOUT_GOROUTINES);
    for (long i = 0; i < LAYOUT_GOROUTINES; i++)
        cr_assert_eq(goro_go(layout_g, (void *)i), 0);
    goro_wg_wait(&layout_wg);
}

static void layout_run(int procs, bool emergency)
{
    layout_outside = layout_bad_move = layout_moves = layout_bad_data = layout_emrg = 0;
    run_on(procs, layout_main, NULL);
    struct goro_stats st;
    goro_stats(&st);
    test_note("%s: %d goroutines, %lu moved (%llu growths, %lu into emergency rows): %lu "
              "outside the region, %lu moves not a multiple of 4 GiB", getenv("GORO_DEBUG"),
              LAYOUT_GOROUTINES, (unsigned long)layout_moves,
              (unsigned long long)st.stack_growths, (unsigned long)layout_emrg,
              (unsigned long)layout_outside, (unsigned long)layout_bad_move);
    cr_assert_geq(layout_moves, LAYOUT_GOROUTINES / 5, "the stacks did not move");
    cr_assert_eq(layout_outside, 0, "stacks outside the stack region");
    cr_assert_eq(layout_bad_move, 0, "moves by a distance not a multiple of 4 GiB");
    cr_assert_eq(layout_bad_data, 0, "frames changed by a move");
    cr_assert_eq(st.stack_bytes_reserved, 0);
    if (emergency)
        cr_assert_gt(layout_emrg, 0, "no stack went to an emergency row");
    else /* only when the fault interrupts the allocator, or its lock is held long */
        cr_assert_lt(layout_emrg, layout_moves / 100, "%lu stacks in emergency rows",
                     (unsigned long)layout_emrg);
}

Test(stack, layout_region_and_4gib_moves, .timeout = 120)
{
    layout_run(2, false);
}

/* The lock-free path: every growth takes an own mapping in an emergency
 * row (0xf8-0xfe), as when the fault interrupts its own thread inside the
 * stack allocator; when those rows are full at an offset, the wait for the
 * lock. Same layout, same soundness. */
Test(stack, layout_emergency_path, .timeout = 120)
{
    setenv("GORO_DEBUG", "nostackhint,stackemergency", 1);
    layout_run(2, true);
}

Test(stack, layout_under_each_guard, .timeout = 120)
{
    const char *guards[] = { "uffd", "mprotect" };
    for (int k = uffd_allowed() ? 0 : 1; k < 2; k++) { /* use_guard would skip it all */
        use_guard(guards[k]);
        layout_outside = layout_bad_move = layout_moves = layout_bad_data = 0;
        goro_wg_init(&layout_wg);
        run_on(1, layout_main, NULL); /* 100,000 one-page stacks: within mprotect's limit */
        cr_assert_eq(layout_outside, 0, "%s: stacks outside the region", guards[k]);
        cr_assert_eq(layout_bad_move, 0, "%s: moves not a multiple of 4 GiB", guards[k]);
        cr_assert_eq(layout_bad_data, 0, "%s: frames changed", guards[k]);
        cr_assert_geq(layout_moves, LAYOUT_GOROUTINES / 5);
    }
}

/* A full region: 4 GiB stacks until no place is left, then all freed
 * (pooled) and stacks of another class asked for: the allocator gives the
 * pooled ranges back and finds room. Nothing is touched, so it costs
 * address space and page-table markers only. */
#define FULL_MAX 200

static void region_full_main(void *arg)
{
    static struct goro__stack s[FULL_MAX], t[2 * FULL_MAX];
    int n = 0;
    /* grow now: a growth while the region is full is fatal */
    layout_dive(1000, 1);
    for (; n < FULL_MAX; n++) {
        cr_assert_eq(goro__stack_alloc(&s[n]), 0);
        if (goro__stack_resize(&s[n], 20) < 0) { /* 4 GiB with 4 KiB pages */
            goro__stack_free(&s[n]);
            break;
        }
        cr_assert(in_region((uintptr_t)s[n].lo - GUARD_BYTES, (uintptr_t)s[n].hi));
    }
    test_note("%d stacks of 4 GiB fit in the region", n);
    cr_assert(n >= 100 && n < FULL_MAX, "%d stacks of 4 GiB", n);
    for (int i = 0; i < n; i++)
        goro__stack_free(&s[i]);
    /* half as many of 8 GiB: only if the pooled 4 GiB ranges come back */
    int m = 0;
    for (; m < n / 2 - 4; m++) {
        cr_assert_eq(goro__stack_alloc(&t[m]), 0);
        cr_assert_eq(goro__stack_resize(&t[m], 21), 0, "8 GiB stack %d of %d: no room", m,
                     n / 2 - 4);
        cr_assert(in_region((uintptr_t)t[m].lo - GUARD_BYTES, (uintptr_t)t[m].hi));
        t[m].lo[0] = 1; /* usable */
        t[m].hi[-1] = 1;
    }
    for (int i = 0; i < m; i++)
        goro__stack_free(&t[i]);
}

Test(stack, full_region_gives_pooled_ranges_back, .timeout = 120)
{
    unsetenv("GORO_GUARD");
    run_on(1, region_full_main, NULL);
}

/* ---- rows enough for goroutines that grow together ----------------------- */

/* Stacks that overlap in offset need rows of their own (120 of them), so
 * live goroutines' offsets must be spread. With one-page stacks recycled
 * last-in first-out and packed from offset 0 (c37ba55), tools/stackgrow's
 * 2,000 goroutines recursing to 1 MiB ran out of rows ("out of memory
 * growing ... to 2 MiB"), and so did this test after 120-130 goroutines
 * (3 runs of 3). 500 here, spawned while others have grown and left their
 * first stacks behind, all alive at once at 1.5 MiB (2 MiB stacks: 1 GiB
 * of the region's 480). */
#define ROWS_GOROUTINES 500

static goro_wg rows_grown, rows_release, rows_done;
static volatile AO_t rows_bad;

static void rows_g(void *arg)
{
    uint64_t r = layout_dive(3000, 0xB4B4000000000000ull | (uint64_t)(uintptr_t)arg);
    goro_wg_done(&rows_grown);
    goro_wg_wait(&rows_release);
    if (layout_dive(10, 1) == 0 && r == 0) /* keep r; the dive checks itself */
        AO_fetch_and_add1(&rows_bad);
    goro_wg_done(&rows_done);
}

static void rows_main(void *arg)
{
    goro_wg_init(&rows_grown);
    goro_wg_init(&rows_release);
    goro_wg_init(&rows_done);
    goro_wg_add(&rows_grown, ROWS_GOROUTINES);
    goro_wg_add(&rows_release, 1);
    goro_wg_add(&rows_done, ROWS_GOROUTINES);
    for (long i = 0; i < ROWS_GOROUTINES; i++) {
        cr_assert_eq(goro_go(rows_g, (void *)i), 0);
        if (i % 16 == 15)
            goro_yield(); /* let some grow before the next are spawned */
    }
    goro_wg_wait(&rows_grown);
    goro_wg_done(&rows_release);
    goro_wg_wait(&rows_done);
}

Test(stack, goroutines_growing_together_find_rows, .timeout = 120)
{
    layout_bad_data = 0;
    run_on(2, rows_main, NULL);
    struct goro_stats st;
    goro_stats(&st);
    test_note("%d goroutines alive at 2 MiB at once: %llu growths",
              ROWS_GOROUTINES, (unsigned long long)st.stack_growths);
    cr_assert_geq(st.stack_growths, 3 * ROWS_GOROUTINES);
    cr_assert_eq(layout_bad_data, 0);
}
