/*
 * stack_lend.c - lending: which guard faults are goro's own code on its
 * way into a park (or a user's call into goro), whose stack must not move.
 *
 * Why. A goroutine may hand a pointer to its local to another
 * goroutine or thread and then block waiting for the answer (README rule
 * 5): from the handoff until it is woken its stack must not move, or the
 * answer goes to the old one. goro's own code on the way into a park is a
 * few hundred bytes deep (the next goroutine's stack work runs on g0:
 * sched.c, resume_idle), but a goroutine that blocks within that of its
 * guard crossed it there and moved. So a fault in the guard's top page
 * whose code is goro's own (every runtime object's code is in section
 * goro_text, Makefile; a C library function it called is found by a
 * return address into goro_text within LEND_SCAN bytes above rsp; the
 * push of a user's call into goro, by decoding the call at rip: direct,
 * through the GOT or a PLT stub, or through a function pointer in any
 * register or memory operand, read from the fault's registers; and the
 * dynamic linker's lazy binding, which a program linked without -z now
 * runs at its first call of a function, goro's among them: a PLT slot not
 * bound yet, the lazy PLT entries and the linker's own code) does
 * not grow the stack: that page's guard is taken away (SF_LENT) and the
 * access runs again, on the same stack. The rest of the guard stays (a
 * one-page guard lends nothing). The page is guarded again when the stack
 * is retired (a growth, a shrink, the goroutine's exit) or at a later
 * park that starts above it (goro__stack_park_unlend); a lent stack is
 * not compacted, and a growth copies from the lent page down. A growth
 * below the lent page, or a fault of user code, moves the stack as
 * before. tests/test_window.c sweeps the depths: none moves in the window
 * now; with GORO_DEBUG=nolend 12-14 depths 16 bytes apart did.
 * tests/test_lend.c sweeps each form of call, tests/test_lazy.c a lazily
 * bound one.
 *
 * How a fault is judged (goro__stack_lend, from the fault handler, for a
 * fault in the guard's top page of a stack not lent yet):
 *  1. rip in goro_text (goro's code) or in the dynamic linker's code;
 *  2. the instruction at rip is a call into goro, whose push faulted:
 *     call rel32, or call r/m64 decoded in full (prefixes, REX, ModRM,
 *     SIB, displacements, rip-relative), its operand taken from the
 *     fault's registers; a target that is a PLT stub is followed to its
 *     slot, and a slot not bound yet (a lazy PLT entry) counts as goro's;
 *  3. rip is a lazy PLT entry or PLT0 (lazy binding on its way in);
 *  4. a return address into goro_text within LEND_SCAN bytes above rsp (a
 *     C library function goro's code called).
 * A false "yes" costs the page and nothing else: lending is always sound.
 * A false "no" moves the stack, as every growth did before lending.
 *
 * Invariants and rules:
 *  - Everything here runs in the SIGSEGV handler, on any worker, with any
 *    lock of the interrupted code held: no lock, no allocation, nothing
 *    but async-signal-safe calls.
 *  - Memory is read directly only where it cannot fault: the code at rip
 *    (it is executing), the goroutine's own stack in [max(rsp, lo), hi),
 *    and a rip-relative slot the faulting call has just read. Any other
 *    address the program computed (a register's pointer, a PLT slot a
 *    pointer names) is read with peek (process_vm_readv on ourselves,
 *    or pread on /proc/self/mem where seccomp forbids that), which fails
 *    instead of faulting. Where neither works, such a call is not
 *    recognised and the stack moves, as before lending
 *    (GORO_DEBUG=stackinfo says which).
 *  - ldso_lo, ldso_hi and peek_by are written by goro__lend_init (at
 *    goro__stack_init, before any worker runs) and only read after; so
 *    is goro__stk.memfd (stack_fault.c, own_fds).
 */
#include "stack.h"

#include <elf.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define LEND_SCAN       256             /* bytes above rsp searched for a
                                           return address into goro_text */
#define UNLEND_ABOVE    1024            /* a park this far above lo guards
                                           a lent page again */

/* The runtime's code (Makefile: objcopy puts every runtime object's code
 * in section goro_text; the linker defines these). Weak: a build without
 * the section lends nothing. */
extern const char __start_goro_text[] __attribute__((weak, visibility("hidden")));
extern const char __stop_goro_text[] __attribute__((weak, visibility("hidden")));

static inline bool in_goro_text(uintptr_t a)
{
    return a - (uintptr_t)__start_goro_text < (uintptr_t)__stop_goro_text - (uintptr_t)__start_goro_text;
}

/* How peek reads (goro__lend_init finds out). process_vm_readv on
 * ourselves; where a seccomp profile forbids it (Docker's default one
 * answers EPERM without CAP_SYS_PTRACE), pread on /proc/self/mem, which
 * also fails instead of faulting; where neither works, nothing (a call
 * through a pointer in memory is then not recognised: the stack moves,
 * as before lending). */
enum { PEEK_NONE, PEEK_VM, PEEK_MEM };
static int peek_by;

/* Read n bytes at a without faulting: for addresses the faulting
 * instruction computed, which may be anything. False if they are not
 * readable. */
static bool peek(uintptr_t a, void *out, size_t n)
{
    if (peek_by == PEEK_VM) {
        struct iovec l = { out, n }, r = { (void *)a, n };
        return syscall(SYS_process_vm_readv, (long)getpid(), &l, 1L, &r, 1L, 0L) == (long)n;
    }
    if (peek_by == PEEK_MEM && a <= (uintptr_t)INT64_MAX - n)
        return pread(goro__stk.memfd, out, n, (off_t)a) == (ssize_t)n;
    return false;
}

/* peek_by: the first way that reads a word back right. */
static void choose_peek(void)
{
    static const uint64_t probe = 0x676f726f6c656e64ull; /* "goro" "lend" */
    uint64_t got = 0;
    peek_by = PEEK_VM;
    if (peek((uintptr_t)&probe, &got, sizeof got) && got == probe)
        return;
    peek_by = PEEK_MEM;
    got = 0;
    if (goro__stk.memfd >= 0 && peek((uintptr_t)&probe, &got, sizeof got) && got == probe)
        return;
    peek_by = PEEK_NONE;
}

const char *goro__lend_reads(void)
{
    return peek_by == PEEK_VM    ? "process_vm_readv"
           : peek_by == PEEK_MEM ? "/proc/self/mem"
                                 : "registers only";
}

static inline bool is_endbr64(const uint8_t *c)
{
    return c[0] == 0xf3 && c[1] == 0x0f && c[2] == 0x1e && c[3] == 0xfa;
}

/* c: a copy of the code at address at. If it is [bnd] jmp *d32(%rip), the
 * slot it jumps through; else 0. */
static uintptr_t jmp_slot(const uint8_t *c, uintptr_t at)
{
    const uint8_t *p = c;
    if (p[0] == 0xf2)
        p++; /* bnd */
    if (p[0] != 0xff || p[1] != 0x25)
        return 0;
    int32_t d;
    memcpy(&d, p + 2, 4);
    return at + (uintptr_t)(p - c) + 6 + (uintptr_t)(intptr_t)d;
}

/* Where a jump through a PLT slot (or the GOT) goes: a PLT stub is
 * [endbr64] [bnd] jmp *slot(%rip). checked: t came from a register or
 * memory the program computed (peek), not from a call rel32 (code). */
static uintptr_t through_plt(uintptr_t t, bool checked)
{
    uint8_t code[11];
    const uint8_t *p = (const uint8_t *)t;
    if (checked) {
        if (!peek(t, code, sizeof code))
            return t;
        p = code;
    }
    size_t skip = is_endbr64(p) ? 4 : 0;
    uintptr_t slot = jmp_slot(p + skip, t + skip), to;
    if (slot == 0)
        return t;
    if (!checked)
        return *(const uintptr_t *)slot;
    return peek(slot, &to, sizeof to) ? to : t;
}

/* The value of register r (0-15: rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
 * r8-r15) at the fault. The call has not pushed: rsp is the caller's. */
static uintptr_t reg_at(const ucontext_t *uc, unsigned r)
{
    static const int greg[16] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                                  REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                  REG_R12, REG_R13, REG_R14, REG_R15 };
    return (uintptr_t)uc->uc_mcontext.gregs[greg[r & 15]];
}

/* The target of `call r/m64` (ff /2) at p, its ModRM byte at p[1]: the
 * register, or the word at the address the operand names (computed from
 * the fault's registers, read with peek). rex: its REX prefix or 0. 0 if
 * it is not a call or the word is unreadable. */
static uintptr_t indirect_target(const uint8_t *p, unsigned rex, bool addr32,
                                 const ucontext_t *uc)
{
    unsigned mod = p[1] >> 6, rm = p[1] & 7;
    if (((p[1] >> 3) & 7) != 2)
        return 0; /* ff /2 is call; the rest are not */
    if (mod == 3)
        return reg_at(uc, rm | (rex & 1) << 3);
    const uint8_t *q = p + 2;
    uintptr_t ea;
    int32_t d32;
    if (rm == 4) { /* SIB */
        unsigned sib = *q++, idx = ((sib >> 3) & 7) | (rex & 2) << 2;
        ea = idx == 4 ? 0 : reg_at(uc, idx) << (sib >> 6);
        if ((sib & 7) == 5 && mod == 0) {
            memcpy(&d32, q, 4);
            q += 4;
            ea += (uintptr_t)(intptr_t)d32;
        } else {
            ea += reg_at(uc, (sib & 7) | (rex & 1) << 3);
        }
    } else if (rm == 5 && mod == 0) {
        /* rip-relative (from the next instruction): a GOT slot or a
         * function pointer in the program's data, which the call has just
         * read (no stack is within reach of rip) */
        memcpy(&d32, q, 4);
        return *(const uintptr_t *)(q + 4 + d32);
    } else {
        ea = reg_at(uc, rm | (rex & 1) << 3);
    }
    if (mod == 1) {
        ea += (uintptr_t)(intptr_t)(int8_t)*q;
    } else if (mod == 2) {
        memcpy(&d32, q, 4);
        ea += (uintptr_t)(intptr_t)d32;
    }
    if (addr32)
        ea &= 0xffffffffu;
    uintptr_t t;
    return peek(ea, &t, sizeof t) ? t : 0;
}

/* The dynamic linker's code ([ldso_lo, ldso_hi), from AT_BASE at
 * goro__stack_init; 0 in a static program). It runs on a goroutine's
 * stack when a program linked without -z now calls a function the first
 * time (lazy binding: _dl_runtime_resolve saves the vector registers, a
 * kilobyte and more), a call into goro among them. */
static uintptr_t ldso_lo, ldso_hi;

static void find_ldso(void)
{
    uintptr_t base = (uintptr_t)getauxval(AT_BASE);
    if (base == 0)
        return;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_phentsize != sizeof(Elf64_Phdr))
        return;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
    for (int i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
            ldso_lo = base + ph[i].p_vaddr;
            ldso_hi = ldso_lo + ph[i].p_memsz;
        }
}

void goro__lend_init(void)
{
    /* at every goro_run: a seccomp filter may have come since the last */
    choose_peek();
    if (ldso_hi == 0)
        find_ldso();
}

static inline bool in_ldso(uintptr_t a)
{
    return a - ldso_lo < ldso_hi - ldso_lo;
}

/* The code c[0..11): the lazy half of a PLT entry, [endbr64] push $index;
 * [bnd] jmp PLT0? Where a PLT slot not bound yet points: its call goes to
 * the dynamic linker first, and to its function (goro's, maybe) after. */
static bool lazy_entry(const uint8_t *c)
{
    if (is_endbr64(c))
        c += 4;
    if (c[0] != 0x68)
        return false;
    c += 5;
    if (c[0] == 0xf2)
        c++; /* bnd */
    return c[0] == 0xe9;
}

/* a: where a PLT slot points (a bound one: its function, which may end
 * its mapping: read with peek). A lazy PLT entry? */
static bool lazy_stub(uintptr_t a)
{
    uint8_t c[11];
    return ldso_hi != 0 && peek(a, c, sizeof c) && lazy_entry(c);
}

/* The instruction at rip is lazy binding's way into the dynamic linker:
 * the push of a lazy PLT entry, or PLT0's push *GOT+8(%rip); [bnd] jmp
 * *GOT+16(%rip), whose jump goes into the dynamic linker. */
static bool lazy_trampoline(uintptr_t rip)
{
    uint8_t c[13];
    if (ldso_hi == 0 || !peek(rip, c, sizeof c))
        return false;
    if (lazy_entry(c))
        return true;
    if (c[0] != 0xff || c[1] != 0x35)
        return false;
    uintptr_t slot = jmp_slot(c + 6, rip + 6), to;
    return slot != 0 && peek(slot, &to, sizeof to) && in_ldso(to);
}

/* t, the target of a call: goro's code, a PLT stub bound to it, or a PLT
 * stub not bound yet (lazy binding: its target is not known until the
 * dynamic linker has run, on this stack; lending to a call that turns out
 * not to be goro's costs the page, nothing more) */
static bool goro_target(uintptr_t t, bool checked)
{
    if (in_goro_text(t))
        return true;
    uintptr_t to = through_plt(t, checked);
    return to != t && (in_goro_text(to) || lazy_stub(to));
}

/* The instruction at rip is a call into goro: its push of the return
 * address is the fault. call rel32 (a static link; addr32 call rel32 where
 * the linker relaxed a -fno-plt call), a call of a PLT stub (a shared
 * libgoro, bound at load: goro.pc links with -z now), or call r/m64:
 * through the GOT (-fno-plt), a function pointer in a register or in
 * memory (a table of operations), a PLT stub's address among them. */
static bool calls_goro(uintptr_t rip, const ucontext_t *uc)
{
    const uint8_t *p = (const uint8_t *)rip;
    bool addr32 = false;
    unsigned rex = 0;
    for (int i = 0; i < 3 && (p[0] == 0x67 || p[0] == 0x3e || p[0] == 0x2e); i++, p++)
        addr32 |= p[0] == 0x67; /* addr32; notrack (ds), cs */
    if ((p[0] & 0xf0) == 0x40)
        rex = *p++;
    if (p[0] == 0xe8 && rex == 0) {
        int32_t d;
        memcpy(&d, p + 1, 4);
        return goro_target((uintptr_t)(p + 5) + (uintptr_t)(intptr_t)d, false);
    }
    if (p[0] != 0xff)
        return false;
    uintptr_t t = indirect_target(p, rex, addr32, uc);
    return t != 0 && goro_target(t, true);
}

/* Is this fault goro's own code's: goro's code, a call into it, or a C
 * library function that goro's code called? Reads the code at rip and
 * [max(rsp, lo), hi) of the stack: readable. A user function called back
 * by goro (a goroutine's fn is called from g_main, at the top) can be
 * taken for goro's within LEND_SCAN: harmless, it is lent a page. */
static bool goro_code_faulted(const ucontext_t *uc, const struct goro__stack *s)
{
    if ((uintptr_t)__start_goro_text == 0 ||
        (uintptr_t)__stop_goro_text <= (uintptr_t)__start_goro_text)
        return false;
    uintptr_t rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    if (in_goro_text(rip) || in_ldso(rip) || calls_goro(rip, uc) || lazy_trampoline(rip))
        return true;
    uintptr_t rsp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t a = rsp < (uintptr_t)s->lo ? (uintptr_t)s->lo : (rsp + 7) & ~(uintptr_t)7;
    uintptr_t end = rsp + LEND_SCAN;
    if (end > (uintptr_t)s->hi)
        end = (uintptr_t)s->hi;
    for (; a + 8 <= end; a += 8)
        if (in_goro_text(*(const uintptr_t *)a))
            return true;
    return false;
}

/* Lend g's guard's top page to the access at addr, if that is what it
 * needs (the file comment): true, and the access runs again. */
bool goro__stack_lend(G *g, uintptr_t addr, const ucontext_t *uc)
{
    uintptr_t lo = (uintptr_t)g->stack.lo, pg = goro__stk.pg;
    if (!goro__stk.lend || (g->stack.flags & SF_LENT) || addr < lo - pg ||
        !goro_code_faulted(uc, &g->stack))
        return false;
    if (goro__guard_off((char *)(lo - pg), pg) != 0)
        return false; /* mprotect at the mapping limit: a growth then */
    g->stack.flags |= SF_LENT;
    AO_fetch_and_add1(&goro__ctr.stack_lends); /* relaxed: statistics */
    return true;
}

void goro__stack_unlend(struct goro__stack *s)
{
    if (!(s->flags & SF_LENT))
        return;
    /* under madvise this also drops the page; nothing of value is left
     * in it (the caller's frames are above lo, or the stack is retired) */
    if (goro__guard_on(s->lo - goro__stk.pg, goro__stk.pg) != 0)
        return; /* mprotect at the mapping limit: stays lent, still sound */
    s->flags &= ~(uint32_t)SF_LENT;
    AO_fetch_and_add1(&goro__ctr.stack_unlends); /* relaxed: statistics */
}

void goro__stack_park_unlend(G *g)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    if (sp >= (uintptr_t)g->stack.lo + UNLEND_ABOVE)
        goro__stack_unlend(&g->stack);
}
