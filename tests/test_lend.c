/*
 * test_lend.c - lending (runtime/stack_lend.c) for calls into goro that
 * are not plain `call rel32`. This file is built with -fno-plt (the
 * Makefile): its direct calls into goro are `call *f@GOTPCREL(%rip)`,
 * which a static link relaxes to `addr32 call f` (67 e8); and it calls
 * through a function pointer in a register (`call *%rax`) and in a table
 * (`call *8(%rax)`). A goroutine hands B a pointer to its local (a plain
 * store: no call of its own at that depth) and blocks, at every depth near
 * the end of its one-page stack; where the push of the blocking call's
 * return address crosses the guard, the fault is goro's call all the same
 * and must borrow the guard's page, not move the stack
 * (tests/test_window.c's parker sweeps do this for plain calls).
 */
#include "util.h"
#include "internal.h"
#include "stack.h" /* goro__stk.lend */

#include "seccomp.h"

#include <string.h>
#include <sys/wait.h>

/* A's handoff: its pointer, then the flag B waits for (both plain
 * stores, in A's body or in the assembly helpers below) */
struct handoff {
    int64_t *volatile pub;
    volatile int handed;
};
static struct handoff ho;
static goro_chan *ach;
static G *volatile ag;
static volatile bool moved;
static volatile int done;

static void b_fn(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&ho.handed, __ATOMIC_ACQUIRE))
        goro_yield(); /* one worker: runs once A parks */
    /* A's stack moved after the handoff: the pointer is to the old one
     * (a move before it, by a user frame's push, is no fault of goro's) */
    uintptr_t p = (uintptr_t)ho.pub;
    moved = p < (uintptr_t)ag->stack.lo || p >= (uintptr_t)ag->stack.hi;
    *ho.pub = 42;
    int one = 1;
    goro_chan_send(ach, &one);
}

/* How A calls goro_chan_recv: directly (`addr32 call`), through a
 * function pointer in a register (`call *%rax`), through a table of
 * operations (`call *8(%rax)`), and, from the assembly helpers below,
 * through the other operand forms: an indexed table (SIB), r11 and r13
 * (REX.B; r13 with a displacement, which is not rip-relative), a slot on
 * the stack (rsp as the base, a 32-bit displacement). */
enum how { DIRECT, POINTER, TABLE, SIB, R11, R13, RSP };
typedef int recv_fn(goro_chan *, void *);
static recv_fn *volatile recv_ptr = goro_chan_recv;
struct ops {
    void *other;
    recv_fn *recv;
};
static const struct ops ops = { NULL, goro_chan_recv };
static const struct ops *volatile ops_ptr = &ops;
static recv_fn *const table[2] = { NULL, goro_chan_recv };

/* lend_via_X(ch, got, fn or table, index, word, handoff): publish word
 * and the flag, then call goro_chan_recv(ch, got) that way. Each helper
 * makes its own frame first, so its pushes cross the guard (user code:
 * a move) before the handoff, if at all. */
int lend_via_sib(goro_chan *, void *, recv_fn *const *, long, int64_t *, struct handoff *);
int lend_via_r11(goro_chan *, void *, recv_fn *, long, int64_t *, struct handoff *);
int lend_via_r13(goro_chan *, void *, recv_fn *const *, long, int64_t *, struct handoff *);
int lend_via_rsp(goro_chan *, void *, recv_fn *, long, int64_t *, struct handoff *);
__asm__(".text\n"
        "lend_via_sib:\n"
        "  push %rbp\n  mov %rsp, %rbp\n"
        "  mov %r8, (%r9)\n  movl $1, 8(%r9)\n"
        "  call *(%rdx,%rcx,8)\n" /* ff 14 ca */
        "  pop %rbp\n  ret\n"
        "lend_via_r11:\n"
        "  push %rbp\n  mov %rsp, %rbp\n  mov %rdx, %r11\n"
        "  mov %r8, (%r9)\n  movl $1, 8(%r9)\n"
        "  call *%r11\n" /* 41 ff d3 */
        "  pop %rbp\n  ret\n"
        "lend_via_r13:\n"
        "  push %r13\n  mov %rdx, %r13\n"
        "  mov %r8, (%r9)\n  movl $1, 8(%r9)\n"
        "  call *8(%r13)\n" /* 41 ff 55 08 */
        "  pop %r13\n  ret\n"
        "lend_via_rsp:\n"
        "  push %rbp\n  mov %rsp, %rbp\n  sub $272, %rsp\n  mov %rdx, 264(%rsp)\n"
        "  mov %r8, (%r9)\n  movl $1, 8(%r9)\n"
        "  call *264(%rsp)\n" /* ff 94 24 08 01 00 00 */
        "  leave\n  ret\n");

#define A_BODY(name, CALL)                                        \
    static __attribute__((noinline)) int name(void)               \
    {                                                             \
        int64_t word = 0;                                         \
        ag = goro__self();                                        \
        int got = 0;                                              \
        CALL;                                                     \
        return *(volatile int64_t *)&word == 42;                  \
    }
#define HAND (ho.pub = &word, __atomic_store_n(&ho.handed, 1, __ATOMIC_RELEASE))
A_BODY(a_direct, (HAND, goro_chan_recv(ach, &got)))
A_BODY(a_pointer, (HAND, recv_ptr(ach, &got)))
A_BODY(a_table, (HAND, ops_ptr->recv(ach, &got)))
A_BODY(a_sib, lend_via_sib(ach, &got, table, 1, &word, &ho))
A_BODY(a_r11, lend_via_r11(ach, &got, goro_chan_recv, 0, &word, &ho))
A_BODY(a_r13, lend_via_r13(ach, &got, table, 0, &word, &ho))
A_BODY(a_rsp, lend_via_rsp(ach, &got, goro_chan_recv, 0, &word, &ho))

static int (*const a_bodies[])(void) = { a_direct, a_pointer, a_table, a_sib,
                                         a_r11,    a_r13,     a_rsp };
static enum how a_how;

static __attribute__((noinline)) int at(int off)
{
    volatile char pad[off + 1];
    memset((char *)pad, 0x5a, (size_t)off + 1);
    int ok = a_bodies[a_how]();
    return ok && pad[0] == 0x5a && pad[off] == 0x5a;
}

struct res {
    long moved, lost;
    bool lend;
    const char *reads; /* how the handler reads memory */
};

static int a_off;
static struct res *a_res;

static void a_fn(void *arg)
{
    (void)arg;
    int ok = at(a_off);
    a_res->moved += moved;
    a_res->lost += !ok;
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

static void lend_main(void *arg)
{
    struct res *r = arg;
    r->lend = goro__stk.lend;
    r->reads = goro__lend_reads();
    a_res = r;
    ach = goro_chan_make(sizeof(int), 0);
    for (int off = 3000; off < 4096; off += 8) {
        ho.handed = 0;
        done = 0;
        moved = false;
        a_off = off;
        cr_assert_eq(goro_go(b_fn, NULL), 0);
        cr_assert_eq(goro_go(a_fn, NULL), 0);
        while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
            goro_yield();
    }
    goro_chan_free(ach);
}

/* how the handler must read memory (checked when set) */
static const char *want_reads;

static void sweep(enum how how, const char *what)
{
    setenv("GORO_DEBUG", "nostackhint", 1);
    struct res r = { 0 };
    a_how = how;
    uint64_t l0 = AO_load(&goro__ctr.stack_lends);
    run_on(1, lend_main, &r);
    uint64_t lends = AO_load(&goro__ctr.stack_lends) - l0;
    test_note("%s: %ld of %d depths moved, %ld answers lost, %llu pages lent", what, r.moved,
              (4096 - 3000) / 8, r.lost, (unsigned long long)lends);
    if (!r.lend)
        cr_skip_test("no lending here (sanitizers, Valgrind, a one-page guard)");
    if (want_reads != NULL)
        cr_assert_str_eq(r.reads, want_reads);
    cr_assert_gt(lends, 0, "no page lent: the sweep never reached the edge");
    cr_assert_eq(r.moved, 0, "%s: the stack moved after the handoff at %ld depths", what,
                 r.moved);
    cr_assert_eq(r.lost, 0);
}

Test(lend, no_plt_calls_into_goro_borrow_at_the_edge, .timeout = 60)
{
    sweep(DIRECT, "addr32 call");
}

/* README rule 5 allows any call into goro: a function pointer too. Its
 * push is `call *%reg` or `call *disp(%reg)`, whose target the fault
 * handler finds from the fault's registers. */
Test(lend, calls_through_a_function_pointer_borrow_at_the_edge, .timeout = 60)
{
    sweep(POINTER, "call through a pointer");
}

Test(lend, calls_through_a_table_of_operations_borrow_at_the_edge, .timeout = 60)
{
    sweep(TABLE, "call through a table");
}

/* The operand forms gcc did not give us above, by hand (a sweep per
 * process: a second goro_run's fresh goroutines do not start on one page) */
Test(lend, call_through_an_indexed_table_borrows_at_the_edge, .timeout = 60)
{
    sweep(SIB, "call *(%rdx,%rcx,8)");
}

Test(lend, call_through_r11_borrows_at_the_edge, .timeout = 60)
{
    sweep(R11, "call *%r11");
}

Test(lend, call_through_r13_and_a_displacement_borrows_at_the_edge, .timeout = 60)
{
    sweep(R13, "call *8(%r13)");
}

/* The slot lies beyond LEND_SCAN above rsp: nearer, the scan for goro's
 * return addresses would take the pointer in it for one */
Test(lend, call_through_a_stack_slot_borrows_at_the_edge, .timeout = 60)
{
    sweep(RSP, "call *264(%rsp)");
}

/* Docker's default seccomp profile (and others like it) answers
 * process_vm_readv with EPERM unless the container has CAP_SYS_PTRACE.
 * The handler reads a call's memory operand through it; forbidden, it
 * must read it another way (/proc/self/mem), or the stack moves after
 * the handoff, as before lending. */
Test(lend, call_through_a_table_borrows_without_process_vm_readv, .timeout = 60)
{
    forbid_process_vm_readv();
    want_reads = "/proc/self/mem";
    sweep(TABLE, "call through a table, process_vm_readv forbidden");
}

Test(lend, call_through_a_stack_slot_borrows_without_process_vm_readv, .timeout = 60)
{
    forbid_process_vm_readv();
    want_reads = "/proc/self/mem";
    sweep(RSP, "call *264(%rsp), process_vm_readv forbidden");
}

Test(lend, call_through_an_indexed_table_borrows_without_process_vm_readv, .timeout = 60)
{
    forbid_process_vm_readv();
    want_reads = "/proc/self/mem";
    sweep(SIB, "call *(%rdx,%rcx,8), process_vm_readv forbidden");
}

static void nothing_main(void *arg)
{
    (void)arg;
}

/* A child of fork() after a first run (a prefork server): the run kept
 * /proc/self/mem open for the next, and the parent's names the parent's
 * memory. The child's handler must read its own, or the stack slot it
 * reads is the parent's (tests/test_compact.c checks compaction's). */
Test(lend, a_forked_child_reads_its_own_memory, .timeout = 60)
{
    forbid_process_vm_readv();
    setenv("GORO_DEBUG", "nostackhint", 1);
    a_how = RSP;
    /* the parent's run opens /proc/self/mem; a short one, so that the
     * child's goroutines still start on one-page stacks */
    run_on(1, nothing_main, NULL);
    if (!goro__stk.lend)
        cr_skip_test("no lending here (sanitizers, Valgrind, a one-page guard)");
    cr_assert_str_eq(goro__lend_reads(), "/proc/self/mem");
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct res c = { 0 };
        uint64_t l0 = AO_load(&goro__ctr.stack_lends);
        if (goro_run(lend_main, &c) != 0)
            _exit(3);
        if (AO_load(&goro__ctr.stack_lends) == l0)
            _exit(2); /* never reached the edge */
        _exit(c.moved == 0 && c.lost == 0 ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died (status %#x)", status);
    cr_assert_neq(WEXITSTATUS(status), 2, "the child's sweep never reached the edge");
    cr_assert_eq(WEXITSTATUS(status), 0, "the child's stack moved after the handoff");
}
