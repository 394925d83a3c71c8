/*
 * timer - what resetting a timer costs while many are armed: n timers
 * armed an hour ahead, then `resets` resets (a stop, then armed again a
 * little later) of timers taken in a scattered order (i * 7919 mod n), as
 * a server that pushes back a per-connection timeout on every request
 * does. kind=timer: goro_timer_reset on goro_timers (the Go twin:
 * time.Timer.Reset); each reset pushes its timer later, so it takes
 * timerchan.c's short path (the heap entry stays, the record notes the new
 * deadline). kind=bare: the bare entry of goro's timer heap, the
 * record goro_sleep, select timeouts and I/O deadlines use
 * (goro__timer_del, then goro__timer_add): the floor a goro_timer's own
 * record adds to. One goroutine does the work.
 *
 * Figure: ns per reset. Verified: every timer is still armed at the end
 * (stop says so), the heap holds n entries and nothing fired.
 */
#include "bench.h"
#include "internal.h"   /* kind=bare: the heap entry under goro_sleep */

#include <stdlib.h>
#include <string.h>

#define HOUR 3600000000000LL

static int64_t n, resets, elapsed, fired;
static const char *kind;

static void bare_fire(struct goro__timer *t)
{
    (void)t;
    __atomic_fetch_add(&fired, 1, __ATOMIC_RELAXED);
}

static void timer_side(void)
{
    goro_timer **ts = malloc((size_t)n * sizeof *ts);
    if (ts == NULL)
        bench_fail("out of memory");
    for (int64_t i = 0; i < n; i++)
        if ((ts[i] = goro_timer_new(HOUR + i, 0)) == NULL)
            bench_fail("goro_timer_new: %s", strerror(errno));
    int64_t t0 = bench_now();
    for (int64_t i = 0; i < resets; i++)
        if (goro_timer_reset(ts[(i * 7919) % n], HOUR + i, 0) != 1)
            bench_fail("reset %" PRId64 ": the timer was not armed", i);
    elapsed = bench_now() - t0;
    if ((int64_t)AO_load(&goro__ctr.timers_pending) != n)
        bench_fail("%lu timers in the heap, want %" PRId64,
                   (unsigned long)AO_load(&goro__ctr.timers_pending), n);
    for (int64_t i = 0; i < n; i++) {
        if (goro_timer_stop(ts[i]) != 1)
            fired++;
        goro_timer_free(ts[i]);
    }
    free(ts);
}

static void bare_side(void)
{
    int64_t stride = bench_int("stride", sizeof(struct goro__timer));
    char *mem = calloc((size_t)n, (size_t)stride);
    if (mem == NULL || stride < (int64_t)sizeof(struct goro__timer))
        bench_fail("out of memory, or stride too small");
#define ts_at(i) ((struct goro__timer *)(mem + (i) * stride))
    int64_t now = goro_now();
    for (int64_t i = 0; i < n; i++) {
        ts_at(i)->when = now + HOUR + i;
        ts_at(i)->fn = bare_fire;
        goro__timer_add(ts_at(i));
    }
    int64_t t0 = bench_now();
    for (int64_t i = 0; i < resets; i++) {
        struct goro__timer *t = ts_at((i * 7919) % n);
        if (!goro__timer_del(t))
            bench_fail("reset %" PRId64 ": the entry was not in the heap", i);
        t->when = goro_now() + HOUR + i;   /* as goro_timer_reset reads the clock */
        goro__timer_add(t);
    }
    elapsed = bench_now() - t0;
    if ((int64_t)AO_load(&goro__ctr.timers_pending) != n)
        bench_fail("%lu entries in the heap, want %" PRId64,
                   (unsigned long)AO_load(&goro__ctr.timers_pending), n);
    for (int64_t i = 0; i < n; i++)
        if (!goro__timer_del(ts_at(i)))
            fired++;
    free(mem);
}

static void bench_main(void *arg)
{
    (void)arg;
    bench_check_procs();
    if (strcmp(kind, "bare") == 0)
        bare_side();
    else
        timer_side();
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n = bench_int("n", 1000000);
    resets = bench_int("resets", 1000000);
    kind = bench_str("kind", "timer");
    if (n < 1 || resets < 1 || (strcmp(kind, "timer") != 0 && strcmp(kind, "bare") != 0))
        bench_fail("n and resets must be > 0, kind timer or bare");
    bench_run(bench_main, NULL);
    if (fired)
        bench_fail("%" PRId64 " timers fired or were lost", fired);
    bench_info("%s: %" PRId64 " resets with %" PRId64 " armed in %" PRId64 " ms", kind, resets, n,
               elapsed / 1000000);
    bench_report(bench_str("name", "timer_reset"), (double)elapsed / (double)resets, "ns/op");
    return 0;
}
