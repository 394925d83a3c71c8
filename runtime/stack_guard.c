/*
 * stack_guard.c - the guard below every goroutine stack: how a range of
 * the stack region is made to fault on any access, and made usable again.
 *
 * What. Running off the bottom of a stack must trap, so that the fault
 * handler (stack_fault.c) can move the stack. The guard region is
 * GORO_STACK_GUARD bytes (64 KiB by default: stack_fault.c says why), and
 * it must cost no kernel mapping of its own: a million goroutines need a
 * million guards, and Linux allows 65,530 mappings (DESIGN.md "Stacks" 9).
 *
 * How. One of three mechanisms, chosen once per goro_run (GORO_GUARD
 * forces one):
 *   madvise   MADV_GUARD_INSTALL (Linux 6.13+): a page table marker that
 *             faults on any access, costs no mapping and survives
 *             MADV_DONTNEED; MADV_GUARD_REMOVE takes it away.
 *   uffd      the region's chunks are registered with a userfaultfd in
 *             missing mode with UFFD_FEATURE_SIGBUS; usable pages are
 *             filled with the shared zero page at once (UFFDIO_ZEROPAGE: no
 *             memory until written, and syscalls writing there never see a
 *             hole), guard pages never are, so touching one raises SIGBUS.
 *             Making a guard is dropping the pages (MADV_DONTNEED).
 *   mprotect  PROT_NONE: two kernel mappings per stack, so about 32,000
 *             goroutines under the default vm.max_map_count; at that limit
 *             goro_go fails with -ENOMEM after one message saying so.
 *
 * Invariants:
 *  - A page of the stack region that no stack owns carries no guard
 *    (stack_space.c removes a stack's guard when it gives the range back),
 *    so a range can be laid out anew with guard and usable parts anywhere.
 *  - Everything here is a few system calls and async-signal-safe: the
 *    fault handler calls it.
 */
#include "stack.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const guard_names[] = { "madvise", "uffd", "mprotect" };
static volatile AO_t maplimit_said; /* the mapping-limit message was printed */

const char *goro__stack_guard_name(void)
{
    return guard_names[goro__stk.guard];
}

/* Fill [p, p+len) with the zero page in a uffd-registered range. One
 * ioctl fills within one kernel mapping only (ENOENT past its end), and
 * the region's chunks stay separate mappings: a stack across a chunk
 * boundary is filled a chunk at a time (tools/stackgrow under
 * GORO_GUARD=uffd: "out of memory growing ... (No such file or
 * directory)"). */
int goro__uffd_fill(char *p, size_t len)
{
    while (len > 0) {
        size_t room = STK_CHUNK - ((uintptr_t)p & (STK_CHUNK - 1));
        size_t n = len < room ? len : room;
        struct uffdio_zeropage z = {
            .range = { .start = (uintptr_t)p, .len = n }, .mode = 0 };
        if (ioctl(goro__stk.uffd, UFFDIO_ZEROPAGE, &z) == 0) {
            p += n;
            len -= n;
            continue;
        }
        size_t done = z.zeropage > 0 ? (size_t)z.zeropage : 0;
        if (errno == EEXIST && done == 0)
            done = goro__stk.pg;            /* this page is there already */
        else if (errno != EAGAIN && errno != EEXIST)
            return -errno;
        p += done;
        len -= done;
    }
    return 0;
}

int goro__uffd_register(char *p, size_t len)
{
    struct uffdio_register r = {
        .range = { .start = (uintptr_t)p, .len = len },
        .mode = UFFDIO_REGISTER_MODE_MISSING };
    return ioctl(goro__stk.uffd, UFFDIO_REGISTER, &r) == 0 ? 0 : -errno;
}

/* Make [p, p+len) a guard: any access faults. Contents are lost
 * (except under mprotect). */
int goro__guard_on(char *p, size_t len)
{
    switch (goro__stk.guard) {
    case GUARD_MADVISE:
        return madvise(p, len, MADV_GUARD_INSTALL) == 0 ? 0 : -errno;
    case GUARD_UFFD:
        return madvise(p, len, MADV_DONTNEED) == 0 ? 0 : -errno;
    default:
        return mprotect(p, len, PROT_NONE) == 0 ? 0 : -errno;
    }
}

/* Undo goro__guard_on: [p, p+len) readable and writable (zeros, except
 * under mprotect). */
int goro__guard_off(char *p, size_t len)
{
    switch (goro__stk.guard) {
    case GUARD_MADVISE:
        return madvise(p, len, MADV_GUARD_REMOVE) == 0 ? 0 : -errno;
    case GUARD_UFFD:
        return goro__uffd_fill(p, len);
    default:
        return mprotect(p, len, PROT_READ | PROT_WRITE) == 0 ? 0 : -errno;
    }
}

void goro__guard_maplimit_message(void)
{
    if (goro__stk.guard != GUARD_MPROTECT)
        return;
    /* once per run: full so two workers cannot both print */
    if (!AO_compare_and_swap_full(&maplimit_said, 0, 1))
        return;
    char buf[400];
    long lim = 0;
    int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char t[32] = "";
        ssize_t n = read(fd, t, sizeof t - 1);
        if (n > 0)
            lim = strtol(t, NULL, 10);
        close(fd);
    }
    int n = snprintf(buf, sizeof buf,
                     "goro: cannot map another goroutine stack: the kernel's limit of "
                     "%ld memory mappings (vm.max_map_count) is reached. Stack guards "
                     "use mprotect here (no MADV_GUARD_INSTALL, no userfaultfd), which "
                     "costs two mappings per goroutine; goro_go returns -ENOMEM. "
                     "Raise vm.max_map_count or run on Linux 6.13+.\n", lim);
    if (n > 0 && write(2, buf, (size_t)n) < 0)
        return;
}

static bool madvise_guard_works(void)
{
    size_t pg = goro__stk.pg;
    char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = madvise(p, pg, MADV_GUARD_INSTALL) == 0;
    munmap(p, 2 * pg);
    return ok;
}

static int uffd_open(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
    if (ioctl(fd, UFFDIO_API, &api) != 0 || !(api.features & UFFD_FEATURE_SIGBUS) ||
        !(api.ioctls & (1ull << _UFFDIO_REGISTER))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The guard mechanism: GORO_GUARD forces one; else the best there is. */
void goro__guard_choose(void)
{
    const char *force = getenv("GORO_GUARD");
    int want = -1;
    if (force && *force) {
        for (int i = 0; i < 3; i++)
            if (strcmp(force, guard_names[i]) == 0)
                want = i;
        if (want < 0)
            fprintf(stderr, "goro: ignoring GORO_GUARD=%s (want madvise, uffd or mprotect)\n",
                    force);
    }
    maplimit_said = 0;
    goro__stk.uffd = -1;
    bool have_madvise = (want < 0 || want == GUARD_MADVISE) && madvise_guard_works();
    if (have_madvise) {
        goro__stk.guard = GUARD_MADVISE;
    } else {
        if (want < 0 || want == GUARD_UFFD)
            goro__stk.uffd = uffd_open();
        goro__stk.guard = goro__stk.uffd >= 0 ? GUARD_UFFD : GUARD_MPROTECT;
    }
    if (want >= 0 && want != goro__stk.guard)
        fprintf(stderr, "goro: GORO_GUARD=%s is not available here; using %s guards\n",
                guard_names[want], guard_names[goro__stk.guard]);
}

void goro__guard_fini(void)
{
    if (goro__stk.uffd >= 0)
        close(goro__stk.uffd);
    goro__stk.uffd = -1;
}
