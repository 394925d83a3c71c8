/*
 * tests/race/race.c - a planted data race for ThreadSanitizer, and the
 * same program with its accesses ordered by a channel, a mutex or a
 * WaitGroup (tests/test_race.c runs it, built with -fsanitize=thread).
 *
 *   race race    two goroutines write `shared` with no synchronization
 *   race chan    the first writes, then sends; the second receives, writes
 *   race mutex   both write under a goro_mutex
 *   race wg      the second waits on a WaitGroup the first is done with
 *
 * The writers first wait for each other with relaxed atomics (which order
 * nothing for TSan), so that they run at the same time on two workers
 * (GORO_PROCS=2); a writer that waits 2 s in vain goes on alone.
 */
#include <goro.h>
#include <stdio.h>
#include <string.h>

static long shared;
static int mode;          /* 0 race, 1 chan, 2 mutex, 3 wg */
static int here[2];       /* relaxed: the handshake */
static goro_chan *ch;
static goro_mutex mu;
static goro_wg done, first;

static void meet(int me)
{
    __atomic_store_n(&here[me], 1, __ATOMIC_RELAXED);
    int64_t until = goro_now() + 2000000000;
    while (!__atomic_load_n(&here[!me], __ATOMIC_RELAXED) && goro_now() < until)
        ;
}

__attribute__((noinline)) static void write_shared(long v)
{
    for (int i = 0; i < 1000; i++) {
        if (mode == 2)
            goro_mutex_lock(&mu);
        shared = shared + v;
        if (mode == 2)
            goro_mutex_unlock(&mu);
    }
}

__attribute__((noinline)) static void racer_a(void *arg)
{
    (void)arg;
    meet(0);
    write_shared(1);
    if (mode == 1) {
        long v = 1;
        goro_chan_send(ch, &v);
    } else if (mode == 3) {
        goro_wg_done(&first);
    }
    goro_wg_done(&done);
}

__attribute__((noinline)) static void racer_b(void *arg)
{
    (void)arg;
    meet(1);
    if (mode == 1) {
        long v;
        goro_chan_recv(ch, &v);
    } else if (mode == 3) {
        goro_wg_wait(&first);
    }
    write_shared(2);
    goro_wg_done(&done);
}

static void main_g(void *arg)
{
    (void)arg;
    ch = goro_chan_make(sizeof(long), 0);
    goro_mutex_init(&mu);
    goro_wg_init(&done);
    goro_wg_init(&first);
    goro_wg_add(&done, 2);
    goro_wg_add(&first, 1);
    goro_go(racer_a, NULL);
    goro_go(racer_b, NULL);
    goro_wg_wait(&done);
    printf("race: mode %d, shared = %ld\n", mode, shared);
    goro_chan_free(ch);
}

int main(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "race";
    mode = !strcmp(m, "chan") ? 1 : !strcmp(m, "mutex") ? 2 : !strcmp(m, "wg") ? 3 : 0;
    return goro_run(main_g, NULL) == 0 ? 0 : 1;
}
