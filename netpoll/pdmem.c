/*
 * pdmem.c - where descriptor records live: a slab of cache-line-aligned
 * records, and the deadline timers a record gets when it first needs them.
 *
 * What. Every fd goro I/O touches gets a record (struct goro__pd,
 * netpoll.h), kept for the fd number until goro_run returns. An idle
 * connection is two of them, beside its two parked goroutines, so their
 * size is part of what an idle connection costs (idle_conns_mem).
 *
 * How. Records are carved from blocks of PD_BLOCK bytes, one after the
 * other, each rounded up to 128 bytes (PD_ALIGN; a record is written by
 * the goroutines of its fd and the poller; neighbours belong to other fds
 * and must not share its lines, nor their prefetched pairs). A record that lost the race to publish itself
 * (netpoll.c's pd_create) goes on a free list for the next one. Nothing
 * else is ever freed before goro__pdmem_fini, after every thread stopped.
 *   Before, each record was posix_memalign'd (232 bytes, 64-aligned):
 *   malloc's header and the alignment's slack made it 256-350 bytes of
 *   heap. And the two deadline timers (80 bytes) were in every record,
 *   though most fds never get a deadline; they are made on the first
 *   goro_fd_deadline of the record and kept (a dial with a timeout makes
 *   them and gives them back once connected).
 *   Records of 128 bytes instead (the timers out, and netpoll.h's small
 *   words in 32 bits): idle_conns_mem went from 2,280-2,288 to 1,843-1,850
 *   bytes a connection (Tokio: 1,908).
 *
 * Locks: one spinlock over the block cursor and the free list (held for a
 * few stores; making a record is the slow path of an fd's first use).
 * The timers pointer is written under the record's dlock (netpoll.c).
 */
#include "netpoll.h"

#include <stdlib.h>
#include <string.h>

#define PD_BLOCK (64 * 1024)
/* Records start on 128-byte boundaries: Intel's adjacent-line prefetcher
 * fetches 64-byte lines in aligned pairs, so a record across a pair's
 * boundary would drag a neighbour's line along (Tokio aligns its
 * ScheduledIo to 128 bytes on x86-64 for the same reason). */
#define PD_ALIGN 128

/* Two cache lines: an idle connection is two records (netpoll.h packs the
 * 32-bit words in pairs to fit) */
_Static_assert(sizeof(struct goro__pd) <= PD_ALIGN, "a descriptor record grew");

struct block {
    struct block *next;
};

static struct {
    volatile uint32_t lock;
    struct block *blocks;   /* every block, for fini */
    char *cur, *end;        /* the rest of the newest block */
    struct goro__pd *free;  /* records returned unused (linked through q) */
} pm;

static inline size_t rec_size(void)
{
    return (sizeof(struct goro__pd) + PD_ALIGN - 1) & ~(size_t)(PD_ALIGN - 1);
}

struct goro__pd *goro__pdmem_alloc(void)
{
    struct goro__pd *pd = NULL;
    goro__np_lock(&pm.lock);
    if (pm.free != NULL) {
        pd = pm.free;
        pm.free = (struct goro__pd *)(void *)pd->q;
    } else {
        if (pm.cur == NULL || (size_t)(pm.end - pm.cur) < rec_size()) {
            void *mem;
            if (posix_memalign(&mem, PD_ALIGN, PD_BLOCK) != 0) {
                goro__np_unlock(&pm.lock);
                return NULL;
            }
            struct block *b = mem;
            b->next = pm.blocks;
            pm.blocks = b;
            pm.cur = (char *)mem + PD_ALIGN; /* the first 128 bytes: the link */
            pm.end = (char *)mem + PD_BLOCK;
        }
        pd = (struct goro__pd *)(void *)pm.cur;
        pm.cur += rec_size();
    }
    goro__np_unlock(&pm.lock);
    return memset(pd, 0, sizeof *pd);
}

void goro__pdmem_unused(struct goro__pd *pd)
{
    goro__np_lock(&pm.lock);
    pd->q = (struct goro__pd_waiter *)(void *)pm.free;
    pm.free = pd;
    goro__np_unlock(&pm.lock);
}

struct goro__timer *goro__pdmem_timers(struct goro__pd *pd, void (*fire)(struct goro__timer *))
{
    if (pd->timers != NULL)
        return pd->timers;
    struct goro__timer *t = calloc(2, sizeof *t);
    if (t == NULL)
        return NULL;
    for (int d = 0; d < 2; d++) {
        t[d].fn = fire;
        t[d].arg = pd;
    }
    pd->timers = t;
    return t;
}

void goro__pdmem_fini(void)
{
    for (struct block *b = pm.blocks, *next; b != NULL; b = next) {
        next = b->next;
        /* every record in it: its timers (zeroed tail records have none) */
        for (char *p = (char *)b + PD_ALIGN; p + rec_size() <= (char *)b + PD_BLOCK;
             p += rec_size()) {
            if (b == pm.blocks && p >= pm.cur)
                break;
            free(((struct goro__pd *)(void *)p)->timers);
        }
        free(b);
    }
    pm.blocks = NULL;
    pm.cur = pm.end = NULL;
    pm.free = NULL;
}
