// pingpong - the Boost.Fiber twin of bench/pingpong.c: two fibers bounce a
// counter over two boost::fibers::unbuffered_channel. Figure: ns per round
// trip. Verified: every reply is the request plus one; the echoer saw all n.
#include "bench.hpp"

using chan = boost::fibers::unbuffered_channel<int64_t>;
using boost::fibers::channel_op_status;

int main(int argc, char **argv)
{
    bench::args(argc, argv);
    int64_t n = bench::integer("n", 1000000), echoed = 0, elapsed = 0;
    bench::run([&] {
        chan ping, pong;
        boost::fibers::fiber echoer([&] {
            int64_t v;
            while (ping.pop(v) == channel_op_status::success) {
                echoed++;
                if (pong.push(v + 1) != channel_op_status::success)
                    bench::fail("send on pong failed");
            }
        });
        int64_t t0 = bench::now(), v = 0;
        for (int64_t i = 0; i < n; i++) {
            if (ping.push(i) != channel_op_status::success)
                bench::fail("send on ping failed");
            if (pong.pop(v) != channel_op_status::success || v != i + 1)
                bench::fail("round trip %" PRId64 ": got %" PRId64 ", want %" PRId64, i, v, i + 1);
        }
        elapsed = bench::now() - t0;
        ping.close();
        echoer.join();
    });
    if (echoed != n)
        bench::fail("echoer saw %" PRId64 " requests, want %" PRId64, echoed, n);
    bench::report(bench::str("name", "pingpong"), (double)elapsed / (double)n, "ns/op");
}
