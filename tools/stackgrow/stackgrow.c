/*
 * stackgrow - a stress tool for goro's growable stacks.
 *
 * N goroutines on W workers dive to random depths through frames of varied
 * sizes (64 B to 32 KiB). Every frame holds a pointer to its own locals and
 * to its caller's, and checks them all on the way back up; along the way
 * frames call into libc (snprintf into a stack buffer, qsort of a stack
 * array of pointers to stack values), hold stack pointers in vector
 * registers across a stack access that may fault on the guard, yield, and
 * hop to another worker through a channel (or a sleep) mid-recursion, handing
 * the other side a pointer to a local that it writes the answer into while
 * this goroutine waits (README rule 5: that local must not move before the
 * answer is in, however close to its guard the goroutine blocks). Each
 * goroutine lives a few dives, then hands its place to a new one, so stacks
 * keep being grown from one page. At the end: a report, and "0 corruptions"
 * or exit status 1 naming the first corruption found.
 *
 * Narrow frames (one frame in 32; --no-narrow turns them off). Conservative
 * relocation adds the move's distance to every aligned word that looks like
 * an address in the old stack, so a word the program wrote only partly,
 * over stale stack pointers of earlier frames, may be changed. The tags of
 * the frames above are full words that never look like stack addresses and
 * cannot see that. So before a narrow frame, a deeper "scribble" frame
 * fills the stack below with pointers into itself; the narrow frame then
 * holds, uninitialised over them, a byte buffer and an array of structs,
 * and writes part of them: text of 0 to 47 chars plus a NUL (snprintf or
 * memcpy) at any alignment in fields of 1 to 48 bytes, single chars,
 * shorts and ints, FILE-style 0xfbadXXXX flag words followed by padding,
 * and struct members beside padding (a char pair, a short, a short string,
 * an int, a pointer into the buffer), leaving stale bytes between them.
 * What it writes is a function of the frame's tag: after the deeper dive
 * (which grows and moves the stack) every byte written is checked, and a
 * mismatch is reported with the frame's depth, the store, its offset, and
 * the expected and found bytes in hex. --keep-going counts every corrupted
 * frame to the end of the run instead of stopping at the first. A byte
 * stored at offset 4 of a word has its top bit clear: a byte 0x80-0xfe
 * there is the one class README rule 5 excepts (tests/test_stale.c
 * measures it); everything else is what the guarantee covers.
 *
 *   tools/stackgrow/stackgrow --goroutines 10000 --workers 2 \
 *       --max-stack 1M --duration 60
 */
#include <goro.h>

#include <atomic_ops.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* From the library (internal, linked statically): growth time quantiles. */
uint64_t goro__stack_growth_quantile(double q);

static struct {
    long goroutines;
    int workers;
    long max_stack;
    uint64_t seed;
    double duration;
    long dives;
    bool quiet;
    bool narrow;        /* narrow frames (--no-narrow: off) */
    bool keep_going;    /* count corruptions, do not stop at the first */
    bool vector;        /* stack pointers in vector registers (--no-vector: off) */
    long sleepers;      /* --sleepers: goroutines parked long at home */
    bool edge;          /* the hop at a fresh stack's edge (--no-edge-hop: off) */
} opt = { 1000, 0, 1 << 20, 0, 10, 0, false, true, false, true, 0, true };

static volatile AO_t stop, dives_done, spawned, corruptions;
static volatile AO_t narrow_frames, narrow_bytes, narrow_bad;
static char first_corruption[1024];
static goro_wg wg, hop_wg;
static goro_chan *hopch;
static bool have_avx2;
static int nhoppers;

/* Tags can never look like stack addresses (top 16 bits set), so
 * conservative relocation leaves them alone. */
#define TAG_HI 0xC3C3000000000000ull
static inline uint64_t tag_of(uint64_t seed, long depth)
{
    uint64_t x = seed ^ ((uint64_t)depth * 0x9E3779B97F4A7C15ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return TAG_HI | (x & 0xffffffffffull);
}

struct gstate {
    uint64_t rng;
    uint64_t seed;      /* of this dive: tags derive from it */
    uint64_t gid;
    goro_chan *reply;   /* this goroutine's hop reply channel */
    long dives_left;
    uint64_t nframes, nbytes, nbad; /* narrow frames, bytes checked, differing */
};

struct link {
    uint64_t tag;
    struct link *parent;
    uint64_t *data;     /* our own frame's array */
    struct link *self;
};

struct hopmsg {
    uint64_t token;
    goro_chan *reply;   /* NULL: hopper, stop */
    uint64_t *answer;   /* on the sender's stack: written before the reply */
};

static inline uint64_t rnd(struct gstate *gs)
{
    uint64_t x = gs->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    gs->rng = x;
    return x;
}

static void corrupt(struct gstate *gs, long depth, const char *what)
{
    /* full: one writer of the message */
    if (AO_fetch_and_add1_full(&corruptions) == 0) {
        snprintf(first_corruption, sizeof first_corruption,
                 "goroutine %" PRIu64 " at depth %ld: %s", gs->gid, depth, what);
        fprintf(stderr, "stackgrow: CORRUPTION: %s\n", first_corruption);
        if (!opt.keep_going)
            AO_store_release(&stop, 1);
    }
}

static int cmp_ptr(const void *a, const void *b)
{
    uint64_t x = **(uint64_t *const *)a, y = **(uint64_t *const *)b;
    return x < y ? -1 : x > y;
}

/* libc on the stack: snprintf into a stack buffer, checked by parsing. */
__attribute__((noinline)) static int libc_print(uint64_t tag, long depth)
{
    char buf[200];
    int n = snprintf(buf, sizeof buf, "%" PRIx64 " %ld %s %.3f|", tag, depth,
                     "stackgrow", (double)depth / 8.0);
    char *end;
    uint64_t t = strtoull(buf, &end, 16);
    long d = strtol(end, &end, 10);
    return n > 0 && t == tag && d == depth && strncmp(end, " stackgrow ", 11) == 0 ? 0 : 1;
}

/* libc on the stack: qsort of an array of pointers into our own frame. */
__attribute__((noinline)) static int libc_sort(uint64_t *arr, int n)
{
    uint64_t *ptrs[32];
    int m = n < 32 ? n : 32;
    for (int i = 0; i < m; i++)
        ptrs[i] = &arr[(i * 7) % m];
    qsort(ptrs, (size_t)m, sizeof ptrs[0], cmp_ptr);
    for (int i = 0; i < m; i++) {
        if (ptrs[i] < arr || ptrs[i] >= arr + m)
            return 1;
        if (i > 0 && *ptrs[i - 1] > *ptrs[i])
            return 1;
    }
    return 0;
}

/* A stack pointer in a vector register (every lane of ymm7, or xmm7) while
 * the stack 2 KiB below rsp is read: that read may hit the guard, and the
 * stack moves with the pointer still in the register. */
__attribute__((noinline)) static int vec_probe(uint64_t *p)
{
    uint64_t lo, hi;
    if (have_avx2) {
        __asm__ __volatile__(
            "vmovq %[p], %%xmm7\n\t"
            "vpbroadcastq %%xmm7, %%ymm7\n\t"
            "movb -2048(%%rsp), %%al\n\t"
            "vmovq %%xmm7, %[lo]\n\t"
            "vextracti128 $1, %%ymm7, %%xmm6\n\t"
            "vpextrq $1, %%xmm6, %[hi]\n\t"
            "vzeroupper"
            : [lo] "=r"(lo), [hi] "=r"(hi)
            : [p] "r"(p)
            : "rax", "xmm6", "xmm7", "memory");
    } else {
        __asm__ __volatile__(
            "movq %[p], %%xmm7\n\t"
            "punpcklqdq %%xmm7, %%xmm7\n\t"
            "movb -2048(%%rsp), %%al\n\t"
            "movq %%xmm7, %[lo]\n\t"
            "pextrq $1, %%xmm7, %[hi]\n\t"
            : [lo] "=r"(lo), [hi] "=r"(hi)
            : [p] "r"(p)
            : "rax", "xmm7", "memory");
    }
    /* p itself was relocated too if the stack moved */
    return lo == (uint64_t)(uintptr_t)p && hi == (uint64_t)(uintptr_t)p ? 0 : 1;
}

/* Move to another worker mid-recursion: ask a hopper goroutine to answer. */
/* Half the hops call goro through these (call *%reg), the rest directly:
 * lending knows both (runtime/stack_lend.c) */
static int (*volatile send_ptr)(goro_chan *, const void *) = goro_chan_send;
static int (*volatile recv_ptr)(goro_chan *, void *) = goro_chan_recv;

static int hop(struct gstate *gs, uint64_t tag)
{
    /* handed out with the message, written by the hopper before it replies:
     * from here to the reply nothing but goro's calls runs on this stack */
    uint64_t answer = 0;
    struct hopmsg m = { tag, gs->reply, &answer };
    bool by_ptr = (tag >> 1) & 1;
    int rc = by_ptr ? send_ptr(hopch, &m) : goro_chan_send(hopch, &m);
    if (rc != 0) {
        fprintf(stderr, "stackgrow: hop: goro_chan_send: %d\n", rc);
        return 1;
    }
    uint64_t back = 0;
    rc = by_ptr ? recv_ptr(gs->reply, &back) : goro_chan_recv(gs->reply, &back);
    if (rc != 1) {
        fprintf(stderr, "stackgrow: hop: goro_chan_recv: %d\n", rc);
        return 1;
    }
    return back == ~tag && *(volatile uint64_t *)&answer == tag * 3 ? 0 : 1;
}

static void hopper(void *arg)
{
    struct hopmsg m;
    while (goro_chan_recv(hopch, &m) == 1 && m.reply != NULL) {
        uint64_t back = ~m.token;
        *m.answer = m.token * 3;
        goro_chan_send(m.reply, &back);
    }
    goro_wg_done(&hop_wg);
}

static int dive(struct gstate *gs, struct link *parent, long budget, long depth);

#define FRAME(name, WORDS)                                                          \
    __attribute__((noinline)) static int name(struct gstate *gs, struct link *parent, \
                                              long budget, long depth)             \
    {                                                                               \
        uint64_t arr[WORDS];                                                        \
        struct link me;                                                             \
        me.tag = tag_of(gs->seed, depth);                                           \
        me.parent = parent;                                                         \
        me.data = arr;                                                              \
        me.self = &me;                                                              \
        for (int i = 0; i < (WORDS); i += ((WORDS) > 64 ? 61 : 1))                  \
            arr[i] = me.tag + (uint64_t)i;                                          \
        for (int i = 1; i < 32 && i < (WORDS); i++) /* what libc_sort sorts */      \
            arr[i] = me.tag + (uint64_t)i;                                          \
        arr[(WORDS) - 1] = me.tag ^ 1;                                              \
        int bad = 0;                                                                \
        uint64_t r = rnd(gs);                                                       \
        if ((r & 7) == 0)                                                           \
            bad |= libc_print(me.tag, depth) << 1;                                  \
        if ((r & 0xf0) == 0x10)                                                     \
            bad |= libc_sort(arr, (WORDS) < 32 ? (WORDS) - 1 : 32) << 2;            \
        if ((r & 0x300) == 0x100 && opt.vector)                                     \
            bad |= vec_probe(&arr[0]) << 3;                                         \
        if ((r & 0xfc00) == 0x400)                                                  \
            goro_yield();                                                           \
        if ((r & 0xff0000) == 0x10000)                                              \
            bad |= hop(gs, me.tag) << 4;                                            \
        if ((r & 0xfff000000ull) == 0x1000000)                                      \
            goro_sleep(1000);                                                       \
        long left = budget - (long)sizeof arr - 160;                                \
        if (left > 0 && !bad)                                                       \
            bad |= dive(gs, &me, left, depth + 1);                                  \
        for (int i = 0; i < (WORDS) - 1; i += ((WORDS) > 64 ? 61 : 1))              \
            if (arr[i] != me.tag + (uint64_t)i)                                     \
                bad |= 1 << 5;                                                      \
        if (arr[(WORDS) - 1] != (me.tag ^ 1))                                       \
            bad |= 1 << 5;                                                          \
        if (me.self != &me || me.data != arr || me.parent != parent ||              \
            me.tag != tag_of(gs->seed, depth))                                      \
            bad |= 1 << 6;                                                          \
        if (parent != NULL && (parent->self != parent ||                            \
                               parent->tag != tag_of(gs->seed, depth - 1) ||        \
                               parent->data[0] != parent->tag))                     \
            bad |= 1 << 7;                                                          \
        if (bad && !(bad & 1)) {                                                    \
            char what[200];                                                         \
            snprintf(what, sizeof what, "%s (%d-byte frame): %s%s%s%s%s%s%s",       \
                     #name, (int)sizeof arr, bad & 2 ? "snprintf result; " : "",    \
                     bad & 4 ? "qsort result; " : "",                               \
                     bad & 8 ? "pointer in vector register; " : "",                 \
                     bad & 16 ? "answer of a channel hop; " : "",                   \
                     bad & 32 ? "local array; " : "",                               \
                     bad & 64 ? "pointer to own local; " : "",                      \
                     bad & 128 ? "pointer to caller's local" : "");                 \
            corrupt(gs, depth, what);                                               \
        }                                                                           \
        return bad ? 1 : 0;                                                         \
    }

FRAME(frame_64, 8)
FRAME(frame_512, 64)
FRAME(frame_4k, 512)
FRAME(frame_32k, 4096)

/* Narrow frames -------------------------------------------------------------
 * Stores of fewer than 8 bytes over stale stack data (see the top). The
 * stores a frame makes are drawn from a generator seeded with its tag;
 * narrow_ops makes them (check == NULL) or, drawing the same sequence again,
 * checks every byte they wrote. Expected bytes are recomputed from the draw
 * (or read from static text), never kept on the stack. */

/* Where the text comes from (static: relocation never touches it). */
static const char text[] =
    "The quick brown fox jumps over the lazy dog; PACK MY BOX WITH FIVE DOZEN "
    "LIQUOR JUGS! 0123456789 sphinx of black quartz, judge my vow ~@#$%^&*()_+";
#define TEXT_MAX 48     /* text fields: 1 to TEXT_MAX bytes, text + NUL */
_Static_assert(sizeof text > 2 * TEXT_MAX, "text too short");

/* A record written member by member, leaving its padding stale. */
struct nrec {
    int flags;          /*  0: 0xfbadXXXX, as FILE's _flags; 4 bytes padding */
    char *cur;          /*  8: into the frame's buffer (moves with the stack) */
    char kind, sub;     /* 16, 17; 2 bytes padding */
    int count;          /* 20 */
    char name[8];       /* 24: a string of 0 to 7 chars; the rest stale */
    short port;         /* 32; 6 bytes padding */
};
_Static_assert(sizeof(struct nrec) == 40, "struct nrec layout");

/* One store: where, how long, and its bytes. */
struct nexp {
    const char *what;   /* kind of store (for a record: the member) */
    unsigned char *at;  /* its first byte */
    uint64_t len;       /* bytes written */
    const char *src;    /* text: len - 1 bytes from here, then a NUL */
    uint64_t v;         /* other stores: the value, little-endian */
    int64_t rec;        /* the record's index, or -1: the byte buffer */
};

/* The check's findings. All full words: a move during the check itself
 * (the check's own frame may fault on the guard) cannot change them. */
struct ncheck {
    uint64_t bytes;     /* bytes checked */
    uint64_t nbad;      /* bytes that differ */
    uint64_t first;     /* index in e of the first differing byte */
    struct nexp e;      /* the store holding it */
};

static inline uint64_t nrand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A number below n (n <= 65536) from the low 16 bits of r, without a
 * division. */
static inline uint64_t below(uint64_t r, uint64_t n)
{
    return ((r & 0xffff) * n) >> 16;
}

static inline unsigned exp_byte(const struct nexp *e, uint64_t i)
{
    if (e->src != NULL)
        return i + 1 < e->len ? (unsigned char)e->src[i] : 0;
    return (unsigned)(e->v >> (8 * i)) & 0xff;
}

static void ncmp(struct ncheck *c, const struct nexp *e)
{
    uint64_t v = 0;
    uint16_t v16;
    uint32_t v32;
    c->bytes += e->len;
    if (e->src == NULL) {
        switch (e->len) {
        case 1: v = e->at[0]; break;
        case 2: memcpy(&v16, e->at, 2); v = v16; break;
        case 4: memcpy(&v32, e->at, 4); v = v32; break;
        default: memcpy(&v, e->at, 8); break;
        }
    }
    if (e->src != NULL ? memcmp(e->at, e->src, e->len - 1) == 0 && e->at[e->len - 1] == 0
                       : v == e->v)
        return; /* all as written: the common case */
    for (uint64_t i = 0; i < e->len; i++)
        if (e->at[i] != exp_byte(e, i) && c->nbad++ == 0) {
            c->e = *e;
            c->first = i;
        }
}

/* The value a store of len bytes at `at` writes, kept out of the one
 * class README rule 5 excepts: a byte 0x80-0xfe at offset 4 of a word can,
 * beside stale bytes of a pointer into the stack, complete a stack address
 * (about 1 in 256 such bytes a move; tests/test_stale.c measures it). Such
 * a byte is stored with its top bit clear; every other byte as drawn. */
static inline uint64_t tame(const unsigned char *at, uint64_t len, uint64_t v)
{
    for (uint64_t i = 0; i < len; i++)
        if (((uintptr_t)(at + i) & 7) == 4)
            v &= ~(0x80ull << (8 * i));
    return v;
}

enum { K_SNPRINTF, K_MEMCPY, K_CHAR, K_SHORT, K_INT, K_FLAGS };
/* How often each kind comes (snprintf is the costly one). */
static const unsigned char kinds[16] = {
    K_SNPRINTF, K_MEMCPY, K_MEMCPY, K_MEMCPY, K_MEMCPY, K_CHAR, K_CHAR, K_CHAR,
    K_SHORT, K_SHORT, K_SHORT, K_INT, K_INT, K_INT, K_FLAGS, K_FLAGS,
};

/* The byte buffer: stores of each kind one after the other, with 0 to 12
 * stale bytes between them (and alignment padding before shorts, ints and
 * flags); a text field's bytes past its NUL stay stale too. Then the
 * records. */
__attribute__((noinline)) static void narrow_ops(struct ncheck *c, unsigned char *buf,
                                                 size_t n, struct nrec *recs, int nrecs,
                                                 uint64_t tag)
{
    uint64_t s = tag;
    size_t pos = 0;
    for (;;) {
        uint64_t r = nrand(&s), x = r >> 32;
        pos += below(r, 13);
        int kind = kinds[(r >> 16) & 15];
        struct nexp e = { NULL, NULL, 0, NULL, 0, -1 };
        size_t adv;
        switch (kind) {
        case K_SNPRINTF:
        case K_MEMCPY:
            adv = 1 + below(x, TEXT_MAX);       /* the field */
            e.len = 1 + below(x >> 16, adv);    /* 0 to adv - 1 chars + NUL */
            e.src = text + below(nrand(&s), sizeof text - TEXT_MAX);
            e.what = kind == K_SNPRINTF ? "text (snprintf)" : "text (memcpy)";
            break;
        case K_CHAR:
            adv = e.len = 1;
            e.v = x & 0xff;
            e.what = "char";
            break;
        case K_SHORT:
            pos = (pos + 1) & ~(size_t)1;
            adv = e.len = 2;
            e.v = x & 0xffff;
            e.what = "short";
            break;
        case K_INT:
            pos = (pos + 3) & ~(size_t)3;
            adv = e.len = 4;
            e.v = x & 1 ? below(x >> 8, 1000) : x;      /* a count, or any */
            e.what = "int";
            break;
        default:
            pos = (pos + 7) & ~(size_t)7;
            e.len = 4;
            adv = 8;                            /* 4 bytes of padding */
            e.v = 0xfbad0000u | (x & 0xffff);
            e.what = "FILE-style flags";
            break;
        }
        if (pos + adv > n)
            break;
        e.at = buf + pos;
        pos += adv;
        if (e.src == NULL)
            e.v = tame(e.at, e.len, e.v);
        if (c != NULL) {
            ncmp(c, &e);
            continue;
        }
        uint16_t v16 = (uint16_t)e.v;
        uint32_t v32 = (uint32_t)e.v;
        switch (kind) {
        case K_SNPRINTF:
            snprintf((char *)e.at, e.len, "%.*s", (int)(e.len - 1), e.src);
            break;
        case K_MEMCPY:
            memcpy(e.at, e.src, e.len - 1);
            e.at[e.len - 1] = 0;
            break;
        case K_CHAR:
            e.at[0] = (unsigned char)e.v;
            break;
        case K_SHORT:
            memcpy(e.at, &v16, 2);
            break;
        default:
            memcpy(e.at, &v32, 4);
            break;
        }
    }

    /* The records: each member written with probability 3/4. */
    for (int i = 0; i < nrecs; i++) {
        struct nrec *p = &recs[i];
        uint64_t a = nrand(&s), b = nrand(&s), m = a;   /* m: 2 bits a member */
        struct nexp e[7] = {
            { "flags", (unsigned char *)&p->flags, 4, NULL, 0xfbad0000u | ((a >> 14) & 0xffff), i },
            { "cur", (unsigned char *)&p->cur, 8, NULL,
              (uint64_t)(uintptr_t)(buf + below(a >> 30, n)), i },
            { "kind", (unsigned char *)&p->kind, 1, NULL, (a >> 46) & 0xff, i },
            { "sub", (unsigned char *)&p->sub, 1, NULL, (a >> 54) & 0xff, i },
            { "count", (unsigned char *)&p->count, 4, NULL, b & 0xffff, i },
            { "name", (unsigned char *)p->name, 1 + ((b >> 16) & 7),
              text + below(b >> 19, sizeof text - TEXT_MAX), 0, i },
            { "port", (unsigned char *)&p->port, 2, NULL, (b >> 35) & 0xffff, i },
        };
        for (int j = 0; j < 7; j++, m >>= 2) {
            if ((m & 3) == 0)
                continue;
            if (j != 1 && e[j].src == NULL) /* cur is a real pointer */
                e[j].v = tame(e[j].at, e[j].len, e[j].v);
            if (c != NULL) {
                ncmp(c, &e[j]);
                continue;
            }
            switch (j) {
            case 0: p->flags = (int)(uint32_t)e[j].v; break;
            case 1: p->cur = (char *)(uintptr_t)e[j].v; break;
            case 2: p->kind = (char)e[j].v; break;
            case 3: p->sub = (char)e[j].v; break;
            case 4: p->count = (int)e[j].v; break;
            case 5:
                memcpy(p->name, e[j].src, e[j].len - 1);
                p->name[e[j].len - 1] = 0;
                break;
            default: p->port = (short)e[j].v; break;
            }
        }
    }
}

/* Describe a narrow frame's first differing byte and count the corruption. */
__attribute__((noinline)) static void narrow_report(struct gstate *gs, long depth,
                                                    const char *name, size_t n, int nrecs,
                                                    const unsigned char *buf,
                                                    const struct nrec *recs,
                                                    const struct ncheck *c)
{
    if (AO_load(&corruptions) != 0) {
        corrupt(gs, depth, "");         /* only counted: not the first */
        return;
    }
    const struct nexp *e = &c->e;
    char where[96], want[3 * 16 + 1], got[3 * 16 + 1], what[900];
    if (e->rec < 0)
        snprintf(where, sizeof where, "%s at buffer+%#tx", e->what, e->at - buf);
    else
        snprintf(where, sizeof where, "recs[%" PRId64 "].%s at +%#tx", e->rec, e->what,
                 e->at - (const unsigned char *)recs);
    /* up to 16 bytes of the store, from the word holding the first bad one */
    uint64_t from = 0, inword = (uintptr_t)(e->at + c->first) & 7;
    if (e->len > 16 && c->first > inword)
        from = c->first - inword;
    uint64_t to = e->len < from + 16 ? e->len : from + 16;
    size_t wl = 0, gl = 0;
    for (uint64_t i = from; i < to; i++) {
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%02x", i > from ? " " : "",
                               exp_byte(e, i));
        gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%02x", i > from ? " " : "",
                               e->at[i]);
    }
    /* the aligned word holding the first bad byte, and what it would be
     * with the bytes written there: the difference is the relocation */
    const unsigned char *wp = (const unsigned char *)((uintptr_t)(e->at + c->first) & ~(uintptr_t)7);
    uint64_t word, fixed;
    memcpy(&word, wp, 8);
    fixed = word;
    for (int k = 0; k < 8; k++) {
        const unsigned char *q = wp + k;
        if (q >= e->at && q < e->at + e->len) {
            fixed &= ~(0xffull << (8 * k));
            fixed |= (uint64_t)exp_byte(e, (uint64_t)(q - e->at)) << (8 * k);
        }
    }
    int64_t off = (int64_t)(word - fixed);
    snprintf(what, sizeof what,
             "%s (%zu-byte buffer, %d records): %s, %" PRIu64 " byte%s: byte %" PRIu64
             " (byte %u of its word) differs; bytes %" PRIu64 "-%" PRIu64 " expected %s, "
             "found %s; the word is %#018" PRIx64 ", with the bytes written %#018" PRIx64
             " (off by %s%#" PRIx64 "); %" PRIu64 " of %" PRIu64
             " bytes written in this frame differ",
             name, n, nrecs, where, e->len, e->len == 1 ? "" : "s", c->first,
             (unsigned)inword, from, to - 1, want, got, word,
             fixed, off < 0 ? "-" : "", off < 0 ? (uint64_t)-off : (uint64_t)off, c->nbad,
             c->bytes);
    corrupt(gs, depth, what);
}

/* Fill the stack below with pointers into itself (some to odd bytes, as
 * char pointers are): the stale data a narrow frame's buffers lie over. */
#define SCRIBBLE(name, WORDS)                                                        \
    __attribute__((noinline)) static void name(uint64_t r)                           \
    {                                                                                \
        uintptr_t junk[WORDS];                                                       \
        for (int i = 0; i < (WORDS); i++) {                                          \
            r ^= r << 13;                                                            \
            r ^= r >> 7;                                                             \
            r ^= r << 17;                                                            \
            junk[i] = (uintptr_t)&junk[r % (WORDS)] + (uintptr_t)((r >> 32) & 7);    \
        }                                                                            \
        __asm__ __volatile__("" : : "r"(junk) : "memory");                           \
    }

SCRIBBLE(scribble_1k, 128)
SCRIBBLE(scribble_6k, 768)

#define NARROW(name, BYTES, NRECS)                                                    \
    __attribute__((noinline)) static int name(struct gstate *gs, struct link *parent, \
                                              long budget, long depth)               \
    {                                                                                 \
        unsigned char buf[BYTES] __attribute__((aligned(16)));                        \
        struct nrec recs[NRECS];                                                      \
        struct link me;                                                               \
        me.tag = tag_of(gs->seed, depth);                                             \
        me.parent = parent;                                                           \
        me.data = &me.tag; /* a child checks parent->data[0] == parent->tag */        \
        me.self = &me;                                                                \
        narrow_ops(NULL, buf, sizeof buf, recs, (NRECS), me.tag);                     \
        int bad = 0;                                                                  \
        long left = budget - (long)(sizeof buf + sizeof recs) - 160;                  \
        if (left > 0)                                                                 \
            bad = dive(gs, &me, left, depth + 1);                                     \
        struct ncheck c;                                                              \
        memset(&c, 0, sizeof c);                                                      \
        narrow_ops(&c, buf, sizeof buf, recs, (NRECS), tag_of(gs->seed, depth));      \
        gs->nframes++;                                                                \
        gs->nbytes += c.bytes;                                                        \
        gs->nbad += c.nbad;                                                           \
        if (c.nbad != 0)                                                              \
            narrow_report(gs, depth, #name, sizeof buf, (NRECS), buf, recs, &c);      \
        int own = 0;                                                                  \
        if (me.self != &me || me.data != &me.tag || me.parent != parent ||            \
            me.tag != tag_of(gs->seed, depth))                                        \
            own |= 1 << 6;                                                            \
        if (parent != NULL && (parent->self != parent ||                              \
                               parent->tag != tag_of(gs->seed, depth - 1) ||          \
                               parent->data[0] != parent->tag))                       \
            own |= 1 << 7;                                                            \
        if (own) {                                                                    \
            char what[200];                                                           \
            snprintf(what, sizeof what, "%s (%d-byte buffer): %s%s", #name,           \
                     (int)sizeof buf, own & 64 ? "pointer to own local; " : "",       \
                     own & 128 ? "pointer to caller's local" : "");                   \
            corrupt(gs, depth, what);                                                 \
        }                                                                             \
        return bad || own || c.nbad ? 1 : 0;                                          \
    }

NARROW(frame_n512, 512, 4)
NARROW(frame_n4k, 4096, 16)

static int dive(struct gstate *gs, struct link *parent, long budget, long depth)
{
    if (AO_load(&stop))
        return 0;
    uint64_t x = rnd(gs), r = x % 64;
    if (opt.narrow && ((x >> 32) & 31) == 0) {
        /* a narrow frame (one in 32), over what a scribble frame just left */
        if (((x >> 37) & 7) == 0 && budget >= 16 * 1024) {
            scribble_6k(x);
            return frame_n4k(gs, parent, budget, depth);
        }
        scribble_1k(x);
        return frame_n512(gs, parent, budget, depth);
    }
    if (r < 40)
        return frame_64(gs, parent, budget, depth);
    if (r < 58)
        return frame_512(gs, parent, budget, depth);
    if (r < 63 || budget < 64 * 1024)
        return frame_4k(gs, parent, budget, depth);
    return frame_32k(gs, parent, budget, depth);
}

/* A hop at a random depth of a fresh goroutine's one-page stack (start-size
 * hints are off), where goro's calls on the way into the park may cross the
 * guard: the answer must land all the same (runtime/stack_lend.c). */
__attribute__((noinline)) static int edge_hop(struct gstate *gs)
{
    size_t n = 2560 + (size_t)(rnd(gs) % 192) * 8; /* 2.5-4 KiB down */
    volatile char pad[n];
    pad[0] = pad[n - 1] = 1;
    int bad = hop(gs, rnd(gs) | 1);
    return bad | (pad[0] != 1) | (pad[n - 1] != 1);
}

static void diver(void *arg)
{
    struct gstate gs;
    gs.gid = AO_fetch_and_add1(&spawned);
    gs.rng = (opt.seed ^ (gs.gid * 0x9E3779B97F4A7C15ull)) | 1;
    gs.reply = goro_chan_make(sizeof(uint64_t), 0);
    gs.dives_left = 1 + (long)(rnd(&gs) % 4);
    gs.nframes = gs.nbytes = gs.nbad = 0;
    if (gs.reply == NULL) {
        corrupt(&gs, 0, "goro_chan_make failed");
        goro_wg_done(&wg);
        return;
    }
    if (opt.edge && edge_hop(&gs))
        corrupt(&gs, 0, "answer of a channel hop at a fresh stack's edge");
    while (gs.dives_left-- > 0 && !AO_load(&stop)) {
        /* depth: skewed towards shallow dives, up to ~75% of max-stack */
        double u = (double)(rnd(&gs) % 1000000) / 1e6;
        long budget = (long)((double)opt.max_stack * 0.75 * u * u);
        gs.seed = rnd(&gs);
        dive(&gs, NULL, budget, 0);
        if (gs.nframes != 0) {
            /* relaxed: statistics */
            AO_fetch_and_add(&narrow_frames, (AO_t)gs.nframes);
            AO_fetch_and_add(&narrow_bytes, (AO_t)gs.nbytes);
            AO_fetch_and_add(&narrow_bad, (AO_t)gs.nbad);
            gs.nframes = gs.nbytes = gs.nbad = 0;
        }
        long d = (long)AO_fetch_and_add1(&dives_done) + 1;
        if (opt.dives > 0 && d >= opt.dives)
            AO_store(&stop, 1);
    }
    goro_chan_free(gs.reply);
    /* hand our place to a fresh goroutine (a fresh one-page stack) */
    if (!AO_load(&stop) && goro_go(diver, NULL) == 0)
        return;
    goro_wg_done(&wg);
}

/* ---- sleepers (--sleepers N) -------------------------------------------
 *
 * Goroutines that park for long on their home stack (so that goro compacts
 * their stacks and puts whole clusters of them to sleep: runtime/
 * stack_doze.c), with text written by snprintf, words and a chain of
 * pointers into their own frame on it, and are woken in random order with
 * random gaps in one of three ways: a goroutine's send into a variable on
 * the parked stack, a byte on a pipe (the poller: the stack is moved away
 * as it resumes), or a plain thread's write through a pointer into the
 * parked stack followed by a send. Then they check every byte and dive as
 * the divers do (growing from wherever their stack now is). */
enum { SL_RUNNING = 0, SL_CHAN, SL_PIPE, SL_THREAD, SL_DONE };

struct sleeper {
    volatile AO_t state;    /* SL_*: how it waits now */
    int64_t *volatile word; /* on its parked stack (SL_THREAD) */
    volatile int64_t want;  /* what its waker writes there */
    goro_chan *ch;          /* SL_CHAN and SL_THREAD wake-ups */
    int pipe[2];
};

static struct sleeper *sl;
static volatile AO_t sleepers_alive;
static goro_wg rouser_wg;

static int64_t sl_magic(long i, uint64_t round)
{
    return (int64_t)(tag_of((uint64_t)i * 7919 + 13, (long)round) & 0x7fffffffffffll);
}

__attribute__((noinline)) static void sleeper(void *arg)
{
    long i = (long)(intptr_t)arg;
    struct sleeper *me = &sl[i];
    struct gstate gs;
    gs.gid = AO_fetch_and_add1(&spawned);
    gs.rng = (opt.seed ^ ((uint64_t)i * 0xD1B54A32D192ED03ull)) | 1;
    gs.reply = goro_chan_make(sizeof(uint64_t), 0);
    gs.nframes = gs.nbytes = gs.nbad = 0;
    for (uint64_t round = 0; !AO_load(&stop) && gs.reply != NULL; round++) {
        char note[80];
        uint64_t words[16];
        uint64_t *chain[8];
        uint64_t tag = tag_of(gs.rng, (long)round);
        int n = snprintf(note, sizeof note, "sleeper %ld round %" PRIu64 " tag %" PRIx64, i,
                         round, tag);
        for (int k = 0; k < 16; k++)
            words[k] = tag ^ (uint64_t)k;
        for (int k = 0; k < 8; k++)
            chain[k] = &words[(k * 5) % 16];
        int64_t word = -1;
        char byte = 0;
        int kind = SL_CHAN + (int)(rnd(&gs) % 3);
        int64_t want = sl_magic(i, round);
        me->word = &word;
        me->want = want;
        AO_store_release(&me->state, (AO_t)kind);
        bool ok;
        if (kind == SL_PIPE) {
            ok = goro_read(me->pipe[0], &byte, 1) == 1 && byte == (char)('A' + i % 26);
        } else {
            int64_t got = 0;
            /* the rouser sends into the word; the thread writes it first */
            ok = goro_chan_recv(me->ch, kind == SL_CHAN ? &word : &got) == 1;
        }
        char expect[80];
        snprintf(expect, sizeof expect, "sleeper %ld round %" PRIu64 " tag %" PRIx64, i, round,
                 tag);
        if (!ok)
            corrupt(&gs, 0, "sleeper: its wake-up failed");
        if (kind != SL_PIPE && word != want)
            corrupt(&gs, 0, "sleeper: the word written into its parked stack is wrong");
        if (n <= 0 || strcmp(note, expect) != 0)
            corrupt(&gs, 0, "sleeper: the text on its stack changed while it was parked");
        for (int k = 0; k < 16; k++)
            if (words[k] != (tag ^ (uint64_t)k))
                corrupt(&gs, 0, "sleeper: a word on its stack changed while it was parked");
        for (int k = 0; k < 8; k++)
            if (chain[k] != &words[(k * 5) % 16])
                corrupt(&gs, 0, "sleeper: a pointer into its stack is wrong after the park");
        /* and, one round in four, a dive from wherever its stack now is
         * (a stack that grew goes home again when it shrinks: at a resume
         * after a park, if it uses under a quarter of it) */
        if (rnd(&gs) % 4 == 0) {
            double u = (double)(rnd(&gs) % 1000000) / 1e6;
            gs.seed = rnd(&gs);
            dive(&gs, NULL, (long)((double)opt.max_stack * 0.25 * u * u), 0);
        }
    }
    AO_store_release(&me->state, SL_DONE);
    goro_chan_free(gs.reply);
    AO_fetch_and_sub1(&sleepers_alive);
    goro_wg_done(&wg);
}

/* Wakes sleepers parked on a channel or a pipe, in random order, with
 * gaps of 0-4 ms while the run lasts (so that with thousands of them each
 * waits seconds), and all of them at once at the end. */
static void rouser(void *arg)
{
    (void)arg;
    uint64_t r = opt.seed | 1;
    while (AO_load(&sleepers_alive) > 0) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        long i = (long)(r % (uint64_t)opt.sleepers);
        AO_t st = AO_load_acquire(&sl[i].state);
        if (st == SL_CHAN && AO_compare_and_swap_full(&sl[i].state, SL_CHAN, SL_RUNNING)) {
            int64_t v = sl[i].want;
            goro_chan_send(sl[i].ch, &v);
        } else if (st == SL_PIPE && AO_compare_and_swap_full(&sl[i].state, SL_PIPE, SL_RUNNING)) {
            char b = (char)('A' + i % 26);
            if (goro_write(sl[i].pipe[1], &b, 1) != 1)
                fprintf(stderr, "stackgrow: rouser: goro_write failed\n");
        }
        if (!AO_load(&stop))
            goro_sleep((int64_t)((r >> 20) % 4000) * 1000);
        else
            goro_yield(); /* the woken ones must run to end (one worker) */
    }
    goro_wg_done(&rouser_wg);
}

/* The plain thread: writes into parked stacks through pointers, then sends. */
static void *rouser_thread(void *arg)
{
    (void)arg;
    uint64_t r = (opt.seed * 31) | 1;
    while (AO_load(&sleepers_alive) > 0) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        long i = (long)(r % (uint64_t)opt.sleepers);
        if (AO_load_acquire(&sl[i].state) == SL_THREAD &&
            AO_compare_and_swap_full(&sl[i].state, SL_THREAD, SL_RUNNING)) {
            *sl[i].word = sl[i].want; /* into the parked (maybe dormant) stack */
            int64_t v = 0;
            while (goro_chan_trysend(sl[i].ch, &v) == -EAGAIN)
                sched_yield();
        }
        if (!AO_load(&stop)) {
            struct timespec ts = { 0, (long)((r >> 20) % 4000) * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static long rss_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0)
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static double now_s(void)
{
    return (double)goro_now() / 1e9;
}

static void *progress(void *arg)
{
    double t0 = *(double *)arg, last = t0;
    struct goro_stats st;
    while (!AO_load(&stop)) {
        usleep(50 * 1000);
        double t = now_s();
        if (opt.dives == 0 && t - t0 >= opt.duration)
            AO_store(&stop, 1);
        if (!opt.quiet && (t - last >= 1.0 || AO_load(&stop))) {
            last = t;
            goro_stats(&st);
            printf("[%5.1fs] dives %-9lu goroutines %-8lu growths %-10" PRIu64
                   " copied %7.1f MiB  largest %5" PRIu64 " KiB  RSS %ld MiB\n",
                   t - t0, (unsigned long)AO_load(&dives_done),
                   (unsigned long)AO_load(&spawned), st.stack_growths,
                   (double)st.stack_bytes_copied / 1048576.0, st.stack_max / 1024,
                   rss_kb("VmRSS:") / 1024);
            fflush(stdout);
        }
    }
    return NULL;
}

static void main_fn(void *arg)
{
    struct goro_stats st;
    nhoppers = 2 * goro_procs();
    hopch = goro_chan_make(sizeof(struct hopmsg), 0);
    if (hopch == NULL) {
        fprintf(stderr, "stackgrow: cannot make a channel\n");
        exit(2);
    }
    goro_wg_init(&hop_wg);
    goro_wg_add(&hop_wg, nhoppers);
    for (int i = 0; i < nhoppers; i++)
        goro_go(hopper, NULL);
    goro_wg_init(&wg);
    goro_wg_add(&wg, opt.goroutines + opt.sleepers);
    pthread_t rt;
    if (opt.sleepers > 0) {
        sl = calloc((size_t)opt.sleepers, sizeof *sl);
        for (long i = 0; sl != NULL && i < opt.sleepers; i++) {
            sl[i].ch = goro_chan_make(sizeof(int64_t), 0);
            if (sl[i].ch == NULL || pipe(sl[i].pipe) != 0) {
                fprintf(stderr, "stackgrow: cannot make a sleeper's channel or pipe\n");
                exit(2);
            }
        }
        if (sl == NULL) {
            fprintf(stderr, "stackgrow: out of memory\n");
            exit(2);
        }
        AO_store(&sleepers_alive, (AO_t)opt.sleepers);
        for (long i = 0; i < opt.sleepers; i++)
            if (goro_go(sleeper, (void *)(intptr_t)i) != 0) {
                fprintf(stderr, "stackgrow: goro_go failed\n");
                exit(2);
            }
        goro_wg_init(&rouser_wg);
        goro_wg_add(&rouser_wg, 1);
        goro_go(rouser, NULL);
        if (pthread_create(&rt, NULL, rouser_thread, NULL) != 0) {
            fprintf(stderr, "stackgrow: pthread_create failed\n");
            exit(2);
        }
    }
    double t0 = now_s();
    for (long i = 0; i < opt.goroutines; i++) {
        int rc = goro_go(diver, NULL);
        if (rc != 0) {
            fprintf(stderr, "stackgrow: goro_go: %s\n", strerror(-rc));
            exit(2);
        }
    }
    /* Progress and the clock run on a plain thread: with thousands of
     * runnable goroutines a sleeping main goroutine may wait its turn. */
    pthread_t pt;
    double *t0p = &t0;
    if (pthread_create(&pt, NULL, progress, t0p) != 0) {
        fprintf(stderr, "stackgrow: pthread_create failed\n");
        exit(2);
    }
    goro_wg_wait(&wg);
    AO_store(&stop, 1);
    pthread_join(pt, NULL);
    if (opt.sleepers > 0) {
        goro_wg_wait(&rouser_wg);
        pthread_join(rt, NULL);
        for (long i = 0; i < opt.sleepers; i++) {
            goro_chan_free(sl[i].ch);
            goro_close(sl[i].pipe[0]);
            goro_close(sl[i].pipe[1]);
        }
        free(sl);
    }
    struct hopmsg m = { 0, NULL, NULL };
    for (int i = 0; i < nhoppers; i++)
        goro_chan_send(hopch, &m);
    goro_wg_wait(&hop_wg);
    goro_chan_free(hopch);
    double elapsed = now_s() - t0;
    goro_stats(&st);
    printf("\nstackgrow report (%.1f s, %d workers, seed %" PRIu64 ", max-stack %ld)\n",
           elapsed, goro_procs(), opt.seed, opt.max_stack);
    printf("  goroutines        %lu (%ld at a time)\n", (unsigned long)AO_load(&spawned),
           opt.goroutines);
    printf("  dives             %lu (%.0f/s)\n", (unsigned long)AO_load(&dives_done),
           (double)AO_load(&dives_done) / elapsed);
    if (opt.narrow)
        printf("  narrow frames     %lu (%lu bytes written and checked, %lu differ)\n",
               (unsigned long)AO_load(&narrow_frames), (unsigned long)AO_load(&narrow_bytes),
               (unsigned long)AO_load(&narrow_bad));
    else
        printf("  narrow frames     off (--no-narrow)\n");
    printf("  growth events     %" PRIu64 "\n", st.stack_growths);
    printf("  shrinks           %" PRIu64 " (and %" PRIu64 " compactions of parked stacks)\n",
           st.stack_shrinks - st.stack_compactions, st.stack_compactions);
    printf("  bytes copied      %" PRIu64 " (%.1f MiB)\n", st.stack_bytes_copied,
           (double)st.stack_bytes_copied / 1048576.0);
    printf("  largest stack     %" PRIu64 " bytes\n", st.stack_max);
    if (opt.sleepers > 0)
        printf("  sleepers          %ld (%" PRIu64 " compacted at the end)\n", opt.sleepers,
               st.stacks_compacted);
    printf("  growth time/event median %.2f us, p99 %.2f us\n",
           (double)goro__stack_growth_quantile(0.5) / 1e3,
           (double)goro__stack_growth_quantile(0.99) / 1e3);
    printf("  peak RSS          %ld MiB\n", rss_kb("VmHWM:") / 1024);
    printf("  %lu corruptions\n", (unsigned long)AO_load(&corruptions));
    fflush(stdout);
}

static long parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        v *= 1024 * 1024 * 1024, end++;
    if (*end != 0 || v <= 0) {
        fprintf(stderr, "stackgrow: bad size '%s'\n", s);
        exit(2);
    }
    return (long)v;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: stackgrow [options]\n"
        "\n"
        "Stress goro's growable stacks: goroutines recurse to random depths through\n"
        "frames of 64 B to 32 KiB that point at their own and their callers' locals,\n"
        "call snprintf and qsort on stack data, hold stack pointers in vector\n"
        "registers across possible guard faults, yield and hop between workers\n"
        "through channels mid-recursion, and check every value on the way back up.\n"
        "A hop hands the other side a pointer to a local for its answer and blocks\n"
        "(calling goro directly or through a function pointer); each fresh\n"
        "goroutine first hops near the end of its one-page stack.\n"
        "One frame in 32 is a narrow frame: over stale pointers into the stack it\n"
        "writes text of random length (snprintf, memcpy) at any alignment, chars,\n"
        "shorts, ints, FILE-style flag words and struct members beside padding, and\n"
        "checks every byte it wrote after the deeper dive has moved the stack.\n"
        "\n"
        "  -g, --goroutines N   goroutines alive at once (default 1000); each lives\n"
        "                       1-4 dives, then a fresh one takes its place\n"
        "  -w, --workers W      worker threads (GORO_PROCS; default: online CPUs)\n"
        "  -m, --max-stack SIZE deepest dive, in bytes of stack (K, M, G suffixes;\n"
        "                       default 1M); dives are skewed towards shallow ones\n"
        "  -s, --seed S         random seed (default: from the clock; printed)\n"
        "  -d, --duration SEC   run this long (default 10)\n"
        "  -n, --dives N        run until N dives completed instead of a duration\n"
        "  -q, --quiet          no progress lines, only the report\n"
        "      --hints          keep goro's start-size hints on (off by default:\n"
        "                       with them most goroutines start on a stack their\n"
        "                       function needed before and never grow)\n"
        "      --no-narrow      no narrow frames (partly written words over stale\n"
        "                       stack pointers: the bytes relocation may change)\n"
        "      --no-vector      no stack pointers held in vector registers across a\n"
        "                       growth\n"
        "      --no-edge-hop    no hop at a fresh stack's edge (where goro lends the\n"
        "                       guard's page; it does not under Valgrind and the\n"
        "                       sanitizers, and there the hop loses its answer:\n"
        "                       README rule 5)\n"
        "  -k, --keep-going     count corruptions to the end instead of stopping at\n"
        "                       the first (a corrupted pointer may then crash)\n"
        "      --sleepers N     also N goroutines that park for seconds at a time\n"
        "                       with text, words and pointers on their stack, woken\n"
        "                       in random order by a send into the parked stack, a\n"
        "                       byte on a pipe, or a thread writing into it; they\n"
        "                       check it all, then dive. Parked stacks are compacted\n"
        "                       and whole clusters of them put to sleep (GORO_\n"
        "                       COMPACT_AFTER defaults to 50 ms with this option)\n"
        "  -h, --help           this text\n"
        "\n"
        "Prints a progress line per second and a report: goroutines, dives, growth\n"
        "events, bytes copied, largest stack, growth time per event (median, p99),\n"
        "peak RSS, narrow frames (bytes checked, bytes that differed) and the number\n"
        "of corruptions (frames whose checks failed). Exit status 0 with\n"
        "\"0 corruptions\", 1 naming the first corruption found, 2 on a usage or\n"
        "setup error.\n"
        "Environment: GORO_STACK_MIN, GORO_STACK_MAX, GORO_GUARD, GORO_DEBUG as in\n"
        "the README (GORO_DEBUG=stackcheck makes a stale stack pointer fatal).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "goroutines", required_argument, NULL, 'g' },
        { "workers", required_argument, NULL, 'w' },
        { "max-stack", required_argument, NULL, 'm' },
        { "seed", required_argument, NULL, 's' },
        { "duration", required_argument, NULL, 'd' },
        { "dives", required_argument, NULL, 'n' },
        { "quiet", no_argument, NULL, 'q' },
        { "hints", no_argument, NULL, 'H' },
        { "no-narrow", no_argument, NULL, 'N' },
        { "no-vector", no_argument, NULL, 'V' },
        { "no-edge-hop", no_argument, NULL, 'E' },
        { "keep-going", no_argument, NULL, 'k' },
        { "sleepers", required_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    opt.seed = (uint64_t)time(NULL) * 2654435761u;
    bool hints = false;
    int c;
    while ((c = getopt_long(argc, argv, "g:w:m:s:d:n:qkh", longopts, NULL)) != -1) {
        switch (c) {
        case 'g': opt.goroutines = atol(optarg); break;
        case 'w': opt.workers = atoi(optarg); break;
        case 'm': opt.max_stack = parse_size(optarg); break;
        case 's': opt.seed = strtoull(optarg, NULL, 0); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'n': opt.dives = atol(optarg); break;
        case 'q': opt.quiet = true; break;
        case 'H': hints = true; break;
        case 'N': opt.narrow = false; break;
        case 'V': opt.vector = false; break;
        case 'E': opt.edge = false; break;
        case 'k': opt.keep_going = true; break;
        case 'S': opt.sleepers = atol(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || opt.goroutines <= 0 || opt.duration <= 0 || opt.dives < 0 ||
        opt.sleepers < 0) {
        usage(stderr);
        return 2;
    }
    if (!hints) {
        /* every goroutine starts on one page and grows: the point here */
        const char *d = getenv("GORO_DEBUG");
        char buf[512];
        snprintf(buf, sizeof buf, "%s%snostackhint", d ? d : "", d && *d ? "," : "");
        setenv("GORO_DEBUG", buf, 1);
    }
    if (opt.sleepers > 0)
        setenv("GORO_COMPACT_AFTER", "50", 0); /* ms: parks of seconds are compacted */
    if (opt.workers > 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", opt.workers);
        setenv("GORO_PROCS", buf, 1);
    }
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
    int rc = goro_run(main_fn, NULL);
    if (rc != 0) {
        fprintf(stderr, "stackgrow: goro_run: %s\n", strerror(-rc));
        return 2;
    }
    if (AO_load(&corruptions) != 0) {
        fprintf(stderr, "stackgrow: CORRUPTION: %s\n", first_corruption);
        return 1;
    }
    return 0;
}
