// parked - the Boost.Fiber twin of bench/parked.c: spawn n detached fibers
// that check in and park on one condition variable; RSS growth
// (/proc/self/statm) plus page tables (VmPTE) divided by n. Figure: bytes per fiber.
#include "bench.hpp"
#include <atomic>

int main(int argc, char **argv)
{
    bench::args(argc, argv);
    int64_t n = bench::integer("n", 100000), before = 0, parked = 0;
    int64_t idle_ms = bench::integer("idle_ms", 1500);
    bench::need_memory((double)n * 10240, "parking them all");
    std::atomic<int64_t> started{0}, finished{0};
    bench::run([&] {
        boost::fibers::mutex mu;
        boost::fibers::condition_variable cv;
        bool released = false;
        boost::fibers::promise<void> all_in, all_done;
        auto in = all_in.get_future(), out = all_done.get_future();
        boost::this_fiber::sleep_for(std::chrono::milliseconds(20)); // let the threads settle
        before = bench::mem();
        for (int64_t i = 0; i < n; i++)
            boost::fibers::fiber([&] {
                std::unique_lock<boost::fibers::mutex> lk(mu);
                if (started.fetch_add(1) + 1 == n)
                    all_in.set_value();
                cv.wait(lk, [&] { return released; });
                lk.unlock();
                if (finished.fetch_add(1) + 1 == n)
                    all_done.set_value();
            }).detach();
        in.wait();
        // parked for a while, as the C side (goro compacts after 1 s)
        boost::this_fiber::sleep_for(std::chrono::milliseconds(idle_ms));
        parked = bench::mem();
        if (finished.load() != 0)
            bench::fail("a fiber went past its park");
        {
            std::unique_lock<boost::fibers::mutex> lk(mu);
            released = true;
        }
        cv.notify_all();
        out.wait();
    });
    if (finished.load() != n)
        bench::fail("%" PRId64 " fibers finished, want %" PRId64, finished.load(), n);
    bench::info("rss+pte before %" PRId64 " KiB, parked %" PRId64 " KiB", before / 1024, parked / 1024);
    bench::report(bench::str("name", "parked"), (double)(parked - before) / (double)n, "bytes/goroutine");
}
