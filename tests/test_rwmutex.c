/*
 * test_rwmutex.c - goro_rwmutex: exclusion (many readers or one writer)
 * under a 90% read load, writer preference (a waiting writer holds off new
 * readers), no reader starvation under a stream of writers, no writer
 * starvation under overlapping readers, the try calls.
 */
#include "goro_check.h"

#include <pthread.h>

static goro_rwmutex rw;
static volatile AO_t readers_in, writers_in;
static goro_wg wg;

/* ---- exclusion: 8 goroutines, 90% reads, on 2 workers ------------------- */

#define EX_G 8
#define EX_N 50000

static uint64_t shared_a, shared_b;   /* written together by writers */

static void ex_worker(void *arg)
{
    uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < EX_N; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        if (x % 10 == 0) {
            CHECK(goro_rwmutex_lock(&rw) == 0, "lock");
            CHECK(AO_fetch_and_add1(&writers_in) == 0, "two writers inside");
            CHECK(AO_load(&readers_in) == 0, "a reader inside with a writer");
            shared_a++;
            if (i % 64 == 0)
                goro_yield();
            shared_b++;
            AO_fetch_and_sub1(&writers_in);
            goro_rwmutex_unlock(&rw);
        } else {
            CHECK(goro_rwmutex_rlock(&rw) == 0, "rlock");
            AO_fetch_and_add1(&readers_in);
            CHECK(AO_load(&writers_in) == 0, "a writer inside with a reader");
            CHECK(shared_a == shared_b, "torn write seen: %llu %llu",
                  (unsigned long long)shared_a, (unsigned long long)shared_b);
            if (i % 128 == 0)
                goro_yield();
            AO_fetch_and_sub1(&readers_in);
            goro_rwmutex_runlock(&rw);
        }
    }
    goro_wg_done(&wg);
}

static void ex_main(void *arg)
{
    goro_rwmutex_init(&rw);
    shared_a = shared_b = 0;
    goro_wg_init(&wg);
    goro_wg_add(&wg, EX_G);
    for (int i = 0; i < EX_G; i++)
        goro_go(ex_worker, (void *)(uintptr_t)i);
    goro_wg_wait(&wg);
    CHECK(goro_rwmutex_trylock(&rw) == 0, "free at the end");
    goro_rwmutex_unlock(&rw);
    check_no_leaks();
}

Test(rwmutex, exclusion_90pct_reads_8_goroutines_2_workers, .timeout = 60)
{
    run_on(2, ex_main, NULL);
    CHECKS_PASSED();
}

Test(rwmutex, exclusion_90pct_reads_8_goroutines_1_worker, .timeout = 60)
{
    run_on(1, ex_main, NULL);
    CHECKS_PASSED();
}

/* ---- writer preference --------------------------------------------------- */

static char order[16];
static volatile AO_t norder;

static void log_event(char c)
{
    order[AO_fetch_and_add1(&norder)] = c;
}

static void pref_writer(void *arg)
{
    goro_rwmutex_lock(&rw);
    log_event('W');
    goro_sleep(2000000);
    goro_rwmutex_unlock(&rw);
    goro_wg_done(&wg);
}

static void pref_reader(void *arg)
{
    goro_rwmutex_rlock(&rw);
    log_event('R');
    goro_rwmutex_runlock(&rw);
    goro_wg_done(&wg);
}

/* time for a spawned goroutine to queue (Valgrind, one thread at a time,
 * needed more than 5 and 10 ms once each) */
#define SETTLE(ns) (RUNNING_ON_VALGRIND ? 100000000 : (ns))

static void pref_main(void *arg)
{
    goro_rwmutex_init(&rw);
    norder = 0;
    memset(order, 0, sizeof order);
    goro_wg_init(&wg);
    goro_wg_add(&wg, 2);
    CHECK(goro_rwmutex_rlock(&rw) == 0, "rlock");
    goro_go(pref_writer, NULL);
    goro_sleep(SETTLE(10000000)); /* the writer is waiting for us */
    CHECK(norder == 0, "writer got in past a reader");
    CHECK(goro_rwmutex_tryrlock(&rw) == -EBUSY, "tryrlock past a waiting writer");
    CHECK(goro_rwmutex_trylock(&rw) == -EBUSY, "trylock with a reader in");
    goro_go(pref_reader, NULL);
    goro_sleep(SETTLE(10000000)); /* the new reader must wait behind the writer */
    CHECK(norder == 0, "a new reader got in past a waiting writer");
    goro_rwmutex_runlock(&rw);
    goro_wg_wait(&wg);
    CHECK(strcmp(order, "WR") == 0, "order %s, want WR", order);
    check_no_leaks();
}

Test(rwmutex, waiting_writer_holds_off_new_readers, .timeout = 20)
{
    run_on(2, pref_main, NULL);
    CHECKS_PASSED();
}

/* ---- readers queued behind a writer get in before the next writer ------ */


static void queued_writer(void *arg)
{
    goro_rwmutex_lock(&rw);
    log_event((char)(uintptr_t)arg);
    goro_rwmutex_unlock(&rw);
    goro_wg_done(&wg);
}

static void queued_main(void *arg)
{
    goro_rwmutex_init(&rw);
    norder = 0;
    memset(order, 0, sizeof order);
    goro_wg_init(&wg);
    goro_wg_add(&wg, 5);
    CHECK(goro_rwmutex_lock(&rw) == 0, "lock");
    goro_go(pref_reader, NULL);           /* R: waits for us */
    goro_sleep(SETTLE(5000000));
    goro_go(queued_writer, (void *)'a');  /* a, b: wait for us too */
    goro_go(queued_writer, (void *)'b');
    goro_sleep(SETTLE(5000000));
    goro_go(pref_reader, NULL);           /* R: behind a and b? no: behind us */
    goro_go(pref_reader, NULL);
    goro_sleep(SETTLE(5000000));
    goro_rwmutex_unlock(&rw);
    goro_wg_wait(&wg);
    /* every reader that waited for our write section goes before a and b */
    CHECK(strncmp(order, "RRR", 3) == 0, "order %s: a writer went before waiting readers",
          order);
    check_no_leaks();
}

Test(rwmutex, readers_waiting_for_a_writer_go_before_the_next_writer, .timeout = 20)
{
    run_on(2, queued_main, NULL);
    CHECKS_PASSED();
}

/* ---- starvation: a stream of writers, a stream of readers ---------------- */

static volatile AO_t stop, reads, writes;

static void stream_writer(void *arg)
{
    while (!AO_load(&stop)) {
        goro_rwmutex_lock(&rw);
        AO_fetch_and_add1(&writes);
        goro_yield();            /* hold it across a switch */
        goro_rwmutex_unlock(&rw);
    }
    goro_wg_done(&wg);
}

static void stream_reader(void *arg)
{
    while (!AO_load(&stop)) {
        goro_rwmutex_rlock(&rw);
        AO_fetch_and_add1(&reads);
        goro_yield();            /* readers overlap: one is nearly always in */
        goro_rwmutex_runlock(&rw);
    }
    goro_wg_done(&wg);
}

static void starve_main(void *arg)
{
    int nw = (int)((uintptr_t)arg >> 8), nr = (int)((uintptr_t)arg & 0xff);
    goro_rwmutex_init(&rw);
    stop = reads = writes = 0;
    goro_wg_init(&wg);
    goro_wg_add(&wg, nw + nr);
    for (int i = 0; i < nw; i++)
        goro_go(stream_writer, NULL);
    for (int i = 0; i < nr; i++)
        goro_go(stream_reader, NULL);
    goro_sleep(300000000);
    AO_store(&stop, 1);
    goro_wg_wait(&wg);
    test_note("%d writers, %d readers, 300 ms: %lu writes, %lu reads", nw, nr,
              (unsigned long)writes, (unsigned long)reads);
    CHECK(writes >= 100, "writers starved: %lu writes", (unsigned long)writes);
    CHECK(reads >= 100, "readers starved: %lu reads", (unsigned long)reads);
    check_no_leaks();
}

Test(rwmutex, no_reader_starvation_under_a_writer_stream, .timeout = 30)
{
    run_on(2, starve_main, (void *)(uintptr_t)(4 << 8 | 1));
    CHECKS_PASSED();
}

Test(rwmutex, no_writer_starvation_under_overlapping_readers, .timeout = 30)
{
    run_on(2, starve_main, (void *)(uintptr_t)(1 << 8 | 6));
    CHECKS_PASSED();
}

/* ---- try calls, zero-filled, plain threads ------------------------------- */

static void *plain_thread(void *arg)
{
    goro_rwmutex *m = arg;
    intptr_t r = 0;
    r |= goro_rwmutex_rlock(m) == -EPERM;
    r |= (goro_rwmutex_lock(m) == -EPERM) << 1;
    if (goro_rwmutex_tryrlock(m) == 0) {
        r |= 4;
        goro_rwmutex_runlock(m);
    }
    return (void *)r;
}

static void try_main(void *arg)
{
    goro_rwmutex m;
    memset(&m, 0, sizeof m);   /* zero-filled is unlocked */
    CHECK(goro_rwmutex_tryrlock(&m) == 0, "tryrlock");
    CHECK(goro_rwmutex_tryrlock(&m) == 0, "tryrlock twice");
    CHECK(goro_rwmutex_trylock(&m) == -EBUSY, "trylock with readers");
    goro_rwmutex_runlock(&m);
    goro_rwmutex_runlock(&m);
    CHECK(goro_rwmutex_trylock(&m) == 0, "trylock");
    CHECK(goro_rwmutex_trylock(&m) == -EBUSY, "trylock twice");
    CHECK(goro_rwmutex_tryrlock(&m) == -EBUSY, "tryrlock with a writer");
    goro_rwmutex_unlock(&m);
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, plain_thread, &m);
    pthread_join(t, &r);
    CHECK((intptr_t)r == 7, "plain thread: %ld", (long)(intptr_t)r);
    check_no_leaks();
}

Test(rwmutex, try_calls_and_plain_threads, .timeout = 10)
{
    run_on(2, try_main, NULL);
    CHECKS_PASSED();
}
