/* tests/goro_check.h - checks made inside goroutines, leak checks, and
 * scenarios run in a child process (deadlock, goroutine dump). */
#ifndef GORO_TEST_CHECK_H
#define GORO_TEST_CHECK_H

#include "util.h"

#include <atomic_ops.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The runtime's internal counters (the tests link the static library). */
#include "chan.h"  /* internal.h, and goro__chan_free */

/* Valgrind's client request (0 without its headers): a test that needs a
 * million live goroutines, or thousands of wakeups between threads, which
 * Valgrind runs one at a time, does less under it */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* A failed CHECK inside a goroutine records the first failure and carries
 * on (Criterion's asserts must not unwind a goroutine's stack); the test
 * asserts CHECKS_PASSED() once goro_run has returned. */
static char check_failure[512];
static volatile AO_t check_failed;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond) && AO_compare_and_swap_full(&check_failed, 0, 1)) {           \
            int n_ = snprintf(check_failure, sizeof check_failure, "%s:%d: %s: ", \
                              __FILE__, __LINE__, #cond);                         \
            if (n_ > 0 && (size_t)n_ < sizeof check_failure)                      \
                snprintf(check_failure + n_, sizeof check_failure - (size_t)n_,   \
                         __VA_ARGS__);                                            \
        }                                                                         \
    } while (0)

#define CHECKS_PASSED() cr_assert_eq(AO_load(&check_failed), 0, "%s", check_failure)

/* From the main goroutine at its end: nothing but main is left alive and no
 * timer is pending. Waits a little for goroutines that are on their way out
 * (they were readied but have not finished exiting). */
static inline void check_no_leaks(void)
{
    for (int i = 0; i < 2000 && (alive_now() != 1 || AO_load(&goro__ctr.timers_pending) != 0); i++)
        goro_sleep(1000000);
    CHECK(alive_now() == 1, "%llu goroutines alive at the end",
          (unsigned long long)alive_now());
    CHECK(AO_load(&goro__ctr.timers_pending) == 0, "%lu timers pending at the end",
          (unsigned long)AO_load(&goro__ctr.timers_pending));
}

/* From a goroutine: wait until expr holds, looking every 0.1 ms, for at
 * most 10 s; true if it came to hold. A test waits for what it needs to
 * have happened (a waiter queued, a wake-up logged) rather than sleeping a
 * fixed time and hoping: on a loaded machine (make stress runs suites two
 * at once, other processes share the CPUs) a runnable goroutine can wait
 * 100 ms for its worker thread. */
#define WAIT_FOR(expr)                                                   \
    ({                                                                   \
        int64_t end_ = goro_now() + 10000000000LL;                       \
        bool ok_;                                                        \
        while (!(ok_ = (expr)) && goro_now() < end_)                     \
            goro_sleep(100000);                                          \
        ok_;                                                             \
    })

/* ---- scenarios in a child process -----------------------------------------
 * The test binary re-executes itself with GORO_TEST_SCENARIO=name; a
 * constructor in the test file runs the scenario before Criterion's main. */

struct child_result {
    int status;        /* from waitpid */
    char out[8192];    /* its stdout */
    char err[65536];   /* its stderr */
};

/* Run scenario name with GORO_DEBUG=debug (NULL: unset); if sig is not 0,
 * send it after delay_ms, once the child printed "ready". */
static inline void run_scenario(const char *name, const char *debug, int sig, int delay_ms,
                                struct child_result *r)
{
    int po[2], pe[2];
    /* the path, not /proc/self/exe itself: under Valgrind that is the
     * tool's binary, and readlink names the suite (Valgrind answers it) */
    char self[4096];
    ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(sn, 0);
    self[sn] = 0;
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        setenv("GORO_TEST_SCENARIO", name, 1);
        if (debug)
            setenv("GORO_DEBUG", debug, 1);
        else
            unsetenv("GORO_DEBUG");
        setenv("GORO_PROCS", "2", 1);
        /* the signal at its default action, as goro wants it to install
         * its own: a shell's background job (cmd &) starts with SIGQUIT
         * ignored, and exec keeps it so (the dump test failed that way) */
        if (sig != 0) {
            signal(sig, SIG_DFL);
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, sig);
            sigprocmask(SIG_UNBLOCK, &set, NULL);
        }
        execl(self, "scenario", (char *)NULL);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    memset(r, 0, sizeof *r);
    size_t len[2] = { 0, 0 };
    char *buf[2] = { r->out, r->err };
    size_t cap[2] = { sizeof r->out, sizeof r->err };
    int fds[2] = { po[0], pe[0] };
    int64_t start = goro_now();
    bool sent = sig == 0;
    while (fds[0] >= 0 || fds[1] >= 0) {
        struct pollfd p[2] = { { fds[0], POLLIN, 0 }, { fds[1], POLLIN, 0 } };
        poll(p, 2, 10);
        for (int k = 0; k < 2; k++) {
            if (fds[k] < 0 || !p[k].revents)
                continue;
            ssize_t n = cap[k] - 1 > len[k] ? read(fds[k], buf[k] + len[k], cap[k] - 1 - len[k]) : 0;
            if (n <= 0) {
                close(fds[k]);
                fds[k] = -1;
            } else {
                len[k] += (size_t)n;
                buf[k][len[k]] = 0;
            }
        }
        /* not before the child says "ready" (a slow start: Valgrind),
         * for 15 s at most */
        int64_t ran = goro_now() - start;
        if (!sent && ran >= (int64_t)delay_ms * 1000000 &&
            (strstr(r->out, "ready") != NULL || ran >= 15000000000LL)) {
            kill(pid, sig);
            sent = true;
        }
    }
    cr_assert_eq(waitpid(pid, &r->status, 0), pid);
}

/* Every "<id> <wait>" line the child printed (on stdout) shows up in its
 * dump (on stderr) as "goroutine <id> [<wait>"; want such lines in all. */
static inline void check_dump_names(const struct child_result *r, int want)
{
    int lines = 0;
    char out[sizeof r->out];
    memcpy(out, r->out, sizeof out);
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int id;
        char name[64];
        if (sscanf(line, "%d %63[^\n]", &id, name) != 2)
            continue;
        char w[128];
        snprintf(w, sizeof w, "goroutine %d [%s", id, name);
        cr_assert_not_null(strstr(r->err, w), "dump lacks \"%s\":\n%s", w, r->err);
        lines++;
    }
    cr_assert_eq(lines, want, "child printed %d goroutines:\n%s", lines, r->out);
}

#endif
