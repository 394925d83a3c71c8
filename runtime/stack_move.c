/*
 * stack_move.c - moving a goroutine's stack: the copy, the relocation of
 * pointers into the old stack, and the instruction decoding that finds
 * derived pointers the relocation rule alone would miss.
 *
 * What. The fault handler (stack_fault.c) has a new stack whose top lies a
 * multiple of 4 GiB from the old top (stack_space.c places it so). This
 * file copies the used part, red zone included, to the same offset below
 * the new top and relocates, conservatively (DESIGN.md "Stacks" 3): every
 * aligned word of the copy, every general register in the signal context
 * and every 8-byte lane of the vector registers whose value lies in the
 * old stack (guard included, one past the top included) is shifted by the
 * distance moved.
 *
 * Why it is sound (DESIGN.md "Stacks" 11). Conservative relocation cannot
 * tell a pointer from stale bytes beside data the program wrote: a string
 * and its NUL, a char, a short, an int or a struct member next to padding
 * leave the rest of their word as it was, often a pointer into the same
 * stack, and the word is taken for a pointer. Since the distance is a
 * multiple of 4 GiB and every stack lies in the stack region (stack.h),
 * adding it changes byte 4 of a word and nothing else: whatever the
 * program wrote into bytes 0-3 never changes, and a write into bytes 4-7
 * is hit only if it leaves byte 4 in 0x80-0xfe followed by 0x1f, 0, 0 and
 * the whole word inside the old stack's range (README rule 5 says which
 * data that is, with the measured rate).
 *
 * Invariants:
 *  - Only words that lie in [glo, ghi] move, plus two registers decoded
 *    from the faulting instruction (below), each moved once.
 *  - Nothing here allocates, locks or calls anything not async-signal-safe.
 */
#include "stack.h"
#include "annotate.h" /* GORO_ANN_UNSEEN */

#include <cpuid.h>
#include <string.h>

/* XSAVE layout of the FP state in signal frames (CPUID leaf 0xD) */
static uint32_t xs_off[8], xs_size[8];

/* Copy nw words from src to dst, shifting by delta every word that lies in
 * [glo, ghi]. The scalar loop runs at ~2 GB/s here and was the largest
 * cost of growing many stacks (bench stack_10k_256k copies 2.4 GB per
 * round); with AVX2, four words per step.
 * The copy is unseen by ThreadSanitizer (annotate.h): the new place's
 * shadow keeps its earlier owners' accesses, all ordered before this
 * goroutine's by the allocator's lock, and the handler, which may have
 * interrupted TSan's runtime, adds no 8,192 trace events of its own (a
 * 256 KiB copy did, and reached the trace lock its interrupted caller
 * held: a hang, seen in test_stack). */
static GORO_ANN_UNSEEN void copy_reloc_scalar(uint64_t *dst, const uint64_t *src, size_t nw,
                                              uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
    for (size_t i = 0; i < nw; i++) {
        uint64_t v = src[i];
        dst[i] = stk_in(v, glo, ghi) ? v + (uint64_t)delta : v;
    }
}

#if defined(__x86_64__)
typedef uint64_t v4u64 __attribute__((vector_size(32), aligned(8)));
typedef int64_t v4i64 __attribute__((vector_size(32), aligned(8)));

__attribute__((target("avx2"))) GORO_ANN_UNSEEN
static void copy_reloc_avx2(uint64_t *dst, const uint64_t *src, size_t nw,
                            uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
    /* v - glo <= span, unsigned, as a signed compare with the sign bit
     * flipped (AVX2 has only signed 64-bit compares) */
    const uint64_t flip = 1ull << 63;
    const v4u64 vglo = { glo, glo, glo, glo };
    const v4i64 vspan = { (int64_t)((ghi - glo) ^ flip), (int64_t)((ghi - glo) ^ flip),
                          (int64_t)((ghi - glo) ^ flip), (int64_t)((ghi - glo) ^ flip) };
    const v4u64 vflip = { flip, flip, flip, flip };
    const v4u64 vdelta = { (uint64_t)delta, (uint64_t)delta, (uint64_t)delta, (uint64_t)delta };
    size_t i = 0;
    for (; i + 4 <= nw; i += 4) {
        v4u64 v;
        __builtin_memcpy(&v, src + i, sizeof v);
        v4i64 off = (v4i64)((v - vglo) ^ vflip);
        v4u64 in = (v4u64)(off <= vspan);  /* all ones where in range */
        v = v + (vdelta & in);
        __builtin_memcpy(dst + i, &v, sizeof v);
    }
    copy_reloc_scalar(dst + i, src + i, nw - i, glo, ghi, delta);
}
#endif

static bool have_avx2;

static GORO_ANN_UNSEEN void copy_reloc(uint64_t *dst, const uint64_t *src, size_t nw,
                                       uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
#if defined(__x86_64__)
    if (have_avx2) {
        copy_reloc_avx2(dst, src, nw, glo, ghi, delta);
        return;
    }
#endif
    copy_reloc_scalar(dst, src, nw, glo, ghi, delta);
}

static void reloc_lanes(unsigned char *p, size_t len, uintptr_t glo, uintptr_t ghi,
                        intptr_t delta)
{
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (stk_in(v, glo, ghi)) {
            v += (uint64_t)delta;
            memcpy(p + i, &v, 8);
        }
    }
}

/* Every 8-byte lane of the vector and MMX registers in the signal frame. */
static void reloc_fpstate(ucontext_t *uc, uintptr_t glo, uintptr_t ghi, intptr_t delta)
{
    unsigned char *fx = (unsigned char *)uc->uc_mcontext.fpregs;
    if (fx == NULL)
        return;
    for (int i = 0; i < 8; i++)            /* x87/MMX: the 64-bit significand */
        reloc_lanes(fx + 32 + 16 * i, 8, glo, ghi, delta);
    reloc_lanes(fx + 160, 16 * 16, glo, ghi, delta); /* XMM0-15 */
    /* XSAVE extension: software bytes at 464 in the FXSAVE area (magic1,
     * extended size, xfeatures, xstate size), XSAVE header at 512 */
    uint32_t magic, xsize;
    memcpy(&magic, fx + 464, 4);
    memcpy(&xsize, fx + 464 + 16, 4);
    if (magic != 0x46505853u /* FP_XSTATE_MAGIC1 */)
        return;
    uint64_t bv;
    memcpy(&bv, fx + 512, 8);
    static const int comps[] = { 2, 5, 6, 7 }; /* YMM_Hi128, opmask, ZMM_Hi256, Hi16_ZMM */
    for (size_t k = 0; k < sizeof comps / sizeof comps[0]; k++) {
        int c = comps[k];
        if (!(bv & (1ull << c)) || xs_size[c] == 0 || xs_off[c] + xs_size[c] > xsize)
            continue;
        reloc_lanes(fx + xs_off[c], xs_size[c], glo, ghi, delta);
    }
}

/*
 * A stack-clash probe loop (gcc and clang, -fstack-clash-protection) keeps
 * the end of the frame it is allocating in a register, below the guard:
 *
 *   gcc, fixed frame:   1: sub $4096,%rsp; orq $0,(%rsp);      cmp %r11,%rsp; jne 1b
 *   gcc, VLA/alloca:    1: sub $4096,%rsp; orq $0,0xff8(%rsp); cmp %rcx,%rsp; jne 1b
 *   clang, fixed frame: 1: sub $4096,%rsp; movq $0,(%rsp);     cmp %r11,%rsp; jne 1b
 *   clang, VLA/alloca:  1: xorq $0,(%rsp); sub $4096,%rsp;     cmp %rsp,%rdi; jl 1b
 *
 * That register lies below the old stack, so the rule of DESIGN.md 3 leaves
 * it alone, and the loop would then run down the new stack forever. When the
 * faulting instruction is such a probe (or, xor or mov of 0 to a slot
 * addressed from rsp alone), followed by `sub $n,%rsp` or not, and then by a
 * cmp of rsp with a register, that register is moved with the stack if it
 * lies below the guard, within GORO_STACK_MAX of the old top. Only this
 * register: a value below the guard elsewhere may be a pointer into another
 * goroutine's stack, which must not move.
 */
static const uint8_t x86_to_greg[16] = {
    REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
    REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
};

/* The instruction after a probe at ip, or NULL if ip is not a probe:
 * [REX.W] 83 /1 ib (or), 83 /6 ib (xor) or C7 /0 id (mov), immediate 0,
 * memory operand (%rsp), disp8(%rsp) or disp32(%rsp). */
static const uint8_t *skip_probe(const uint8_t *p)
{
    if ((p[0] & 0xf0) == 0x40)
        p++;
    uint8_t op = *p++, modrm = *p++;
    int mod = modrm >> 6, ext = (modrm >> 3) & 7;
    if (!((op == 0x83 && (ext == 1 || ext == 6)) || (op == 0xc7 && ext == 0)))
        return NULL;
    if ((modrm & 7) != 4 || *p++ != 0x24) /* SIB: base rsp, no index */
        return NULL;
    if (mod == 1)
        p += 1;
    else if (mod == 2)
        p += 4;
    else if (mod != 0)
        return NULL;
    size_t imm = op == 0x83 ? 1 : 4;
    for (size_t i = 0; i < imm; i++)
        if (*p++ != 0)
            return NULL;
    return p;
}

/* Returns the gregs index it moved, or -1: the caller must not move that
 * register a second time. */
static int reloc_probe_end(ucontext_t *uc, uintptr_t glo, uintptr_t hi, intptr_t delta)
{
    const uint8_t *ip = skip_probe((const uint8_t *)uc->uc_mcontext.gregs[REG_RIP]);
    if (ip == NULL)
        return -1;
    if (ip[0] == 0x48 && ip[1] == 0x81 && ip[2] == 0xec)
        ip += 7; /* sub $imm32,%rsp */
    /* cmp r64, r/m64 (REX.W 39 /r) or cmp r/m64, r64 (REX.W 3B /r), one
     * operand rsp, both registers */
    if ((ip[0] & 0xf8) != 0x48 || (ip[2] & 0xc0) != 0xc0)
        return -1;
    int reg = ((ip[2] >> 3) & 7) | ((ip[0] & 4) ? 8 : 0);
    int rm = (ip[2] & 7) | ((ip[0] & 1) ? 8 : 0);
    int other;
    if ((ip[1] == 0x39 || ip[1] == 0x3b) && rm == 4)
        other = reg;
    else if ((ip[1] == 0x39 || ip[1] == 0x3b) && reg == 4)
        other = rm;
    else
        return -1;
    if (other == 4)
        return -1;
    uint64_t v = (uint64_t)uc->uc_mcontext.gregs[x86_to_greg[other]];
    if (v >= glo || hi - v > goro__stk.max)
        return -1;
    uc->uc_mcontext.gregs[x86_to_greg[other]] = (greg_t)(v + (uint64_t)delta);
    return x86_to_greg[other];
}

/*
 * The faulting access's base register may hold a derived pointer that lies
 * outside the old stack although the access itself lands in it: a loop
 * over a[h + i] compiles to `mov %rdi,(%rcx,%rsi,8)` with rcx = a - 8h and
 * rsi = h + i, and rcx can be pages below the guard (seen in
 * runq_put_slow, whose batch array is indexed from the queue head). Left
 * alone, the instruction runs again with rsp moved and rcx not, and writes
 * into the old stack: freed, or another goroutine's by then. So the
 * faulting instruction is decoded far enough to find its memory operand
 * (prefixes, REX, VEX, EVEX, the opcode maps, ModRM, SIB, displacement);
 * when base + index * scale + disp is the faulting address (checked, so a
 * decoding mistake moves nothing), and the base is outside the old stack
 * but within GORO_STACK_MAX of it, the base moves with the stack. With
 * scale 1 the two registers are interchangeable: the one that looks like
 * such an address moves.
 *
 * This covers the register the fault is about. A derived pointer kept
 * elsewhere (another register, a spill slot) for a later access is beyond
 * conservative relocation; GORO_DEBUG=stackcheck reports such an access.
 */

/* One-byte opcodes that take a ModRM byte (x86-64). */
static bool op1_has_modrm(uint8_t op)
{
    if (op < 0x40)
        return (op & 7) < 4;
    switch (op) {
    case 0x63: case 0x69: case 0x6b: case 0x84: case 0x85: case 0x86: case 0x87:
    case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8c: case 0x8e: case 0x8f:
    case 0x80: case 0x81: case 0x83: case 0xc0: case 0xc1: case 0xc6: case 0xc7:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: case 0xf6: case 0xf7: case 0xfe:
    case 0xff:
        return true;
    default:
        return op >= 0xd8 && op <= 0xdf; /* x87 */
    }
}

static int reloc_fault_base(ucontext_t *uc, uintptr_t addr, uintptr_t glo, uintptr_t hi,
                            intptr_t delta)
{
    const uint8_t *p = (const uint8_t *)uc->uc_mcontext.gregs[REG_RIP];
    int rex_b = 0, rex_x = 0, map = 0, n = 0;
    bool evex = false;
    /* legacy prefixes */
    while (n++ < 14 && (*p == 0x66 || *p == 0x67 || *p == 0xf2 || *p == 0xf3 || *p == 0xf0 ||
                        *p == 0x2e || *p == 0x3e || *p == 0x26 || *p == 0x36 || *p == 0x64 ||
                        *p == 0x65)) {
        if (*p == 0x67 || *p == 0x64 || *p == 0x65)
            return -1; /* 32-bit addressing or fs/gs-based: not a stack access */
        p++;
    }
    if ((*p & 0xf0) == 0x40) { /* REX */
        rex_b = *p & 1;
        rex_x = (*p >> 1) & 1;
        p++;
    }
    if (*p == 0xc5) { /* two-byte VEX: map 0F, no X or B */
        map = 1;
        p += 3;
    } else if (*p == 0xc4) { /* three-byte VEX: inverted R X B, then the map */
        rex_x = !((p[1] >> 6) & 1);
        rex_b = !((p[1] >> 5) & 1);
        map = p[1] & 0x1f;
        p += 4;
    } else if (*p == 0x62) { /* EVEX */
        rex_x = !((p[1] >> 6) & 1);
        rex_b = !((p[1] >> 5) & 1);
        map = p[1] & 7;
        evex = true;
        p += 5;
    } else if (*p == 0x0f) {
        if (p[1] == 0x38 || p[1] == 0x3a) {
            map = p[1] == 0x38 ? 2 : 3;
            p += 3;
        } else {
            map = 1;
            p += 2;
        }
    } else {
        if (!op1_has_modrm(*p))
            return -1;
        p++;
    }
    if (map > 3)
        return -1;
    uint8_t modrm = *p++;
    int mod = modrm >> 6, rm = modrm & 7;
    if (mod == 3 || (mod == 0 && rm == 5))
        return -1; /* a register operand, or rip-relative */
    int base = rm | rex_b << 3, index = -1, scale = 1;
    if (rm == 4) {
        uint8_t sib = *p++;
        scale = 1 << (sib >> 6);
        int ix = ((sib >> 3) & 7) | rex_x << 3;
        if (ix != 4)
            index = ix;
        base = (sib & 7) | rex_b << 3;
        if ((sib & 7) == 5 && mod == 0) {
            base = -1; /* disp32, no base */
            mod = 2;
        }
    }
    int64_t disp = 0;
    if (mod == 1)
        disp = (int8_t)*p;
    else if (mod == 2)
        disp = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24);
    greg_t *gr = uc->uc_mcontext.gregs;
    uint64_t b = base >= 0 ? (uint64_t)gr[x86_to_greg[base]] : 0;
    uint64_t x = index >= 0 ? (uint64_t)gr[x86_to_greg[index]] : 0;
    uint64_t ea = b + x * (uint64_t)scale + (uint64_t)disp;
    /* The fault address is the access's first byte in the guard: at most
     * 64 bytes (a ZMM access) past ea. EVEX scales a disp8 by up to 64. */
    bool match = addr - ea < 64;
    for (int N = 2; evex && mod == 1 && !match && N <= 64; N *= 2)
        match = addr - (ea + (uint64_t)(disp * (N - 1))) < 64;
    if (!match)
        return -1;
    /* which register holds the pointer: out of the old stack, but near */
    int cand[2] = { base, scale == 1 ? index : -1 };
    for (int k = 0; k < 2; k++) {
        int r = cand[k];
        if (r < 0 || r == 4)
            continue;
        uint64_t v = (uint64_t)gr[x86_to_greg[r]];
        if (stk_in(v, glo, hi))
            return -1; /* a pointer into the stack: moved with the rest */
        bool near = v < glo ? glo - v <= goro__stk.max : v - hi <= goro__stk.max;
        if (!near)
            continue;
        gr[x86_to_greg[r]] = (greg_t)(v + (uint64_t)delta);
        return x86_to_greg[r];
    }
    return -1;
}


size_t goro__stack_move(ucontext_t *uc, uintptr_t addr, const struct goro__stack *old,
                        const struct goro__stack *ns)
{
    uintptr_t rsp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t lo = (uintptr_t)old->lo, hi = (uintptr_t)old->hi;

    /* Copy the used part, red zone included, to the same offset from the
     * new top, relocating every aligned word that points into the old
     * stack (guard included, one past the top included). */
    uintptr_t from = rsp - REDZONE;
    /* the guard's top page, when lent, is in use (stack_lend.c) */
    uintptr_t floor = lo - ((old->flags & SF_LENT) ? goro__stk.pg : 0);
    if (from < floor)
        from = floor;
    from &= ~(uintptr_t)7;
    intptr_t delta = (intptr_t)((uintptr_t)ns->hi - hi);
    uintptr_t glo = lo - goro__stk.gsz;
    const uint64_t *src = (const uint64_t *)from;
    uint64_t *dst = (uint64_t *)(from + (uintptr_t)delta);
    size_t nw = (hi - from) / 8;
    copy_reloc(dst, src, nw, glo, hi, delta);
    int done = reloc_probe_end(uc, glo, hi, delta);
    /* rsp may lie below the guard: a variable-sized allocation (a VLA, or
     * alloca) under -fstack-clash-protection probes once per page and then
     * moves rsp by the rest, up to a page more, before probing that; with
     * a one-page guard, rsp is then below it when the probe hits it (seen
     * with gcc 12: `sub %rdx,%rsp; orq $0,-8(%rsp,%rdx)`). rsp always
     * belongs to the running goroutine, and the caller's size counted it:
     * move it. */
    bool rsp_below = rsp < glo;
    if (rsp_below)
        uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(rsp + (uint64_t)delta);
    int based = reloc_fault_base(uc, addr, glo, hi, delta);
    for (int r = 0; r < NGREG; r++) {
        if (r == done || r == based || (r == REG_RSP && rsp_below) || r == REG_RIP ||
            r == REG_EFL || r == REG_CSGSFS || r == REG_ERR || r == REG_TRAPNO ||
            r == REG_OLDMASK || r == REG_CR2)
            continue;
        uint64_t v = (uint64_t)uc->uc_mcontext.gregs[r];
        if (stk_in(v, glo, hi))
            uc->uc_mcontext.gregs[r] = (greg_t)(v + (uint64_t)delta);
    }
    reloc_fpstate(uc, glo, hi, delta);
    return hi - from;
}

void goro__stack_copy_reloc(void *dst, const void *src, size_t len, uintptr_t glo,
                            uintptr_t ghi, intptr_t delta)
{
    copy_reloc(dst, src, len / 8, glo, ghi, delta);
}

void goro__move_init(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
#endif
    for (int c = 2; c < 8; c++) {
        unsigned a, b, cc, d;
        xs_off[c] = xs_size[c] = 0;
        if (__get_cpuid_max(0, NULL) >= 0xD) {
            __cpuid_count(0xD, c, a, b, cc, d);
            xs_size[c] = a;
            xs_off[c] = b;
        }
    }
}
