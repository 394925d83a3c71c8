/* tests/test_window.c - a goroutine's stack moves while the runtime holds
 * pointers to it.
 *
 * The rule (runtime/stack_fault.c): nothing outside a running goroutine's stack
 * may point into it, because any call may hit the guard and move the stack.
 * A blocking call that publishes a record on its stack (a channel waiter, a
 * timer, an I/O waiter, a helper job) before its goroutine has switched
 * away, or leaves one published after it runs again, breaks the rule in
 * that window. These tests put the blocking call at every depth of a fresh
 * one-page stack, 8 bytes apart, so that the stack grows in the window at
 * some depths (the tests count them), and check that nothing was lost or
 * left behind; GORO_DEBUG=stackcheck keeps the old stacks inaccessible, so
 * a stale pointer kills the test instead of corrupting memory quietly.
 *
 * Also here: frames whose size is known only at run time (VLA, alloca),
 * which under -fstack-clash-protection move rsp below the guard page
 * before they touch it.
 */
#include "util.h"
#include "internal.h" /* GORO_ANN_ASAN */
#include "stack.h"    /* goro__stk.compact */

#include <alloca.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

/* two pages of depths: the first growth lands in it; four under TSan,
 * whose stacks start at 16 KiB and grow at a switch with less than 8 KiB
 * left below rsp (runtime/annotate.h, goro__ann_headroom) */
#define SWEEP_BYTES (TEST_TSAN ? 16384 : 8192)
#define SWEEP_STEP 8

/* Every goroutine here must start on one page, so that its stack grows
 * at the depths swept: start-size hints stay off in this suite. */
static void stackcheck_on(bool on)
{
    /* nolend: goro's own code at the edge would borrow a page instead of
     * moving the stack (runtime/stack_lend.c), and these
     * sweeps are about the runtime's records surviving moves in the window */
    setenv("GORO_DEBUG", on ? "stackcheck,nostackhint,nolend" : "nostackhint,nolend", 1);
}

static void no_hints(void)
{
    stackcheck_on(false);
}

TestSuite(window, .init = no_hints);

static uint64_t growths(void)
{
    struct goro_stats s;
    goro_stats(&s);
    return s.stack_growths;
}

/* Call fn(arg) with `off` bytes of this stack used above it. */
static __attribute__((noinline)) void at_depth(int off, void (*fn)(void *), void *arg)
{
    volatile char pad[off + 1];
    memset((char *)pad, 0x5a, (size_t)off + 1);
    fn(arg);
    cr_assert_eq(pad[0], 0x5a, "frame above the call changed");
    cr_assert_eq(pad[off], 0x5a, "frame above the call changed");
}

struct sweep {
    int off;
    void (*fn)(void *);
    void *arg;
    volatile int parked;   /* set just before the blocking call */
    volatile int done;     /* set when the goroutine is about to exit */
    uint64_t grew;         /* stack growths during the blocking call */
};

static void sweep_g(void *p)
{
    struct sweep *s = p;
    at_depth(s->off, s->fn, s->arg);
    /* release: the results before done */
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
}

static void wait_done(struct sweep *s)
{
    while (!__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
        goro_sleep(5000);
}

/* Parked: set by the goroutine itself right before it blocks; then give it
 * time to finish the park (it runs on another worker, or after us). */
static void wait_parked(struct sweep *s)
{
    while (!__atomic_load_n(&s->parked, __ATOMIC_ACQUIRE))
        goro_yield();
    goro_sleep(20000);
}

/* ---------------------------------------------------------------------
 * select: the records of the cases that lose stay queued on their
 * channels, and the timer in the heap, after the goroutine runs again.
 * ------------------------------------------------------------------- */

static goro_chan *sc1, *sc2;

struct sel_arg {
    struct sweep *s;
    int64_t timeout;
    int got;
};

static __attribute__((noinline)) void do_select(void *p)
{
    struct sel_arg *a = p;
    int v1 = 0, v2 = 0;
    goro_case cs[2] = {
        { .ch = sc1, .op = GORO_RECV, .elem = &v1 },
        { .ch = sc2, .op = GORO_RECV, .elem = &v2 },
    };
    __atomic_store_n(&a->s->parked, 1, __ATOMIC_RELEASE);
    uint64_t g0 = growths();
    int r = goro_select(cs, 2, a->timeout);
    a->s->grew = growths() - g0;
    cr_assert_eq(r, 0, "select returned %d", r);
    cr_assert_eq(cs[0].result, 1);
    a->got = v1;
}

static long select_sweep(int64_t timeout)
{
    sc1 = goro_chan_make(sizeof(int), 0);
    sc2 = goro_chan_make(sizeof(int), 0);
    long in_window = 0;
    for (int off = 0; off < SWEEP_BYTES; off += SWEEP_STEP) {
        static struct sel_arg a; /* not on our stack: the goroutine holds it */
        a = (struct sel_arg){ .timeout = timeout };
        static struct sweep s;
        s = (struct sweep){ .off = off, .fn = do_select, .arg = &a };
        a.s = &s;
        cr_assert_eq(goro_go(sweep_g, &s), 0);
        wait_parked(&s);
        int v = 42;
        cr_assert_eq(goro_chan_send(sc1, &v), 0);
        wait_done(&s);
        in_window += s.grew > 0;
        cr_assert_eq(a.got, 42, "depth %d: select received %d", off, a.got);
        /* a record left queued on sc2 would take this value */
        int w = 7;
        cr_assert_eq(goro_chan_trysend(sc2, &w), -EAGAIN,
                     "depth %d: a select record was left on the other channel", off);
    }
    goro_chan_free(sc1);
    goro_chan_free(sc2);
    return in_window;
}

struct sweep_result {
    long in_window;
    uint64_t total;
};

static void select_main(void *p)
{
    struct sweep_result *r = p;
    uint64_t g0 = growths();
    r->in_window = select_sweep(-1) + select_sweep(10 * 1000000000LL);
    r->total = growths() - g0;
}

static void check_sweep(const char *what, struct sweep_result *r)
{
    test_note("%s: %lu growths; at %ld depths the stack grew inside the call", what,
              (unsigned long)r->total, r->in_window);
    /* without growth (GORO_STACK_MIN large) nothing to see */
    if (r->total > 0)
        cr_expect_gt(r->in_window, 0, "%s: no depth grew the stack in the window", what);
}

/* Run main_fn (a sweep) on procs workers and check what it counted. */
static void run_sweep(int procs, bool stackcheck, goro_fn main_fn, const char *what)
{
    stackcheck_on(stackcheck);
    struct sweep_result r = { 0 };
    run_on(procs, main_fn, &r);
    check_sweep(what, &r);
}

Test(window, select_stack_moves_after_wake, .timeout = 120)
{
    run_sweep(1, false, select_main, "select");
}

Test(window, select_stack_moves_after_wake_stackcheck, .timeout = 120)
{
    run_sweep(2, true, select_main, "select (stackcheck, 2 workers)");
}

/* ---------------------------------------------------------------------
 * goro_wait_fd with a timeout: the I/O waiter is queued on the
 * descriptor, and its timer armed, while the goroutine is on its way to
 * park; the timer stays armed after an event wakes it.
 * ------------------------------------------------------------------- */

static int wpipe[2];

struct wait_arg {
    struct sweep *s;
    int rc;
};

static __attribute__((noinline)) void do_wait(void *p)
{
    struct wait_arg *a = p;
    __atomic_store_n(&a->s->parked, 1, __ATOMIC_RELEASE);
    uint64_t g0 = growths();
    a->rc = goro_wait_fd(wpipe[0], GORO_READABLE, 10 * 1000000000LL);
    a->s->grew = growths() - g0;
}

static void wait_main(void *p)
{
    struct sweep_result *r = p;
    uint64_t g0 = growths();
    cr_assert_eq(pipe(wpipe), 0);
    for (int off = 0; off < SWEEP_BYTES; off += SWEEP_STEP) {
        static struct wait_arg a; /* not on our stack: the goroutine holds it */
        a = (struct wait_arg){ .rc = 1 };
        static struct sweep s;
        s = (struct sweep){ .off = off, .fn = do_wait, .arg = &a };
        a.s = &s;
        cr_assert_eq(goro_go(sweep_g, &s), 0);
        wait_parked(&s);
        char c = 'x';
        cr_assert_eq(write(wpipe[1], &c, 1), 1);
        wait_done(&s);
        r->in_window += s.grew > 0;
        cr_assert_eq(a.rc, 0, "depth %d: goro_wait_fd returned %d", off, a.rc);
        cr_assert_eq(read(wpipe[0], &c, 1), 1);
    }
    /* a timer left in the heap pointing into an old stack would fire here */
    goro_sleep(50000);
    close(wpipe[0]);
    close(wpipe[1]);
    r->total = growths() - g0;
}

Test(window, wait_fd_stack_moves_around_park, .timeout = 120)
{
    run_sweep(2, true, wait_main, "goro_wait_fd (stackcheck)");
}

/* ---------------------------------------------------------------------
 * goro_blocking: the job record is queued for the helper threads.
 * ------------------------------------------------------------------- */

static intptr_t slow_double(void *arg)
{
    usleep(200);
    return 2 * (intptr_t)arg;
}

struct blk_arg {
    struct sweep *s;
    intptr_t rc;
    int off;
};

static __attribute__((noinline)) void do_blocking(void *p)
{
    struct blk_arg *a = p;
    __atomic_store_n(&a->s->parked, 1, __ATOMIC_RELEASE);
    uint64_t g0 = growths();
    a->rc = goro_blocking(slow_double, (void *)(intptr_t)a->off);
    a->s->grew = growths() - g0;
}

static void blocking_main(void *p)
{
    struct sweep_result *r = p;
    uint64_t g0 = growths();
    for (int off = 0; off < SWEEP_BYTES; off += SWEEP_STEP) {
        static struct blk_arg a; /* not on our stack: the goroutine holds it */
        a = (struct blk_arg){ .rc = -1, .off = off };
        static struct sweep s;
        s = (struct sweep){ .off = off, .fn = do_blocking, .arg = &a };
        a.s = &s;
        cr_assert_eq(goro_go(sweep_g, &s), 0);
        wait_done(&s);
        r->in_window += s.grew > 0;
        cr_assert_eq(a.rc, 2 * off, "depth %d: goro_blocking returned %ld", off, (long)a.rc);
    }
    r->total = growths() - g0;
}

Test(window, blocking_job_stack_moves, .timeout = 120)
{
    run_sweep(2, true, blocking_main, "goro_blocking (stackcheck)");
}

/* ---------------------------------------------------------------------
 * Frames sized at run time. gcc's probe loop for a VLA probes a page
 * behind rsp, and the rest of the frame is probed after rsp moved, so
 * with a one-page guard rsp is below the guard when the probe hits it;
 * clang's loop keeps the frame's end in a register it compares with rsp.
 * ------------------------------------------------------------------- */

static __attribute__((noinline)) int vla_frame(size_t n, unsigned seed)
{
    volatile unsigned char b[n];
    for (size_t i = 0; i < n; i += 61)
        b[i] = (unsigned char)(seed + i);
    b[n - 1] = (unsigned char)seed;
    int bad = 0;
    for (size_t i = 0; i < n - 1; i += 61)
        bad |= b[i] != (unsigned char)(seed + i);
    return bad | (b[n - 1] != (unsigned char)seed);
}

static __attribute__((noinline)) int alloca_frame(size_t n, unsigned seed)
{
    volatile unsigned char *b = alloca(n);
    for (size_t i = 0; i < n; i += 61)
        b[i] = (unsigned char)(seed + i);
    b[n - 1] = (unsigned char)seed;
    int bad = 0;
    for (size_t i = 0; i < n - 1; i += 61)
        bad |= b[i] != (unsigned char)(seed + i);
    return bad | (b[n - 1] != (unsigned char)seed);
}

struct vla_arg {
    size_t n;
    int bad;
};

static goro_wg vla_wg;

static void vla_g(void *p)
{
    struct vla_arg *a = p;
    a->bad = vla_frame(a->n, (unsigned)a->n) | alloca_frame(a->n, (unsigned)a->n + 1) << 1;
    goro_wg_done(&vla_wg); /* orders the write before main's read (TSan) */
}

/* frames of 1 byte to VLA_MAX: three pages, past a one-page stack; five
 * under TSan, past its 16 KiB first stacks (16 bytes apart there: fewer
 * goroutines alive, util.h) */
#define VLA_MAX (TEST_TSAN ? 5 * 4096 : 3 * 4096)
#define VLA_STEP (TEST_TSAN ? 16 : 8)
#define SIZES (VLA_MAX / VLA_STEP)

static void vla_main(void *p)
{
    struct sweep_result *r = p;
    uint64_t g0 = growths();
    static struct vla_arg args[SIZES];
    goro_wg_init(&vla_wg);
    goro_wg_add(&vla_wg, SIZES);
    for (int i = 0; i < SIZES; i++) {
        args[i] = (struct vla_arg){ .n = 1 + (size_t)i * VLA_STEP + (size_t)(i % 7) };
        cr_assert_eq(goro_go(vla_g, &args[i]), 0);
    }
    goro_wg_wait(&vla_wg);
    while (alive_now() > 1)
        goro_sleep(1000);
    for (int i = 0; i < SIZES; i++)
        cr_assert_eq(args[i].bad, 0, "%zu-byte %s frame corrupted", args[i].n,
                     args[i].bad & 1 ? "VLA" : "alloca");
    r->total = growths() - g0;
}

Test(window, vla_and_alloca_frames_past_the_guard, .timeout = 60)
{
    struct sweep_result r = { 0 };
    run_on(2, vla_main, &r);
    test_note("VLA and alloca frames of 1 B to %d KiB: %lu growths", VLA_MAX / 1024,
              (unsigned long)r.total);
    cr_expect_gt(r.total, 0, "no frame grew the stack: nothing was tested");
}

/* ---------------------------------------------------------------------
 * A derived pointer in the faulting instruction: base + index * 8 lands
 * on the stack (in the guard), but the base register itself lies pages
 * below it, as compilers emit for loops over a[h + i].
 * ------------------------------------------------------------------- */

static volatile uint64_t derived_k = 4096; /* 32 KiB: far below the guard */

static __attribute__((noinline)) int derived_write(uint64_t v)
{
    volatile uint64_t arr[256]; /* the write below is its first touch */
    uint64_t k = derived_k;
    uintptr_t base = (uintptr_t)&arr[0] - k * 8;
    __asm__ __volatile__("movq %[v], (%[b],%[k],8)"
                         :
                         : [v] "r"(v), [b] "r"(base), [k] "r"(k)
                         : "memory");
    return arr[0] != v;
}

struct derived_arg {
    struct sweep *s;
    int bad;
};

static __attribute__((noinline)) void do_derived(void *p)
{
    struct derived_arg *a = p;
    uint64_t g0 = growths();
    a->bad = derived_write(0x600df00dULL + (uint64_t)a->s->off);
    a->s->grew = growths() - g0;
}

static void derived_main(void *p)
{
    struct sweep_result *r = p;
    uint64_t g0 = growths();
    for (int off = 0; off < SWEEP_BYTES; off += SWEEP_STEP) {
        static struct derived_arg a;
        static struct sweep s;
        a = (struct derived_arg){ .bad = -1 };
        s = (struct sweep){ .off = off, .fn = do_derived, .arg = &a };
        a.s = &s;
        cr_assert_eq(goro_go(sweep_g, &s), 0);
        wait_done(&s);
        r->in_window += s.grew > 0;
        cr_assert_eq(a.bad, 0, "depth %d: the write through a derived pointer went astray", off);
    }
    r->total = growths() - g0;
}

/* Under AddressSanitizer derived_write's prologue writes its frame's
 * header (ASan's frame description) before the asm store, so the guard is
 * always hit there, by a plain store: the derived base never meets the
 * guard, and only the writes' correctness is checked. */
static void run_derived(int procs, bool stackcheck, const char *what)
{
#if GORO_ANN_ASAN
    stackcheck_on(stackcheck);
    struct sweep_result r = { 0 };
    run_on(procs, derived_main, &r);
    test_note("%s: %lu growths; at %ld depths inside the call (ASan build: not checked)",
              what, (unsigned long)r.total, r.in_window);
#else
    run_sweep(procs, stackcheck, derived_main, what);
#endif
}

Test(window, derived_base_register_below_the_guard, .timeout = 60)
{
    run_derived(1, false, "derived base register");
}

Test(window, derived_base_register_below_the_guard_stackcheck, .timeout = 60)
{
    run_derived(2, true, "derived base register (stackcheck)");
}

/* ---------------------------------------------------------------------
 * The C library's own large frames. Debian's glibc is not built with
 * -fstack-clash-protection: fprintf to an unbuffered stream goes through a
 * helper with an 8.3 KiB frame whose first stores are at its top and then
 * at its bottom, 8 KiB below; with a one-page guard the second lands in the
 * stack below. Canary goroutines park with a canary frame at the top of
 * their stacks while a sweep calls fprintf at every depth of fresh stacks;
 * then every canary is checked.
 * ------------------------------------------------------------------- */

#define CANARIES 256
#define CANARY_WORDS 480 /* most of the canary goroutine's first page */

static goro_chan *canary_release;
static volatile int canary_bad;

static void canary_g(void *arg)
{
    uint64_t words[CANARY_WORDS];
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < CANARY_WORDS; i++)
        words[i] = seed ^ (uint64_t)i;
    int token;
    goro_chan_recv(canary_release, &token);
    for (int i = 0; i < CANARY_WORDS; i++)
        if (((volatile uint64_t *)words)[i] != (seed ^ (uint64_t)i))
            canary_bad++;
}

static FILE *unbuffered;

static __attribute__((noinline)) void do_fprintf(void *p)
{
    struct sweep *s = p;
    fprintf(unbuffered, "%d %s %.3f\n", s->off, "window", (double)s->off / 7.0);
}

static void glibc_main(void *p)
{
    struct sweep_result *r = p;
    uint64_t g0 = growths();
    unbuffered = fopen("/dev/null", "w");
    cr_assert_not_null(unbuffered);
    setvbuf(unbuffered, NULL, _IONBF, 0);
    canary_release = goro_chan_make(sizeof(int), 0);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < CANARIES; i++)
            cr_assert_eq(goro_go(canary_g, (void *)(intptr_t)(i + 1)), 0);
        goro_sleep(1000000); /* all parked */
        for (int off = 0; off < SWEEP_BYTES; off += 4 * SWEEP_STEP) {
            static struct sweep s;
            s = (struct sweep){ .off = off + round * SWEEP_STEP, .fn = do_fprintf };
            s.arg = &s;
            cr_assert_eq(goro_go(sweep_g, &s), 0);
            wait_done(&s);
        }
        int token = 0;
        for (int i = 0; i < CANARIES; i++)
            goro_chan_send(canary_release, &token);
        while (alive_now() > 1)
            goro_sleep(1000);
    }
    fclose(unbuffered);
    goro_chan_free(canary_release);
    r->total = growths() - g0;
}

Test(window, glibc_frames_larger_than_a_page, .timeout = 60)
{
    struct sweep_result r = { 0 };
    run_on(1, glibc_main, &r);
    test_note("fprintf on an unbuffered stream at every depth: %lu growths, %d canary words hit",
              (unsigned long)r.total, canary_bad);
    cr_assert_eq(canary_bad, 0, "a C library frame wrote past the guard into another stack");
}

/* ---------------------------------------------------------------------
 * goro_cond_wait, goro_sem_acquire (with and without a timeout) and
 * goro_rwmutex_rlock: the waiter record and its timer live on the
 * waiting goroutine's stack; they are published in the park commit, and
 * the waker unlinks the record and deletes the timer before it readies
 * the goroutine. goro_rwmutex queues G records, never the stack, but its
 * writer hand-off is swept too.
 * ------------------------------------------------------------------- */

enum { VW_COND, VW_SEM, VW_RWMUTEX };

static goro_mutex vw_mu;
static goro_cond vw_cond;
static goro_sem vw_sem;
static goro_rwmutex vw_rw;

struct vw_arg {
    struct sweep *s;
    int kind;
    int64_t timeout;
    int rc;
};

static __attribute__((noinline)) void do_vocab_wait(void *p)
{
    struct vw_arg *a = p;
    uint64_t g0 = 0;
    switch (a->kind) {
    case VW_COND:
        goro_mutex_lock(&vw_mu);
        __atomic_store_n(&a->s->parked, 1, __ATOMIC_RELEASE);
        g0 = growths();
        a->rc = goro_cond_wait(&vw_cond, &vw_mu, a->timeout);
        a->s->grew = growths() - g0;
        goro_mutex_unlock(&vw_mu);
        break;
    case VW_SEM:
        __atomic_store_n(&a->s->parked, 1, __ATOMIC_RELEASE);
        g0 = growths();
        a->rc = goro_sem_acquire(&vw_sem, 1, a->timeout);
        a->s->grew = growths() - g0;
        if (a->rc == 0)
            goro_sem_release(&vw_sem, 1);
        break;
    case VW_RWMUTEX:
        __atomic_store_n(&a->s->parked, 1, __ATOMIC_RELEASE);
        g0 = growths();
        a->rc = goro_rwmutex_rlock(&vw_rw);
        a->s->grew = growths() - g0;
        goro_rwmutex_runlock(&vw_rw);
        break;
    }
}

static long vocab_sweep(int kind, int64_t timeout)
{
    long in_window = 0;
    for (int off = 0; off < SWEEP_BYTES; off += SWEEP_STEP) {
        static struct vw_arg a; /* not on our stack: the goroutine holds it */
        a = (struct vw_arg){ .kind = kind, .timeout = timeout, .rc = 1 };
        static struct sweep s;
        s = (struct sweep){ .off = off, .fn = do_vocab_wait, .arg = &a };
        a.s = &s;
        if (kind == VW_SEM)
            cr_assert_eq(goro_sem_acquire(&vw_sem, 1, -1), 0);
        if (kind == VW_RWMUTEX)
            cr_assert_eq(goro_rwmutex_lock(&vw_rw), 0);
        cr_assert_eq(goro_go(sweep_g, &s), 0);
        wait_parked(&s);
        switch (kind) {
        case VW_COND:
            goro_mutex_lock(&vw_mu);
            if (off % 16)
                goro_cond_signal(&vw_cond);
            else
                goro_cond_broadcast(&vw_cond);
            goro_mutex_unlock(&vw_mu);
            break;
        case VW_SEM:
            goro_sem_release(&vw_sem, 1);
            break;
        case VW_RWMUTEX:
            goro_rwmutex_unlock(&vw_rw);
            break;
        }
        wait_done(&s);
        in_window += s.grew > 0;
        cr_assert_eq(a.rc, 0, "kind %d depth %d: returned %d", kind, off, a.rc);
    }
    /* a timer left in the heap pointing into an old stack would fire here */
    if (timeout > 0)
        goro_sleep(50000);
    return in_window;
}

static void vocab_main(void *p)
{
    struct sweep_result *r = p;
    uint64_t g0 = growths();
    goro_mutex_init(&vw_mu);
    goro_cond_init(&vw_cond);
    goro_sem_init(&vw_sem, 1);
    goro_rwmutex_init(&vw_rw);
    r->in_window = vocab_sweep(VW_COND, -1) + vocab_sweep(VW_COND, 10 * 1000000000LL) +
                   vocab_sweep(VW_SEM, -1) + vocab_sweep(VW_SEM, 10 * 1000000000LL) +
                   vocab_sweep(VW_RWMUTEX, -1);
    r->total = growths() - g0;
}

Test(window, cond_sem_rwmutex_waiters_stack_moves, .timeout = 240)
{
    run_sweep(1, false, vocab_main, "cond, sem, rwmutex");
}

Test(window, cond_sem_rwmutex_waiters_stack_moves_stackcheck, .timeout = 240)
{
    run_sweep(2, true, vocab_main, "cond, sem, rwmutex (stackcheck, 2 workers)");
}

/* ---------------------------------------------------------------------
 * A parker's stack does no one else's work.
 *
 * A hands B a pointer to its local, readies B and parks waiting for the
 * answer, which B writes through the pointer (README rule 5: fine while
 * the owner waits for the answer). With one worker, B runs next, on A's
 * worker, and its stack may need work first: a shrink (it grew, then
 * parked 10 ms and more) or a restore (compacted). That work once ran on
 * A's stack, which A had just left: at the depths where it crossed A's
 * guard (a shrink takes the allocator's lock and copies, a restore makes
 * system calls and frees, and the first call of a libc function went
 * through the dynamic linker), A's stack grew and moved after it had
 * handed out the pointer, and B's answer went to the old stack, lost.
 * Swept over A's depths, as above, twice. With lending (the default:
 * runtime/stack_lend.c), A's own way into the park borrows
 * its guard's top page where it crosses it: A's stack must not move at
 * any depth, the answer must always be there, and every lent page must be
 * guarded again by the end. With GORO_DEBUG=nolend, A's own way in still
 * moves it at 12-14 depths (the note counts them); the answer must be
 * there wherever A did not move, and the depths where it moved must be
 * those of A's own way in, whatever B needs. That way varies by a frame
 * or so with B's needs (resume_idle's) and with the scheduler's round
 * events, so a few depths of slack: B's work on A's stack, as it was,
 * moved it at hundreds of bytes of depths (and the runtime crashed: a
 * move of A in the middle of B's shrink).
 * ------------------------------------------------------------------- */

enum { NX_PLAIN, NX_SHRINK, NX_RESTORE };
#define NX_BYTES 4096 /* a one-page home's depths */
#define NX_STEP 16

static goro_wg nx_bwg;            /* B waits on it: A's done readies B
                                     without touching B's stack */
static goro_chan *nx_ach;         /* B -> A: the answer is in */
static int64_t *volatile nx_pub;  /* A's local, handed to B */
static G *volatile nx_bg;         /* B, for the restore case's wait */
static G *volatile nx_ag;         /* A, whose row B looks at */
static volatile uint32_t nx_row0; /* A's stack's row at the handoff */
static volatile bool nx_moved;    /* A's stack moved before the answer */
static volatile int nx_bparked;

struct nx {
    int off;
    int kind;
    bool moved;   /* A's stack moved while A waited */
    bool landed;  /* B's answer was there */
};

static __attribute__((noinline)) void nx_deep(void)
{
    volatile char big[32 * 1024];
    memset((char *)big, 1, sizeof big);
    __asm__ volatile("" : : "r"(big) : "memory");
}

/* A 3 KiB frame: at the depths swept, partly below lo, in the lent page
 * (where none was lent, its first store there grows the stack); filled,
 * then a growth below it, then checked. */
static __attribute__((noinline)) bool nx_over_the_edge(void)
{
    volatile uint64_t a[384];
    for (int i = 0; i < 384; i++)
        a[i] = 0x5eed0000u + (uint64_t)i;
    nx_deep();
    for (int i = 0; i < 384; i++)
        if (a[i] != 0x5eed0000u + (uint64_t)i)
            return false;
    return true;
}

static void nx_b(void *arg)
{
    struct nx *x = arg;
    if (x->kind == NX_SHRINK)
        nx_deep(); /* grown to 64 KiB; 4x its use at the park: a shrink is due */
    nx_bg = goro__self();
    __atomic_store_n(&nx_bparked, 1, __ATOMIC_RELEASE);
    goro_wg_wait(&nx_bwg);
    /* A is parked: its row now says whether it moved in the window (a
     * shrink when A runs again is allowed: the answer is in by then) */
    nx_moved = (uint32_t)((uintptr_t)nx_ag->stack.hi >> 32) != nx_row0;
    *nx_pub = 42;
    int one = 1;
    cr_assert_eq(goro_chan_send(nx_ach, &one), 0);
}

static __attribute__((noinline)) void nx_a_body(void *p)
{
    struct nx *x = p;
    int64_t word = 0;
    /* its row, not the address: relocation would rewrite a copy of hi */
    nx_ag = goro__self();
    nx_row0 = (uint32_t)((uintptr_t)goro__self()->stack.hi >> 32);
    nx_pub = &word;
    goro_wg_done(&nx_bwg); /* B runnable; A carries on (one worker) */
    int got = 0;
    cr_assert_eq(goro_chan_recv(nx_ach, &got), 1); /* A parks: B runs */
    x->moved = nx_moved;
    x->landed = *(volatile int64_t *)&word == 42;
    /* and then deeper: values in the lent page (if it was lent), then a
     * growth, which must copy them too (from the lent page down) */
    x->landed = x->landed && nx_over_the_edge() && *(volatile int64_t *)&word == 42;
}

static void nx_a(void *p)
{
    struct nx *x = p;
    at_depth(x->off, nx_a_body, x);
    __atomic_store_n(&nx_bparked, 2, __ATOMIC_RELEASE); /* A is done */
}

/* One round at A's depth off, B needing `kind`. */
static void nx_round(struct nx *x)
{
    goro_wg_init(&nx_bwg);
    goro_wg_add(&nx_bwg, 1);
    nx_bparked = 0;
    nx_bg = NULL;
    cr_assert_eq(goro_go(nx_b, x), 0);
    while (!__atomic_load_n(&nx_bparked, __ATOMIC_ACQUIRE))
        goro_yield();
    if (x->kind == NX_SHRINK)
        goro_sleep(15 * 1000000); /* parked long enough for a shrink */
    if (x->kind == NX_RESTORE)
        for (int i = 0; i < 2000 && g_cstate_load(nx_bg) != C_COMPACTED; i++)
            goro_sleep(1000000);
    if (x->kind == NX_RESTORE)
        cr_assert_eq(g_cstate_load(nx_bg), C_COMPACTED, "B was not compacted");
    cr_assert_eq(goro_go(nx_a, x), 0);
    while (__atomic_load_n(&nx_bparked, __ATOMIC_ACQUIRE) != 2)
        goro_sleep(1000);
    goro_sleep(1000); /* both gone */
}

struct nx_result {
    int kind;
    long moved_plain, moved_kind, lost;
    uint64_t work; /* shrinks or restores B needed */
    uint64_t lends, unlends;
    const char *skip;   /* B's work is off here: why */
};

static void nx_main(void *p)
{
    struct nx_result *r = p;
    if (r->kind == NX_RESTORE && !goro__stk.compact) {
        r->skip = "compaction is off here (it needs madvise guards)";
        return;
    }
    if (r->kind == NX_SHRINK && !goro__stk.shrink) {
        r->skip = "shrinking is off here (ThreadSanitizer, Valgrind)";
        return;
    }
    nx_ach = goro_chan_make(sizeof(int), 0);
    struct goro_stats s0, s1;
    goro_stats(&s0);
    uint64_t l0 = AO_load(&goro__ctr.stack_lends);
    for (int off = 0; off < NX_BYTES; off += NX_STEP) {
        static struct nx plain, other; /* not on our stack: A and B hold them */
        plain = (struct nx){ .off = off, .kind = NX_PLAIN };
        other = (struct nx){ .off = off, .kind = r->kind };
        nx_round(&plain);
        nx_round(&other);
        r->moved_plain += plain.moved;
        r->moved_kind += other.moved;
        r->lost += (!plain.moved && !plain.landed) + (!other.moved && !other.landed);
    }
    goro_stats(&s1);
    r->work = r->kind == NX_SHRINK ? s1.stack_shrinks - s0.stack_shrinks
                                   : s1.stack_compactions - s0.stack_compactions;
    r->lends = AO_load(&goro__ctr.stack_lends) - l0;
    goro_chan_free(nx_ach);
}

/* lend: goro's own code may borrow the guard's top page (the default);
 * else GORO_DEBUG=nolend, as before lending: the parker's own way into the
 * park moves its stack at the last ~200 bytes of depths. */
static void nx_run(int kind, bool lend)
{
    struct nx_result r = { .kind = kind };
    setenv("GORO_DEBUG", lend ? "nostackhint" : "nostackhint,nolend", 1);
    uint64_t u0 = AO_load(&goro__ctr.stack_unlends);
    run_on(1, nx_main, &r);
    r.unlends = AO_load(&goro__ctr.stack_unlends) - u0;
    no_hints();
    if (r.skip)
        cr_skip_test("%s", r.skip);
    test_note("%s%s: A's stack moved at %ld of %d depths with B plain, %ld with B needing "
              "work (%llu times); %llu guard pages lent, %llu guarded again",
              kind == NX_SHRINK ? "shrink" : "restore", lend ? "" : " (nolend)", r.moved_plain,
              NX_BYTES / NX_STEP, r.moved_kind, (unsigned long long)r.work,
              (unsigned long long)r.lends, (unsigned long long)r.unlends);
    /* (a shrink is due after 10 ms by the worker's coarse clock: now and
     * then one B is resumed just short of it) */
    cr_assert_geq(r.work, (uint64_t)(NX_BYTES / NX_STEP) * 3 / 4,
                  "B's stack hardly needed work: proves nothing");
    cr_assert_eq(r.lost, 0, "%ld answers lost on a stack that did not move", r.lost);
    if (lend && !GORO_ANN_FIBERS) {
        /* goro's own code borrows a page at the edge: no depth moves */
        cr_assert_eq(r.moved_plain + r.moved_kind, 0, "A's stack moved after the handoff at %ld depths",
                     r.moved_plain + r.moved_kind);
        cr_assert_gt(r.lends, 0, "no page lent: the sweep never reached the edge");
        cr_assert_eq(r.unlends, r.lends, "lent guard pages left unguarded at the end");
    } else {
        if (!GORO_ANN_FIBERS) /* (sanitizer builds' stacks are larger than the sweep) */
            cr_assert_gt(r.moved_plain, 0, "never moved in the window: proves nothing");
        cr_assert_leq(r.moved_kind, r.moved_plain + 4,
                      "A's stack moved at %ld depths more because of B's work",
                      r.moved_kind - r.moved_plain);
    }
}

Test(window, parker_stack_does_not_carry_the_next_shrink, .timeout = 120)
{
    nx_run(NX_SHRINK, false);
    nx_run(NX_SHRINK, true);
}

Test(window, parker_stack_does_not_carry_the_next_restore, .timeout = 120)
{
    if (!TEST_COMPACTION || GORO_ANN_ASAN)
        cr_skip_test("no compaction in sanitizer builds' stack tests");
    setenv("GORO_COMPACT_AFTER", "0", 1);
    nx_run(NX_RESTORE, false);
    nx_run(NX_RESTORE, true);
    unsetenv("GORO_COMPACT_AFTER");
}

/* ---------------------------------------------------------------------
 * A stack whose guard page is lent is not compacted: goro's frames on the
 * way into the park may lie in that page, outside the range compaction
 * guards, where a waker's write would not fault and the restore would
 * overwrite it (runtime/stack_idle.c, compact). With GORO_COMPACT_AFTER=0
 * a goroutine parks at every depth near the end of its one-page stack;
 * where its park borrowed the page, it must stay uncompacted until woken.
 * ------------------------------------------------------------------- */

static goro_chan *lc_ch;
static G *volatile lc_g;
static volatile int lc_state; /* 1: about to park; 2: done */

static __attribute__((noinline)) void lc_body(void *p)
{
    (void)p;
    int64_t got = 0;
    lc_g = goro__self();
    __atomic_store_n(&lc_state, 1, __ATOMIC_RELEASE);
    cr_assert_eq(goro_chan_recv(lc_ch, &got), 1);
    cr_assert_eq(got, 7);
}

static void lc_a(void *p)
{
    at_depth((int)(intptr_t)p, lc_body, NULL);
    __atomic_store_n(&lc_state, 2, __ATOMIC_RELEASE);
}

struct lc_result {
    long lent, compacted, both;
};

static void lc_main(void *p)
{
    struct lc_result *r = p;
    if (!goro__stk.compact || !goro__stk.lend) {
        r->lent = -1;
        return;
    }
    lc_ch = goro_chan_make(sizeof(int64_t), 0);
    for (int off = 3200; off < NX_BYTES; off += 8) {
        lc_state = 0;
        cr_assert_eq(goro_go(lc_a, (void *)(intptr_t)off), 0);
        while (__atomic_load_n(&lc_state, __ATOMIC_ACQUIRE) != 1)
            goro_yield();
        goro_sleep(5 * 1000000); /* parked: the pass has looked at it */
        bool lent = lc_g->stack.flags & GORO_STACK_LENT;
        bool compacted = g_cstate_load(lc_g) != C_NONE;
        r->lent += lent;
        r->compacted += compacted;
        r->both += lent && compacted;
        int64_t v = 7;
        cr_assert_eq(goro_chan_send(lc_ch, &v), 0);
        while (__atomic_load_n(&lc_state, __ATOMIC_ACQUIRE) != 2)
            goro_sleep(1000);
    }
    goro_chan_free(lc_ch);
}

Test(window, lent_stack_is_not_compacted, .timeout = 60)
{
    if (!TEST_COMPACTION || GORO_ANN_FIBERS)
        cr_skip_test("no compaction or no lending in sanitizer builds");
    setenv("GORO_DEBUG", "nostackhint", 1);
    setenv("GORO_COMPACT_AFTER", "0", 1);
    struct lc_result r = { 0 };
    run_on(1, lc_main, &r);
    unsetenv("GORO_COMPACT_AFTER");
    no_hints();
    if (r.lent < 0)
        cr_skip_test("compaction or lending is off here");
    test_note("parked near the edge: %ld with the guard page lent, %ld compacted, %ld both",
              r.lent, r.compacted, r.both);
    cr_assert_gt(r.lent, 0, "no park borrowed the page: proves nothing");
    cr_assert_gt(r.compacted, 0, "nothing compacted: proves nothing");
    cr_assert_eq(r.both, 0, "a stack with its guard page lent was compacted");
}
