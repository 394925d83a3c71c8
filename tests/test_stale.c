/*
 * test_stale.c - a byte the program wrote never changes because its stack
 * moved (DESIGN.md, Stacks 11).
 *
 * Why. Stacks grow by copy, and relocation is conservative (DESIGN.md,
 * Stacks 3): every aligned 8-byte word of the moved part whose value lies
 * in the old stack's range is shifted by the distance moved. A buffer or
 * slot the program writes only partly (a string and its NUL, a char, a
 * short, an int, a struct member beside padding) keeps the stale bytes of
 * earlier frames around it, mostly pointers into the same stack: the word
 * still looks like a stack address, and a move that shifts it changes bytes
 * the program wrote (a NUL at byte 1 of a word becomes, say, 0x30: the
 * string got longer). The suite checks the guarantee only, not how the
 * runtime keeps it.
 *
 * How. A goroutine calls scribble(), which fills the frames below it with
 * pointers into its own stack, and then, from the same caller, a victim
 * whose uninitialised buffers lie over that stale memory (each victim counts
 * the words of its buffer that hold addresses in its stack before it
 * writes: the tests assert that most do). The victim writes its data, keeps
 * the expected bytes on the heap or recomputes them from its index, hides
 * its buffer behind a compiler barrier, recurses deep while the data is
 * live so that its stack moves (checked: the frame's address changed, and
 * goro_stats counts the growths), and compares every byte it wrote.
 *
 * What is written (one kind per test, or all mixed):
 *   text         every length 0-63 at every alignment 0-7, by snprintf and
 *                by memcpy + NUL; wide text (swprintf, wmemcpy + L'\0');
 *   stores       1-4 byte stores of random and edge values anywhere within
 *                bytes 0-3 of a word;
 *   small        values below 128 (1, 2 and 4 byte stores, chars) at every
 *                offset 4-7, the other bytes stale, or bytes 0-3 written
 *                with the low half of an address in the stack;
 *   ints/floats  naturally aligned int16/32/64, floats and doubles (random
 *                normal values, edges and specials);
 *   structs      structs with padding written member by member;
 *   file         a FILE-like flag word (0xfbadXXXX, then 4 bytes of padding,
 *                as glibc's FILE._flags).
 * The reproducer is here as it was reported. Configurations: 1 and
 * 2 workers, many goroutines (stacks reused from the pools), start-size
 * hints off (GORO_DEBUG=nostackhint: every goroutine starts on one page) and
 * on, each GORO_GUARD, and depths that cross each size class (40 KiB,
 * 300 KiB, 3 MiB, 10 MiB: the stack moves 2 to 6 times while the data is
 * live).
 *
 * The remainder: random bytes stored at offsets 4-7 of a word whose bytes
 * 0-3 hold the low half of a stack address can complete a stack address,
 * which no relocation scheme can tell from a pointer. How often that changes
 * a stored byte is a figure (test_note), not a failure; that bytes 0-3
 * never change is asserted.
 *
 * The values are random per run (the seed is in each test's summary line);
 * GORO_TEST_SEED=N repeats a run's values (the stack addresses differ).
 */
#define TEST_PAGE_STACKS 1 /* util.h */
#include "util.h"

#include <atomic_ops.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#define NOINLINE __attribute__((noinline))
/* the compiler must keep what was written to *p in memory, and read it
 * back from there afterwards */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

#define KiB 1024l
#define MiB (1024l * 1024)

/* Goroutines here must start on one page and grow: start-size hints are off
 * but in the tests of them. */
static void no_hints(void)
{
    setenv("GORO_DEBUG", "nostackhint", 1);
}

TestSuite(stale, .init = no_hints);

static void use_guard(const char *g)
{
    if (g)
        setenv("GORO_GUARD", g, 1);
    else
        unsetenv("GORO_GUARD");
}

/* ---- what is written --------------------------------------------------- */

enum kind {
    K_SNPRINTF,  /* text by snprintf */
    K_MEMCPY,    /* text by memcpy + NUL */
    K_SWPRINTF,  /* wide text by swprintf */
    K_WMEMCPY,   /* wide text by wmemcpy + L'\0' */
    K_LOW,       /* 1-4 byte stores within bytes 0-3 of a word */
    K_SMALL,     /* values below 128 at offsets 4-7 */
    K_INTS,      /* naturally aligned integers */
    K_FLOATS,    /* floats and doubles */
    K_STRUCTS,   /* structs with padding, member by member */
    K_FILE,      /* FILE-like flag words */
    NASSERTED,   /* the kinds above must come through unchanged */
    K_REMAIN = NASSERTED, /* random bytes at offsets 4-7: a figure */
    NKIND
};

static const char *const kind_names[NKIND] = {
    "text_snprintf", "text_memcpy", "wide_swprintf", "wide_wmemcpy", "stores_bytes0_3",
    "small_bytes4_7", "ints", "floats", "structs", "file_flags", "remainder",
};

/* Per kind, summed over every victim (all atomic: victims run on every
 * worker). */
static struct tally {
    volatile AO_t victims;   /* victim calls */
    volatile AO_t moved;     /* victims whose frame moved while their data was live */
    volatile AO_t items;     /* values (strings, stores, members) written */
    volatile AO_t changed;   /* values with a byte changed */
    volatile AO_t bytes;     /* bytes changed */
    volatile AO_t strlens;   /* text: strings whose length changed */
    volatile AO_t bad_g;     /* victims with a change */
    volatile AO_t low;       /* bytes 0-3 written as half a stack address, changed */
    volatile AO_t stale;     /* words of the buffers that held a stack address before writing */
    volatile AO_t words;     /* words of the buffers */
} tally[NKIND];

/* the remainder by store: [offset - 4][width - 1] */
static volatile AO_t rem_stores[4][4], rem_changed[4][4];

/* One test's configuration (set before goro_run; read-only after). */
static struct {
    int kind;              /* a kind, or ALL_KINDS: goroutine i runs kind i % NASSERTED */
    long n;                /* goroutines per round */
    long batch;            /* alive at once, at most */
    int rounds;
    long depth[4];         /* bytes the victims recurse below their data */
    int ndepth;
    int yields;            /* goro_yield this many times on the way down (0: never) */
    int park_ms;           /* back from the depth, park this long (0: don't):
                              the stack shrinks when the victim runs again,
                              and is compacted first under GORO_COMPACT_AFTER */
    uint64_t seed;
    uint64_t growths[8];   /* stack growths of each round */
    long go_failed;
} cfg;

#define ALL_KINDS (-1)

static goro_wg wg;
static volatile AO_t park_failed, park_pick;

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t rnd(int kind, uint64_t code)
{
    return mix(cfg.seed ^ mix(((uint64_t)kind << 56) ^ code));
}

static const char charset[] = "!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "[]^_abcdefghijklmnopqrstuvwxyz{|}~ ";

static char text_char(int kind, long li, int j, int k)
{
    return charset[(rnd(kind, (uint64_t)li * 64 + (uint64_t)j) + (uint64_t)k * 13) %
                   (sizeof charset - 1)];
}

/* ---- stale pointers, deep recursion, the checks ------------------------- */

#define SCRIBBLE_WORDS  64
#define SCRIBBLE_FRAMES 5   /* ~2.7 KiB: covers the largest victim frame */

/* Leaves pointers into this stack (its own frames, at any byte) in the
 * SCRIBBLE_FRAMES frames below the caller: a victim called next by the same
 * caller has its buffers over them. */
NOINLINE static void scribble(int n)
{
    char *volatile p[SCRIBBLE_WORDS];
    for (int k = 0; k < SCRIBBLE_WORDS; k++)
        p[k] = (char *)p + (k * 37) % (int)sizeof p;
    if (n > 0)
        scribble(n - 1);
    KEEP(p); /* no tail call: the frames must nest */
}

/* Words of buf that hold an address near buf: the stale pointers scribble
 * left (read before the victim writes: the one intended read). */
NOINLINE static void stale_count(struct tally *t, void *buf, size_t len)
{
    uintptr_t lo = (uintptr_t)buf - 64 * KiB, hi = (uintptr_t)buf + len + 64 * KiB;
    size_t n = len / 8, s = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t v;
        memcpy(&v, (char *)buf + 8 * k, 8);
        s += v >= lo && v < hi;
    }
    AO_fetch_and_add(&t->stale, s);
    AO_fetch_and_add(&t->words, n);
}

#define DEEP_PAD 1000 /* a frame of ~1 KiB */

/* n frames of ~1 KiB; yields whenever n is a multiple of every (so that
 * other goroutines run, and on 2 workers this one may come back on the
 * other). */
NOINLINE static long deep(long n, long every)
{
    volatile char pad[DEEP_PAD];
    pad[0] = (char)n;
    pad[DEEP_PAD - 1] = (char)(n >> 3);
    if (every > 0 && n % every == 0)
        goro_yield();
    long r = n > 0 ? deep(n - 1, every) : 0;
    KEEP(pad); /* the frame outlives the call (clang would make a loop of it) */
    return r + pad[0] + pad[DEEP_PAD - 1];
}

/* Recurse depth bytes below the caller's frame, whose data is live; 1 if
 * the frame moved meanwhile. Its address before is kept on the heap, where
 * relocation does not reach. */
NOINLINE static int grow(void *frame, long depth)
{
    uintptr_t *before = malloc(sizeof *before);
    if (before == NULL)
        return 0;
    *before = (uintptr_t)frame;
    long frames = depth / KiB + 1;
    deep(frames, cfg.yields > 0 ? frames / cfg.yields + 1 : 0);
    if (cfg.park_ms > 0) {
        /* parked on a timer's channel (a compactable wait), long enough
         * to be shrunk when it runs again */
        if (AO_fetch_and_add1(&park_pick) % 2) {
            goro_chan *t = goro_after((int64_t)cfg.park_ms * 1000000);
            int64_t fired;
            if (t == NULL || goro_chan_recv(t, &fired) != 1)
                AO_fetch_and_add1(&park_failed);
        } else {
            /* a select that only times out: woken without a write into
             * its stack (restored from the buffer into the smaller stack) */
            goro_case none = { NULL, GORO_RECV, NULL, 0 };
            if (goro_select(&none, 1, (int64_t)cfg.park_ms * 1000000) != -ETIMEDOUT)
                AO_fetch_and_add1(&park_failed);
        }
    }
    KEEP(before);
    int moved = (uintptr_t)frame != *before;
    free(before);
    return moved;
}

/* one victim's result */
static void account(struct tally *t, int moved, long items, long changed, long bytes)
{
    AO_fetch_and_add1(&t->victims);
    AO_fetch_and_add(&t->moved, (AO_t)moved);
    AO_fetch_and_add(&t->items, (AO_t)items);
    AO_fetch_and_add(&t->changed, (AO_t)changed);
    AO_fetch_and_add(&t->bytes, (AO_t)bytes);
    if (changed)
        AO_fetch_and_add1(&t->bad_g);
}

/* bytes of got that differ from want */
static long diff_bytes(const void *got, const void *want, size_t len)
{
    const unsigned char *g = got, *w = want;
    long d = 0;
    for (size_t k = 0; k < len; k++)
        d += g[k] != w[k];
    return d;
}

/* ---- text --------------------------------------------------------------- */

/* Victim li writes NSTR strings; string j has length text_len and starts at
 * byte text_al of its row: 32 victims cover every length at every
 * alignment. */
#define NSTR 16
#define ROW  72

static int text_len(long li, int j) { return (int)((li * NSTR + j) % 64); }
static int text_al(long li, int j) { return (int)((li * NSTR + j) / 64 % 8); }

NOINLINE static void v_text(long li, int kind, long depth)
{
    char buf[NSTR][ROW] __attribute__((aligned(16))); /* uninitialised on purpose */
    struct tally *t = &tally[kind];
    char *src = malloc(NSTR * 64); /* the expected text */
    if (src == NULL)
        return;
    for (int j = 0; j < NSTR; j++)
        for (int k = 0; k < 64; k++)
            src[j * 64 + k] = text_char(kind, li, j, k);
    stale_count(t, buf, sizeof buf);
    long wrong_n = 0;
    for (int j = 0; j < NSTR; j++) {
        int len = text_len(li, j), al = text_al(li, j);
        if (kind == K_SNPRINTF) {
            wrong_n += snprintf(&buf[j][al], (size_t)(ROW - al), "%.*s", len, &src[j * 64]) != len;
        } else {
            memcpy(&buf[j][al], &src[j * 64], (size_t)len);
            buf[j][al + len] = 0;
        }
    }
    KEEP(buf);
    int moved = grow(buf, depth);
    KEEP(buf);
    long changed = wrong_n, bytes = 0, strlens = 0;
    for (int j = 0; j < NSTR; j++) {
        int len = text_len(li, j), al = text_al(li, j);
        long d = diff_bytes(&buf[j][al], &src[j * 64], (size_t)len) + (buf[j][al + len] != 0);
        changed += d != 0;
        bytes += d;
        strlens += strnlen(&buf[j][al], (size_t)(ROW - al)) != (size_t)len;
    }
    AO_fetch_and_add(&t->strlens, (AO_t)strlens);
    account(t, moved, NSTR, changed, bytes);
    free(src);
}

/* Wide text: NWSTR strings of every length 0-63 at wchar_t offsets 0-7 of
 * their rows (128 victims cover all). */
#define NWSTR 4
#define WROW  72

static int wide_len(long li, int j) { return (int)((li * NWSTR + j) % 64); }
static int wide_al(long li, int j) { return (int)((li * NWSTR + j) / 64 % 8); }

NOINLINE static void v_wide(long li, int kind, long depth)
{
    wchar_t buf[NWSTR][WROW] __attribute__((aligned(16))); /* uninitialised on purpose */
    struct tally *t = &tally[kind];
    wchar_t *src = malloc(NWSTR * 64 * sizeof *src);
    if (src == NULL)
        return;
    for (int j = 0; j < NWSTR; j++)
        for (int k = 0; k < 64; k++)
            src[j * 64 + k] = (wchar_t)text_char(kind, li, j, k);
    stale_count(t, buf, sizeof buf);
    long wrong_n = 0;
    for (int j = 0; j < NWSTR; j++) {
        int len = wide_len(li, j), al = wide_al(li, j);
        if (kind == K_SWPRINTF) {
            wrong_n += swprintf(&buf[j][al], (size_t)(WROW - al), L"%.*ls", len, &src[j * 64]) != len;
        } else {
            wmemcpy(&buf[j][al], &src[j * 64], (size_t)len);
            buf[j][al + len] = L'\0';
        }
    }
    KEEP(buf);
    int moved = grow(buf, depth);
    KEEP(buf);
    long changed = wrong_n, bytes = 0, strlens = 0;
    static const wchar_t nul = L'\0';
    for (int j = 0; j < NWSTR; j++) {
        int len = wide_len(li, j), al = wide_al(li, j);
        long d = diff_bytes(&buf[j][al], &src[j * 64], (size_t)len * sizeof(wchar_t)) +
                 diff_bytes(&buf[j][al + len], &nul, sizeof nul);
        changed += d != 0;
        bytes += d;
        strlens += wcsnlen(&buf[j][al], (size_t)(WROW - al)) != (size_t)len;
    }
    AO_fetch_and_add(&t->strlens, (AO_t)strlens);
    account(t, moved, NWSTR, changed, bytes);
    free(src);
}

/* ---- one store per word ------------------------------------------------- */

/* Victims of the word kinds write one store in each of NW words (and, for
 * some, bytes 0-3 first); the rest of each word is stale. */
#define NW 128

struct plan {
    uint8_t off, w;   /* the store: bytes [off, off + w) of the word */
    uint8_t low;      /* bytes 0-3 written first, with the low half of a stack address */
    uint8_t fp;       /* stored as float (w 4) or double (w 8) */
    uint64_t val;     /* little-endian: byte off gets val & 0xff */
};

/* edge values, truncated to the store's width */
static const uint64_t edges[] = {
    0, 1, ~0ull, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000,
    0x7fffffffffffffffull, 0x8000000000000000ull, 0xfffffffffffffffeull,
    0x8080808080808080ull, 0x7f7f7f7f7f7f7f7full, 0x0101010101010101ull,
    0xfefefefefefefefeull, 0x00ff00ff00ff00ffull, 0xff00ff00ff00ff00ull,
};
#define NEDGES (sizeof edges / sizeof edges[0])

/* Edge values for a 4-byte store at offset 4: those that are below 128 or
 * can be no address (a nonzero byte 6 or 7: user addresses are below 2^48).
 * Others (0x80, 0xff) could complete a stack address, as random 1- and
 * 2-byte stores there can: that is the remainder. */
static const uint32_t edges_hi4[] = {
    0, 1, 0x7f, 0xffffffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0x80808080, 0x7f7f7f7f,
    0x01010101, 0xfefefefe, 0x00ff00ff, 0xff00ff00, 0x00010000,
};
#define NEDGES_HI4 (sizeof edges_hi4 / sizeof edges_hi4[0])

static const uint32_t float_specials[] = {
    0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001,
    0x00800000, 0x7f7fffff, 0x00000001, 0x007fffff, 0x3f800000, 0xbf800000, 0x80000001,
};
#define NFSPEC (sizeof float_specials / sizeof float_specials[0])

static const uint64_t double_specials[] = {
    0, 0x8000000000000000ull, 0x7ff0000000000000ull, 0xfff0000000000000ull,
    0x7ff8000000000000ull, 0xfff8000000000001ull, 0x7ff0000000000001ull,
    0x0010000000000000ull, 0x7fefffffffffffffull, 1, 0x000fffffffffffffull,
    0x3ff0000000000000ull, 0xbff0000000000000ull, 0x8000000000000001ull,
};
#define NDSPEC (sizeof double_specials / sizeof double_specials[0])

static uint32_t random_normal_float(uint64_t r)
{
    uint32_t exp = 1 + (uint32_t)((r >> 1) % 254);
    return (uint32_t)(r & 1) << 31 | exp << 23 | ((uint32_t)(r >> 40) & 0x7fffff);
}

static uint64_t random_normal_double(uint64_t r)
{
    uint64_t exp = 1 + (r >> 1) % 2046, mant = mix(r) & 0xfffffffffffffull;
    return (r & 1) << 63 | exp << 52 | mant;
}

static struct plan plan_of(int kind, long li, int k)
{
    uint64_t code = (uint64_t)li * NW + (uint64_t)k;
    uint64_t r = rnd(kind, code);
    struct plan p = { 0, 0, 0, 0, 0 };
    switch (kind) {
    case K_LOW: {
        /* every (offset, width) within bytes 0-3; a third edge values */
        static const uint8_t c[10][2] = { { 0, 1 }, { 1, 1 }, { 2, 1 }, { 3, 1 }, { 0, 2 },
                                          { 1, 2 }, { 2, 2 }, { 0, 3 }, { 1, 3 }, { 0, 4 } };
        p.off = c[code % 10][0];
        p.w = c[code % 10][1];
        p.val = (code / 10) % 3 == 0 ? edges[(code / 30) % NEDGES] : r;
        break;
    }
    case K_SMALL: {
        /* every (offset, width) within bytes 4-7, every value 0-127, bytes
         * 0-3 stale or written: 16 victims cover all */
        static const uint8_t c[8][2] = { { 4, 1 }, { 5, 1 }, { 6, 1 }, { 7, 1 },
                                         { 4, 2 }, { 5, 2 }, { 6, 2 }, { 4, 4 } };
        p.off = c[code % 8][0];
        p.w = c[code % 8][1];
        p.val = (code / 8) % 128;
        p.low = (code / 1024) % 2;
        break;
    }
    case K_INTS: {
        /* naturally aligned int16, int32, int64 */
        static const uint8_t c[7][2] = { { 0, 2 }, { 2, 2 }, { 4, 2 }, { 6, 2 },
                                         { 0, 4 }, { 4, 4 }, { 0, 8 } };
        p.off = c[code % 7][0];
        p.w = c[code % 7][1];
        bool edge = (code / 7) % 3 == 0;
        if (p.off == 4 && p.w == 2)
            p.val = (code / 7) % 128; /* random shorts at 4 are the remainder */
        else if (p.off == 4)
            p.val = edge ? edges_hi4[(code / 21) % NEDGES_HI4] : r;
        else
            p.val = edge ? edges[(code / 21) % NEDGES] : r;
        break;
    }
    case K_FLOATS: {
        /* float at 0 and 4, double at 0: random normal values, specials */
        static const uint8_t c[3][2] = { { 0, 4 }, { 4, 4 }, { 0, 8 } };
        p.off = c[code % 3][0];
        p.w = c[code % 3][1];
        p.fp = 1;
        bool special = (code / 3) % 3 == 0;
        if (p.w == 4)
            p.val = special ? float_specials[(code / 9) % NFSPEC] : random_normal_float(r);
        else
            p.val = special ? double_specials[(code / 9) % NDSPEC] : random_normal_double(r);
        break;
    }
    case K_REMAIN: {
        /* every (offset, width) within bytes 4-7, random bytes, over a
         * word whose bytes 0-3 look like a stack address */
        static const uint8_t c[10][2] = { { 4, 1 }, { 5, 1 }, { 6, 1 }, { 7, 1 }, { 4, 2 },
                                          { 5, 2 }, { 6, 2 }, { 4, 3 }, { 5, 3 }, { 4, 4 } };
        p.off = c[code % 10][0];
        p.w = c[code % 10][1];
        p.val = r;
        p.low = 1;
        break;
    }
    }
    if (p.w < 8)
        p.val &= ((uint64_t)1 << (8 * p.w)) - 1;
    return p;
}

/* the store itself, with the width and type the plan says */
static inline void store(unsigned char *at, struct plan p)
{
    switch (p.w) {
    case 1:
        *(volatile char *)at = (char)p.val;
        break;
    case 2: {
        uint16_t v = (uint16_t)p.val;
        memcpy(at, &v, 2);
        break;
    }
    case 3:
        memcpy(at, &p.val, 3);
        break;
    case 4:
        if (p.fp) {
            uint32_t u = (uint32_t)p.val;
            float f;
            memcpy(&f, &u, 4);
            memcpy(at, &f, 4);
        } else {
            uint32_t v = (uint32_t)p.val;
            memcpy(at, &v, 4);
        }
        break;
    default:
        if (p.fp) {
            double d;
            memcpy(&d, &p.val, 8);
            memcpy(at, &d, 8);
        } else {
            memcpy(at, &p.val, 8);
        }
        break;
    }
}

NOINLINE static void v_words(long li, int kind, long depth)
{
    unsigned char b[NW * 8] __attribute__((aligned(16))); /* uninitialised on purpose */
    struct tally *t = &tally[kind];
    uint32_t *lows = malloc(NW * sizeof *lows); /* bytes 0-3 as written */
    if (lows == NULL)
        return;
    stale_count(t, b, sizeof b);
    for (int k = 0; k < NW; k++) {
        struct plan p = plan_of(kind, li, k);
        if (p.low) {
            /* the low half of an address in this stack */
            lows[k] = (uint32_t)(uintptr_t)(b + (rnd(kind, (uint64_t)k) % sizeof b));
            memcpy(b + 8 * k, &lows[k], 4);
        }
        store(b + 8 * k + p.off, p);
    }
    KEEP(b);
    int moved = grow(b, depth);
    KEEP(b);
    long changed = 0, bytes = 0, low = 0;
    for (int k = 0; k < NW; k++) {
        struct plan p = plan_of(kind, li, k);
        long d = diff_bytes(b + 8 * k + p.off, &p.val, p.w);
        long dl = p.low ? diff_bytes(b + 8 * k, &lows[k], 4) : 0;
        low += dl;
        if (kind != K_REMAIN) { /* the remainder's figure is about bytes 4-7 */
            d += dl;
        } else {
            AO_fetch_and_add1(&rem_stores[p.off - 4][p.w - 1]);
            if (d)
                AO_fetch_and_add1(&rem_changed[p.off - 4][p.w - 1]);
        }
        changed += d != 0;
        bytes += d;
    }
    AO_fetch_and_add(&t->low, (AO_t)low);
    account(t, moved, NW, changed, bytes);
    free(lows);
}

/* ---- structs with padding, member by member ------------------------------ */

struct s1 { char c; int i; short s; char t; long l; };   /* padding at 1-3, 11-15 */
struct s2 { char a, b; int64_t x; };                       /* 2-7 */
struct s3 { short s; int64_t x; };                         /* 2-7 */
struct s4 { int i; char c; int64_t x; };                   /* 5-7 */
#define NS 12

/* member m of struct k of victim li: random or an edge value; at offset 4
 * (where a byte or a short of random bits is the remainder) either below
 * 128 (small) or an int (hi4: random, or an edge that cannot complete a
 * stack address) */
enum { ANY, SMALL, HI4 };

static uint64_t member(long li, int k, int m, int how)
{
    uint64_t code = ((uint64_t)li * NS + (uint64_t)k) * 8 + (uint64_t)m;
    uint64_t r = rnd(K_STRUCTS, code);
    if (how == SMALL)
        return r % 128;
    if (r % 4 != 0)
        return r >> 2 | r << 62;
    return how == HI4 ? edges_hi4[(r >> 8) % NEDGES_HI4] : edges[(r >> 8) % NEDGES];
}

NOINLINE static void v_structs(long li, int kind, long depth)
{
    struct {
        struct s1 a1[NS];
        struct s2 a2[NS];
        struct s3 a3[NS];
        struct s4 a4[NS];
    } v __attribute__((aligned(16))); /* uninitialised on purpose */
    struct tally *t = &tally[kind];
    stale_count(t, &v, sizeof v);
    for (int k = 0; k < NS; k++) {
        int i_how = member(li, k, 7, ANY) % 2 ? SMALL : HI4;
        v.a1[k].c = (char)member(li, k, 0, ANY);
        v.a1[k].i = (int)member(li, k, 1, i_how);
        v.a1[k].s = (short)member(li, k, 2, ANY);
        v.a1[k].t = (char)member(li, k, 3, ANY);
        v.a1[k].l = (long)member(li, k, 4, ANY);
        v.a2[k].a = (char)member(li, k, 0, ANY);
        v.a2[k].b = (char)member(li, k, 1, ANY);
        v.a2[k].x = (int64_t)member(li, k, 2, ANY);
        v.a3[k].s = (short)member(li, k, 3, ANY);
        v.a3[k].x = (int64_t)member(li, k, 4, ANY);
        v.a4[k].i = (int)member(li, k, 5, ANY);
        v.a4[k].c = (char)member(li, k, 6, SMALL);
        v.a4[k].x = (int64_t)member(li, k, 0, ANY);
    }
    KEEP(&v);
    int moved = grow(&v, depth);
    KEEP(&v);
    long changed = 0, bytes = 0;
#define CMP(field, want)                                                 \
    do {                                                                 \
        __typeof__(field) w_ = (__typeof__(field))(want);                \
        long d_ = diff_bytes(&(field), &w_, sizeof w_);                  \
        changed += d_ != 0;                                              \
        bytes += d_;                                                     \
    } while (0)
    for (int k = 0; k < NS; k++) {
        int i_how = member(li, k, 7, ANY) % 2 ? SMALL : HI4;
        CMP(v.a1[k].c, member(li, k, 0, ANY));
        CMP(v.a1[k].i, member(li, k, 1, i_how));
        CMP(v.a1[k].s, member(li, k, 2, ANY));
        CMP(v.a1[k].t, member(li, k, 3, ANY));
        CMP(v.a1[k].l, member(li, k, 4, ANY));
        CMP(v.a2[k].a, member(li, k, 0, ANY));
        CMP(v.a2[k].b, member(li, k, 1, ANY));
        CMP(v.a2[k].x, member(li, k, 2, ANY));
        CMP(v.a3[k].s, member(li, k, 3, ANY));
        CMP(v.a3[k].x, member(li, k, 4, ANY));
        CMP(v.a4[k].i, member(li, k, 5, ANY));
        CMP(v.a4[k].c, member(li, k, 6, SMALL));
        CMP(v.a4[k].x, member(li, k, 0, ANY));
    }
#undef CMP
    account(t, moved, NS * 13, changed, bytes);
}

/* ---- FILE-like flag words ---------------------------------------------- */

/* as glibc's FILE begins: int _flags (0xfbadXXXX), 4 bytes of padding, then
 * pointers */
struct fakefile {
    int flags;
    char *read_ptr;
    int fileno;
};
#define NF 40

static char file_target[64];

static uint32_t file_flags(long li, int k)
{
    return 0xfbad0000u | (uint32_t)(rnd(K_FILE, (uint64_t)li * NF + (uint64_t)k) & 0xffff);
}

NOINLINE static void v_file(long li, int kind, long depth)
{
    struct fakefile f[NF] __attribute__((aligned(16))); /* uninitialised on purpose */
    struct tally *t = &tally[kind];
    stale_count(t, f, sizeof f);
    for (int k = 0; k < NF; k++) {
        f[k].flags = (int)file_flags(li, k);
        f[k].read_ptr = &file_target[k % 64];
        f[k].fileno = 3 + k;
    }
    KEEP(f);
    int moved = grow(f, depth);
    KEEP(f);
    long changed = 0, bytes = 0;
    for (int k = 0; k < NF; k++) {
        int flags = (int)file_flags(li, k), fileno = 3 + k;
        char *ptr = &file_target[k % 64];
        long d = diff_bytes(&f[k].flags, &flags, 4) + diff_bytes(&f[k].read_ptr, &ptr, 8) +
                 diff_bytes(&f[k].fileno, &fileno, 4);
        changed += d != 0;
        bytes += d;
    }
    account(t, moved, NF, changed, bytes);
}

/* ---- the goroutines ---------------------------------------------------- */

typedef void (*victim_fn)(long li, int kind, long depth);
static const victim_fn victim_of[NKIND] = {
    v_text, v_text, v_wide, v_wide, v_words, v_words, v_words, v_words, v_structs, v_file,
    v_words,
};

static void stale_g(void *arg)
{
    long i = (long)arg;
    int kind = cfg.kind == ALL_KINDS ? (int)(i % NASSERTED) : cfg.kind;
    long li = cfg.kind == ALL_KINDS ? i / NASSERTED : i; /* index among its kind */
    long depth = cfg.depth[(li / 32) % cfg.ndepth];
    scribble(SCRIBBLE_FRAMES);
    victim_of[kind](li, kind, depth); /* its buffers lie over scribble's frames */
    goro_wg_done(&wg);
}

static void stale_main(void *arg)
{
    goro_wg_init(&wg);
    for (int r = 0; r < cfg.rounds; r++) {
        struct goro_stats st;
        goro_stats(&st);
        uint64_t g0 = st.stack_growths;
        for (long k = 0; k < cfg.n; k += cfg.batch) {
            long m = cfg.n - k < cfg.batch ? cfg.n - k : cfg.batch;
            goro_wg_add(&wg, m);
            for (long j = 0; j < m; j++) {
                if (goro_go(stale_g, (void *)(r * cfg.n + k + j)) != 0) {
                    cfg.go_failed++;
                    goro_wg_done(&wg);
                }
            }
            goro_wg_wait(&wg);
        }
        goro_stats(&st);
        cfg.growths[r] = st.stack_growths - g0;
    }
}

/* Moves a stack of `depth` bytes needs from one page: eightfold below
 * 1 MiB, twofold above. */
static int moves_for(long depth)
{
    long size = 4096;
    int m = 0;
    while (size < depth) {
        size = size < MiB ? size * 8 : size * 2;
        m++;
    }
    return m;
}

static uint64_t test_seed(void)
{
    const char *s = getenv("GORO_TEST_SEED");
    return s ? strtoull(s, NULL, 0) : (uint64_t)goro_now() ^ (uint64_t)getpid() << 32;
}

struct run {
    const char *name;
    int procs;
    const char *guard;     /* NULL: the default */
    int kind;              /* a kind or ALL_KINDS */
    long n, batch;
    int rounds;
    long depth[4];
    int ndepth;
    int yields;
    bool hints;            /* start-size hints on */
    int park_ms;           /* cfg.park_ms */
    const char *compact;   /* GORO_COMPACT_AFTER for the run, NULL: unset */
};

/* Run one configuration, report every kind's figures, and check. */
static void run_stale(const struct run *r)
{
    memset(tally, 0, sizeof tally);
    memset((void *)rem_stores, 0, sizeof rem_stores);
    memset((void *)rem_changed, 0, sizeof rem_changed);
    memset(&cfg, 0, sizeof cfg);
    cfg.kind = r->kind;
    cfg.n = TEST_TSAN ? (r->n + 9) / 10 : r->n; /* TSan: 10x slower (util.h) */
    cfg.batch = r->batch;
    cfg.rounds = r->rounds > 0 ? r->rounds : 1;
    cfg.ndepth = r->ndepth;
    for (int k = 0; k < r->ndepth; k++)
        cfg.depth[k] = r->depth[k];
    cfg.yields = r->yields;
    cfg.park_ms = r->park_ms;
    park_failed = 0;
    if (r->compact)
        setenv("GORO_COMPACT_AFTER", r->compact, 1);
    else
        unsetenv("GORO_COMPACT_AFTER");
    cfg.seed = test_seed();
    use_guard(r->guard);
    if (r->hints)
        unsetenv("GORO_DEBUG");
    int64_t t0 = goro_now();
    run_on(r->procs, stale_main, NULL);
    double secs = (double)(goro_now() - t0) / 1e9;
    cr_assert_eq(cfg.go_failed, 0, "%ld goro_go calls failed", cfg.go_failed);
    cr_assert_eq(park_failed, 0, "%lu parks failed", (unsigned long)park_failed);
    struct goro_stats st;
    goro_stats(&st);

    /* the least number of growths the configuration implies (hints off:
     * each goroutine starts on one page; a big frame may skip a class) */
    uint64_t want_growths = 0, want_growths_one_page = 0, victims = 0;
    for (long i = 0; i < cfg.n; i++) {
        long li = cfg.kind == ALL_KINDS ? i / NASSERTED : i;
        int m = moves_for(cfg.depth[(li / 32) % cfg.ndepth]);
        want_growths += (uint64_t)(m > 1 ? m - 1 : m);
        want_growths_one_page += (uint64_t)m;
    }

    char msg[2048];
    size_t ml = 0;
    long bad = 0, bad_bytes = 0;
    msg[0] = 0;
    for (int k = 0; k < NKIND; k++) {
        struct tally *t = &tally[k];
        if (t->victims == 0)
            continue;
        victims += t->victims;
        double stale = t->words ? 100.0 * (double)t->stale / (double)t->words : 0;
        if (k == K_REMAIN) {
            test_note("%s: remainder: %lu changed of %lu stores (%.5f%%); "
                      "bytes 0-3 changed: %lu; %lu of %lu victims moved; stale %.0f%%",
                      r->name, (unsigned long)t->changed, (unsigned long)t->items,
                      t->items ? 100.0 * (double)t->changed / (double)t->items : 0.0,
                      (unsigned long)t->low, (unsigned long)t->moved,
                      (unsigned long)t->victims, stale);
            char by[512];
            size_t bl = 0;
            by[0] = 0;
            for (int o = 0; o < 4; o++)
                for (int w = 0; w < 4; w++)
                    if (rem_stores[o][w] && bl < sizeof by - 40)
                        bl += (size_t)snprintf(by + bl, sizeof by - bl, " %d@%d %lu/%lu;", w + 1,
                                               o + 4, (unsigned long)rem_changed[o][w],
                                               (unsigned long)rem_stores[o][w]);
            test_note("%s: remainder by store (bytes@offset changed/stores):%s", r->name, by);
            cr_expect_eq(t->low, 0, "%s: %lu bytes 0-3 changed", r->name, (unsigned long)t->low);
        } else {
            char extra[64] = "";
            if (k == K_SNPRINTF || k == K_MEMCPY || k == K_SWPRINTF || k == K_WMEMCPY)
                snprintf(extra, sizeof extra, ", %lu strings changed length",
                         (unsigned long)t->strlens);
            if (k == K_SMALL)
                snprintf(extra, sizeof extra, ", %lu in bytes 0-3", (unsigned long)t->low);
            test_note("%s: %s: %lu changed values (%lu bytes%s) of %lu, in %lu of %lu "
                      "goroutines; %lu moved; stale %.0f%%",
                      r->name, kind_names[k], (unsigned long)t->changed,
                      (unsigned long)t->bytes, extra, (unsigned long)t->items,
                      (unsigned long)t->bad_g, (unsigned long)t->victims,
                      (unsigned long)t->moved, stale);
            bad += (long)t->changed;
            bad_bytes += (long)t->bytes;
            if (t->changed && ml < sizeof msg - 100)
                ml += (size_t)snprintf(msg + ml, sizeof msg - ml, " %s %lu;", kind_names[k],
                                       (unsigned long)t->changed);
        }
        /* not vacuous: the buffers lay over stack addresses, and every
         * victim's data moved while it was live */
        cr_expect_geq(stale, 50.0, "%s: %s: only %.0f%% of the buffers' words were stale "
                      "stack addresses", r->name, kind_names[k], stale);
        cr_expect_eq(t->moved, t->victims, "%s: %s: %lu of %lu victims did not move",
                     r->name, kind_names[k], (unsigned long)(t->victims - t->moved),
                     (unsigned long)t->victims);
    }
    test_note("%s: %lu victims, %llu stack growths (round 1: %llu), %.2f s, seed %#llx",
              r->name, (unsigned long)victims, (unsigned long long)st.stack_growths,
              (unsigned long long)cfg.growths[0], secs, (unsigned long long)cfg.seed);
    cr_assert_eq(victims, (uint64_t)(cfg.n * cfg.rounds), "%s: %lu victims ran of %ld",
                 r->name, (unsigned long)victims, cfg.n * cfg.rounds);
    if (r->hints) {
        /* the later rounds start on hinted stacks, and still grow */
        for (int k = 1; k < cfg.rounds; k++) {
            cr_expect_lt(cfg.growths[k], want_growths_one_page, "%s: round %d grew %llu "
                         "times, from one page %llu: the hints did not take", r->name, k + 1,
                         (unsigned long long)cfg.growths[k],
                         (unsigned long long)want_growths_one_page);
            cr_expect_geq(cfg.growths[k], (uint64_t)cfg.n, "%s: round %d: %llu growths",
                          r->name, k + 1, (unsigned long long)cfg.growths[k]);
        }
    } else {
        cr_expect_geq(st.stack_growths, want_growths * (uint64_t)cfg.rounds,
                      "%s: %llu stack growths, want %llu", r->name,
                      (unsigned long long)st.stack_growths, (unsigned long long)want_growths);
    }
    if (r->park_ms > 0) {
        test_note("%s: %llu shrinks and compactions, %llu compactions", r->name,
                  (unsigned long long)st.stack_shrinks, (unsigned long long)st.stack_compactions);
        /* most victims come back from the depth to a quarter of their
         * stack and park long enough: they shrink (the rest, the pools
         * had nothing at their offset, or the clock was coarse) */
        cr_expect_geq(st.stack_shrinks - st.stack_compactions, (uint64_t)cfg.n / 2,
                      "%s: %llu shrinks", r->name,
                      (unsigned long long)(st.stack_shrinks - st.stack_compactions));
        if (r->compact && strcmp(r->compact, "off") != 0)
            cr_expect_geq(st.stack_compactions, (uint64_t)cfg.n / 4, "%s: %llu compactions",
                          r->name, (unsigned long long)st.stack_compactions);
    }
    cr_assert_eq(bad, 0, "%s: %ld changed values (%ld bytes) after their stack moved:%s "
                 "(seed %#llx)", r->name, bad, bad_bytes, msg, (unsigned long long)cfg.seed);
}

/* ---- one kind, 1 and 2 workers ------------------------------------------ */

/* 2,000 goroutines, 64 alive at once, each recursing 40 KiB or 300 KiB
 * below its data (2 or 3 moves) and yielding 3 times on the way. */
#define KIND_TEST(tname, k)                                                         \
    Test(stale, tname##_1w, .timeout = 60)                                         \
    {                                                                               \
        struct run r = { #tname "_1w", 1, NULL, k, 2000, 64, 1, { 40 * KiB, 300 * KiB }, \
                         2, 3, false, 0, NULL };                                             \
        run_stale(&r);                                                              \
    }                                                                               \
    Test(stale, tname##_2w, .timeout = 60)                                         \
    {                                                                               \
        struct run r = { #tname "_2w", 2, NULL, k, 2000, 64, 1, { 40 * KiB, 300 * KiB }, \
                         2, 3, false, 0, NULL };                                             \
        run_stale(&r);                                                              \
    }

KIND_TEST(text_snprintf, K_SNPRINTF)
KIND_TEST(text_memcpy, K_MEMCPY)
KIND_TEST(wide_swprintf, K_SWPRINTF)
KIND_TEST(wide_wmemcpy, K_WMEMCPY)
KIND_TEST(stores_bytes0_3, K_LOW)
KIND_TEST(small_bytes4_7, K_SMALL)
KIND_TEST(ints, K_INTS)
KIND_TEST(floats, K_FLOATS)
KIND_TEST(structs, K_STRUCTS)
KIND_TEST(file_flags, K_FILE)

/* ---- every kind: each guard, each size class, hints on -------------------- */

#define ALL_TEST(tname, procs, guard, n, batch, d0, d1, nd, yields)                  \
    Test(stale, tname, .timeout = 60)                                              \
    {                                                                               \
        struct run r = { #tname, procs, guard, ALL_KINDS, n, batch, 1, { d0, d1 }, nd, \
                         yields, false, 0, NULL };                                  \
        run_stale(&r);                                                              \
    }

ALL_TEST(guard_madvise_1w, 1, "madvise", 2000, 64, 40 * KiB, 300 * KiB, 2, 3)
ALL_TEST(guard_madvise_2w, 2, "madvise", 2000, 64, 40 * KiB, 300 * KiB, 2, 3)
ALL_TEST(guard_uffd_1w, 1, "uffd", 2000, 64, 40 * KiB, 300 * KiB, 2, 3)
ALL_TEST(guard_uffd_2w, 2, "uffd", 2000, 64, 40 * KiB, 300 * KiB, 2, 3)
/* two kernel mappings per stack: few alive at once */
ALL_TEST(guard_mprotect_1w, 1, "mprotect", 2000, 64, 40 * KiB, 300 * KiB, 2, 3)
ALL_TEST(guard_mprotect_2w, 2, "mprotect", 2000, 64, 40 * KiB, 300 * KiB, 2, 3)
/* the size classes: 4 KiB x8 32 KiB x8 256 KiB x8 2 MiB x2 4 MiB x2 8 MiB x2 16 MiB */
ALL_TEST(depth_40k_1w, 1, NULL, 3000, 64, 40 * KiB, 0, 1, 3)
ALL_TEST(depth_40k_2w, 2, NULL, 3000, 64, 40 * KiB, 0, 1, 3)
ALL_TEST(depth_300k_2w, 2, NULL, 2000, 64, 300 * KiB, 0, 1, 3)
ALL_TEST(depth_3m_1w, 1, NULL, 300, 16, 3 * MiB, 0, 1, 4)
ALL_TEST(depth_3m_2w, 2, NULL, 300, 16, 3 * MiB, 0, 1, 4)
ALL_TEST(depth_10m_2w, 2, NULL, 100, 6, 10 * MiB, 0, 1, 4)

/* Start-size hints on: the same goroutine function three rounds; soon
 * goroutines start on the hinted class (1 MiB at most: the hint cap) and
 * grow past it twice, on a stack reused from the pool. */
Test(stale, hints_on_2w, .timeout = 60)
{
    struct run r = { "hints_on_2w", 2, NULL, ALL_KINDS, 120, 8, 3, { 3 * MiB }, 1, 4, true, 0, NULL };
    run_stale(&r);
}

Test(stale, hints_on_1w, .timeout = 60)
{
    struct run r = { "hints_on_1w", 1, NULL, ALL_KINDS, 120, 8, 3, { 3 * MiB }, 1, 4, true, 0, NULL };
    run_stale(&r);
}

/* ---- shrinking and compaction ------------------------------------------- */

/* Back from 300 KiB (a 2 MiB stack) the victims park 30 ms on a timer's
 * channel with their data live: each shrinks to its home when it runs
 * again (a sound move from the stack, or, compacted after 0 ms, from the
 * compaction buffer), and its data must be as written. */
#define PARK_TEST(tname, procs, compact)                                            \
    Test(stale, tname, .timeout = 60)                                              \
    {                                                                               \
        if (!TEST_COMPACTION) /* no shrinking either under TSan (util.h) */        \
            cr_skip_test("stacks do not shrink in ThreadSanitizer builds");        \
        struct run r = { #tname, procs, NULL, ALL_KINDS, 1000, 64, 1, { 300 * KiB }, 1, \
                         3, false, 30, compact };                                   \
        run_stale(&r);                                                              \
    }

PARK_TEST(shrink_1w, 1, "off")
PARK_TEST(shrink_2w, 2, "off")
PARK_TEST(compact_shrink_1w, 1, "0")
PARK_TEST(compact_shrink_2w, 2, "0")

/* ---- the remainder: a figure ------------------------------------------- */

Test(stale, remainder_1w, .timeout = 60)
{
    struct run r = { "remainder_1w", 1, NULL, K_REMAIN, 3000, 64, 1, { 40 * KiB, 300 * KiB },
                     2, 3, false, 0, NULL };
    run_stale(&r);
}

Test(stale, remainder_2w, .timeout = 60)
{
    struct run r = { "remainder_2w", 2, NULL, K_REMAIN, 3000, 64, 1, { 40 * KiB, 300 * KiB },
                     2, 3, false, 0, NULL };
    run_stale(&r);
}

/* ---- the reproducer ---------------------------------------------- */

static volatile AO_t repro_bad;

/* leaves pointers into this stack below the caller */
NOINLINE static void repro_scribble(int n)
{
    char *volatile p[64];
    for (int i = 0; i < 64; i++)
        p[i] = (char *)&p[i];
    if (n > 0)
        repro_scribble(n - 1);
    KEEP(p);
}

NOINLINE static long repro_deep(int n)
{
    volatile char pad[512];
    pad[n % 512] = (char)n;
    long r = n ? repro_deep(n - 1) : 0;
    KEEP(pad); /* no loop of it (clang) */
    return n ? r + pad[(n * 7) % 512] : 0;
}

NOINLINE static void repro_victim(int len)
{
    char buf[64]; /* uninitialised on purpose */
    memset(buf, 'x', (size_t)len);
    buf[len] = 0;
    __asm__ volatile("" : : "r"(buf) : "memory");
    repro_deep(400); /* the stack grows: it moves */
    __asm__ volatile("" : : "r"(buf) : "memory");
    if (strlen(buf) != (size_t)len)
        AO_fetch_and_add1(&repro_bad);
}

static void repro_g(void *arg)
{
    repro_scribble(8);
    repro_victim((int)(long)arg);
    goro_wg_done(&wg);
}

static void repro_main(void *arg)
{
    goro_wg_init(&wg);
    goro_wg_add(&wg, 3200);
    for (long i = 0; i < 3200; i++)
        if (goro_go(repro_g, (void *)(i % 16)) != 0)
            goro_wg_done(&wg);
    goro_wg_wait(&wg);
}

static void repro(int procs)
{
    repro_bad = 0;
    run_on(procs, repro_main, NULL);
    struct goro_stats st;
    goro_stats(&st);
    test_note("reproducer_%dw: %lu of 3200 strings changed length; %llu stack growths", procs,
              (unsigned long)repro_bad, (unsigned long long)st.stack_growths);
    cr_expect_geq(st.stack_growths, 3200, "%llu stack growths",
                  (unsigned long long)st.stack_growths);
    cr_assert_eq(repro_bad, 0, "%lu of 3200 strings changed length after their stack moved",
                 (unsigned long)repro_bad);
}

Test(stale, reproducer_1w, .timeout = 30) { repro(1); }
Test(stale, reproducer_2w, .timeout = 30) { repro(2); }
