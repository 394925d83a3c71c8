/*
 * stack.c - goroutine stacks (first version: fixed 64 KiB, guard page below).
 *
 * Each stack is its own mapping with a PROT_NONE guard page at the low end,
 * so running off the bottom faults instead of corrupting the neighbour.
 * Stacks stay with their G record on the free lists (g.c), so spawning
 * reuses them without a system call.
 */
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)

static size_t page_size;

size_t goro__pagesize(void)
{
    if (page_size == 0)
        page_size = (size_t)sysconf(_SC_PAGESIZE);
    return page_size;
}

void goro__stack_init(void)
{
    goro__pagesize();
}

void goro__stack_fini(void)
{
}

int goro__stack_alloc(struct goro__stack *s)
{
    size_t pg = goro__pagesize();
    size_t len = STACK_SIZE + pg;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    if (mprotect(p, pg, PROT_NONE) != 0) {
        munmap(p, len);
        return -ENOMEM;
    }
    s->map = p;
    s->maplen = len;
    s->lo = (char *)p + pg;
    s->hi = (char *)p + len;
    s->cls = 0;
    s->flags = 0;
    AO_fetch_and_add(&goro__ctr.stack_bytes_reserved, (AO_t)len);
    return 0;
}

void goro__stack_free(struct goro__stack *s)
{
    if (s->map) {
        munmap(s->map, s->maplen);
        AO_fetch_and_add(&goro__ctr.stack_bytes_reserved, (AO_t)0 - (AO_t)s->maplen);
    }
    s->map = NULL;
    s->lo = s->hi = NULL;
}

void goro__stack_reset(struct goro__stack *s)
{
    (void)s;
}
