/*
 * sync.h - what the sync objects share among themselves (sync.c, once.c,
 * rwmutex.c, cond.c, sem.c).
 */
#ifndef GORO_SYNC_H
#define GORO_SYNC_H

#include "internal.h"

/* goro_mutex_lock, parked with another wait reason and object for the dump
 * (goro_rwmutex's writers wait on its inner mutex as "rwmutex"), and
 * without the brief spin when may_spin is false (a holder that is likely
 * parked itself: spinning only burns the worker its wakers need). */
int goro__mutex_lock_as(goro_mutex *mu, int reason, void *waitobj, bool may_spin) GORO_HIDDEN;

/* How many goroutines wait on c or s right now (under its lock; for the
 * tests, which wait for waiters to queue instead of sleeping and hoping). */
int goro__cond_waiters(goro_cond *c) GORO_HIDDEN;
int goro__sem_waiters(goro_sem *s) GORO_HIDDEN;

/* An absolute goro_now() deadline timeout_ns (> 0) from now, saturated. */
static inline int64_t goro__deadline_after(int64_t timeout_ns)
{
    int64_t now = goro_now();
    return timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

#endif /* GORO_SYNC_H */
