/*
 * test_race.c - Go's -race for C: a program built with -fsanitize=thread
 * against a ThreadSanitizer build of goro (make SAN=thread) gets a race
 * report naming both goroutines and their stacks when two goroutines on
 * different workers write a variable without synchronization, and none
 * when a channel, a mutex or a WaitGroup orders the writes
 * (tests/race/race.c). Only ThreadSanitizer builds can run this suite: in
 * any other it is skipped, saying so (make check-all runs it).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* GORO_ANN_TSAN */

#ifndef GORO_BUILD_DIR
#define GORO_BUILD_DIR "build"
#endif
#ifndef GORO_SRC_DIR
#define GORO_SRC_DIR "."
#endif

static char out[1 << 16];

static int run_race(const char *mode)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd %s && GORO_PROCS=2 TSAN_OPTIONS=halt_on_error=0:exitcode=66 "
             "timeout 120 %s/tests/race/race %s 2>&1",
             GORO_SRC_DIR, GORO_BUILD_DIR, mode);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void need_tsan(void)
{
    if (!GORO_ANN_TSAN)
        cr_skip_test("ThreadSanitizer builds only: make SAN=thread BUILD=build-tsan test "
                     "(make check-all)");
}

Test(race, planted_race_is_reported_with_both_goroutines, .timeout = 180)
{
    need_tsan();
    int rc = run_race("race");
    cr_expect_eq(rc, 66, "exit %d, want TSan's 66:\n%s", rc, out);
    cr_expect(strstr(out, "WARNING: ThreadSanitizer: data race"), "no race report:\n%s", out);
    cr_expect(strstr(out, "Location is global 'shared'"), "not the planted variable:\n%s", out);
    /* both accesses' stacks, in the two goroutines' own functions */
    cr_expect(strstr(out, "in racer_a") || strstr(out, " racer_a "), "racer_a's stack:\n%s", out);
    cr_expect(strstr(out, "in racer_b") || strstr(out, " racer_b "), "racer_b's stack:\n%s", out);
    cr_expect(strstr(out, "write_shared"), "the writes:\n%s", out);
    /* the fibers are named after the goroutines (ids 2 and 3) */
    cr_expect(strstr(out, "'goroutine 2'") && strstr(out, "'goroutine 3'"),
              "goroutine names:\n%s", out);
    /* nothing in the runtime itself */
    cr_expect(strstr(out, "SUMMARY: ThreadSanitizer: data race tests/race/race.c") != NULL &&
                  strstr(out, "SUMMARY: ThreadSanitizer: data race runtime/") == NULL &&
                  strstr(out, "SUMMARY: ThreadSanitizer: data race netpoll/") == NULL,
              "a report outside race.c:\n%s", out);
}

static void clean(const char *mode)
{
    need_tsan();
    int rc = run_race(mode);
    cr_expect_eq(rc, 0, "%s: exit %d:\n%s", mode, rc, out);
    cr_expect(strstr(out, "ThreadSanitizer") == NULL, "%s: a report:\n%s", mode, out);
    cr_expect(strstr(out, "shared = 3000"), "%s: the program did not finish:\n%s", mode, out);
}

Test(race, channel_orders_the_writes, .timeout = 180) { clean("chan"); }
Test(race, mutex_orders_the_writes, .timeout = 180) { clean("mutex"); }
Test(race, waitgroup_orders_the_writes, .timeout = 180) { clean("wg"); }
