// skynet - the Boost.Fiber twin of bench/skynet.c: 1,111,111 fibers in a tree
// of fan-out div, sums sent up boost::fibers::unbuffered_channel (each
// parent's children share one; shared_ptr keeps it alive until the last
// child is done with it). Figure: ms for the whole tree.
#include "bench.hpp"
#include <memory>

using chan = boost::fibers::unbuffered_channel<int64_t>;
static int64_t div_;

static void skynet(std::shared_ptr<chan> up, int64_t num, int64_t size)
{
    if (size == 1) {
        up->push(num);
        return;
    }
    auto rc = std::make_shared<chan>();
    int64_t sub = size / div_, sum = 0, v;
    for (int64_t i = 0; i < div_; i++)
        boost::fibers::fiber(skynet, rc, num + i * sub, sub).detach();
    for (int64_t i = 0; i < div_; i++) {
        if (rc->pop(v) != boost::fibers::channel_op_status::success)
            bench::fail("a child's channel closed");
        sum += v;
    }
    up->push(sum);
}

int main(int argc, char **argv)
{
    bench::args(argc, argv);
    int64_t size = bench::integer("size", 1000000), result = 0, elapsed = 0;
    div_ = bench::integer("div", 10);
    int64_t want = size * (size - 1) / 2;
    bench::need_memory((double)size * 4096, "the tree"); // 4.1 GB at the peak for 1,111,111 here
    bench::run([&] {
        auto c = std::make_shared<chan>();
        int64_t t0 = bench::now();
        boost::fibers::fiber(skynet, c, 0, size).detach();
        if (c->pop(result) != boost::fibers::channel_op_status::success)
            bench::fail("the root's channel closed");
        elapsed = bench::now() - t0;
    });
    if (result != want)
        bench::fail("sum is %" PRId64 ", want %" PRId64, result, want);
    bench::report(bench::str("name", "skynet"), (double)elapsed / 1e6, "ms");
}
