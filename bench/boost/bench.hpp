// bench.hpp - the Boost.Fiber twin of bench/bench.h: key=value arguments, the
// clock, RSS, one figure per line ("name value unit"), FAIL on a wrong
// result, and the fiber pool every program runs on.
//
// The pool: procs threads (the main thread and procs-1 more), each running
// Boost.Fiber's work_stealing algorithm, so a fiber spawned on one may run
// on any; fibers get Boost's default fixedsize_stack. The benchmark's main
// fiber is the main thread's, as goro's bench_main is a goroutine.
#ifndef GORO_BENCH_BOOST_HPP
#define GORO_BENCH_BOOST_HPP

#include <boost/fiber/all.hpp>
#include <boost/fiber/algo/work_stealing.hpp>

#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace bench {

static int    argc_;
static char **argv_;

[[noreturn]] __attribute__((format(printf, 1, 2))) static inline void fail(const char *fmt, ...)
{
    char buf[512];
    size_t k = sizeof "FAIL: " - 1;
    va_list ap;
    memcpy(buf, "FAIL: ", k);
    va_start(ap, fmt);
    vsnprintf(buf + k, sizeof buf - k - 1, fmt, ap);
    va_end(ap);
    k = strlen(buf);
    buf[k++] = '\n';
    fflush(stdout);
    ssize_t w = write(2, buf, k); // one write: failing fibers do not interleave
    (void)w;
    _exit(1);
}

__attribute__((format(printf, 1, 2))) static inline void info(const char *fmt, ...)
{
    va_list ap;
    fputs("info: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static inline void args(int argc, char **argv)
{
    argc_ = argc;
    argv_ = argv;
    for (int i = 1; i < argc; i++)
        if (!strchr(argv[i], '=') || argv[i][0] == '=')
            fail("bad argument \"%s\" (want key=value)", argv[i]);
}

static inline const char *str(const char *key, const char *def)
{
    size_t k = strlen(key);
    for (int i = 1; i < argc_; i++)
        if (strncmp(argv_[i], key, k) == 0 && argv_[i][k] == '=')
            return argv_[i] + k + 1;
    return def;
}

static inline int64_t integer(const char *key, int64_t def)
{
    const char *s = str(key, nullptr);
    char *end;
    if (!s)
        return def;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || end == s || *end)
        fail("bad value for %s: \"%s\"", key, s);
    return v;
}

static inline int64_t now()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t rss()
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, resident;
    if (!f)
        fail("open /proc/self/statm");
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        fail("bad /proc/self/statm");
    fclose(f);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

// Resident set plus page tables (VmPTE), as bench_mem in bench/bench.h.
static inline int64_t mem()
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long pte = -1;
    if (!f)
        fail("open /proc/self/status");
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPTE: %lld kB", &pte) == 1)
            break;
    fclose(f);
    if (pte < 0)
        fail("no VmPTE in /proc/self/status");
    return rss() + (int64_t)pte * 1024;
}

// Fail up front, rather than wake the OOM killer, when the fibers about to
// be made would not fit: Boost's fixed 128 KiB stacks cost a fiber about
// 10 KB of RSS (the top of its stack, its context, malloc's header), and
// spawn_join_1m and parked_1m hold a million at once (9-10 GB here).
static inline void need_memory(double bytes, const char *what)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long long kb = -1;
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1)
            break;
    fclose(f);
    if (kb >= 0 && bytes > 0.9 * (double)kb * 1024)
        fail("%s would need about %.1f GB with Boost's fixed stacks; MemAvailable is %.1f GB",
             what, bytes / 1e9, (double)kb * 1024 / 1e9);
}

static inline void report(const char *name, double value, const char *unit)
{
    printf("%s %.6g %s\n", name, value, unit);
    fflush(stdout);
}

// Run fn as the main thread's main fiber, with procs threads in all on
// work_stealing; returns when fn has returned and the other threads are
// joined (fibers still alive then are the benchmark's bug).
template <class F> static inline void run(F fn)
{
    int64_t procs = integer("procs", 1);
    if (procs < 1 || procs > 1024)
        fail("procs must be 1..1024");
    bool done = false;
    boost::fibers::mutex mu;
    boost::fibers::condition_variable cv;
    std::vector<std::thread> threads;
    for (int64_t i = 1; i < procs; i++)
        threads.emplace_back([&] {
            // the constructor waits until all procs threads have one
            boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>((uint32_t)procs);
            std::unique_lock<boost::fibers::mutex> lk(mu);
            cv.wait(lk, [&] { return done; }); // this thread's fibers run meanwhile
        });
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>((uint32_t)procs);
    fn();
    {
        std::unique_lock<boost::fibers::mutex> lk(mu);
        done = true;
    }
    cv.notify_all();
    for (auto &t : threads)
        t.join();
}

} // namespace bench

#endif
