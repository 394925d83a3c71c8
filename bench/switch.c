/*
 * switch - what a switch costs below goro: the reference rows of the
 * switch-cost table (bench/run.sh puts them beside goro_yield, the bare
 * register switch, Go's Gosched, Tokio's yield_now and Boost.Fiber's
 * this_fiber::yield, all from the yield benchmark's runs on one worker).
 *
 * Figures, ns per switch, everything pinned to one CPU so that each hand-off
 * is a real switch on that CPU, not two CPUs running side by side:
 *   process_switch   two processes bounce a byte over two pipes; a round
 *                    trip is two switches (and two writes, two reads)
 *   thread_switch    two threads of one process take turns on a futex word;
 *                    a turn is one switch (and a FUTEX_WAKE, a FUTEX_WAIT)
 *   ucontext_switch  swapcontext between two contexts on one thread (glibc
 *                    saves and restores the signal mask: a syscall each)
 * Verified: every byte came back as sent, every turn alternated, every
 * swapcontext ran. Does not start the goro runtime.
 */
#include "bench.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>

static void pin_to_one_cpu(void)
{
    cpu_set_t set;
    int cpu = sched_getcpu();
    CPU_ZERO(&set);
    CPU_SET(cpu < 0 ? 0 : cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        bench_fail("sched_setaffinity: %s", strerror(errno));
}

/* --- processes over pipes ----------------------------------------------- */
static double process_switch_ns(int64_t n)
{
    int to_child[2], to_parent[2], status;
    pid_t pid;
    if (pipe(to_child) || pipe(to_parent))
        bench_fail("pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0)
        bench_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        unsigned char b;
        for (int64_t i = 0; i < n; i++) {
            if (read(to_child[0], &b, 1) != 1)
                _exit(2);
            b++;
            if (write(to_parent[1], &b, 1) != 1)
                _exit(3);
        }
        _exit(0);
    }
    int64_t t0 = bench_now();
    for (int64_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)i;
        if (write(to_child[1], &b, 1) != 1 || read(to_parent[0], &b, 1) != 1)
            bench_fail("pipe round trip %" PRId64 ": %s", i, strerror(errno));
        if (b != (unsigned char)(i + 1))
            bench_fail("pipe round trip %" PRId64 ": got %u, want %u", i, b, (unsigned char)(i + 1));
    }
    int64_t t = bench_now() - t0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_fail("the child process failed");
    close(to_child[0]), close(to_child[1]), close(to_parent[0]), close(to_parent[1]);
    return (double)t / (double)(2 * n);
}

/* --- threads over a futex ----------------------------------------------- */
static _Atomic int turn;      /* whose turn: 0 or 1 */
static int64_t     turns[2];  /* turns each thread took */
static int64_t     thread_n;

static void futex_wait(_Atomic int *w, int val)
{
    syscall(SYS_futex, (int *)w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *w)
{
    syscall(SYS_futex, (int *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *taker(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int64_t i = 0; i < thread_n; i++) {
        int t;
        /* acquire: what the other wrote before handing over is visible */
        while ((t = atomic_load_explicit(&turn, memory_order_acquire)) != me)
            futex_wait(&turn, t);
        turns[me]++;
        atomic_store_explicit(&turn, !me, memory_order_release);
        futex_wake(&turn);
    }
    return NULL;
}

static double thread_switch_ns(int64_t n)
{
    pthread_t th;
    thread_n = n;
    atomic_store(&turn, 0);
    int64_t t0 = bench_now();
    if (pthread_create(&th, NULL, taker, (void *)(intptr_t)1) != 0)
        bench_fail("pthread_create");
    taker((void *)(intptr_t)0);
    pthread_join(th, NULL);
    int64_t t = bench_now() - t0;
    if (turns[0] != n || turns[1] != n)
        bench_fail("futex turns %" PRId64 " + %" PRId64 ", want %" PRId64 " each", turns[0], turns[1], n);
    return (double)t / (double)(2 * n);
}

/* --- swapcontext ---------------------------------------------------------- */
static ucontext_t uc_main, uc_co;
static int64_t    uc_n, uc_done;

static void co_entry(void)
{
    for (uc_done = 0; uc_done < uc_n; uc_done++)
        swapcontext(&uc_co, &uc_main);
}

static double ucontext_switch_ns(int64_t n)
{
    static _Alignas(64) char stack[64 * 1024];
    uc_n = n;
    if (getcontext(&uc_co) != 0)
        bench_fail("getcontext: %s", strerror(errno));
    uc_co.uc_stack.ss_sp = stack;
    uc_co.uc_stack.ss_size = sizeof stack;
    uc_co.uc_link = &uc_main;
    makecontext(&uc_co, co_entry, 0);
    int64_t t0 = bench_now();
    for (int64_t i = 0; i < n; i++)
        swapcontext(&uc_main, &uc_co);
    int64_t t = bench_now() - t0;
    swapcontext(&uc_main, &uc_co); /* let co_entry return through uc_link */
    if (uc_done != n)
        bench_fail("swapcontext: %" PRId64 " of %" PRId64 " round trips", uc_done, n);
    return (double)t / (double)(2 * n);
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    int64_t np = bench_int("process", 100000);
    int64_t nt = bench_int("thread", 100000);
    int64_t nu = bench_int("ucontext", 1000000);
    pin_to_one_cpu();
    bench_report("process_switch", process_switch_ns(np), "ns/op");
    bench_report("thread_switch", thread_switch_ns(nt), "ns/op");
    bench_report("ucontext_switch", ucontext_switch_ns(nu), "ns/op");
    return 0;
}
