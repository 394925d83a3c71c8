/*
 * tests/valgrind/grow.c - stacks that grow and move under Valgrind
 * (tests/valgrind.sh): 20 goroutines recurse 100-1050 frames deep through
 * 200-byte frames that point at their caller's, so every one of them
 * grows its stack from one page, moved by the fault handler while
 * memcheck watches; each frame checks its own bytes on the way back up.
 * Each frame fills its buffer with `rep stosb` (a fault inside it must
 * leave no byte unwritten), and 20 more goroutines recurse through
 * 16-byte frames (push rbp, call), so that the guard is also hit by a
 * push or a call: under Valgrind these instructions have changed rcx or
 * rsp when their store faults (annotate.c, goro__vg_fault).
 * Prints the growths and exits 0, or names the first corrupted frame.
 */
#include <goro.h>
#include <stdio.h>

static goro_wg wg;
static volatile long sink, bad;

__attribute__((noinline)) static long dive(int n, const char *parent)
{
    char buf[200];
    char *d = buf;
    size_t len = sizeof buf;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(len) : "a"(n & 0x7f) : "memory");
    buf[0] = parent ? parent[1] : 0;  /* the caller's frame, through a pointer */
    if (n == 0)
        return buf[5];
    long r = dive(n - 1, buf);
    for (size_t i = 1; i < sizeof buf; i++)
        if (buf[i] != (char)(n & 0x7f)) {
            printf("grow: frame %d corrupted at byte %zu\n", n, i);
            bad = 1;
            break;
        }
    return r + buf[3];
}

static void diver(void *arg)
{
    sink += dive((int)(long)arg, NULL);
    goro_wg_done(&wg);
}

/* 16-byte frames: push rbp, call (built with -O1 -fno-omit-frame-pointer) */
__attribute__((noinline)) static long tiny(long n)
{
    if (n == 0)
        return 0;
    long r = tiny(n - 1);
    sink = r;
    return r + 1;
}

static void tiny_diver(void *arg)
{
    long n = (long)arg;
    if (tiny(n) != n) {
        printf("grow: tiny(%ld) returned wrong\n", n);
        bad = 1;
    }
    goro_wg_done(&wg);
}

static void main_g(void *arg)
{
    (void)arg;
    goro_wg_init(&wg);
    goro_wg_add(&wg, 40);
    for (long i = 0; i < 20; i++) {
        goro_go(diver, (void *)(100 + i * 50));
        goro_go(tiny_diver, (void *)(1000 + i * 997));
    }
    goro_wg_wait(&wg);
    struct goro_stats st;
    goro_stats(&st);
    printf("grow: %llu growths, %s\n", (unsigned long long)st.stack_growths,
           bad ? "CORRUPTED" : "every frame intact");
}

int main(void)
{
    return goro_run(main_g, NULL) == 0 && !bad ? 0 : 1;
}
