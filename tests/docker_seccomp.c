/*
 * docker_seccomp.c - run a command under a seccomp filter like the one
 * Docker applies by default to a container without CAP_SYS_PTRACE, as far
 * as goro and its tests are concerned: EPERM for the system calls below,
 * everything else allowed. `make seccomp` runs every suite under it.
 *
 * Why. goro falls back when a system call is forbidden (process_vm_readv:
 * lending reads /proc/self/mem; process_madvise: stacks carved one at a
 * time; userfaultfd: mprotect guards), and those paths run nowhere else.
 * Under this filter the suites found a spawn's failed process_madvise
 * leaking EPERM into the spawner's errno, and lending losing answers.
 *
 * Docker's profile (moby's profiles/seccomp/default.json) allows kcmp,
 * pidfd_getfd, process_madvise, process_vm_readv, process_vm_writev and
 * ptrace only with CAP_SYS_PTRACE, userfaultfd likewise, and does not
 * allow io_uring or perf_event_open.
 */
#include <stdio.h>

#include "seccomp_filter.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s command [argument ...]\n", argv[0]);
        return 2;
    }
    static const int deny[] = {
        __NR_process_vm_readv, __NR_process_vm_writev, __NR_process_madvise,
        __NR_userfaultfd,      __NR_ptrace,            __NR_kcmp,
        __NR_pidfd_getfd,      __NR_io_uring_setup,    __NR_perf_event_open,
    };
    if (deny_syscalls(deny, sizeof deny / sizeof deny[0]) != 0) {
        perror("docker_seccomp: seccomp");
        return 1;
    }
    execvp(argv[1], argv + 1);
    perror("docker_seccomp: exec");
    return 127;
}
