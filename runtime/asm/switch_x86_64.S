/*
 * switch_x86_64.S - goroutine context switch and entry, System V x86-64.
 *
 * goro__ctx_switch(from, to, cur, newg)      rdi, rsi, rdx, rcx
 *
 *   Saves into *from what a caller expects preserved across a call: the
 *   callee-saved general registers rbx, rbp, r12, r13, r14, r15, the stack
 *   pointer as it will be after the return, the return address (as rip), the
 *   SSE control/status word MXCSR and the x87 control word. Caller-saved
 *   registers need no saving: the C caller already assumes a call clobbers
 *   them. No signal mask is saved: no syscall on this path.
 *
 *   It never writes to either stack: the registers go into the G record, so
 *   a stack-guard fault can only happen before the switch (on the old stack,
 *   while *cur still names the old G) or after it (on the new stack, once
 *   *cur names newg). The store *cur = newg is the last thing before the jump.
 *
 *   The new context resumes with an indirect jmp to its saved rip rather
 *   than a ret: a ret into another context always misses the CPU's
 *   return-address predictor.
 *
 * struct goro__ctx (runtime/internal.h), byte offsets:
 *     0 rsp   8 rip  16 rbx  24 rbp  32 r12  40 r13  48 r14  56 r15
 *    64 mxcsr (4 bytes)  68 x87 control word (2 bytes)
 *
 * A new goroutine's context (set up by g.c) is:
 *
 *     rip = goro__g_entry      r12 = the G      rbp = 0
 *     rsp = stack hi - 16: 16-byte aligned, as just before a call
 *
 *           stack hi  +------------------+
 *                     |  0               |
 *                     |  0               |  <- rsp at goro__g_entry
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

        .globl  goro__ctx_switch
        .hidden goro__ctx_switch
        .type   goro__ctx_switch, @function
        .p2align 4
goro__ctx_switch:
        .cfi_startproc
        movq    (%rsp), %rax            /* our return address */
        leaq    8(%rsp), %r8            /* rsp after the return */
        movq    %r8,   0(%rdi)
        movq    %rax,  8(%rdi)
        movq    %rbx, 16(%rdi)
        movq    %rbp, 24(%rdi)
        movq    %r12, 32(%rdi)
        movq    %r13, 40(%rdi)
        movq    %r14, 48(%rdi)
        movq    %r15, 56(%rdi)
        stmxcsr 64(%rdi)
        fnstcw  68(%rdi)

        fldcw   68(%rsi)
        ldmxcsr 64(%rsi)
        movq    16(%rsi), %rbx
        movq    24(%rsi), %rbp
        movq    32(%rsi), %r12
        movq    40(%rsi), %r13
        movq    48(%rsi), %r14
        movq    56(%rsi), %r15
        movq     0(%rsi), %rsp
        movq    %rcx, (%rdx)            /* *cur = newg, now on the new stack */
        jmpq    *8(%rsi)
        .cfi_endproc
        .size   goro__ctx_switch, .-goro__ctx_switch

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
