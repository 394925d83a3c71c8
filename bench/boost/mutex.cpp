// mutex - the Boost.Fiber twin of bench/mutex.c: g fibers each take and
// release one boost::fibers::mutex n/g times around an increment of a shared
// counter. Figure: ns per lock+unlock. Verified: the counter.
#include "bench.hpp"

int main(int argc, char **argv)
{
    bench::args(argc, argv);
    int64_t n = bench::integer("n", 4000000), g = bench::integer("goroutines", 8), elapsed = 0;
    if (g < 1)
        bench::fail("goroutines must be >= 1");
    int64_t per = n / g, counter = 0;
    n = per * g;
    bench::run([&] {
        boost::fibers::mutex mu;
        std::vector<boost::fibers::fiber> fs;
        int64_t t0 = bench::now();
        for (int64_t i = 0; i < g; i++)
            fs.emplace_back([&] {
                for (int64_t k = 0; k < per; k++) {
                    mu.lock();
                    counter++;
                    mu.unlock();
                }
            });
        for (auto &f : fs)
            f.join();
        elapsed = bench::now() - t0;
    });
    if (counter != n)
        bench::fail("counter is %" PRId64 ", want %" PRId64, counter, n);
    bench::report(bench::str("name", "mutex"), (double)elapsed / (double)n, "ns/op");
}
