/*
 * offsets.h - the byte offsets the context switch (switch_x86_64.S) reads
 * in C structures. Plain #defines so that the assembler can use them;
 * sched.c checks every one against offsetof() with _Static_assert, so a
 * change to struct goro__w or struct goro__g that moves them fails to
 * compile instead of corrupting memory.
 */
#ifndef GORO_ASM_OFFSETS_H
#define GORO_ASM_OFFSETS_H

/* struct goro__w, relative to its curg field (the switch is given &w->curg) */
#define GORO_CURG_TO_ERRNO_PTR 0x20 /* W.errno_ptr: int *, the thread's errno */
#define GORO_CURG_TO_PEND      0x28 /* W.pend: G *, an action left to the next context */

/* struct goro__g */
#define GORO_G_SAVED_ERRNO     0x58 /* G.saved_errno: int */

#endif
