/*
 * test_chan.c - channels: Go's classic channel programs (prime sieve,
 * pipelines, producers and consumers), close semantics, bad input, and the
 * deadlock report and goroutine dump.
 */
#include "goro_check.h"

#include <pthread.h>

/* ---- unbuffered: values arrive in order, sender waits for the receiver -- */

static goro_chan *pp_ch;
static goro_wg pp_wg;

static void pp_sender(void *arg)
{
    for (uint64_t i = 0; i < 10000; i++)
        CHECK(goro_chan_send(pp_ch, &i) == 0, "send %llu", (unsigned long long)i);
    goro_wg_done(&pp_wg);
}

static void pp_main(void *arg)
{
    pp_ch = goro_chan_make(sizeof(uint64_t), 0);
    CHECK(pp_ch != NULL, "make");
    goro_wg_init(&pp_wg);
    goro_wg_add(&pp_wg, 1);
    goro_go(pp_sender, NULL);
    for (uint64_t i = 0; i < 10000; i++) {
        uint64_t v = ~0ull;
        CHECK(goro_chan_recv(pp_ch, &v) == 1, "recv");
        CHECK(v == i, "got %llu want %llu", (unsigned long long)v, (unsigned long long)i);
        CHECK(goro_chan_len(pp_ch) == 0, "unbuffered len");
    }
    goro_wg_wait(&pp_wg);
    CHECK(goro__chan_free(pp_ch) == 0, "free");
    check_no_leaks();
}

Test(chan, unbuffered_in_order, .timeout = 30)
{
    run_on(2, pp_main, NULL);
    CHECKS_PASSED();
}

/* ---- buffered: FIFO, len/cap, try calls -------------------------------- */

static void buf_main(void *arg)
{
    goro_chan *ch = goro_chan_make(sizeof(int), 16);
    CHECK(goro_chan_cap(ch) == 16, "cap");
    for (int i = 0; i < 16; i++)
        CHECK(goro_chan_trysend(ch, &i) == 0, "trysend %d", i);
    int x = 99;
    CHECK(goro_chan_trysend(ch, &x) == -EAGAIN, "full");
    CHECK(goro_chan_len(ch) == 16, "len %zu", goro_chan_len(ch));
    for (int round = 0; round < 3; round++) {   /* wrap the ring around */
        for (int i = 0; i < 10; i++) {
            int v = -1;
            CHECK(goro_chan_recv(ch, &v) == 1 && v == round * 10 + i, "got %d", v);
            int s = 16 + round * 10 + i;
            CHECK(goro_chan_send(ch, &s) == 0, "send");
        }
    }
    for (int i = 30; i < 46; i++) {
        int v = -1;
        CHECK(goro_chan_tryrecv(ch, &v) == 1 && v == i, "got %d want %d", v, i);
    }
    CHECK(goro_chan_tryrecv(ch, &x) == -EAGAIN, "empty");
    CHECK(goro_chan_len(ch) == 0, "len 0");
    goro_chan_free(ch);
    check_no_leaks();
}

Test(chan, buffered_fifo_and_try, .timeout = 30)
{
    run_on(1, buf_main, NULL);
    CHECKS_PASSED();
}

/* ---- blocked receivers are served first come, first served ------------- */

static goro_chan *fifo_ch;
static int fifo_got[10];
static goro_wg fifo_wg;

static void fifo_recv(void *arg)
{
    int v = -1;
    CHECK(goro_chan_recv(fifo_ch, &v) == 1, "recv");
    fifo_got[(intptr_t)arg] = v;
    goro_wg_done(&fifo_wg);
}

static void fifo_main(void *arg)
{
    bool buffered = arg != NULL;
    fifo_ch = goro_chan_make(sizeof(int), buffered ? 3 : 0);
    goro_wg_init(&fifo_wg);
    goro_wg_add(&fifo_wg, 10);
    for (intptr_t i = 0; i < 10; i++) {
        goro_go(fifo_recv, (void *)i);
        /* let it queue before the next one (Valgrind, one thread at a
         * time, needed more than 2 ms once in three runs) */
        goro_sleep(RUNNING_ON_VALGRIND ? 50000000 : 2000000);
    }
    for (int i = 0; i < 10; i++)
        CHECK(goro_chan_send(fifo_ch, &i) == 0, "send");
    goro_wg_wait(&fifo_wg);
    for (int i = 0; i < 10; i++)
        CHECK(fifo_got[i] == i, "receiver %d got %d", i, fifo_got[i]);
    goro_chan_free(fifo_ch);
    check_no_leaks();
}

Test(chan, blocked_receivers_fifo, .timeout = 30)
{
    run_on(2, fifo_main, NULL);
    run_on(2, fifo_main, (void *)1);
    CHECKS_PASSED();
}

/* ---- the concurrent prime sieve (Go's classic) ------------------------- */

#define SIEVE_PRIMES 1000
#define SIEVE_LIMIT 7920   /* the 1000th prime is 7919 */

static goro_chan *sieve_chans[SIEVE_PRIMES + 1];
static goro_wg sieve_wg;

struct filter { goro_chan *in, *out; int prime; };
static struct filter filters[SIEVE_PRIMES];

static void sieve_generate(void *arg)
{
    goro_chan *ch = arg;
    for (int i = 2; i <= SIEVE_LIMIT; i++)
        CHECK(goro_chan_send(ch, &i) == 0, "generate");
    goro_chan_close(ch);
    goro_wg_done(&sieve_wg);
}

static void sieve_filter(void *arg)
{
    struct filter *f = arg;
    int v;
    while (goro_chan_recv(f->in, &v) == 1)
        if (v % f->prime != 0)
            CHECK(goro_chan_send(f->out, &v) == 0, "filter send");
    goro_chan_close(f->out);
    goro_wg_done(&sieve_wg);
}

static int sieve_got[SIEVE_PRIMES];

static void sieve_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    goro_wg_init(&sieve_wg);
    goro_wg_add(&sieve_wg, 1 + SIEVE_PRIMES);
    goro_chan *ch = sieve_chans[0] = goro_chan_make(sizeof(int), cap);
    goro_go(sieve_generate, ch);
    for (int i = 0; i < SIEVE_PRIMES; i++) {
        int p = 0;
        CHECK(goro_chan_recv(ch, &p) == 1, "prime %d", i);
        sieve_got[i] = p;
        goro_chan *ch1 = sieve_chans[i + 1] = goro_chan_make(sizeof(int), cap);
        filters[i] = (struct filter){ ch, ch1, p };
        goro_go(sieve_filter, &filters[i]);
        ch = ch1;
    }
    int v;
    while (goro_chan_recv(ch, &v) == 1)
        CHECK(0, "a number past the last prime got through: %d", v);
    goro_wg_wait(&sieve_wg);
    for (int i = 0; i <= SIEVE_PRIMES; i++)
        CHECK(goro__chan_free(sieve_chans[i]) == 0, "free %d", i);
    check_no_leaks();
}

static void check_primes(void)
{
    static char composite[SIEVE_LIMIT + 1];
    int n = 0;
    for (int i = 2; i <= SIEVE_LIMIT && n < SIEVE_PRIMES; i++) {
        if (composite[i])
            continue;
        cr_assert_eq(sieve_got[n], i, "prime %d: got %d want %d", n, sieve_got[n], i);
        n++;
        for (int j = 2 * i; j <= SIEVE_LIMIT; j += i)
            composite[j] = 1;
    }
    cr_assert_eq(n, SIEVE_PRIMES);
}

Test(chan, prime_sieve_unbuffered, .timeout = 60)
{
    run_on(0, sieve_main, (void *)0);
    CHECKS_PASSED();
    check_primes();
}

Test(chan, prime_sieve_buffered, .timeout = 60)
{
    run_on(0, sieve_main, (void *)16);
    CHECKS_PASSED();
    check_primes();
}

/* ---- a pipeline of many stages ----------------------------------------- */

#define STAGES 200
#define PIPE_VALUES 5000

static goro_chan *stage_ch[STAGES + 1];
static goro_wg stage_wg;

static void stage(void *arg)
{
    intptr_t k = (intptr_t)arg;
    uint64_t v;
    while (goro_chan_recv(stage_ch[k], &v) == 1) {
        v += 1;
        CHECK(goro_chan_send(stage_ch[k + 1], &v) == 0, "stage send");
    }
    goro_chan_close(stage_ch[k + 1]);
    goro_wg_done(&stage_wg);
}

static void pipe_feed(void *arg)
{
    for (uint64_t i = 0; i < PIPE_VALUES; i++)
        CHECK(goro_chan_send(stage_ch[0], &i) == 0, "feed");
    goro_chan_close(stage_ch[0]);
    goro_wg_done(&stage_wg);
}

static void pipeline_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    for (int i = 0; i <= STAGES; i++)
        stage_ch[i] = goro_chan_make(sizeof(uint64_t), cap);
    goro_wg_init(&stage_wg);
    goro_wg_add(&stage_wg, STAGES + 1);
    for (intptr_t k = 0; k < STAGES; k++)
        goro_go(stage, (void *)k);
    goro_go(pipe_feed, NULL);
    uint64_t v, n = 0, sum = 0;
    while (goro_chan_recv(stage_ch[STAGES], &v) == 1) {
        CHECK(v == n + STAGES, "value %llu out of order", (unsigned long long)v);
        sum += v;
        n++;
    }
    CHECK(n == PIPE_VALUES, "got %llu values", (unsigned long long)n);
    uint64_t want = (uint64_t)PIPE_VALUES * (PIPE_VALUES - 1) / 2 + (uint64_t)PIPE_VALUES * STAGES;
    CHECK(sum == want, "sum %llu want %llu", (unsigned long long)sum, (unsigned long long)want);
    goro_wg_wait(&stage_wg);
    for (int i = 0; i <= STAGES; i++)
        CHECK(goro__chan_free(stage_ch[i]) == 0, "free");
    check_no_leaks();
}

Test(chan, pipeline_200_stages_unbuffered, .timeout = 60)
{
    run_on(0, pipeline_main, (void *)0);
    CHECKS_PASSED();
}

Test(chan, pipeline_200_stages_buffered, .timeout = 60)
{
    run_on(0, pipeline_main, (void *)8);
    CHECKS_PASSED();
}

/* ---- many producers, many consumers, every value exactly once ---------- */

#define PRODUCERS 8
#define CONSUMERS 8
#define PER_PRODUCER 20000
#define PC_TOTAL (PRODUCERS * PER_PRODUCER)

static goro_chan *pc_ch;
static goro_wg pc_prod_wg, pc_cons_wg;
static volatile AO_t pc_seen[PC_TOTAL];
static volatile AO_t pc_sum, pc_count;

static void pc_producer(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg * PER_PRODUCER;
    for (uint64_t i = 0; i < PER_PRODUCER; i++) {
        uint64_t v = base + i;
        CHECK(goro_chan_send(pc_ch, &v) == 0, "send");
        if (i % 1000 == 0)
            goro_yield();
    }
    goro_wg_done(&pc_prod_wg);
}

static void pc_consumer(void *arg)
{
    uint64_t v, sum = 0, n = 0;
    int r;
    while ((r = goro_chan_recv(pc_ch, &v)) == 1) {
        CHECK(v < PC_TOTAL, "value %llu", (unsigned long long)v);
        if (v < PC_TOTAL)
            AO_fetch_and_add1(&pc_seen[v]);
        sum += v;
        n++;
    }
    CHECK(r == 0, "recv returned %d", r);
    AO_fetch_and_add(&pc_sum, sum);
    AO_fetch_and_add(&pc_count, n);
    goro_wg_done(&pc_cons_wg);
}

static void pc_main(void *arg)
{
    pc_ch = goro_chan_make(sizeof(uint64_t), (size_t)(uintptr_t)arg);
    goro_wg_init(&pc_prod_wg);
    goro_wg_init(&pc_cons_wg);
    goro_wg_add(&pc_prod_wg, PRODUCERS);
    goro_wg_add(&pc_cons_wg, CONSUMERS);
    for (uintptr_t c = 0; c < CONSUMERS; c++)
        goro_go(pc_consumer, NULL);
    for (uintptr_t p = 0; p < PRODUCERS; p++)
        goro_go(pc_producer, (void *)p);
    goro_wg_wait(&pc_prod_wg);
    CHECK(goro_chan_close(pc_ch) == 0, "close");
    goro_wg_wait(&pc_cons_wg);
    CHECK(goro__chan_free(pc_ch) == 0, "free");
    check_no_leaks();
}

static void check_pc(size_t cap, int procs)
{
    memset((void *)pc_seen, 0, sizeof pc_seen);
    pc_sum = pc_count = 0;
    run_on(procs, pc_main, (void *)(uintptr_t)cap);
    CHECKS_PASSED();
    cr_assert_eq(pc_count, PC_TOTAL, "count %lu", (unsigned long)pc_count);
    cr_assert_eq(pc_sum, (AO_t)PC_TOTAL * (PC_TOTAL - 1) / 2);
    for (int i = 0; i < PC_TOTAL; i++)
        cr_assert_eq(pc_seen[i], 1, "value %d seen %lu times", i, (unsigned long)pc_seen[i]);
}

Test(chan, producers_consumers_unbuffered, .timeout = 120) { check_pc(0, 4); }
Test(chan, producers_consumers_cap1, .timeout = 120) { check_pc(1, 4); }
Test(chan, producers_consumers_buffered, .timeout = 120) { check_pc(64, 4); }
Test(chan, producers_consumers_one_worker, .timeout = 120) { check_pc(64, 1); }

/* ---- close while senders and receivers are blocked --------------------- */

static goro_chan *cl_ch;
static goro_wg cl_wg;
static volatile AO_t cl_started;

static void cl_receiver(void *arg)
{
    uint64_t v = 0xdeadbeef;
    AO_fetch_and_add1(&cl_started);
    int r = goro_chan_recv(cl_ch, &v);
    CHECK(r == 0, "receiver woken by close got %d", r);
    CHECK(v == 0, "elem not zero-filled: %llx", (unsigned long long)v);
    goro_wg_done(&cl_wg);
}

static void cl_sender(void *arg)
{
    uint64_t v = 7;
    AO_fetch_and_add1(&cl_started);
    int r = goro_chan_send(cl_ch, &v);
    CHECK(r == -EPIPE, "sender woken by close got %d", r);
    goro_wg_done(&cl_wg);
}

static void wait_started(AO_t n)
{
    while (AO_load(&cl_started) < n)
        goro_sleep(100000);
    goro_sleep(5000000);   /* and let them park */
}

static void close_main(void *arg)
{
    /* receivers blocked on an unbuffered channel */
    cl_ch = goro_chan_make(sizeof(uint64_t), 0);
    goro_wg_init(&cl_wg);
    goro_wg_add(&cl_wg, 20);
    cl_started = 0;
    for (int i = 0; i < 20; i++)
        goro_go(cl_receiver, NULL);
    wait_started(20);
    CHECK(goro__chan_free(cl_ch) == -EBUSY, "free with waiters must be refused");
    CHECK(goro_chan_close(cl_ch) == 0, "close");
    goro_wg_wait(&cl_wg);
    CHECK(goro_chan_close(cl_ch) == -EPIPE, "second close");
    uint64_t v = 1;
    CHECK(goro_chan_send(cl_ch, &v) == -EPIPE, "send on closed");
    CHECK(goro_chan_trysend(cl_ch, &v) == -EPIPE, "trysend on closed");
    CHECK(goro_chan_recv(cl_ch, &v) == 0 && v == 0, "recv on closed");
    v = 1;
    CHECK(goro_chan_tryrecv(cl_ch, &v) == 0 && v == 0, "tryrecv on closed");
    CHECK(goro__chan_free(cl_ch) == 0, "free");

    /* senders blocked on an unbuffered channel */
    cl_ch = goro_chan_make(sizeof(uint64_t), 0);
    goro_wg_add(&cl_wg, 20);
    cl_started = 0;
    for (int i = 0; i < 20; i++)
        goro_go(cl_sender, NULL);
    wait_started(20);
    CHECK(goro_chan_close(cl_ch) == 0, "close");
    goro_wg_wait(&cl_wg);
    goro_chan_free(cl_ch);

    /* a full buffer: blocked senders fail, buffered values still drain */
    cl_ch = goro_chan_make(sizeof(uint64_t), 2);
    for (uint64_t i = 1; i <= 2; i++)
        goro_chan_send(cl_ch, &i);
    goro_wg_add(&cl_wg, 5);
    cl_started = 0;
    for (int i = 0; i < 5; i++)
        goro_go(cl_sender, NULL);
    wait_started(5);
    CHECK(goro_chan_close(cl_ch) == 0, "close");
    goro_wg_wait(&cl_wg);
    CHECK(goro_chan_len(cl_ch) == 2, "len %zu", goro_chan_len(cl_ch));
    CHECK(goro_chan_recv(cl_ch, &v) == 1 && v == 1, "first buffered");
    CHECK(goro_chan_tryrecv(cl_ch, &v) == 1 && v == 2, "second buffered");
    CHECK(goro_chan_recv(cl_ch, &v) == 0 && v == 0, "drained");
    goro_chan_free(cl_ch);
    check_no_leaks();
}

Test(chan, close_wakes_blocked_senders_and_receivers, .timeout = 30)
{
    run_on(2, close_main, NULL);
    CHECKS_PASSED();
}

/* ---- chan struct{}: elem_size 0 ---------------------------------------- */

static goro_chan *sig_ch;
static goro_wg sig_wg;

static void sig_worker(void *arg)
{
    CHECK(goro_chan_recv(sig_ch, NULL) == 1, "signal");
    goro_wg_done(&sig_wg);
}

static void signal_main(void *arg)
{
    goro_chan *b = goro_chan_make(0, 3);
    CHECK(b != NULL, "make(0, 3)");
    for (int i = 0; i < 3; i++)
        CHECK(goro_chan_trysend(b, NULL) == 0, "trysend");
    CHECK(goro_chan_trysend(b, NULL) == -EAGAIN, "full");
    CHECK(goro_chan_len(b) == 3 && goro_chan_cap(b) == 3, "len/cap");
    char junk = 'x';
    CHECK(goro_chan_recv(b, &junk) == 1 && junk == 'x', "elem untouched");
    goro_chan_close(b);
    CHECK(goro_chan_recv(b, NULL) == 1 && goro_chan_recv(b, NULL) == 1, "drain");
    CHECK(goro_chan_recv(b, NULL) == 0, "closed");
    goro_chan_free(b);

    sig_ch = goro_chan_make(0, 0);
    goro_wg_init(&sig_wg);
    goro_wg_add(&sig_wg, 100);
    for (int i = 0; i < 100; i++)
        goro_go(sig_worker, NULL);
    for (int i = 0; i < 100; i++)
        CHECK(goro_chan_send(sig_ch, NULL) == 0, "send");
    goro_wg_wait(&sig_wg);
    goro_chan_free(sig_ch);
    check_no_leaks();
}

Test(chan, elem_size_zero, .timeout = 30)
{
    run_on(2, signal_main, NULL);
    CHECKS_PASSED();
}

/* ---- bad input ---------------------------------------------------------- */

static void badinput_main(void *arg)
{
    uint64_t v = 5;
    CHECK(goro_chan_send(NULL, &v) == -EINVAL, "send NULL");
    CHECK(goro_chan_recv(NULL, &v) == -EINVAL, "recv NULL");
    CHECK(goro_chan_trysend(NULL, &v) == -EAGAIN, "trysend NULL");
    CHECK(goro_chan_tryrecv(NULL, &v) == -EAGAIN, "tryrecv NULL");
    CHECK(goro_chan_close(NULL) == -EINVAL, "close NULL");
    CHECK(goro_chan_len(NULL) == 0 && goro_chan_cap(NULL) == 0, "len/cap NULL");
    goro_chan_free(NULL);
    CHECK(v == 5, "elem touched");

    goro_chan *ch = goro_chan_make(sizeof v, 1);
    CHECK(goro_chan_send(ch, NULL) == -EINVAL, "send NULL elem");
    CHECK(goro_chan_trysend(ch, NULL) == -EINVAL, "trysend NULL elem");
    CHECK(goro_chan_len(ch) == 0, "nothing sent");
    CHECK(goro_chan_send(ch, &v) == 0, "send");
    CHECK(goro_chan_recv(ch, NULL) == 1, "recv into NULL discards");
    goro_chan_free(ch);
    check_no_leaks();
}

Test(chan, bad_input, .timeout = 10)
{
    errno = 0;
    cr_assert_null(goro_chan_make(SIZE_MAX / 2, 3));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(goro_chan_make((size_t)1 << 33, (size_t)1 << 33));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(goro_chan_make((size_t)1 << 40, (size_t)1 << 20)); /* 2^60 bytes */
    cr_assert_eq(errno, ENOMEM);
    /* cap 0 with a huge element is fine: there is no buffer */
    goro_chan *ch = goro_chan_make(SIZE_MAX, 0);
    cr_assert_not_null(ch);
    goro_chan_free(ch);

    /* outside a goroutine: blocking calls -EPERM, the try calls work */
    ch = goro_chan_make(sizeof(int), 1);
    int v = 3;
    cr_assert_eq(goro_chan_send(ch, &v), -EPERM);
    cr_assert_eq(goro_chan_recv(ch, &v), -EPERM);
    cr_assert_eq(goro_chan_trysend(ch, &v), 0);
    v = 0;
    cr_assert_eq(goro_chan_tryrecv(ch, &v), 1);
    cr_assert_eq(v, 3);
    cr_assert_eq(goro_chan_close(ch), 0);
    goro_chan_free(ch);

    run_on(1, badinput_main, NULL);
    CHECKS_PASSED();
}

/* ---- a foreign thread's trysend wakes a parked receiver ---------------- */

static goro_chan *fo_ch;

static void *fo_thread(void *arg)
{
    int v = 42;
    while (goro_chan_trysend(fo_ch, &v) == -EAGAIN)  /* until the receiver waits */
        usleep(1000);
    return NULL;
}

static volatile AO_t fo_done;

/* Deadlock detection cannot know that a thread it has not heard from yet
 * will send: keep a timer pending meanwhile, so it does not fire. */
static void fo_keepalive(void *arg)
{
    while (!AO_load(&fo_done))
        goro_sleep(1000000);
}

static void foreign_main(void *arg)
{
    fo_ch = goro_chan_make(sizeof(int), 0);
    fo_done = 0;
    goro_go(fo_keepalive, NULL);
    pthread_t t;
    pthread_create(&t, NULL, fo_thread, NULL);
    int v = 0;
    CHECK(goro_chan_recv(fo_ch, &v) == 1 && v == 42, "got %d", v);
    pthread_join(t, NULL);
    AO_store(&fo_done, 1);
    goro_chan_free(fo_ch);
    check_no_leaks();
}

Test(chan, trysend_from_foreign_thread, .timeout = 10)
{
    run_on(2, foreign_main, NULL);
    CHECKS_PASSED();
}

/* ---- deadlock and the goroutine dump ----------------------------------- */

static goro_chan *dl_a, *dl_b, *dl_c;
static goro_mutex dl_mu;
static goro_wg dl_wg;

static void dl_recv(void *arg) { goro_chan_recv(dl_a, NULL); }
static void dl_send(void *arg) { int v = 1; goro_chan_send(dl_b, &v); }
static void dl_select(void *arg)
{
    goro_case cs[2] = { { dl_a, GORO_RECV, NULL, 0 }, { dl_c, GORO_RECV, NULL, 0 } };
    goro_select(cs, 2, -1);
}
static void dl_mutex(void *arg) { goro_mutex_lock(&dl_mu); }
static void dl_wgwait(void *arg) { goro_wg_wait(&dl_wg); }
static void dl_sleep(void *arg) { goro_sleep(3600LL * 1000000000); }

/* Spawn one goroutine per kind of wait, in a known order (ids 2, 3, ...),
 * and print "<id> <wait name>" lines on stdout for the parent to check. */
static void dl_spawn_all(bool with_sleep)
{
    dl_a = goro_chan_make(0, 0);
    dl_b = goro_chan_make(sizeof(int), 0);
    dl_c = goro_chan_make(sizeof(int), 4);
    goro_mutex_init(&dl_mu);
    goro_mutex_lock(&dl_mu);
    goro_wg_init(&dl_wg);
    goro_wg_add(&dl_wg, 1);
    struct { goro_fn fn; int reason; } kinds[] = {
        { dl_recv, W_CHAN_RECV }, { dl_send, W_CHAN_SEND }, { dl_select, W_SELECT },
        { dl_mutex, W_MUTEX },    { dl_wgwait, W_WAITGROUP }, { dl_sleep, W_SLEEP },
    };
    int n = with_sleep ? 6 : 5;
    for (int i = 0; i < n; i++) {
        goro_go(kinds[i].fn, NULL);
        printf("%d %s\n", i + 2, goro__wait_names[kinds[i].reason]);
    }
    fflush(stdout);
    goro_sleep(50000000);   /* let them all park */
}

static void scenario_deadlock_main(void *arg)
{
    dl_spawn_all(false);
    printf("1 %s\n", goro__wait_names[W_CHAN_RECV]);
    fflush(stdout);
    goro_chan_recv(dl_a, NULL);   /* the last runnable goroutine blocks */
}

static void scenario_dump_main(void *arg)
{
    dl_spawn_all(true);
    /* main returns: GORO_DEBUG=dump prints the others as they wait */
}

static void scenario_sigquit_main(void *arg)
{
    dl_spawn_all(true);
    printf("ready\n");
    fflush(stdout);
    goro_sleep(2000000000);   /* the parent sends SIGQUIT meanwhile */
}

__attribute__((constructor)) static void scenario_entry(void)
{
    const char *s = getenv("GORO_TEST_SCENARIO");
    if (!s)
        return;
    unsetenv("GORO_TEST_SCENARIO");
    int r = -1;
    if (!strcmp(s, "deadlock"))
        r = goro_run(scenario_deadlock_main, NULL);
    else if (!strcmp(s, "dump"))
        r = goro_run(scenario_dump_main, NULL);
    else if (!strcmp(s, "sigquit"))
        r = goro_run(scenario_sigquit_main, NULL);
    fflush(stdout);
    _exit(r == 0 ? 0 : 100);
}

static void deadlock_main(void *arg)
{
    goro_chan *ch = goro_chan_make(0, 0);
    goro_chan_recv(ch, NULL);   /* nobody will ever send */
}

Test(chan, deadlock_exits_with_status_2, .timeout = 10, .exit_code = 2)
{
    setenv("GORO_PROCS", "2", 1);
    goro_run(deadlock_main, NULL);
}

Test(chan, deadlock_message_and_dump, .timeout = 20)
{
    static struct child_result r;
    run_scenario("deadlock", NULL, 0, 0, &r);
    cr_assert(WIFEXITED(r.status), "child did not exit (status %#x):\n%s", r.status, r.err);
    cr_assert_eq(WEXITSTATUS(r.status), 2, "exit status %d:\n%s", WEXITSTATUS(r.status), r.err);
    cr_assert_not_null(strstr(r.err, "goro: fatal: all goroutines are asleep - deadlock!"),
                       "stderr:\n%s", r.err);
    check_dump_names(&r, 6);
}

Test(chan, dump_at_exit_names_every_goroutine, .timeout = 20)
{
    static struct child_result r;
    run_scenario("dump", "dump", 0, 0, &r);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x:\n%s", r.status,
              r.err);
    check_dump_names(&r, 6);
}

Test(chan, dump_on_sigquit, .timeout = 20)
{
    static struct child_result r;
    run_scenario("sigquit", NULL, SIGQUIT, 500, &r);
    cr_assert(strstr(r.out, "ready"), "child not ready: %s\n%s", r.out, r.err);
    check_dump_names(&r, 6);
}
