// chanbuf - the Boost.Fiber twin of bench/chanbuf.c: 4 producers and 4
// consumers share one boost::fibers::buffered_channel of capacity 128 (a
// power of two, as Boost requires; it holds 127). Figure: ns per message.
// Verified: count and sum of all messages.
#include "bench.hpp"

using chan = boost::fibers::buffered_channel<int64_t>;
using boost::fibers::channel_op_status;

int main(int argc, char **argv)
{
    bench::args(argc, argv);
    int64_t n = bench::integer("n", 2000000), elapsed = 0;
    int64_t producers = bench::integer("producers", 4), consumers = bench::integer("consumers", 4);
    int64_t cap = bench::integer("cap", 128);
    if (producers < 1 || consumers < 1 || producers > 64 || consumers > 64)
        bench::fail("producers and consumers must be 1..64");
    if (cap < 2 || (cap & (cap - 1)))
        bench::fail("cap must be a power of two >= 2 (Boost's buffered_channel)");
    std::vector<int64_t> got(consumers), sum(consumers);
    bench::run([&] {
        chan ch((size_t)cap);
        std::vector<boost::fibers::fiber> ps, cs;
        int64_t t0 = bench::now();
        for (int64_t c = 0; c < consumers; c++)
            cs.emplace_back([&, c] {
                int64_t k = 0, s = 0, v;
                while (ch.pop(v) == channel_op_status::success) {
                    k++;
                    s += v;
                }
                got[c] = k;
                sum[c] = s;
            });
        for (int64_t p = 0; p < producers; p++)
            ps.emplace_back([&, p] {
                for (int64_t v = p + 1; v <= n; v += producers)
                    if (ch.push(v) != channel_op_status::success)
                        bench::fail("send failed");
            });
        for (auto &f : ps)
            f.join();
        ch.close();
        for (auto &f : cs)
            f.join();
        elapsed = bench::now() - t0;
    });
    int64_t total = 0, s = 0;
    for (int64_t c = 0; c < consumers; c++) {
        total += got[c];
        s += sum[c];
    }
    if (total != n || s != n * (n + 1) / 2)
        bench::fail("received %" PRId64 " messages summing to %" PRId64 ", want %" PRId64 " summing to %" PRId64,
                    total, s, n, n * (n + 1) / 2);
    bench::report(bench::str("name", "chan_buffered_4x4"), (double)elapsed / (double)n, "ns/op");
}
