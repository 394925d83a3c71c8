/*
 * stackgrow - a stress tool for goro's growable stacks.
 *
 * N goroutines on W workers dive to random depths through frames of varied
 * sizes (64 B to 32 KiB). Every frame holds a pointer to its own locals and
 * to its caller's, and checks them all on the way back up; along the way
 * frames call into libc (snprintf into a stack buffer, qsort of a stack
 * array of pointers to stack values), hold stack pointers in vector
 * registers across a stack access that may fault on the guard, yield, and
 * hop to another worker through a channel (or a sleep) mid-recursion. Each
 * goroutine lives a few dives, then hands its place to a new one, so stacks
 * keep being grown from one page. At the end: a report, and "0 corruptions"
 * or exit status 1 naming the first corruption found.
 *
 *   tools/stackgrow/stackgrow --goroutines 10000 --workers 2 \
 *       --max-stack 1M --duration 60
 */
#include <goro.h>

#include <atomic_ops.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* From the library (internal, linked statically): growth time quantiles. */
uint64_t goro__stack_growth_quantile(double q);

static struct {
    long goroutines;
    int workers;
    long max_stack;
    uint64_t seed;
    double duration;
    long dives;
    bool quiet;
} opt = { 1000, 0, 1 << 20, 0, 10, 0, false };

static volatile AO_t stop, dives_done, spawned, corruptions;
static char first_corruption[512];
static goro_wg wg, hop_wg;
static goro_chan *hopch;
static bool have_avx2;
static int nhoppers;

/* Tags can never look like stack addresses (top 16 bits set), so
 * conservative relocation leaves them alone. */
#define TAG_HI 0xC3C3000000000000ull
static inline uint64_t tag_of(uint64_t seed, long depth)
{
    uint64_t x = seed ^ ((uint64_t)depth * 0x9E3779B97F4A7C15ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return TAG_HI | (x & 0xffffffffffull);
}

struct gstate {
    uint64_t rng;
    uint64_t seed;      /* of this dive: tags derive from it */
    uint64_t gid;
    goro_chan *reply;   /* this goroutine's hop reply channel */
    long dives_left;
};

struct link {
    uint64_t tag;
    struct link *parent;
    uint64_t *data;     /* our own frame's array */
    struct link *self;
};

struct hopmsg {
    uint64_t token;
    goro_chan *reply;   /* NULL: hopper, stop */
};

static inline uint64_t rnd(struct gstate *gs)
{
    uint64_t x = gs->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    gs->rng = x;
    return x;
}

static void corrupt(struct gstate *gs, long depth, const char *what)
{
    /* full: one writer of the message */
    if (AO_fetch_and_add1_full(&corruptions) == 0) {
        snprintf(first_corruption, sizeof first_corruption,
                 "goroutine %" PRIu64 " at depth %ld: %s", gs->gid, depth, what);
        fprintf(stderr, "stackgrow: CORRUPTION: %s\n", first_corruption);
        AO_store_release(&stop, 1);
    }
}

static int cmp_ptr(const void *a, const void *b)
{
    uint64_t x = **(uint64_t *const *)a, y = **(uint64_t *const *)b;
    return x < y ? -1 : x > y;
}

/* libc on the stack: snprintf into a stack buffer, checked by parsing. */
__attribute__((noinline)) static int libc_print(uint64_t tag, long depth)
{
    char buf[200];
    int n = snprintf(buf, sizeof buf, "%" PRIx64 " %ld %s %.3f|", tag, depth,
                     "stackgrow", (double)depth / 8.0);
    char *end;
    uint64_t t = strtoull(buf, &end, 16);
    long d = strtol(end, &end, 10);
    return n > 0 && t == tag && d == depth && strncmp(end, " stackgrow ", 11) == 0 ? 0 : 1;
}

/* libc on the stack: qsort of an array of pointers into our own frame. */
__attribute__((noinline)) static int libc_sort(uint64_t *arr, int n)
{
    uint64_t *ptrs[32];
    int m = n < 32 ? n : 32;
    for (int i = 0; i < m; i++)
        ptrs[i] = &arr[(i * 7) % m];
    qsort(ptrs, (size_t)m, sizeof ptrs[0], cmp_ptr);
    for (int i = 0; i < m; i++) {
        if (ptrs[i] < arr || ptrs[i] >= arr + m)
            return 1;
        if (i > 0 && *ptrs[i - 1] > *ptrs[i])
            return 1;
    }
    return 0;
}

/* A stack pointer in a vector register (every lane of ymm7, or xmm7) while
 * the stack 2 KiB below rsp is read: that read may hit the guard, and the
 * stack moves with the pointer still in the register. */
__attribute__((noinline)) static int vec_probe(uint64_t *p)
{
    uint64_t lo, hi;
    if (have_avx2) {
        __asm__ __volatile__(
            "vmovq %[p], %%xmm7\n\t"
            "vpbroadcastq %%xmm7, %%ymm7\n\t"
            "movb -2048(%%rsp), %%al\n\t"
            "vmovq %%xmm7, %[lo]\n\t"
            "vextracti128 $1, %%ymm7, %%xmm6\n\t"
            "vpextrq $1, %%xmm6, %[hi]\n\t"
            "vzeroupper"
            : [lo] "=r"(lo), [hi] "=r"(hi)
            : [p] "r"(p)
            : "rax", "xmm6", "xmm7", "memory");
    } else {
        __asm__ __volatile__(
            "movq %[p], %%xmm7\n\t"
            "punpcklqdq %%xmm7, %%xmm7\n\t"
            "movb -2048(%%rsp), %%al\n\t"
            "movq %%xmm7, %[lo]\n\t"
            "pextrq $1, %%xmm7, %[hi]\n\t"
            : [lo] "=r"(lo), [hi] "=r"(hi)
            : [p] "r"(p)
            : "rax", "xmm7", "memory");
    }
    /* p itself was relocated too if the stack moved */
    return lo == (uint64_t)(uintptr_t)p && hi == (uint64_t)(uintptr_t)p ? 0 : 1;
}

/* Move to another worker mid-recursion: ask a hopper goroutine to answer. */
static int hop(struct gstate *gs, uint64_t tag)
{
    struct hopmsg m = { tag, gs->reply };
    int rc = goro_chan_send(hopch, &m);
    if (rc != 0) {
        fprintf(stderr, "stackgrow: hop: goro_chan_send: %d\n", rc);
        return 1;
    }
    uint64_t back = 0;
    rc = goro_chan_recv(gs->reply, &back);
    if (rc != 1) {
        fprintf(stderr, "stackgrow: hop: goro_chan_recv: %d\n", rc);
        return 1;
    }
    return back == ~tag ? 0 : 1;
}

static void hopper(void *arg)
{
    struct hopmsg m;
    while (goro_chan_recv(hopch, &m) == 1 && m.reply != NULL) {
        uint64_t back = ~m.token;
        goro_chan_send(m.reply, &back);
    }
    goro_wg_done(&hop_wg);
}

static int dive(struct gstate *gs, struct link *parent, long budget, long depth);

#define FRAME(name, WORDS)                                                          \
    __attribute__((noinline)) static int name(struct gstate *gs, struct link *parent, \
                                              long budget, long depth)             \
    {                                                                               \
        uint64_t arr[WORDS];                                                        \
        struct link me;                                                             \
        me.tag = tag_of(gs->seed, depth);                                           \
        me.parent = parent;                                                         \
        me.data = arr;                                                              \
        me.self = &me;                                                              \
        for (int i = 0; i < (WORDS); i += ((WORDS) > 64 ? 61 : 1))                  \
            arr[i] = me.tag + (uint64_t)i;                                          \
        arr[(WORDS) - 1] = me.tag ^ 1;                                              \
        int bad = 0;                                                                \
        uint64_t r = rnd(gs);                                                       \
        if ((r & 7) == 0)                                                           \
            bad |= libc_print(me.tag, depth) << 1;                                  \
        if ((r & 0xf0) == 0x10)                                                     \
            bad |= libc_sort(arr, (WORDS) < 32 ? (WORDS) - 1 : 32) << 2;            \
        if ((r & 0x300) == 0x100)                                                   \
            bad |= vec_probe(&arr[0]) << 3;                                         \
        if ((r & 0xfc00) == 0x400)                                                  \
            goro_yield();                                                           \
        if ((r & 0xff0000) == 0x10000)                                              \
            bad |= hop(gs, me.tag) << 4;                                            \
        if ((r & 0xfff000000ull) == 0x1000000)                                      \
            goro_sleep(1000);                                                       \
        long left = budget - (long)sizeof arr - 160;                                \
        if (left > 0 && !bad)                                                       \
            bad |= dive(gs, &me, left, depth + 1);                                  \
        for (int i = 0; i < (WORDS) - 1; i += ((WORDS) > 64 ? 61 : 1))              \
            if (arr[i] != me.tag + (uint64_t)i)                                     \
                bad |= 1 << 5;                                                      \
        if (arr[(WORDS) - 1] != (me.tag ^ 1))                                       \
            bad |= 1 << 5;                                                          \
        if (me.self != &me || me.data != arr || me.parent != parent ||              \
            me.tag != tag_of(gs->seed, depth))                                      \
            bad |= 1 << 6;                                                          \
        if (parent != NULL && (parent->self != parent ||                            \
                               parent->tag != tag_of(gs->seed, depth - 1) ||        \
                               parent->data[0] != parent->tag))                     \
            bad |= 1 << 7;                                                          \
        if (bad && !(bad & 1)) {                                                    \
            char what[200];                                                         \
            snprintf(what, sizeof what, "%s (%d-byte frame): %s%s%s%s%s%s%s",       \
                     #name, (int)sizeof arr, bad & 2 ? "snprintf result; " : "",    \
                     bad & 4 ? "qsort result; " : "",                               \
                     bad & 8 ? "pointer in vector register; " : "",                 \
                     bad & 16 ? "value through a channel hop; " : "",               \
                     bad & 32 ? "local array; " : "",                               \
                     bad & 64 ? "pointer to own local; " : "",                      \
                     bad & 128 ? "pointer to caller's local" : "");                 \
            corrupt(gs, depth, what);                                               \
        }                                                                           \
        return bad ? 1 : 0;                                                         \
    }

FRAME(frame_64, 8)
FRAME(frame_512, 64)
FRAME(frame_4k, 512)
FRAME(frame_32k, 4096)

static int dive(struct gstate *gs, struct link *parent, long budget, long depth)
{
    if (AO_load(&stop))
        return 0;
    uint64_t r = rnd(gs) % 64;
    if (r < 40)
        return frame_64(gs, parent, budget, depth);
    if (r < 58)
        return frame_512(gs, parent, budget, depth);
    if (r < 63 || budget < 64 * 1024)
        return frame_4k(gs, parent, budget, depth);
    return frame_32k(gs, parent, budget, depth);
}

static void diver(void *arg)
{
    struct gstate gs;
    gs.gid = AO_fetch_and_add1(&spawned);
    gs.rng = (opt.seed ^ (gs.gid * 0x9E3779B97F4A7C15ull)) | 1;
    gs.reply = goro_chan_make(sizeof(uint64_t), 0);
    gs.dives_left = 1 + (long)(rnd(&gs) % 4);
    if (gs.reply == NULL) {
        corrupt(&gs, 0, "goro_chan_make failed");
        goro_wg_done(&wg);
        return;
    }
    while (gs.dives_left-- > 0 && !AO_load(&stop)) {
        /* depth: skewed towards shallow dives, up to ~75% of max-stack */
        double u = (double)(rnd(&gs) % 1000000) / 1e6;
        long budget = (long)((double)opt.max_stack * 0.75 * u * u);
        gs.seed = rnd(&gs);
        dive(&gs, NULL, budget, 0);
        long d = (long)AO_fetch_and_add1(&dives_done) + 1;
        if (opt.dives > 0 && d >= opt.dives)
            AO_store(&stop, 1);
    }
    goro_chan_free(gs.reply);
    /* hand our place to a fresh goroutine (a fresh one-page stack) */
    if (!AO_load(&stop) && goro_go(diver, NULL) == 0)
        return;
    goro_wg_done(&wg);
}

static long rss_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0)
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static double now_s(void)
{
    return (double)goro_now() / 1e9;
}

static void *progress(void *arg)
{
    double t0 = *(double *)arg, last = t0;
    struct goro_stats st;
    while (!AO_load(&stop)) {
        usleep(50 * 1000);
        double t = now_s();
        if (opt.dives == 0 && t - t0 >= opt.duration)
            AO_store(&stop, 1);
        if (!opt.quiet && (t - last >= 1.0 || AO_load(&stop))) {
            last = t;
            goro_stats(&st);
            printf("[%5.1fs] dives %-9lu goroutines %-8lu growths %-10" PRIu64
                   " copied %7.1f MiB  largest %5" PRIu64 " KiB  RSS %ld MiB\n",
                   t - t0, (unsigned long)AO_load(&dives_done),
                   (unsigned long)AO_load(&spawned), st.stack_growths,
                   (double)st.stack_bytes_copied / 1048576.0, st.stack_max / 1024,
                   rss_kb("VmRSS:") / 1024);
            fflush(stdout);
        }
    }
    return NULL;
}

static void main_fn(void *arg)
{
    struct goro_stats st;
    nhoppers = 2 * goro_procs();
    hopch = goro_chan_make(sizeof(struct hopmsg), 0);
    if (hopch == NULL) {
        fprintf(stderr, "stackgrow: cannot make a channel\n");
        exit(2);
    }
    goro_wg_init(&hop_wg);
    goro_wg_add(&hop_wg, nhoppers);
    for (int i = 0; i < nhoppers; i++)
        goro_go(hopper, NULL);
    goro_wg_init(&wg);
    goro_wg_add(&wg, opt.goroutines);
    double t0 = now_s();
    for (long i = 0; i < opt.goroutines; i++) {
        int rc = goro_go(diver, NULL);
        if (rc != 0) {
            fprintf(stderr, "stackgrow: goro_go: %s\n", strerror(-rc));
            exit(2);
        }
    }
    /* Progress and the clock run on a plain thread: with thousands of
     * runnable goroutines a sleeping main goroutine may wait its turn. */
    pthread_t pt;
    double *t0p = &t0;
    if (pthread_create(&pt, NULL, progress, t0p) != 0) {
        fprintf(stderr, "stackgrow: pthread_create failed\n");
        exit(2);
    }
    goro_wg_wait(&wg);
    AO_store(&stop, 1);
    pthread_join(pt, NULL);
    struct hopmsg m = { 0, NULL };
    for (int i = 0; i < nhoppers; i++)
        goro_chan_send(hopch, &m);
    goro_wg_wait(&hop_wg);
    goro_chan_free(hopch);
    double elapsed = now_s() - t0;
    goro_stats(&st);
    printf("\nstackgrow report (%.1f s, %d workers, seed %" PRIu64 ", max-stack %ld)\n",
           elapsed, goro_procs(), opt.seed, opt.max_stack);
    printf("  goroutines        %lu (%ld at a time)\n", (unsigned long)AO_load(&spawned),
           opt.goroutines);
    printf("  dives             %lu\n", (unsigned long)AO_load(&dives_done));
    printf("  growth events     %" PRIu64 "\n", st.stack_growths);
    printf("  bytes copied      %" PRIu64 " (%.1f MiB)\n", st.stack_bytes_copied,
           (double)st.stack_bytes_copied / 1048576.0);
    printf("  largest stack     %" PRIu64 " bytes\n", st.stack_max);
    printf("  growth time/event median %.2f us, p99 %.2f us\n",
           (double)goro__stack_growth_quantile(0.5) / 1e3,
           (double)goro__stack_growth_quantile(0.99) / 1e3);
    printf("  peak RSS          %ld MiB\n", rss_kb("VmHWM:") / 1024);
    printf("  %lu corruptions\n", (unsigned long)AO_load(&corruptions));
    fflush(stdout);
}

static long parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        v *= 1024 * 1024 * 1024, end++;
    if (*end != 0 || v <= 0) {
        fprintf(stderr, "stackgrow: bad size '%s'\n", s);
        exit(2);
    }
    return (long)v;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: stackgrow [options]\n"
        "\n"
        "Stress goro's growable stacks: goroutines recurse to random depths through\n"
        "frames of 64 B to 32 KiB that point at their own and their callers' locals,\n"
        "call snprintf and qsort on stack data, hold stack pointers in vector\n"
        "registers across possible guard faults, yield and hop between workers\n"
        "through channels mid-recursion, and check every value on the way back up.\n"
        "\n"
        "  -g, --goroutines N   goroutines alive at once (default 1000); each lives\n"
        "                       1-4 dives, then a fresh one takes its place\n"
        "  -w, --workers W      worker threads (GORO_PROCS; default: online CPUs)\n"
        "  -m, --max-stack SIZE deepest dive, in bytes of stack (K, M, G suffixes;\n"
        "                       default 1M); dives are skewed towards shallow ones\n"
        "  -s, --seed S         random seed (default: from the clock; printed)\n"
        "  -d, --duration SEC   run this long (default 10)\n"
        "  -n, --dives N        run until N dives completed instead of a duration\n"
        "  -q, --quiet          no progress lines, only the report\n"
        "      --hints          keep goro's start-size hints on (off by default:\n"
        "                       with them most goroutines start on a stack their\n"
        "                       function needed before and never grow)\n"
        "  -h, --help           this text\n"
        "\n"
        "Prints a progress line per second and a report: goroutines, dives, growth\n"
        "events, bytes copied, largest stack, growth time per event (median, p99),\n"
        "peak RSS and the number of corruptions. Exit status 0 with \"0 corruptions\",\n"
        "1 naming the first corruption found, 2 on a usage or setup error.\n"
        "Environment: GORO_STACK_MIN, GORO_STACK_MAX, GORO_GUARD, GORO_DEBUG as in\n"
        "the README (GORO_DEBUG=stackcheck makes a stale stack pointer fatal).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "goroutines", required_argument, NULL, 'g' },
        { "workers", required_argument, NULL, 'w' },
        { "max-stack", required_argument, NULL, 'm' },
        { "seed", required_argument, NULL, 's' },
        { "duration", required_argument, NULL, 'd' },
        { "dives", required_argument, NULL, 'n' },
        { "quiet", no_argument, NULL, 'q' },
        { "hints", no_argument, NULL, 'H' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    opt.seed = (uint64_t)time(NULL) * 2654435761u;
    bool hints = false;
    int c;
    while ((c = getopt_long(argc, argv, "g:w:m:s:d:n:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'g': opt.goroutines = atol(optarg); break;
        case 'w': opt.workers = atoi(optarg); break;
        case 'm': opt.max_stack = parse_size(optarg); break;
        case 's': opt.seed = strtoull(optarg, NULL, 0); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'n': opt.dives = atol(optarg); break;
        case 'q': opt.quiet = true; break;
        case 'H': hints = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || opt.goroutines <= 0 || opt.duration <= 0 || opt.dives < 0) {
        usage(stderr);
        return 2;
    }
    if (!hints) {
        /* every goroutine starts on one page and grows: the point here */
        const char *d = getenv("GORO_DEBUG");
        char buf[512];
        snprintf(buf, sizeof buf, "%s%snostackhint", d ? d : "", d && *d ? "," : "");
        setenv("GORO_DEBUG", buf, 1);
    }
    if (opt.workers > 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", opt.workers);
        setenv("GORO_PROCS", buf, 1);
    }
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
    int rc = goro_run(main_fn, NULL);
    if (rc != 0) {
        fprintf(stderr, "stackgrow: goro_run: %s\n", strerror(-rc));
        return 2;
    }
    if (AO_load(&corruptions) != 0) {
        fprintf(stderr, "stackgrow: CORRUPTION: %s\n", first_corruption);
        return 1;
    }
    return 0;
}
