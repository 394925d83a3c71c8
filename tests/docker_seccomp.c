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
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DENY(nr)                                                  \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),              \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s command [argument ...]\n", argv[0]);
        return 2;
    }
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        DENY(__NR_process_vm_readv),
        DENY(__NR_process_vm_writev),
        DENY(__NR_process_madvise),
        DENY(__NR_userfaultfd),
        DENY(__NR_ptrace),
        DENY(__NR_kcmp),
        DENY(__NR_pidfd_getfd),
        DENY(__NR_io_uring_setup),
        DENY(__NR_perf_event_open),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        perror("docker_seccomp: seccomp");
        return 1;
    }
    execvp(argv[1], argv + 1);
    perror("docker_seccomp: exec");
    return 127;
}
