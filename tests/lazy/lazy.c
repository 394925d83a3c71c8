/*
 * lazy.c - tests/test_lazy.c's program: linked against libgoro.so with
 * -z lazy (the Makefile), so that its first call of each goro function goes
 * through the dynamic linker's lazy binding, on the calling goroutine's
 * stack. For each depth near the end of a one-page stack, a child process
 * (so that the call is the first) runs goroutine A, which hands B a pointer
 * to its local and then calls goro_chan_recv for the first time; B writes
 * the answer through the pointer. A's stack must not move between the
 * handoff and the wake (README rule 5): prints how many depths it moved at
 * and how many answers were lost.
 */
#include <goro.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static goro_chan *ch;
static goro_wg wg;
static int64_t *volatile pub;
static volatile int handed;
static volatile int moved, lost;
static int depth;

static void b_fn(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&handed, __ATOMIC_ACQUIRE))
        goro_yield(); /* one worker: runs once A parks */
    *pub = 42;
    int one = 1;
    goro_chan_send(ch, &one);
    goro_wg_done(&wg);
}

static __attribute__((noinline)) void a_body(void)
{
    int64_t word = 0;
    int got = 0;
    pub = &word;
    __atomic_store_n(&handed, 1, __ATOMIC_RELEASE); /* a store: no call */
    goro_chan_recv(ch, &got);                        /* the first: lazy */
    /* relocation moved &word with the stack, not the copy in pub */
    moved = (uintptr_t)&word != (uintptr_t)pub;
    lost = *(volatile int64_t *)&word != 42;
}

static __attribute__((noinline)) void at(int off)
{
    volatile char pad[off + 1];
    for (int i = 0; i <= off; i++)
        pad[i] = 0x5a; /* not memset: its own first call would bind lazily */
    a_body();
    if (pad[0] != 0x5a || pad[off] != 0x5a)
        lost = 1;
}

static void a_fn(void *arg)
{
    (void)arg;
    at(depth);
    goro_wg_done(&wg);
}

static void main_fn(void *arg)
{
    (void)arg;
    ch = goro_chan_make(sizeof(int), 0);
    goro_wg_init(&wg);
    goro_wg_add(&wg, 2);
    goro_go(b_fn, NULL);
    goro_go(a_fn, NULL);
    goro_wg_wait(&wg);
    goro_chan_free(ch);
}

int main(void)
{
    int nmoved = 0, nlost = 0, n = 0;
    setenv("GORO_PROCS", "1", 1);
    for (int off = 3000; off < 4096; off += 8, n++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            depth = off;
            if (goro_run(main_fn, NULL) != 0)
                _exit(100);
            _exit((moved ? 1 : 0) | (lost ? 2 : 0));
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) > 3) {
            fprintf(stderr, "depth %d: the child failed (status %#x)\n", off, st);
            return 2;
        }
        nmoved += WEXITSTATUS(st) & 1;
        nlost += (WEXITSTATUS(st) & 2) != 0;
    }
    printf("moved %d lost %d of %d depths\n", nmoved, nlost, n);
    return 0;
}
