// spawn - the Boost.Fiber twin of bench/spawn.c: spawn n detached fibers
// from one, each adds one to a counter and counts down a latch (an atomic
// and a promise the last one fulfils); join them all. Figure: ns per fiber.
#include "bench.hpp"
#include <atomic>

int main(int argc, char **argv)
{
    bench::args(argc, argv);
    int64_t n = bench::integer("n", 1000000), elapsed = 0;
    bench::need_memory((double)n * 10240, "spawning them all");
    std::atomic<int64_t> counter{0};
    bench::run([&] {
        std::atomic<int64_t> left{n};
        boost::fibers::promise<void> all;
        boost::fibers::future<void> done = all.get_future();
        int64_t t0 = bench::now();
        for (int64_t i = 0; i < n; i++)
            boost::fibers::fiber([&] {
                counter.fetch_add(1, std::memory_order_relaxed);
                // acq_rel: the last one sees every other's increment
                if (left.fetch_sub(1, std::memory_order_acq_rel) == 1)
                    all.set_value();
            }).detach();
        done.wait();
        elapsed = bench::now() - t0;
    });
    if (counter.load() != n)
        bench::fail("%" PRId64 " fibers ran, want %" PRId64, counter.load(), n);
    bench::report(bench::str("name", "spawn_join"), (double)elapsed / (double)n, "ns/op");
}
