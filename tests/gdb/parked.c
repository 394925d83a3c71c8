/*
 * tests/gdb/parked.c - the program tests/test_gdb.c inspects with gdb:
 * goroutines parked on a channel, a socket and a timer, each a few calls
 * deep in functions of its own, and the main goroutine stopped in
 * parked_stop_here() once all of them are parked (and again, while a
 * debugger sets parked_again). Run alone it exits 0.
 */
#include <goro.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static goro_chan *ch;
static int sv[2];
static volatile int sink;

/* Set by tests/test_gdb.c's gdb at the break below when a goroutine it
 * expects parked is not yet (a loaded machine): stop here again later. */
volatile int parked_again;

/* Called with every goroutine parked; tests/test_gdb.c breaks here. */
__attribute__((noinline)) void parked_stop_here(void);
__attribute__((noinline)) void parked_stop_here(void)
{
    __asm__ __volatile__("" ::: "memory");
}

__attribute__((noinline)) static void chan_waiter_inner(int depth)
{
    long v;
    if (depth > 0) {
        chan_waiter_inner(depth - 1);
        sink++;
        return;
    }
    goro_chan_recv(ch, &v);
}

static void chan_waiter(void *arg)
{
    (void)arg;
    chan_waiter_inner(2);
}

__attribute__((noinline)) static void sock_reader_inner(void)
{
    char buf[16];
    goro_read(sv[0], buf, sizeof buf);
    sink++;
}

static void sock_reader(void *arg)
{
    (void)arg;
    sock_reader_inner();
}

__attribute__((noinline)) static void sleeper_inner(void)
{
    goro_sleep(3600LL * 1000000000);
    sink++;
}

static void sleeper(void *arg)
{
    (void)arg;
    sleeper_inner();
}

static void main_g(void *arg)
{
    (void)arg;
    ch = goro_chan_make(sizeof(long), 0);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        exit(1);
    goro_go(chan_waiter, NULL);
    goro_go(sock_reader, NULL);
    goro_go(sleeper, NULL);
    /* every one of them parks at once; wait until the stats say so */
    for (int i = 0; i < 1000; i++) {
        struct goro_stats st;
        goro_sleep(2000000);
        goro_stats(&st);
        if (st.goroutines == 4 && i >= 5)
            break;
    }
    for (;;) {
        parked_again = 0;
        parked_stop_here();
        if (!parked_again)
            break;
        goro_sleep(2000000);
    }
    /* let them go and end */
    long v = 1;
    goro_chan_send(ch, &v);
    if (write(sv[1], "x", 1) != 1)
        exit(1);
    printf("parked: done\n");
}

int main(void)
{
    return goro_run(main_g, NULL) == 0 ? 0 : 1;
}
