/*
 * test_compact.c - stacks of long-parked goroutines are compacted (their
 * pages given back, the used part kept aside) and restored before they run
 * (runtime/stack_idle.c); stacks that grew shrink when their goroutine runs
 * again after a park. Nothing a goroutine wrote on its stack may change, and
 * nothing written into a compacted stack by others (its waker, a goroutine
 * or thread it handed a pointer to) may be lost.
 *
 * Each goroutine's stack holds a pattern made of everything a move has to
 * get right: integers derived from its index, a chain of pointers into its
 * own stack (each word points at the next), a string written by snprintf
 * over stale bytes, and the variable its waker writes into. GORO_COMPACT_AFTER
 * is set low so that goroutines are compacted within the test's time; the
 * suite's figures (compactions, restores) are asserted where the test
 * depends on them, so a run where compaction never happened fails.
 */
#include "util.h"
#include "internal.h" /* GORO_ANN_FIBERS */

long goro__doze_runs(void); /* runtime/stack_doze.c (hidden; linked statically) */

#include <atomic_ops.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")
#define NWORDS 24

/* Shrinking and compaction are off in ThreadSanitizer builds (util.h): the
 * tests of what they do are skipped there. Elsewhere a run where
 * compaction never happened still fails (their figures). */
static void need_compaction(void)
{
    if (!TEST_COMPACTION)
        cr_skip_test("stack compaction is off in ThreadSanitizer builds");
}

static void compact_soon(void)
{
    setenv("GORO_COMPACT_AFTER", "20", 1); /* ms */
    unsetenv("GORO_DEBUG");
}

TestSuite(compact, .init = compact_soon);

static volatile AO_t bad, checked;

static uint64_t mixv(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ull;
    return x ^ (x >> 29);
}

/* The pattern on a goroutine's stack. */
struct pattern {
    uint64_t ints[NWORDS];
    uintptr_t chain[NWORDS];  /* chain[k] = &chain[k + 1]; the last: &chain[0] */
    char text[48];
};

static void pattern_fill(struct pattern *p, uint64_t seed)
{
    for (int k = 0; k < NWORDS; k++) {
        p->ints[k] = mixv(seed * NWORDS + (uint64_t)k);
        p->chain[k] = (uintptr_t)&p->chain[(k + 1) % NWORDS];
    }
    snprintf(p->text, sizeof p->text, "goroutine %llu", (unsigned long long)seed);
    KEEP(p);
}

static void pattern_check(const struct pattern *p, uint64_t seed)
{
    KEEP(p);
    char want[48];
    snprintf(want, sizeof want, "goroutine %llu", (unsigned long long)seed);
    bool ok = strcmp(p->text, want) == 0;
    for (int k = 0; k < NWORDS; k++) {
        ok = ok && p->ints[k] == mixv(seed * NWORDS + (uint64_t)k);
        ok = ok && p->chain[k] == (uintptr_t)&p->chain[(k + 1) % NWORDS];
    }
    if (!ok)
        AO_fetch_and_add1(&bad);
    AO_fetch_and_add1(&checked);
}

static struct goro_stats stats(void)
{
    struct goro_stats st;
    goro_stats(&st);
    return st;
}

/* Wait (sleeping) until at least n stacks are compacted; false after 20 s. */
static bool wait_compacted(uint64_t n)
{
    for (int i = 0; i < 2000; i++) {
        if (stats().stacks_compacted >= n)
            return true;
        goro_sleep(10 * 1000000);
    }
    return false;
}

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0)
            v = strtol(line + kl, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* KiB of inaccessible mappings in the stack region (0x1f80_0000_0000 on) */
static long stack_region_prot_none_kib(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    long kib = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo >= 0x1f8000000000ul &&
            hi <= 0x200000000000ul && strcmp(perms, "---p") == 0)
            kib += (long)((hi - lo) >> 10);
    }
    if (f)
        fclose(f);
    return kib;
}

/* The tests of sleeping clusters want goroutines parked on their home
 * stack (a goroutine that grew is compacted where it is, and its cluster
 * cannot sleep). AddressSanitizer's red zones and interceptors take
 * these goroutines past one page (snprintf): there they start on 16 KiB. */
static void park_at_home(void)
{
    if (GORO_ANN_ASAN)
        setenv("GORO_STACK_MIN", "16384", 1);
}

/* Does this kernel free a page-table page a 2 MiB MADV_DONTNEED empties
 * (CONFIG_PT_RECLAIM)? Without it goro puts no cluster to sleep. */
static bool kernel_reclaims_page_tables(void)
{
    size_t C = 2ul << 20, n = 16;
    char *m = mmap(NULL, (n + 1) * C, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    char *a = (char *)(((uintptr_t)m + C - 1) & ~(uintptr_t)(C - 1));
    for (size_t i = 0; i < n; i++)
        a[i * C] = 1;
    long before = status_kib("VmPTE:");
    madvise(a, n * C, MADV_DONTNEED);
    long after = status_kib("VmPTE:");
    munmap(m, (n + 1) * C);
    return before - after >= 48;
}

/* ---- 100,000 compacted, woken in random order ------------------------- */

#define MANY 100000
static uint32_t many;            /* goroutines in this run */
static goro_chan **chans;
static goro_wg parked_wg, done_wg;
static uint32_t *order;
static volatile AO_t thread_sent;
static uint64_t many_asleep;     /* clusters asleep before the wakes */

NOINLINE static void many_g(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    struct pattern p;
    pattern_fill(&p, i);
    int64_t got = -1; /* written by the sender into this (compacted) stack */
    goro_wg_done(&parked_wg);
    if (goro_chan_recv(chans[i], &got) != 1 || got != (int64_t)(i * 7))
        AO_fetch_and_add1(&bad);
    pattern_check(&p, i);
    goro_wg_done(&done_wg);
}

/* a plain thread wakes the odd ones, with goro_chan_trysend */
static void *many_thread(void *arg)
{
    (void)arg;
    for (uint32_t k = 0; k < many; k++) {
        uint32_t i = order[k];
        if (i % 2 == 0)
            continue;
        int64_t v = (int64_t)i * 7;
        while (goro_chan_trysend(chans[i], &v) == -EAGAIN)
            sched_yield();
        AO_fetch_and_add1(&thread_sent);
    }
    return NULL;
}

static void many_main(void *arg)
{
    goro_wg_init(&parked_wg);
    goro_wg_init(&done_wg);
    goro_wg_add(&parked_wg, many);
    goro_wg_add(&done_wg, many);
    for (uint64_t i = 0; i < many; i++) {
        chans[i] = goro_chan_make(sizeof(int64_t), 0);
        cr_assert(chans[i] != NULL);
        cr_assert_eq(goro_go(many_g, (void *)(uintptr_t)i), 0);
    }
    goro_wg_wait(&parked_wg);
    cr_assert(wait_compacted(many * 9 / 10), "only %llu of %u stacks compacted",
              (unsigned long long)stats().stacks_compacted, many);
    many_asleep = stats().stack_clusters_asleep;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, many_thread, NULL), 0);
    for (uint32_t k = 0; k < many; k++) {
        uint32_t i = order[k];
        if (i % 2 != 0)
            continue;
        int64_t v = (int64_t)i * 7;
        cr_assert_eq(goro_chan_send(chans[i], &v), 0);
    }
    goro_wg_wait(&done_wg);
    pthread_join(t, NULL);
    for (uint64_t i = 0; i < many; i++)
        goro_chan_free(chans[i]);
}

static void many_woken(uint32_t n)
{
    need_compaction();
    many = n;
    bad = checked = thread_sent = 0;
    chans = calloc(many, sizeof *chans);
    order = malloc(many * sizeof *order);
    for (uint32_t i = 0; i < many; i++)
        order[i] = i;
    srand((unsigned)time(NULL));
    for (uint32_t i = many - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rand() % (i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    run_on(2, many_main, NULL);
    struct goro_stats st = stats();
    test_note("%llu compactions of %u parked goroutines, %llu clusters of them asleep",
              (unsigned long long)st.stack_compactions, many, (unsigned long long)many_asleep);
    cr_assert_eq(checked, many);
    cr_assert_eq(thread_sent, many / 2);
    cr_assert_eq(bad, 0, "%lu of %u goroutines found their stack changed",
                 (unsigned long)bad, many);
    cr_assert_eq(st.stacks_compacted, 0);
    cr_assert_eq(st.stack_clusters_asleep, 0);
    /* The row of homes full, clusters lie side by side: runs of sleeping
     * ones formed, merged and were split by wakes on two threads at once,
     * and the count of runs (the mappings they cost) must come back to 0 */
    cr_assert_eq(goro__doze_runs(), 0, "%ld runs of sleeping clusters counted, none asleep",
                 goro__doze_runs());
    if (kernel_reclaims_page_tables()) /* the wakes woke sleeping clusters */
        cr_assert_geq(many_asleep, 1);
    free(chans);
    free(order);
}

Test(compact, many_woken_in_random_order, .timeout = 120)
{
    park_at_home();
    many_woken(MANY);
}

/* The smallest guard a stack may have (a page): homes 8 KiB apart, so the
 * fault handler's table of compacted stacks, a slot per granule of the
 * stack region, must tell apart tops one small stack's span apart. With a
 * granule twice that, two neighbours share a slot, and a sender writing
 * into the one whose slot was overwritten finds no compacted stack there. */
Test(compact, many_woken_with_the_smallest_guard, .timeout = 120)
{
    park_at_home();
    setenv("GORO_STACK_GUARD", "4096", 1);
    many_woken(MANY / 2);
}

/* ---- a pointer handed to another goroutine, or thread ------------------ */

struct handoff {
    uint64_t *arr;  /* 64 words on the owner's stack */
    char *buf;      /* 128 bytes on the owner's stack */
    goro_wg *wg;
    goro_chan *wake;
};

/* README rule 5: a pointer to a local may be handed out only while its
 * owner cannot run deeper, and these owners hand theirs out, then spawn a
 * goroutine or create a thread, then block. So they grow their stack
 * first, far enough for all of that: a growth in goro_go, pthread_create
 * (or the dynamic linker resolving it, at its first call) or the park
 * would move arr and buf away from the writer (seen: a thread read the
 * handoff from the old, emptied home, once goro's own libc calls stopped
 * growing stacks earlier by chance: -fno-plt). */
static NOINLINE void headroom(void)
{
    volatile char room[48 * 1024];
    memset((char *)room, 0, sizeof room);
    KEEP(room);
}

static void writer_g(void *arg)
{
    struct handoff *h = arg;
    /* the owner is compacted meanwhile */
    cr_assert(wait_compacted(1));
    for (int k = 0; k < 64; k++)
        h->arr[k] = mixv((uint64_t)k + 1000);
    snprintf(h->buf, 128, "written by goroutine %llu", (unsigned long long)goro_id());
    goro_wg_done(h->wg);
}

static void owner_main(void *arg)
{
    headroom();
    uint64_t arr[64];
    char buf[128];
    struct pattern p;
    pattern_fill(&p, 77);
    goro_wg wg;
    goro_wg_init(&wg);
    goro_wg_add(&wg, 1);
    struct handoff *h = malloc(sizeof *h);
    *h = (struct handoff){ arr, buf, &wg, NULL };
    cr_assert_eq(goro_go(writer_g, h), 0);
    goro_wg_wait(&wg); /* parked: compacted, written into, restored */
    char want[64];
    snprintf(want, sizeof want, "written by goroutine ");
    cr_assert(strncmp(buf, want, strlen(want)) == 0, "buf: \"%s\"", buf);
    for (int k = 0; k < 64; k++)
        cr_assert_eq(arr[k], mixv((uint64_t)k + 1000), "word %d lost", k);
    pattern_check(&p, 77);
    free(h);
}

Test(compact, written_by_a_goroutine_while_compacted, .timeout = 30)
{
    need_compaction();
    bad = checked = 0;
    run_on(2, owner_main, NULL);
    cr_assert_eq(bad, 0);
    cr_assert_geq(stats().stack_compactions, 1);
}

static void *writer_thread(void *arg)
{
    struct handoff *h = arg;
    struct timespec ts = { 0, 1000000 };
    struct goro_stats st;
    do {
        nanosleep(&ts, NULL);
        goro_stats(&st);
    } while (st.stacks_compacted < 1);
    for (int k = 0; k < 64; k++)
        h->arr[k] = mixv((uint64_t)k + 2000);
    snprintf(h->buf, 128, "written by a thread");
    int64_t one = 1;
    while (goro_chan_trysend(h->wake, &one) == -EAGAIN)
        nanosleep(&ts, NULL);
    return NULL;
}

static void thread_owner_main(void *arg)
{
    headroom();
    uint64_t arr[64];
    char buf[128];
    struct pattern p;
    pattern_fill(&p, 78);
    struct handoff h = { arr, buf, NULL, goro_chan_make(sizeof(int64_t), 0) };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, writer_thread, &h), 0);
    int64_t got = 0;
    cr_assert_eq(goro_chan_recv(h.wake, &got), 1);
    cr_assert_eq(got, 1);
    cr_assert_str_eq(buf, "written by a thread");
    for (int k = 0; k < 64; k++)
        cr_assert_eq(arr[k], mixv((uint64_t)k + 2000), "word %d lost", k);
    pattern_check(&p, 78);
    pthread_join(t, NULL);
    goro_chan_free(h.wake);
}

Test(compact, written_by_a_thread_while_compacted, .timeout = 30)
{
    need_compaction();
    bad = checked = 0;
    setenv("GORO_DEBUG", "nodeadlock", 1); /* the thread wakes main */
    run_on(2, thread_owner_main, NULL);
    cr_assert_eq(bad, 0);
    cr_assert_geq(stats().stack_compactions, 1);
}

/* ---- woken while its compaction is in progress ------------------------- */

/* GORO_COMPACT_AFTER=0: the pass compacts whatever it finds parked, again
 * and again, while these goroutines park and are woken from another
 * worker, from the poller (a pipe), from a timer and from a plain thread. */
#define STORM_G 64
#define STORM_ROUNDS 300
static goro_chan *storm_ch[STORM_G];
static int storm_pipe[STORM_G][2];
static volatile AO_t storm_stop;

NOINLINE static void storm_g(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    for (uint64_t r = 0; r < STORM_ROUNDS; r++) {
        struct pattern p;
        uint64_t seed = i * 100000 + r;
        pattern_fill(&p, seed);
        int64_t got = 0;
        char byte = 0;
        switch ((i + r) % 3) {
        case 0: /* another goroutine or the thread sends */
            if (goro_chan_recv(storm_ch[i], &got) != 1)
                AO_fetch_and_add1(&bad);
            break;
        case 1: /* the poller: a byte on the pipe */
            if (goro_read(storm_pipe[i][0], &byte, 1) != 1)
                AO_fetch_and_add1(&bad);
            break;
        default: { /* a timer */
            goro_chan *t = goro_after(200000);
            if (t == NULL || goro_chan_recv(t, &got) != 1)
                AO_fetch_and_add1(&bad);
        }
        }
        pattern_check(&p, seed);
    }
    goro_wg_done(&done_wg);
}

static goro_wg waker_wg;

static void storm_waker(void *arg)
{
    uint64_t k = 0;
    while (!AO_load(&storm_stop)) {
        int i = (int)(k++ % STORM_G);
        int64_t v = 1;
        char b = 'x';
        goro_chan_trysend(storm_ch[i], &v);
        /* a full pipe would park the waker for good once the readers are
         * done: keep a few bytes queued at most */
        int queued = 0;
        if (ioctl(storm_pipe[i][0], FIONREAD, &queued) == 0 && queued < 64 &&
            goro_write(storm_pipe[i][1], &b, 1) != 1)
            AO_fetch_and_add1(&bad);
        goro_yield();
    }
    goro_wg_done(&waker_wg);
}

static void *storm_thread(void *arg)
{
    (void)arg;
    uint64_t k = 0;
    while (!AO_load(&storm_stop)) {
        int64_t v = 2;
        goro_chan_trysend(storm_ch[k++ % STORM_G], &v);
        if (k % 64 == 0)
            sched_yield();
    }
    return NULL;
}

static void storm_main(void *arg)
{
    goro_wg_init(&done_wg);
    goro_wg_add(&done_wg, STORM_G);
    for (int i = 0; i < STORM_G; i++) {
        storm_ch[i] = goro_chan_make(sizeof(int64_t), 0);
        cr_assert_eq(pipe(storm_pipe[i]), 0);
    }
    pthread_t t;
    storm_stop = 0;
    cr_assert_eq(pthread_create(&t, NULL, storm_thread, NULL), 0);
    goro_wg_init(&waker_wg);
    goro_wg_add(&waker_wg, 1);
    cr_assert_eq(goro_go(storm_waker, NULL), 0);
    for (int i = 0; i < STORM_G; i++)
        cr_assert_eq(goro_go(storm_g, (void *)(uintptr_t)i), 0);
    goro_wg_wait(&done_wg);
    AO_store(&storm_stop, 1);
    pthread_join(t, NULL);
    /* the waker sees stop: only then may its channels and pipes go (a
     * fixed sleep here once let it send on a freed channel, whose lock word
     * malloc had reused: it spun forever on a loaded machine) */
    goro_wg_wait(&waker_wg);
    for (int i = 0; i < STORM_G; i++) {
        goro_close(storm_pipe[i][0]);
        goro_close(storm_pipe[i][1]);
        goro_chan_free(storm_ch[i]);
    }
}

Test(compact, woken_while_compacting, .timeout = 120)
{
    need_compaction();
    bad = checked = 0;
    setenv("GORO_COMPACT_AFTER", "0", 1);
    run_on(2, storm_main, NULL);
    struct goro_stats st = stats();
    test_note("%llu compactions in %d parks", (unsigned long long)st.stack_compactions,
              STORM_G * STORM_ROUNDS);
    cr_assert_eq(checked, STORM_G * STORM_ROUNDS);
    cr_assert_eq(bad, 0, "%lu bad", (unsigned long)bad);
    cr_assert_geq(st.stack_compactions, 100, "compaction hardly ran: the test proves nothing");
}

/* ---- goro_close on a socket whose reader is compacted ------------------ */

static int sock[2];
static volatile AO_t read_rc;

static void reader_g(void *arg)
{
    struct pattern p;
    pattern_fill(&p, 99);
    char buf[64];
    AO_store(&read_rc, (AO_t)(intptr_t)goro_read(sock[0], buf, sizeof buf));
    pattern_check(&p, 99);
    goro_wg_done(&done_wg);
}

static void close_main(void *arg)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sock), 0);
    goro_wg_init(&done_wg);
    goro_wg_add(&done_wg, 1);
    cr_assert_eq(goro_go(reader_g, NULL), 0);
    cr_assert(wait_compacted(1));
    cr_assert_eq(goro_close(sock[0]), 0);
    goro_wg_wait(&done_wg);
    goro_close(sock[1]);
}

Test(compact, close_wakes_a_compacted_reader, .timeout = 30)
{
    need_compaction();
    bad = checked = 0;
    run_on(2, close_main, NULL);
    cr_assert_eq(checked, 1);
    cr_assert_eq(bad, 0);
    cr_assert_lt((intptr_t)read_rc, 0, "read returned %ld", (long)(intptr_t)read_rc);
}

/* ---- memory goes back; busy goroutines pay nothing --------------------- */

static int64_t rss_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (int64_t)res * sysconf(_SC_PAGESIZE);
}

NOINLINE static long recurse(int n)
{
    volatile char pad[1000];
    pad[n % 1000] = (char)n;
    long r = n > 0 ? recurse(n - 1) : 0;
    return r + pad[(n * 7) % 1000];
}

static goro_chan *never;
static int64_t rss_deep, rss_compacted, rss_base;

static void deep_then_park(void *arg)
{
    recurse(250); /* ~256 KiB: a 2 MiB stack, 256 KiB of it touched */
    goro_wg_done(&parked_wg);
    int64_t v;
    goro_chan_recv(never, &v); /* until closed */
    goro_wg_done(&done_wg);
}

static void rss_main(void *arg)
{
    enum { N = 2000 };
    never = goro_chan_make(sizeof(int64_t), 0);
    goro_wg_init(&parked_wg);
    goro_wg_init(&done_wg);
    goro_wg_add(&parked_wg, N);
    goro_wg_add(&done_wg, N);
    rss_base = rss_now();
    for (int i = 0; i < N; i++)
        cr_assert_eq(goro_go(deep_then_park, NULL), 0);
    goro_wg_wait(&parked_wg);
    rss_deep = rss_now();
    cr_assert(wait_compacted(N), "%llu of %d compacted, %llu compactions",
              (unsigned long long)stats().stacks_compacted, N,
              (unsigned long long)stats().stack_compactions);
    rss_compacted = rss_now();
    goro_chan_close(never);
    goro_wg_wait(&done_wg);
    goro_chan_free(never);
}

Test(compact, rss_falls_when_deep_goroutines_park, .timeout = 60)
{
    need_compaction();
    setenv("GORO_COMPACT_AFTER", "1000", 1); /* after all have gone deep */
    run_on(2, rss_main, NULL);
    test_note("2,000 goroutines 256 KiB deep: RSS +%lld KiB parked, +%lld KiB compacted",
              (long long)(rss_deep - rss_base) / 1024, (long long)(rss_compacted - rss_base) / 1024);
    struct goro_stats st = stats();
    cr_assert_geq(st.stack_max, 256 * 1024, "they did not go deep");
    /* Each touched 150-250 KiB. What stays is the pools' (the 32 KiB and
     * 256 KiB stacks they grew out of: POOL_KEEP resident a class, a page
     * of each trimmed one): ~15 KiB a goroutine. (rss_deep is only a note:
     * on a loaded machine the first ones are compacted before the last go
     * deep.) */
#if !GORO_ANN_FIBERS
    cr_assert_lt(rss_compacted - rss_base, 2000ll * 32 * 1024,
                 "%lld KiB a goroutine stayed resident after compaction",
                 (long long)(rss_compacted - rss_base) / 2000 / 1024);
#else
    /* ASan: the shadow of every stack a goroutine grew into (an eighth of
     * it, zeroed at each move) counts in RSS and compaction keeps it: no
     * bar here */
    test_note("(sanitizer build: the RSS bar is not checked)");
#endif
}

/* A ping-pong between two goroutines that once grew: parks of microseconds
 * do not shrink or compact (the default GORO_COMPACT_AFTER, 1 s): 200,000
 * round trips, a handful of shrinks at most. */
static goro_chan *ping, *pong;

static void ponger(void *arg)
{
    recurse(100);
    int64_t v;
    while (goro_chan_recv(ping, &v) == 1)
        goro_chan_send(pong, &v);
    goro_wg_done(&done_wg);
}

static void pingpong_main(void *arg)
{
    ping = goro_chan_make(sizeof(int64_t), 0);
    pong = goro_chan_make(sizeof(int64_t), 0);
    goro_wg_init(&done_wg);
    goro_wg_add(&done_wg, 1);
    recurse(100);
    cr_assert_eq(goro_go(ponger, NULL), 0);
    struct goro_stats st0 = stats();
    for (int64_t i = 0; i < 200000; i++) {
        int64_t v = i;
        goro_chan_send(ping, &v);
        goro_chan_recv(pong, &v);
        cr_assert_eq(v, i);
    }
    struct goro_stats st1 = stats();
    goro_chan_close(ping);
    goro_wg_wait(&done_wg);
    /* A park can look 10 ms long to the coarse clock when its worker's
     * clock was stale, and each such shrink is a class or more down
     * (256 KiB to 8 KiB to 4 KiB): a few each, never one a park */
    cr_assert_leq(st1.stack_shrinks - st0.stack_shrinks, 8, "%llu shrinks in a ping-pong",
                  (unsigned long long)(st1.stack_shrinks - st0.stack_shrinks));
    goro_chan_free(ping);
    goro_chan_free(pong);
}

Test(compact, pingpong_pays_no_move, .timeout = 60)
{
    unsetenv("GORO_COMPACT_AFTER");
    run_on(2, pingpong_main, NULL);
}

/* A system call into a compacted stack: the kernel does not raise the
 * fault, it returns EFAULT; goro_read and goro_write restore the stack and
 * retry. B reads from a pipe into A's buffer, and writes from A's other
 * buffer, while A (which handed them over) waits compacted. */
static int io_pipe[2];

struct iohand {
    char *in;        /* 64 bytes on A's stack: B reads into it */
    const char *out; /* 64 bytes on A's stack: B writes from it */
    goro_wg *wg;
    ssize_t rin, rout;
};

static void io_b(void *arg)
{
    struct iohand *h = arg;
    cr_assert(wait_compacted(1));
    char msg[64];
    memset(msg, 'q', sizeof msg);
    cr_assert_eq(write(io_pipe[1], msg, sizeof msg), (ssize_t)sizeof msg);
    h->rin = goro_read(io_pipe[0], h->in, 64);   /* into A's compacted stack */
    cr_assert(wait_compacted(1));                 /* A compacted again */
    h->rout = goro_write(io_pipe[1], h->out, 64); /* from it */
    goro_wg_done(h->wg);
}

static void io_main(void *arg)
{
    char in[64], out[64];
    memset(in, 0, sizeof in);
    memset(out, 'o', sizeof out);
    KEEP(out);
    goro_wg wg;
    goro_wg_init(&wg);
    goro_wg_add(&wg, 1);
    struct iohand *h = malloc(sizeof *h);
    *h = (struct iohand){ in, out, &wg, 0, 0 };
    cr_assert_eq(pipe(io_pipe), 0);
    cr_assert_eq(goro_go(io_b, h), 0);
    goro_wg_wait(&wg);
    cr_assert_eq(h->rin, 64, "goro_read into a compacted stack: %zd", h->rin);
    cr_assert_eq(h->rout, 64, "goro_write from a compacted stack: %zd", h->rout);
    for (int k = 0; k < 64; k++)
        cr_assert_eq(in[k], 'q', "byte %d", k);
    char back[64];
    cr_assert_eq(goro_read(io_pipe[0], back, 64), 64);
    cr_assert_eq(memcmp(back, out, 64), 0);
    goro_close(io_pipe[0]);
    goro_close(io_pipe[1]);
    free(h);
}

Test(compact, system_calls_into_a_compacted_stack, .timeout = 30)
{
    need_compaction();
    run_on(2, io_main, NULL);
}

/* Stacks that grew through the allocator's lock-free path (own mappings
 * in the emergency rows, forced by GORO_DEBUG=stackemergency) are
 * compacted, restored and shrunk back into the region like the others
 * (they were skipped once, and 2,000 deep goroutines on 2 workers always
 * have a few). */
#define EMERG_G 300
static goro_chan *emerg_ch[EMERG_G];

NOINLINE static void emerg_g(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    recurse(60);
    struct pattern p;
    pattern_fill(&p, i + 5000);
    int64_t got = -1;
    goro_wg_done(&parked_wg);
    if (goro_chan_recv(emerg_ch[i], &got) != 1 || got != (int64_t)i)
        AO_fetch_and_add1(&bad);
    pattern_check(&p, i + 5000);
    goro_wg_done(&done_wg);
}

static void emerg_main(void *arg)
{
    goro_wg_init(&parked_wg);
    goro_wg_init(&done_wg);
    goro_wg_add(&parked_wg, EMERG_G);
    goro_wg_add(&done_wg, EMERG_G);
    for (uint64_t i = 0; i < EMERG_G; i++) {
        emerg_ch[i] = goro_chan_make(sizeof(int64_t), 0);
        cr_assert_eq(goro_go(emerg_g, (void *)(uintptr_t)i), 0);
    }
    goro_wg_wait(&parked_wg);
    cr_assert(wait_compacted(EMERG_G), "%llu of %d compacted",
              (unsigned long long)stats().stacks_compacted, EMERG_G);
    for (int64_t i = 0; i < EMERG_G; i++)
        cr_assert_eq(goro_chan_send(emerg_ch[i], &i), 0);
    goro_wg_wait(&done_wg);
    for (int i = 0; i < EMERG_G; i++)
        goro_chan_free(emerg_ch[i]);
}

Test(compact, emergency_stacks, .timeout = 60)
{
    need_compaction();
    bad = checked = 0;
    setenv("GORO_DEBUG", "stackemergency,nostackhint", 1);
    run_on(2, emerg_main, NULL);
    cr_assert_eq(checked, EMERG_G);
    cr_assert_eq(bad, 0, "%lu goroutines found their stack changed", (unsigned long)bad);
}

/* ---- clusters of compacted homes put to sleep ---------------------------- */

/* 3,000 goroutines parked: their homes fill a hundred 2 MiB clusters, and
 * once all of a cluster's goroutines are compacted the cluster is put to
 * sleep (runtime/stack_doze.c: made inaccessible, its markers removed and
 * its page-table page freed). Then a plain thread writes through pointers
 * into their stacks in random order (each write faults and wakes a whole
 * cluster, whose other goroutines must still fault on their next access),
 * a goroutine writes some of their buffers to a pipe (the kernel gets
 * EFAULT; goro_write wakes and restores, and retries), and their channels
 * wake them. Nothing written before or while asleep may be lost. */
#define DOZE_G 3000
static goro_chan *doze_ch[DOZE_G];
static char *doze_buf[DOZE_G];   /* 64 bytes on each goroutine's stack */
static uint32_t doze_order[DOZE_G];
static int doze_pipe[2];
static int64_t pte_parked, pte_asleep;
static uint64_t asleep_seen;
static long prot_none_kib;

NOINLINE static void doze_g(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    struct pattern p;
    pattern_fill(&p, i + 9000);
    char buf[64];
    snprintf(buf, sizeof buf, "buffer of %llu", (unsigned long long)i);
    doze_buf[i] = buf;
    int64_t got = -1; /* written by the sender into this dormant stack */
    goro_wg_done(&parked_wg);
    if (goro_chan_recv(doze_ch[i], &got) != 1 || got != (int64_t)i * 3)
        AO_fetch_and_add1(&bad);
    char want[64];
    if (i % 3 == 0)
        snprintf(want, sizeof want, "thread wrote %llu", (unsigned long long)i);
    else
        snprintf(want, sizeof want, "buffer of %llu", (unsigned long long)i);
    if (strcmp(buf, want) != 0)
        AO_fetch_and_add1(&bad);
    pattern_check(&p, i + 9000);
    goro_wg_done(&done_wg);
}

static void *doze_thread(void *arg)
{
    (void)arg;
    for (uint32_t k = 0; k < DOZE_G; k++) {
        uint32_t i = doze_order[k];
        if (i % 3 == 0)
            snprintf(doze_buf[i], 64, "thread wrote %u", i);
    }
    return NULL;
}

static void doze_main(void *arg)
{
    bool expect = *(bool *)arg;
    goro_wg_init(&parked_wg);
    goro_wg_init(&done_wg);
    goro_wg_add(&parked_wg, DOZE_G);
    goro_wg_add(&done_wg, DOZE_G);
    cr_assert_eq(pipe(doze_pipe), 0);
    for (uint64_t i = 0; i < DOZE_G; i++) {
        doze_ch[i] = goro_chan_make(sizeof(int64_t), 0);
        cr_assert_eq(goro_go(doze_g, (void *)(uintptr_t)i), 0);
    }
    goro_wg_wait(&parked_wg);
    pte_parked = status_kib("VmPTE:");
    cr_assert(wait_compacted(DOZE_G), "%llu of %d compacted",
              (unsigned long long)stats().stacks_compacted, DOZE_G);
    for (int t = 0; t < 200 && expect && stats().stack_clusters_asleep < DOZE_G / 30 / 2; t++)
        goro_sleep(10 * 1000000);
    asleep_seen = stats().stack_clusters_asleep;
    pte_asleep = status_kib("VmPTE:");
    prot_none_kib = stack_region_prot_none_kib();
    /* the kernel reads dormant buffers: goro_write wakes them */
    for (uint32_t i = 1; i < DOZE_G; i += 3) {
        char back[64];
        cr_assert_eq(goro_write(doze_pipe[1], doze_buf[i], 64), 64);
        cr_assert_eq(goro_read(doze_pipe[0], back, 64), 64);
        char want[64];
        snprintf(want, sizeof want, "buffer of %u", i);
        cr_assert_str_eq(back, want);
    }
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, doze_thread, NULL), 0);
    pthread_join(t, NULL);
    for (uint32_t k = 0; k < DOZE_G; k++) {
        uint32_t i = doze_order[k];
        int64_t v = (int64_t)i * 3;
        cr_assert_eq(goro_chan_send(doze_ch[i], &v), 0);
    }
    goro_wg_wait(&done_wg);
    for (int i = 0; i < DOZE_G; i++)
        goro_chan_free(doze_ch[i]);
    goro_close(doze_pipe[0]);
    goro_close(doze_pipe[1]);
}

Test(compact, clusters_asleep_and_woken, .timeout = 60)
{
    park_at_home();
    need_compaction();
    bad = checked = 0;
    for (uint32_t i = 0; i < DOZE_G; i++)
        doze_order[i] = i;
    srand((unsigned)time(NULL));
    for (uint32_t i = DOZE_G - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rand() % (i + 1), x = doze_order[i];
        doze_order[i] = doze_order[j];
        doze_order[j] = x;
    }
    bool expect = kernel_reclaims_page_tables();
    run_on(2, doze_main, &expect);
    test_note("%llu clusters asleep; VmPTE %lld KiB parked, %lld asleep; %ld KiB inaccessible",
              (unsigned long long)asleep_seen, (long long)pte_parked, (long long)pte_asleep,
              prot_none_kib);
    cr_assert_eq(checked, DOZE_G);
    cr_assert_eq(bad, 0, "%lu of %d goroutines found their stack changed", (unsigned long)bad,
                 DOZE_G);
    cr_assert_eq(stats().stack_clusters_asleep, 0);
    cr_assert_eq(stats().stacks_compacted, 0);
    if (!expect) {
        test_note("(no cluster sleeps here: the kernel keeps emptied page tables)");
        return;
    }
    /* 100 clusters of homes; a few hold the main goroutine or are shared */
    cr_assert_geq(asleep_seen, DOZE_G / 30 / 2);
    cr_assert_geq(prot_none_kib, (long)asleep_seen * 2048, "sleeping clusters not inaccessible");
#if !GORO_ANN_FIBERS /* ASan's shadow has page tables of its own */
    cr_assert_leq(pte_asleep + (int64_t)asleep_seen * 4 / 2, pte_parked,
                  "page tables did not shrink: %lld KiB, then %lld", (long long)pte_parked,
                  (long long)pte_asleep);
#endif
}

/* ---- clusters put to sleep and woken, again and again -------------------- */

/* GORO_COMPACT_AFTER=0 and 300 goroutines (ten clusters of homes) that
 * park again and again, woken in bursts with random gaps, so that whole
 * clusters are compacted and put to sleep between bursts and woken by the
 * next: by a plain thread that writes through a pointer into the stack and
 * then sends (the fault handler wakes the cluster, on a thread goro does
 * not run), by a goroutine's send into the receiver's stack variable, and
 * by a byte on a pipe (resume() wakes it). Sleeps race with the wakes of
 * the goroutines in the cluster. */
#define DST_G 300
#define DST_ROUNDS 100
static goro_chan *dst_ch[DST_G], *dst_tch[DST_G];
static int dst_pipe[DST_G][2];
static volatile AO_t dst_slot[DST_G]; /* int64_t * on a parked stack */
static volatile AO_t dst_stop;
static goro_wg dst_waker_wg;

static int64_t dst_value(uint64_t i, uint64_t r)
{
    return (int64_t)(i * 1000003 + r);
}

NOINLINE static void dst_g(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    for (uint64_t r = 0; r < DST_ROUNDS; r++) {
        struct pattern p;
        uint64_t seed = i * 100000 + r + 7;
        pattern_fill(&p, seed);
        int64_t word = -1, got = 0;
        char byte = 0;
        switch ((i + r) % 3) {
        case 0: /* the thread writes the word, then sends */
            word = (int64_t)r;
            AO_store_release(&dst_slot[i], (AO_t)(uintptr_t)&word);
            if (goro_chan_recv(dst_tch[i], &got) != 1 || word != dst_value(i, r))
                AO_fetch_and_add1(&bad);
            break;
        case 1: /* a byte on the pipe */
            if (goro_read(dst_pipe[i][0], &byte, 1) != 1)
                AO_fetch_and_add1(&bad);
            break;
        default: /* a goroutine sends into got */
            if (goro_chan_recv(dst_ch[i], &got) != 1 || got != (int64_t)i + 1)
                AO_fetch_and_add1(&bad);
        }
        pattern_check(&p, seed);
    }
    goro_wg_done(&done_wg);
}

static void dst_waker(void *arg)
{
    (void)arg;
    uint64_t rnd = 88172645463325252ull;
    while (!AO_load(&dst_stop)) {
        for (int i = 0; i < DST_G; i++) {
            int64_t v = i + 1;
            char b = 'x';
            goro_chan_trysend(dst_ch[i], &v);
            int queued = 0;
            if (ioctl(dst_pipe[i][0], FIONREAD, &queued) == 0 && queued < 2 &&
                goro_write(dst_pipe[i][1], &b, 1) != 1)
                AO_fetch_and_add1(&bad);
        }
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        goro_sleep((int64_t)(rnd % 20) * 1000000); /* a gap: clusters may sleep */
    }
    goro_wg_done(&dst_waker_wg);
}

static void *dst_thread(void *arg)
{
    (void)arg;
    uint64_t rnd = 0x2545f4914f6cdd1dull;
    while (!AO_load(&dst_stop)) {
        for (int i = 0; i < DST_G; i++) {
            int64_t *w = (int64_t *)(uintptr_t)AO_load_acquire(&dst_slot[i]);
            if (w == NULL)
                continue;
            AO_store(&dst_slot[i], 0);
            /* the word holds its round: read it (a fault that wakes the
             * cluster, if asleep) and write the answer over it */
            *w = dst_value((uint64_t)i, (uint64_t)*w);
            int64_t one = 1;
            while (goro_chan_trysend(dst_tch[i], &one) == -EAGAIN)
                sched_yield();
        }
        struct timespec ts = { 0, (long)(rnd % 20) * 1000000 };
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void dst_main(void *arg)
{
    goro_wg_init(&done_wg);
    goro_wg_add(&done_wg, DST_G);
    for (int i = 0; i < DST_G; i++) {
        dst_ch[i] = goro_chan_make(sizeof(int64_t), 0);
        dst_tch[i] = goro_chan_make(sizeof(int64_t), 0);
        dst_slot[i] = 0;
        cr_assert_eq(pipe(dst_pipe[i]), 0);
    }
    for (int i = 0; i < DST_G; i++)
        cr_assert_eq(goro_go(dst_g, (void *)(uintptr_t)i), 0);
    dst_stop = 0;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, dst_thread, NULL), 0);
    goro_wg_init(&dst_waker_wg);
    goro_wg_add(&dst_waker_wg, 1);
    cr_assert_eq(goro_go(dst_waker, NULL), 0);
    goro_wg_wait(&done_wg);
    AO_store(&dst_stop, 1);
    pthread_join(t, NULL);
    goro_wg_wait(&dst_waker_wg);
    for (int i = 0; i < DST_G; i++) {
        goro_close(dst_pipe[i][0]);
        goro_close(dst_pipe[i][1]);
        goro_chan_free(dst_ch[i]);
        goro_chan_free(dst_tch[i]);
    }
}

Test(compact, clusters_asleep_and_woken_again_and_again, .timeout = 120)
{
    park_at_home();
    need_compaction();
    bad = checked = 0;
    setenv("GORO_COMPACT_AFTER", "0", 1);
    setenv("GORO_DEBUG", "nodeadlock", 1); /* the thread wakes some */
    run_on(2, dst_main, NULL);
    struct goro_stats st = stats();
    uint64_t sleeps = AO_load(&goro__ctr.stack_cluster_sleeps);
    test_note("%llu compactions and %llu cluster sleeps in %d parks",
              (unsigned long long)st.stack_compactions, (unsigned long long)sleeps,
              DST_G * DST_ROUNDS);
    cr_assert_eq(checked, DST_G * DST_ROUNDS);
    cr_assert_eq(bad, 0, "%lu bad", (unsigned long)bad);
    cr_assert_eq(st.stack_clusters_asleep, 0);
    if (kernel_reclaims_page_tables())
        cr_assert_geq(sleeps, 20, "clusters hardly slept: the test proves nothing");
}

/* ---- a cluster woken soon after its sleep waits longer for the next ----- */

/* GORO_COMPACT_AFTER=200 ms: 300 goroutines park, are compacted and their
 * clusters fall asleep; all are woken at once and park again at once. They
 * are compacted again 200 ms later, but a cluster woken this soon after
 * its sleep may sleep again only 400 ms after the wake (stack_doze.c,
 * "Churn"): none has slept at 300 ms. And with nothing else running, the
 * pass must come back for them: they sleep within seconds. */
#define BO_G 300
static goro_chan *bo_ch[BO_G];
static uint64_t bo_first, bo_at_300ms, bo_later;
static int64_t bo_waited_ms;

static void bo_g(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    int64_t v;
    for (int r = 0; r < 2; r++) {
        goro_wg_done(&parked_wg);
        if (goro_chan_recv(bo_ch[i], &v) != 1)
            AO_fetch_and_add1(&bad);
    }
    goro_wg_done(&done_wg);
}

static void bo_main(void *arg)
{
    bool expect = *(bool *)arg;
    goro_wg_init(&parked_wg);
    goro_wg_init(&done_wg);
    goro_wg_add(&parked_wg, BO_G);
    goro_wg_add(&done_wg, BO_G);
    for (uint64_t i = 0; i < BO_G; i++) {
        bo_ch[i] = goro_chan_make(sizeof(int64_t), 0);
        cr_assert_eq(goro_go(bo_g, (void *)(uintptr_t)i), 0);
    }
    goro_wg_wait(&parked_wg);
    cr_assert(wait_compacted(BO_G * 9 / 10));
    for (int t = 0; t < 500 && expect && stats().stack_clusters_asleep < BO_G / 30 / 2; t++)
        goro_sleep(10 * 1000000);
    /* and until no more fall asleep for 400 ms: a cluster whose sleep
     * was still on its way (a busy machine: make test runs suites side by
     * side) would sleep for the first time after the wake, which is not
     * what the test is about */
    uint64_t seen = AO_load(&goro__ctr.stack_cluster_sleeps);
    for (int t = 0, quiet = 0; t < 500 && expect && quiet < 40; t++) {
        goro_sleep(10 * 1000000);
        uint64_t now = AO_load(&goro__ctr.stack_cluster_sleeps);
        quiet = now == seen ? quiet + 1 : 0;
        seen = now;
    }
    bo_first = AO_load(&goro__ctr.stack_cluster_sleeps);
    goro_wg_add(&parked_wg, BO_G);
    int64_t t0 = goro_now();
    for (uint64_t i = 0; i < BO_G; i++) {
        int64_t v = 1;
        cr_assert_eq(goro_chan_send(bo_ch[i], &v), 0);
    }
    goro_wg_wait(&parked_wg); /* all parked again */
    goro_sleep(t0 + 300 * 1000000 - goro_now());
    bo_at_300ms = AO_load(&goro__ctr.stack_cluster_sleeps);
    int64_t waited = (goro_now() - t0) / 1000000;
    bo_waited_ms = waited;
    for (int t = 0; t < 1000 && AO_load(&goro__ctr.stack_cluster_sleeps) < bo_first + BO_G / 30 / 2;
         t++)
        goro_sleep(10 * 1000000);
    bo_later = AO_load(&goro__ctr.stack_cluster_sleeps);
    for (uint64_t i = 0; i < BO_G; i++) {
        int64_t v = 2;
        cr_assert_eq(goro_chan_send(bo_ch[i], &v), 0);
    }
    goro_wg_wait(&done_wg);
    for (int i = 0; i < BO_G; i++)
        goro_chan_free(bo_ch[i]);
}

Test(compact, clusters_woken_soon_sleep_later, .timeout = 60)
{
    park_at_home();
    need_compaction();
    bad = 0;
    setenv("GORO_COMPACT_AFTER", "200", 1);
    bool expect = kernel_reclaims_page_tables();
    run_on(2, bo_main, &expect);
    test_note("cluster sleeps: %llu first, %llu more by %lld ms after the wake, %llu more later",
              (unsigned long long)bo_first, (unsigned long long)(bo_at_300ms - bo_first),
              (long long)bo_waited_ms, (unsigned long long)(bo_later - bo_at_300ms));
    cr_assert_eq(bad, 0);
    if (!expect)
        return;
    cr_assert_geq(bo_first, BO_G / 30 / 2);
    if (bo_waited_ms < 400) /* (a descheduled test may look late) */
        cr_assert_eq(bo_at_300ms, bo_first, "clusters slept again right after a wake");
    cr_assert_geq(bo_later, bo_first + BO_G / 30 / 2, "the put-off sleeps never came");
}

/* ---- goroutines resumed off a sleeping cluster -------------------------- */

/* 600 goroutines parked in goro_read (the poller wakes them without
 * touching their stacks): once their clusters sleep, each woken one is
 * moved to a stack elsewhere as it resumes and its cluster sleeps on
 * (stack_doze.c, goro__doze_leave). Then senders write into the stacks of
 * the others, which wakes clusters some of whose homes are empty (their
 * goroutines left): those get their guards back and nothing else. Last, a
 * second wave of goroutines takes the same records, starts at those homes
 * and recurses 200 KiB deep: if a left home had lost its guard, its stack
 * would run down into its neighbour's unseen. */
#define LV_G 600
static goro_chan *lv_ch[LV_G];
static int lv_pipe[LV_G][2];
static goro_wg lv_read_wg;
static uint64_t lv_leaves, lv_asleep;

NOINLINE static void lv_g(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    struct pattern p;
    pattern_fill(&p, i + 20000);
    char byte = 0;
    goro_wg_done(&parked_wg);
    if (goro_read(lv_pipe[i][0], &byte, 1) != 1 || byte != (char)('a' + i % 26))
        AO_fetch_and_add1(&bad);
    pattern_check(&p, i + 20000);
    goro_wg_done(&lv_read_wg);
    int64_t got = -1;
    if (goro_chan_recv(lv_ch[i], &got) != 1 || got != (int64_t)i * 5)
        AO_fetch_and_add1(&bad);
    pattern_check(&p, i + 20000);
    goro_wg_done(&done_wg);
}

NOINLINE static uint64_t lv_deep(int n, uint64_t seed)
{
    volatile uint64_t frame[128]; /* 1 KiB a frame */
    for (int k = 0; k < 128; k++)
        frame[k] = mixv(seed + (uint64_t)n * 128 + (uint64_t)k);
    uint64_t sum = n > 0 ? lv_deep(n - 1, seed) : 0;
    for (int k = 0; k < 128; k++)
        if (frame[k] != mixv(seed + (uint64_t)n * 128 + (uint64_t)k))
            AO_fetch_and_add1(&bad);
    return sum + frame[n % 128];
}

static void lv_wave2(void *arg)
{
    uint64_t i = (uint64_t)(uintptr_t)arg;
    KEEP(lv_deep(200, i));
    AO_fetch_and_add1(&checked);
    goro_wg_done(&done_wg);
}

static void lv_main(void *arg)
{
    bool expect = *(bool *)arg;
    goro_wg_init(&parked_wg);
    goro_wg_init(&done_wg);
    goro_wg_init(&lv_read_wg);
    goro_wg_add(&parked_wg, LV_G);
    goro_wg_add(&done_wg, LV_G);
    goro_wg_add(&lv_read_wg, LV_G / 2);
    for (uint64_t i = 0; i < LV_G; i++) {
        lv_ch[i] = goro_chan_make(sizeof(int64_t), 0);
        cr_assert_eq(pipe(lv_pipe[i]), 0);
        cr_assert_eq(goro_go(lv_g, (void *)(uintptr_t)i), 0);
    }
    goro_wg_wait(&parked_wg);
    cr_assert(wait_compacted(LV_G * 9 / 10));
    for (int t = 0; t < 500 && expect && stats().stack_clusters_asleep < LV_G / 30 / 2; t++)
        goro_sleep(10 * 1000000);
    lv_asleep = stats().stack_clusters_asleep;
    uint64_t leaves0 = AO_load(&goro__ctr.stack_cluster_leaves);
    /* the even ones: woken by the poller, they leave their clusters */
    for (uint64_t k = 0; k < LV_G; k++) {
        uint64_t i = (k * 7919) % LV_G; /* a scattered order */
        char b = (char)('a' + i % 26);
        if (i % 2 == 0)
            cr_assert_eq(write(lv_pipe[i][1], &b, 1), 1);
    }
    goro_wg_wait(&lv_read_wg);
    lv_leaves = AO_load(&goro__ctr.stack_cluster_leaves) - leaves0;
    /* the odd ones' senders write into sleeping clusters with left homes */
    goro_wg_add(&lv_read_wg, LV_G / 2);
    for (uint64_t i = 1; i < LV_G; i += 2) {
        char b = (char)('a' + i % 26);
        cr_assert_eq(write(lv_pipe[i][1], &b, 1), 1);
    }
    goro_wg_wait(&lv_read_wg);
    for (uint64_t k = 0; k < LV_G; k++) {
        uint64_t i = (k * 7919) % LV_G;
        int64_t v = (int64_t)i * 5;
        cr_assert_eq(goro_chan_send(lv_ch[i], &v), 0);
    }
    goro_wg_wait(&done_wg);
    /* the second wave, on the same records: home, then 200 KiB deep */
    goro_wg_add(&done_wg, LV_G);
    for (uint64_t i = 0; i < LV_G; i++)
        cr_assert_eq(goro_go(lv_wave2, (void *)(uintptr_t)i), 0);
    goro_wg_wait(&done_wg);
    for (int i = 0; i < LV_G; i++) {
        goro_chan_free(lv_ch[i]);
        goro_close(lv_pipe[i][0]);
        goro_close(lv_pipe[i][1]);
    }
}

Test(compact, goroutines_leave_sleeping_clusters, .timeout = 60)
{
    park_at_home();
    need_compaction();
    bad = checked = 0;
    bool expect = kernel_reclaims_page_tables();
    setenv("GORO_DEBUG", "nostackhint", 1); /* the second wave starts at home */
    run_on(2, lv_main, &expect);
    struct goro_stats st = stats();
    test_note("%llu clusters asleep, %llu of %d woken goroutines left theirs; %llu growths",
              (unsigned long long)lv_asleep, (unsigned long long)lv_leaves, LV_G / 2,
              (unsigned long long)st.stack_growths);
    cr_assert_eq(bad, 0, "%lu bad", (unsigned long)bad);
    cr_assert_eq(checked, LV_G * 2 + LV_G); /* two pattern checks each, and the wave */
    cr_assert_eq(st.stack_clusters_asleep, 0);
    /* 4 KiB to 32 KiB to 256 KiB: two growths each, from the guard below
     * the home (680 in all when left homes got no guard back) */
    cr_assert_geq(st.stack_growths, 2 * LV_G, "the second wave did not grow from home");
    if (expect) {
        cr_assert_geq(lv_asleep, LV_G / 30 / 2);
        cr_assert_geq(lv_leaves, LV_G / 4, "woken goroutines did not leave their clusters");
    }
}

/* ---- a forked child's runtime is its own ------------------------------ */

/* goro_run, then fork(), then goro_run in the child (a prefork server
 * that set itself up with goro first): the fds a run keeps for the next
 * (/proc/self/mem, which compaction copies through; the pidfd for
 * process_madvise) were opened by the parent and name the parent's
 * memory. The child must open its own, or its compaction copies the
 * parent's bytes in and out. No Criterion assertion in the child: its
 * exit status tells. */
static goro_chan *fork_ch;
static uint64_t fork_compactions; /* in the run, after the wake */

static void fork_waker(void *arg)
{
    (void)arg;
    if (!wait_compacted(1)) {
        AO_fetch_and_add1(&bad);
    }
    int one = 1;
    goro_chan_send(fork_ch, &one);
}

static void fork_owner(void *arg)
{
    (void)arg;
    struct pattern p;
    pattern_fill(&p, 4242);
    fork_ch = goro_chan_make(sizeof(int), 0);
    int v = 0;
    if (fork_ch == NULL || goro_go(fork_waker, NULL) != 0)
        AO_fetch_and_add1(&bad);
    else
        goro_chan_recv(fork_ch, &v); /* parked: compacted, restored */
    pattern_check(&p, 4242);
    fork_compactions = stats().stack_compactions;
    goro_chan_free(fork_ch);
}

Test(compact, a_forked_child_compacts_with_its_own_fds, .timeout = 60)
{
    need_compaction();
    bad = checked = 0;
    run_on(2, fork_owner, NULL); /* the parent's run: its fds opened */
    cr_assert_eq(bad, 0);
    cr_assert_gt(fork_compactions, 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        bad = checked = 0;
        fork_compactions = 0;
        if (goro_run(fork_owner, NULL) != 0)
            _exit(3);
        if (fork_compactions == 0)
            _exit(2); /* nothing compacted: the test saw nothing */
        _exit(bad == 0 && checked == 1 ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died (status %#x)", status);
    cr_assert_neq(WEXITSTATUS(status), 2, "nothing was compacted in the child");
    cr_assert_eq(WEXITSTATUS(status), 0, "the child's compacted stack came back wrong (%d)",
                 WEXITSTATUS(status));
}
