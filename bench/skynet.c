/*
 * skynet - the skynet benchmark (github.com/atemerev/skynet): a goroutine
 * spawns div children, each spawns div more, down to size (1,000,000) leaves;
 * each leaf sends its number up an unbuffered channel, each parent sums its
 * children's and sends the sum to its own parent. 1,111,111 goroutines in all.
 *
 * Figure: ms for the whole tree. Verified: the sum is size*(size-1)/2
 * (499999500000 for 1M).
 */
#include "bench.h"

struct node {
    goro_chan *up;   /* the parent's channel (int64_t) */
    int64_t    num;  /* first leaf number under this node */
    int64_t    size; /* leaves under this node */
};

static int64_t div_;

static void skynet(void *arg)
{
    struct node me = *(struct node *)arg; /* the parent frees arg after the join */
    int64_t sum = 0, v, sub = me.size / div_;
    struct node *kids;
    goro_chan *rc;

    if (me.size == 1) {
        if (goro_chan_send(me.up, &me.num) != 0)
            bench_fail("send to parent failed");
        return;
    }
    rc = goro_chan_make(sizeof(int64_t), 0);
    kids = malloc((size_t)div_ * sizeof *kids);
    if (!rc || !kids)
        bench_fail("out of memory");
    for (int64_t i = 0; i < div_; i++) {
        kids[i] = (struct node){ rc, me.num + i * sub, sub };
        bench_go(skynet, &kids[i]);
    }
    for (int64_t i = 0; i < div_; i++) {
        if (goro_chan_recv(rc, &v) != 1)
            bench_fail("receive from child failed");
        sum += v;
    }
    free(kids);
    goro_chan_free(rc);
    if (goro_chan_send(me.up, &sum) != 0)
        bench_fail("send to parent failed");
}

static int64_t size, result, elapsed;
static struct node root; /* not on main's stack: the child reads it later */

static void bench_main(void *arg)
{
    goro_chan *c = goro_chan_make(sizeof(int64_t), 0);
    int64_t t0;

    bench_check_procs();
    if (!c)
        bench_fail("goro_chan_make: %s", strerror(errno));
    root = (struct node){ c, 0, size };
    t0 = bench_now();
    bench_go(skynet, &root);
    if (goro_chan_recv(c, &result) != 1)
        bench_fail("receive from root failed");
    elapsed = bench_now() - t0;
    goro_chan_free(c);
}

int main(int argc, char **argv)
{
    int64_t want;
    bench_args(argc, argv);
    size = bench_int("size", 1000000);
    div_ = bench_int("div", 10);
    want = size * (size - 1) / 2;
    bench_run(bench_main, NULL);
    if (result != want)
        bench_fail("sum is %" PRId64 ", want %" PRId64, result, want);
    bench_report(bench_str("name", "skynet"), (double)elapsed / 1e6, "ms");
    return 0;
}
