/* tests/seccomp.h - a seccomp filter for the suites that check what goro
 * does where a system call is forbidden (test_lend, test_lazy,
 * test_switch). */
#ifndef GORO_TEST_SECCOMP_H
#define GORO_TEST_SECCOMP_H

#include <criterion/criterion.h>
#include <string.h>
#include <sys/uio.h>

#include "seccomp_filter.h"

/* This process and its children from now on get EPERM for system call
 * nr, as under Docker's default seccomp profile without CAP_SYS_PTRACE
 * (process_vm_readv, process_madvise, userfaultfd, ptrace). */
static inline void forbid_syscall(int nr)
{
    int rc = deny_syscalls(&nr, 1);
    if (rc != 0 && errno == ENOSYS)
        cr_skip_test("no seccomp here (Valgrind does not emulate it)");
    cr_assert_eq(rc, 0, "seccomp: %s", strerror(errno));
}

/* process_vm_readv forbidden, and checked to be */
static inline void forbid_process_vm_readv(void)
{
    forbid_syscall(__NR_process_vm_readv);
    long v = 1, w = 0;
    struct iovec l = { &w, sizeof w }, r = { &v, sizeof v };
    errno = 0;
    cr_assert_eq(syscall(SYS_process_vm_readv, (long)getpid(), &l, 1L, &r, 1L, 0L), -1);
    cr_assert_eq(errno, EPERM, "the filter does not bite");
}

#endif
