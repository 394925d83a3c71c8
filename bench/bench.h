/*
 * bench.h - the helpers every C benchmark shares (header-only).
 *
 * A benchmark is one program on goro that prints one line per figure,
 * "name value unit", and exits 0; a wrong result prints "FAIL: ..." to stderr
 * and exits 1, so that a fast wrong answer never counts. Its Go twin in
 * bench/go/<name>/main.go does the same work with the same parameters and the
 * same helpers (bench/go/benchutil). The runner (bench/run.sh) compares.
 *
 * Arguments are key=value pairs (n=1000000 procs=2 name=skynet), the same on
 * both sides. The worker count arrives as GORO_PROCS in the environment (Go:
 * GOMAXPROCS) and as procs=N, so each side can check it got what was asked.
 */
#ifndef GORO_BENCH_H
#define GORO_BENCH_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "goro.h"

static int    bench_argc_;
static char **bench_argv_;

__attribute__((format(printf, 1, 2), noreturn))
static inline void bench_fail(const char *fmt, ...)
{
    char buf[512];
    size_t k = sizeof "FAIL: " - 1;
    ssize_t w;
    va_list ap;
    memcpy(buf, "FAIL: ", k);
    va_start(ap, fmt);
    vsnprintf(buf + k, sizeof buf - k - 1, fmt, ap);
    va_end(ap);
    k = strlen(buf);
    buf[k++] = '\n';
    fflush(stdout);
    w = write(2, buf, k); /* one write: failing goroutines do not interleave */
    (void)w;
    _exit(1); /* may be called on a goroutine: no atexit handlers */
}

__attribute__((format(printf, 1, 2)))
static inline void bench_info(const char *fmt, ...)
{
    va_list ap;
    fputs("info: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static inline void bench_args(int argc, char **argv)
{
    bench_argc_ = argc;
    bench_argv_ = argv;
    for (int i = 1; i < argc; i++)
        if (!strchr(argv[i], '=') || argv[i][0] == '=')
            bench_fail("bad argument \"%s\" (want key=value)", argv[i]);
}

static inline const char *bench_str(const char *key, const char *def)
{
    size_t k = strlen(key);
    for (int i = 1; i < bench_argc_; i++)
        if (strncmp(bench_argv_[i], key, k) == 0 && bench_argv_[i][k] == '=')
            return bench_argv_[i] + k + 1;
    return def;
}

static inline int64_t bench_int(const char *key, int64_t def)
{
    const char *s = bench_str(key, NULL);
    char *end;
    long long v;
    if (!s)
        return def;
    errno = 0;
    v = strtoll(s, &end, 0);
    if (errno || end == s || *end)
        bench_fail("bad value for %s: \"%s\"", key, s);
    return (int64_t)v;
}

/* Monotonic nanoseconds; usable on and off goroutines. */
static inline int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Resident set size in bytes, from /proc/self/statm (as the Go side). */
static inline int64_t bench_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, resident;
    if (!f)
        bench_fail("open /proc/self/statm");
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        bench_fail("bad /proc/self/statm");
    fclose(f);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

/* Resident set size plus the page tables (VmPTE in /proc/self/status),
 * bytes: what a parked goroutine costs the machine (as the Go side). */
static inline int64_t bench_mem(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long pte = -1;
    if (!f)
        bench_fail("open /proc/self/status");
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPTE: %lld kB", &pte) == 1)
            break;
    fclose(f);
    if (pte < 0)
        bench_fail("no VmPTE in /proc/self/status");
    return bench_rss() + (int64_t)pte * 1024;
}

/* On a goroutine, after parked goroutines have stayed parked past
 * GORO_COMPACT_AFTER: wait until the compaction pass has done what it will
 * (want stacks compacted, or no progress for 1.2 s: a pass may wait for
 * the next goroutine to become due). Returns the stats. */
static inline struct goro_stats bench_compaction_settle(uint64_t want)
{
    struct goro_stats st;
    uint64_t last = UINT64_MAX;
    int still = 0;
    for (;;) {
        goro_stats(&st);
        if (st.stacks_compacted >= want)
            return st;
        still = st.stack_compactions == last ? still + 1 : 0;
        if (still == 4)
            return st;
        last = st.stack_compactions;
        goro_sleep(300 * 1000000);
    }
}

/* One figure, printed by the main thread after goro_run returned. */
static inline void bench_report(const char *name, double value, const char *unit)
{
    printf("%s %.6g %s\n", name, value, unit);
    fflush(stdout);
}

/* Call on a goroutine: fails unless the runtime has the workers asked for. */
static inline int bench_check_procs(void)
{
    int64_t want = bench_int("procs", 0);
    int got = goro_procs();
    if (want > 0 && got != want)
        bench_fail("goro_procs() is %d, the runner asked for %" PRId64, got, want);
    return got;
}

/* goro_run, failing loudly if the runtime could not start. */
static inline void bench_run(goro_fn fn, void *arg)
{
    int rc = goro_run(fn, arg);
    if (rc != 0)
        bench_fail("goro_run: %s", strerror(-rc));
}

/* Spawn or fail. */
static inline void bench_go(goro_fn fn, void *arg)
{
    int rc = goro_go(fn, arg);
    if (rc != 0)
        bench_fail("goro_go: %s", strerror(-rc));
}

#endif /* GORO_BENCH_H */
