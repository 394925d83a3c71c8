/*
 * tests/tsan_criterion.c - linked into the test suites of ThreadSanitizer
 * builds only (make SAN=thread): lets Criterion run under TSan.
 *
 * Criterion's sandbox (BoxFort) maps its shared arena with MAP_FIXED at a
 * random address in 0x2000_0000_0000-0x7f00_0000_0000; ThreadSanitizer
 * refuses a fixed mapping outside its application ranges (most of that
 * window is its shadow), and Criterion stops with "Could not initialize
 * inheritable arena" (Snaipe/Criterion issue 274). This mmap64, which
 * Criterion's calls reach before TSan's own, moves such a request to a
 * free place of 0x5500_0000_0000-0x5550_0000_0000, an application range
 * below where PIE binaries load, without replacing anything there
 * (MAP_FIXED_NOREPLACE), and hands every call on to TSan's interceptor.
 * BoxFort accepts any address inside its window, and its child processes
 * map the arena at the address the parent got, which is then in range.
 * BoxFort first asks mincore whether the place it picked is free; TSan
 * reserves most of the window, so mincore here says "not mapped" there
 * (those requests are moved anyway).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

void *__interceptor_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __interceptor_mincore(void *addr, size_t len, unsigned char *vec);
int mincore(void *addr, size_t len, unsigned char *vec);

#define BXF_LO   0x200000000000ul   /* BoxFort's window */
#define BXF_HI   0x7f0000000000ul
#define MOVE_LO  0x550000000000ul   /* where such requests go */
#define MOVE_HI  0x555000000000ul

static int in_tsan_app(uintptr_t a)
{
    return (a >= 0x550000000000ul && a < 0x568000000000ul) ||
           (a >= 0x7e8000000000ul && a < 0x800000000000ul) || a < 0x008000000000ul;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    uintptr_t a = (uintptr_t)addr;
    if ((flags & MAP_FIXED) && a >= BXF_LO && a < BXF_HI && !in_tsan_app(a)) {
        static uintptr_t next = MOVE_LO;
        int fl = (flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE;
        for (uintptr_t p = next; p + len <= MOVE_HI; p += 1ul << 24) {
            void *r = __interceptor_mmap64((void *)p, len, prot, fl, fd, off);
            if (r != MAP_FAILED) {
                next = (p + len + (1ul << 24) - 1) & ~((1ul << 24) - 1);
                return r;
            }
            if (errno != EEXIST)
                return r;
        }
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __interceptor_mmap64(addr, len, prot, flags, fd, off);
}

int mincore(void *addr, size_t len, unsigned char *vec)
{
    uintptr_t a = (uintptr_t)addr;
    if (a >= BXF_LO && a < BXF_HI && !in_tsan_app(a)) {
        errno = ENOMEM;
        return -1;
    }
    return __interceptor_mincore(addr, len, vec);
}
