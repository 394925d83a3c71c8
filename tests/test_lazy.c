/*
 * test_lazy.c - lending (runtime/stack_lend.c) for a program linked
 * against libgoro.so without -z now: its first call of goro_chan_recv,
 * made after handing out a pointer to a local (README rule 5), runs the
 * dynamic linker's lazy binding on the goroutine's stack first (its
 * resolver saves the vector registers: kilobytes). At a depth where that
 * crosses the guard, the stack must borrow the guard's page, not move.
 * tests/lazy/lazy.c sweeps the depths, a child process each.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h" /* GORO_ANN_FIBERS */
#include "seccomp.h"

/* GORO_SRC_DIR and GORO_BUILD_DIR: the Makefile (TEST_DIRS) */

/* Run the sweep with GORO_DEBUG=debug; its depths moved and answers lost. */
static void sweep(const char *debug, int *moved, int *lost, int *n)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "cd %s && env -u LD_BIND_NOW GORO_DEBUG=%s timeout 60 %s/tests/lazy/lazy",
             GORO_SRC_DIR, debug, GORO_BUILD_DIR);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[256] = "";
    if (fgets(line, sizeof line, p) == NULL)
        line[0] = 0;
    int rc = pclose(p);
    cr_assert_eq(rc, 0, "%s: status %d (%s)", cmd, rc, line);
    cr_assert_eq(sscanf(line, "moved %d lost %d of %d depths", moved, lost, n), 3, "%s", line);
    cr_log_info("GORO_DEBUG=%s: %s", debug, line);
}

Test(lazy, a_lazily_bound_call_into_goro_borrows_at_the_edge, .timeout = 120)
{
    if (GORO_ANN_FIBERS)
        cr_skip_test("no lending in sanitizer builds");
    int moved, lost, n;
    /* without lending the sweep sees the bug: it reaches the edge */
    sweep("nostackhint,nolend", &moved, &lost, &n);
    cr_assert_gt(moved, 0, "the sweep never crossed the guard in the lazy binding");
    sweep("nostackhint", &moved, &lost, &n);
    cr_assert_eq(moved, 0, "the stack moved after the handoff at %d of %d depths", moved, n);
    cr_assert_eq(lost, 0, "%d answers lost", lost);
}

/* Where a seccomp profile forbids process_vm_readv (Docker's default),
 * the handler reads the PLT slots and entries through /proc/self/mem.
 * The filter is inherited by the sweep's processes. */
Test(lazy, a_lazily_bound_call_borrows_without_process_vm_readv, .timeout = 120)
{
    if (GORO_ANN_FIBERS)
        cr_skip_test("no lending in sanitizer builds");
    forbid_process_vm_readv();
    int moved, lost, n;
    sweep("nostackhint", &moved, &lost, &n);
    cr_assert_eq(moved, 0, "the stack moved after the handoff at %d of %d depths", moved, n);
    cr_assert_eq(lost, 0, "%d answers lost", lost);
}
