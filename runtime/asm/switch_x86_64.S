/*
 * switch_x86_64.S - goroutine context switch and entry, System V x86-64.
 *
 * goro__ctx_switch(from, to, cur, newg)      rdi, rsi, rdx, rcx
 *
 *   Saves into *from what a caller expects preserved across a call: the
 *   callee-saved general registers rbx, rbp, r12, r13, r14, r15 and the
 *   stack pointer, which points at our return address.
 *   Caller-saved registers need no saving: the C caller already assumes a
 *   call clobbers them. No signal mask is saved: no syscall on this path.
 *
 *   Not saved: the floating-point control state (MXCSR and the x87 control
 *   word: rounding mode, exception masks). Reading MXCSR (stmxcsr) costs
 *   4.4 ns and loading it (ldmxcsr) 8 ns on this machine's AMD EPYC, which
 *   is more than the whole rest of a yield; Go does not switch it either.
 *   The FP control state is per worker thread, like TLS: a goroutine that
 *   changes it must restore it before it blocks or yields (README, rules).
 *
 *   Saving and loading never write to either stack: the registers go into
 *   the G record, so a stack-guard fault can only happen before the switch
 *   (on the old stack, while *cur still names the old G) or after it (on
 *   the new stack, once *cur names newg).
 *
 *   After the store *cur = newg, on the new stack, the switch finishes for
 *   the context it resumes what every resumed context must do first:
 *     - the previous context's pending action (W.pend: requeue a yielder,
 *       unlock a parker's wait queue, free an exited G; sched.c
 *       after_switch) when W.pend is set, by a tail jump to
 *       goro__switch_pend(cur), which then restores errno itself (after
 *       the action, whose system calls may set it). Its frame is the only
 *       write to a stack here, on the new one, after *cur names its owner;
 *     - else errno = newg->saved_errno (not for g0, newg == NULL).
 *   Doing both here rather than in C after each call to the switch lets
 *   a C caller end with the switch as a tail call: goro_yield's fast path
 *   then returns from here straight into the goroutine's own code. Two
 *   goroutines yielding on one worker: 7.8 ns a yield with both in C after
 *   the call, 6.9 with them here, 5.7 with the fast path's tail call
 *   (medians of 7 alternating runs, 2026-11-27). W's and G's offsets come
 *   from offsets.h, checked against the C layout in sched.c.
 *
 *   The new context resumes with a ret to the return address on its own
 *   stack, not with an indirect jmp to a saved address. DESIGN.md proposed
 *   the jmp (a ret "into another context" misses the return-address
 *   predictor); measured here it is the other way round. Almost every
 *   switch in the runtime is made from one call site (schedule_away in
 *   sched.c), so the ret's predicted target, our own call site, is the
 *   right one; and a jmp leaves the return-stack buffer one entry deep,
 *   so the *next* ret mispredicts on every switch. goro_yield between two
 *   goroutines: 17.0 ns with the jmp, 7.0 ns with the ret (AMD EPYC,
 *   2026-11-27). A ping-pong between two different call sites is the
 *   ret's bad case (10 ns against 3.6 ns), and the scheduler has none.
 *
 * struct goro__ctx (runtime/internal.h), byte offsets:
 *     0 rsp   8 rbx  16 rbp  24 r12  32 r13  40 r14  48 r15
 *
 * A goroutine that has never run has no saved context (ctx.rsp == NULL);
 * the first switch to it is goro__ctx_start, which enters goro__g_entry
 * with:
 *
 *     r12 = the G      rbp = 0      rsp = stack hi - 16: 16-byte aligned,
 *                                   as just before a call
 *
 *           stack hi  +------------------+
 *                     |  (unused)        |
 *                     |  (unused)        |  <- rsp at goro__g_entry
 *                     +------------------+
 *                     |  return address  |  pushed by its call
 *                     |  goro__g_main's  |
 *                     |  frame ...       |
 *
 * goro__g_entry calls goro__g_main(G *), which never returns. Its CFI marks
 * rip as undefined, so debuggers and unwinders stop cleanly at the bottom of
 * a goroutine's stack.
 */
#include "offsets.h"

        .text

/* Store the callee-saved registers and rsp (which points at the caller's
 * return address) into the struct goro__ctx at rdi. */
.macro SAVE_CTX
        movq    %rsp,  0(%rdi)
        movq    %rbx,  8(%rdi)
        movq    %rbp, 16(%rdi)
        movq    %r12, 24(%rdi)
        movq    %r13, 32(%rdi)
        movq    %r14, 40(%rdi)
        movq    %r15, 48(%rdi)
.endm

/* Load the callee-saved registers and rsp from the struct goro__ctx at
 * rsi: from here on we run on the other context's stack. */
.macro LOAD_CTX
        movq     8(%rsi), %rbx
        movq    16(%rsi), %rbp
        movq    24(%rsi), %r12
        movq    32(%rsi), %r13
        movq    40(%rsi), %r14
        movq    48(%rsi), %r15
        movq     0(%rsi), %rsp
.endm

/* errno (through W.errno_ptr, rdx being &W.curg) = newg->saved_errno
 * (newg in rcx). */
.macro SET_ERRNO
        movq    GORO_CURG_TO_ERRNO_PTR(%rdx), %rax
        movl    GORO_G_SAVED_ERRNO(%rcx), %r8d
        movl    %r8d, (%rax)
.endm

        .globl  goro__ctx_switch
        .hidden goro__ctx_switch
        .type   goro__ctx_switch, @function
        .p2align 4
goro__ctx_switch:
        .cfi_startproc
        SAVE_CTX                        /* into *from (rdi) */
        LOAD_CTX                        /* from *to (rsi) */
        movq    %rcx, (%rdx)            /* *cur = newg, now on the new stack */
        movq    %rdx, %rdi
        cmpq    $0, GORO_CURG_TO_PEND(%rdx)
        /* The previous context left an action: goro__switch_pend(cur) as
         * a tail call (it restores errno too). rsp points at the return
         * address, as at any function's entry: it returns for us. */
        jne     goro__switch_pend
        testq   %rcx, %rcx
        jz      1f                      /* g0 keeps no errno of its own */
        SET_ERRNO                       /* errno = newg->saved_errno */
1:      ret
        .cfi_endproc
        .size   goro__ctx_switch, .-goro__ctx_switch

/*
 * goro__ctx_switch_g(from, to, cur, newg)    rdi, rsi, rdx, rcx
 *
 *   goro__ctx_switch for goro_yield's one-worker fast path (sched.c),
 *   which knows what the general switch tests: newg is a goroutine, not
 *   g0, and W.pend is NULL (a pending action is set only by a context
 *   switching away, and the one before us ran it before we ran). So: the
 *   same save and load, *cur = newg, errno = newg->saved_errno, ret.
 *   One load (W.pend), two compares and two branches fewer.
 */
        .globl  goro__ctx_switch_g
        .hidden goro__ctx_switch_g
        .type   goro__ctx_switch_g, @function
        .p2align 4
goro__ctx_switch_g:
        .cfi_startproc
        SAVE_CTX                        /* into *from (rdi) */
        LOAD_CTX                        /* from *to (rsi) */
        movq    %rcx, (%rdx)            /* *cur = newg, now on the new stack */
        SET_ERRNO                       /* errno = newg->saved_errno */
        ret
        .cfi_endproc
        .size   goro__ctx_switch_g, .-goro__ctx_switch_g

/*
 * goro__ctx_start(from, top, cur, newg)      rdi, rsi, rdx, rcx
 *
 *   Like goro__ctx_switch, but into a goroutine that has never run: rsp =
 *   top (its stack's hi - 16), r12 = newg, then goro__g_entry. The spawner
 *   never writes into the new stack, so the stack's cache lines are first
 *   touched by the worker that runs it (usually the one that last ran,
 *   freed and cached it).
 */
        .globl  goro__ctx_start
        .hidden goro__ctx_start
        .type   goro__ctx_start, @function
        .p2align 4
goro__ctx_start:
        .cfi_startproc
        SAVE_CTX
        movq    %rsi, %rsp
        movq    %rcx, %r12
        movq    %rcx, (%rdx)            /* *cur = newg, now on the new stack */
        jmp     goro__g_entry
        .cfi_endproc
        .size   goro__ctx_start, .-goro__ctx_start

        .globl  goro__g_entry
        .hidden goro__g_entry
        .type   goro__g_entry, @function
        .p2align 4
goro__g_entry:
        .cfi_startproc
        .cfi_undefined rip              /* bottom of a goroutine's stack */
        xorl    %ebp, %ebp
        movq    %r12, %rdi
        call    goro__g_main
        ud2                             /* goro__g_main does not return */
        .cfi_endproc
        .size   goro__g_entry, .-goro__g_entry

        .section .note.GNU-stack,"",@progbits
