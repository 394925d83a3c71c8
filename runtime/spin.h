/*
 * spin.h - the small spinlock under channels, select and the Mutex queue.
 *
 * A test-and-test-and-set lock on one AO_t word. Holders never park and never
 * call anything that can block while they hold it (a channel lock is handed
 * across a context switch only through goro__park's unlock function, which
 * releases it on the next context at once), so critical sections are a few
 * dozen instructions and a futex would only add syscalls. A waiter backs off
 * exponentially between looks (spin.c says why: two threads fighting over a
 * busy channel), and after a while yields the CPU: the holder may be an OS
 * thread that the kernel descheduled (two cores here, shared with other
 * processes).
 *
 * Rejected: pthread_mutex_t (a syscall on contention, and 40 bytes);
 * AO_TS_t with AO_test_and_set (no plain load to spin on without writing the
 * cache line, which a TTAS lock needs).
 */
#ifndef GORO_SPIN_H
#define GORO_SPIN_H

#include "internal.h"
#include <sched.h>

typedef volatile AO_t goro__spin;   /* 0: free, 1: held */

/* The contended path (spin.c), out of line. */
void goro__spin_lock_slow(goro__spin *l) GORO_HIDDEN;

static inline void goro__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

static inline void goro__spin_lock(goro__spin *l)
{
    /* acquire: everything the previous holder wrote under the lock is
     * visible to us once we own it. */
    if (likely(AO_compare_and_swap_acquire(l, 0, 1)))
        return;
    goro__spin_lock_slow(l);
}

static inline bool goro__spin_trylock(goro__spin *l)
{
    return AO_load(l) == 0 && AO_compare_and_swap_acquire(l, 0, 1); /* acquire: as above */
}

static inline void goro__spin_unlock(goro__spin *l)
{
    /* release: our writes under the lock happen-before the next holder's
     * acquire. */
    AO_store_release(l, 0);
}

#endif /* GORO_SPIN_H */
