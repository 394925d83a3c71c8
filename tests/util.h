/* tests/util.h - small helpers shared by the Criterion suites. */
#ifndef GORO_TEST_UTIL_H
#define GORO_TEST_UTIL_H

#include <criterion/criterion.h>
#include <goro.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>

/* Run fn as main goroutine on `procs` workers (0: the default) and check
 * that the runtime started, ran and left no goroutine behind but main. */
static inline void run_on(int procs, goro_fn fn, void *arg)
{
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
