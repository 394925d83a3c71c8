// yield - the Boost.Fiber twin of bench/yield.c: two fibers on one thread
// hand the CPU back and forth with boost::this_fiber::yield.
// Figure: ns per yield. Verified: every yield ran, and the two alternated.
#include "bench.hpp"

static int64_t n, switches, count_[2];
static int last = -1; // one thread: no race

int main(int argc, char **argv)
{
    bench::args(argc, argv);
    n = bench::integer("n", 1000000);
    int64_t elapsed = 0;
    bench::run([&] {
        int64_t t0 = bench::now();
        boost::fibers::fiber f[2];
        for (int me = 0; me < 2; me++)
            f[me] = boost::fibers::fiber([me] {
                for (int64_t i = 0; i < n; i++) {
                    last = me;
                    boost::this_fiber::yield();
                    if (last != me)
                        switches++;
                    count_[me]++;
                }
            });
        f[0].join();
        f[1].join();
        elapsed = bench::now() - t0;
    });
    if (count_[0] != n || count_[1] != n)
        bench::fail("yields counted %" PRId64 " + %" PRId64 ", want %" PRId64 " each", count_[0], count_[1], n);
    if (switches < n)
        bench::fail("only %" PRId64 " of %" PRId64 " yields switched fibers", switches, 2 * n);
    bench::report(bench::str("name", "yield"), (double)elapsed / (double)(2 * n), "ns/op");
}
