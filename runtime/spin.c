/*
 * spin.c - the contended path of spin.h's lock: spin with exponential
 * backoff, then yield the CPU.
 *
 * Design. A waiter that finds the lock held waits 1, 2, 4, ... up to 256
 * pause instructions between looks (16 rounds, about 2,300 pauses in
 * all), then falls back to sched_yield between looks: the holder may be a
 * thread the kernel descheduled.
 *
 * Why backoff. The old waiter looked after every single pause. With two
 * workers truly in parallel on one busy channel (chan_buffered_4x4: 4
 * producers and 4 consumers on 2 workers, each operation a few dozen
 * nanoseconds under the lock), the waiter's constant reads pulled the
 * lock's cache line, which also holds the channel's count and indexes,
 * away from the holder on every write the holder made, and every release
 * was a race the two threads fought over again: 73% of the time went to
 * spinning. Backing off lets the holder's thread take the lock again and
 * again while the line stays in its cache, so the channel is used in
 * long runs by one worker at a time (as on one worker: 29 ns an
 * operation). Measured with both workers on their own CPUs
 * (`chrt -f 10`, which on this shared machine stands in for an idle one),
 * medians of 3 alternating runs: 164 ns an operation before, 32 after;
 * Go 91. Backoff capped at 16 pauses: 75; at 64: 42; at 1,024 (10
 * rounds): 33. mutex_contended, pingpong_2w, rwmutex_read_heavy and
 * skynet did not move.
 *
 * The price is fairness: a waiter looks less often, so a holder that
 * takes the lock again at once may take it many times in a row. Every
 * critical section under these locks is a few dozen instructions and
 * none waits for another lock's waiter, so a waiter still gets the lock
 * within its next looks; the blocking primitives built on them (channels,
 * Mutex, Cond, semaphores) keep their own FIFO queues of parked
 * goroutines, which this does not touch.
 *
 * Rejected: a ticket or MCS lock (fair hand-off to the other thread on
 * every release is exactly the ping-pong to avoid here; MCS also needs a
 * queue node per waiter); parking the goroutine on contention (the
 * worker thread would only pick another goroutine that wants the same
 * channel).
 */
#include "spin.h"

#define SPIN_ROUNDS 16      /* backoff rounds before yielding the CPU */
#define SPIN_MAXB 256       /* the longest backoff, in pauses */

void goro__spin_lock_slow(goro__spin *l)
{
    unsigned backoff = 1, rounds = 0;
    for (;;) {
        /* plain loads while it is held: spin on a shared cache line
         * without stealing it; the CAS provides the ordering */
        while (AO_load(l) != 0) {
            if (rounds < SPIN_ROUNDS) {
                for (unsigned i = 0; i < backoff; i++)
                    goro__cpu_relax();
                if (backoff < SPIN_MAXB)
                    backoff <<= 1;
                rounds++;
            } else {
                sched_yield();
            }
        }
        /* acquire: as in goro__spin_lock */
        if (AO_compare_and_swap_acquire(l, 0, 1))
            return;
    }
}
