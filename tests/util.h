/* tests/util.h - small helpers shared by the Criterion suites. */
#ifndef GORO_TEST_UTIL_H
#define GORO_TEST_UTIL_H

#include <criterion/criterion.h>
#include <goro.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* ThreadSanitizer builds (make SAN=thread). TSan makes every goroutine
 * that has run a fiber, and counts fibers among its threads: past 8,128
 * alive at once it stops the program ("Thread limit exceeded"). A test
 * that keeps more goroutines alive at once runs TSAN_ALIVE(n) of them
 * there, its checks unchanged. And everything runs several times slower
 * (5-20x here): a bound that is a time budget (not one about timing
 * itself) is multiplied by SLOW. */
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif
/* Stacks are never shrunk or compacted in ThreadSanitizer builds
 * (stack_idle.c: its shadow of a stack would not follow the copy); ASan
 * builds do both (its shadow is reset as at a growth). */
#define TEST_COMPACTION (!TEST_TSAN)
#define TSAN_ALIVE_MAX 2000 /* a fiber is ~1 MB of TSan's memory */
#define TSAN_ALIVE(n) (TEST_TSAN && (n) > TSAN_ALIVE_MAX ? TSAN_ALIVE_MAX : (n))
#define SLOW (TEST_TSAN ? 10 : 1)
/* What a parked goroutine that never went deep holds, in pages: its one
 * page, and one more in the accounting (stack_space.c: the home counts).
 * In TSan builds a goroutine keeps 8 KiB free below rsp at every switch
 * for TSan's runtime (runtime/annotate.h, goro__ann_headroom), so one that
 * started on a page holds its home and the 32 KiB stack its first switch
 * grew it to, and start-size hints then learn that size: 12 pages. */
#define SMALL_PARKED_PAGES (TEST_TSAN ? 12 : 2)

/* Run fn as main goroutine on `procs` workers (0: the default) and check
 * that the runtime started, ran and left no goroutine behind but main. */
static inline void run_on(int procs, goro_fn fn, void *arg)
{
#ifdef TEST_PAGE_STACKS
    /* TSan builds start stacks at 16 KiB (stack_fault.c); the suites
     * about stack growth and its classes want the one page of the others */
    if (TEST_TSAN) {
        char pg[32];
        snprintf(pg, sizeof pg, "%ld", sysconf(_SC_PAGESIZE));
        setenv("GORO_STACK_MIN", pg, 0);
    }
#endif
    if (procs > 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", procs);
        setenv("GORO_PROCS", buf, 1);
    } else {
        unsetenv("GORO_PROCS");
    }
    cr_assert_eq(goro_run(fn, arg), 0, "goro_run failed");
}

/* A figure worth seeing in the test output. (cr_log_warn would do, but
 * Criterion 2.4 then exits 1 even when every test passed.) */
#define test_note(...)                                                       \
    do {                                                                     \
        fprintf(stderr, "[NOTE] " __VA_ARGS__);                              \
        fputc('\n', stderr);                                                 \
    } while (0)

static inline int64_t cpu_time_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Goroutines alive now, main included (from a goroutine). */
static inline uint64_t alive_now(void)
{
    struct goro_stats st;
    goro_stats(&st);
    return st.goroutines;
}

#endif
