/* tests/seccomp.h - a seccomp filter for the suites that check what goro
 * does where a system call is forbidden (test_lend, test_lazy,
 * test_switch). */
#ifndef GORO_TEST_SECCOMP_H
#define GORO_TEST_SECCOMP_H

#include <criterion/criterion.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* This process and its children from now on get EPERM for system call
 * nr, as under Docker's default seccomp profile without CAP_SYS_PTRACE
 * (process_vm_readv, process_madvise, userfaultfd, ptrace). No privilege
 * needed (no_new_privs). */
static inline void forbid_syscall(int nr)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
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
