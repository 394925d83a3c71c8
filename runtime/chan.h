/*
 * chan.h - the channel record and its wait queues, shared by chan.c and
 * select.c. See chan.c for the design and the invariants.
 */
#ifndef GORO_CHAN_H
#define GORO_CHAN_H

#include "internal.h"
#include "spin.h"

/*
 * A goroutine blocked on a channel (Go's sudog). It lives on the blocked
 * goroutine's stack (single send/recv: one; select: one per case) and is
 * linked into a channel queue only by the park commit function, that is
 * after the goroutine has switched away: a parked goroutine's stack does not
 * move, so the queue may point into it (DESIGN.md, Stacks 5). Removed from
 * the queue by the waker (who then owns it until goro__ready) or, for the
 * cases of a select that did not win, by the selecting goroutine itself.
 */
struct goro__sudog {
    struct goro__sudog *next;  /* in ch->sendq or ch->recvq, under ch->lock */
    struct goro__sudog *prev;
    G *g;                      /* the blocked goroutine */
    void *elem;                /* send: the value; recv: where it goes (may be NULL) */
    goro_chan *ch;             /* the channel this record waits on */
    uint32_t idx;              /* select: the case index */
    bool is_select;            /* waker must win g->selectdone before using it */
    bool is_send;              /* queued on sendq (else recvq) */
    bool success;              /* set by the waker: true communicated, false closed */
};

struct goro__waitq {
    struct goro__sudog *first; /* FIFO: dequeue here */
    struct goro__sudog *last;  /* enqueue here */
};

struct goro_chan {
    goro__spin lock;           /* protects every field below except the
                                  immutable elem_size, cap and buf */
    size_t elem_size;          /* immutable */
    size_t cap;                /* immutable: buffer slots; 0 unbuffered */
    char *buf;                 /* immutable: cap * elem_size bytes after the record */
    volatile AO_t count;       /* elements in buf; written under lock,
                                  read without it by goro_chan_len */
    size_t sendx;              /* next slot a send fills */
    size_t recvx;              /* next slot a receive empties */
    struct goro__waitq recvq;  /* blocked receivers */
    struct goro__waitq sendq;  /* blocked senders */
    bool closed;
    bool is_timer;             /* immutable once shared: a goro_timer's or
                                  goro_after's channel (the dump's "timer") */
    bool embedded;             /* immutable: built inside a goro_timer or
                                  goro_ctx record, freed with it; never by
                                  goro_chan_free */
};

static inline void goro__chan_lock(goro_chan *ch) { goro__spin_lock(&ch->lock); }
static inline void goro__chan_unlock(goro_chan *ch) { goro__spin_unlock(&ch->lock); }

/* Queue operations; the caller holds the channel's lock. */
static inline void goro__waitq_push(struct goro__waitq *q, struct goro__sudog *sg)
{
    sg->next = NULL;
    sg->prev = q->last;
    if (q->last)
        q->last->next = sg;
    else
        q->first = sg;
    q->last = sg;
}

/* Take the first waiter that can still be woken. A select waiter whose
 * goroutine was already won by another case (selectdone set) is unlinked and
 * skipped: that goroutine removes its other records itself once it holds the
 * channel locks again. */
static inline struct goro__sudog *goro__waitq_pop(struct goro__waitq *q)
{
    for (;;) {
        struct goro__sudog *sg = q->first;
        if (!sg)
            return NULL;
        struct goro__sudog *y = sg->next;
        if (y) {
            y->prev = NULL;
            q->first = y;
            sg->next = NULL;
        } else {
            q->first = q->last = NULL;
        }
        /* full barrier CAS: exactly one of the cases (and the timeout) wins
         * the goroutine; the winner's writes to the waiter record and to
         * g->param are published by goro__ready. */
        if (sg->is_select && !AO_compare_and_swap_full(&sg->g->selectdone, 0, 1))
            continue;
        return sg;
    }
}

/* Unlink sg if it is still queued on q (a select removing its losing cases). */
static inline void goro__waitq_remove(struct goro__waitq *q, struct goro__sudog *sg)
{
    struct goro__sudog *x = sg->prev, *y = sg->next;
    if (x) {
        x->next = y;
        if (y)
            y->prev = x;
        else
            q->last = x;
    } else if (y) {
        y->prev = NULL;
        q->first = y;
    } else if (q->first == sg) {
        q->first = q->last = NULL;
    }
    /* else: x == y == NULL and not first: a waker already unlinked it */
    sg->next = sg->prev = NULL;
}

/* The buffer slot i (caller holds the lock or the slot is private). */
static inline void *goro__chan_slot(goro_chan *ch, size_t i)
{
    return ch->buf + i * ch->elem_size;
}

/* Hand-offs shared with select; the caller holds ch->lock, and after
 * unlocking it calls goro__ready on the returned goroutine. */
G *goro__chan_send_to(goro_chan *ch, struct goro__sudog *rsg, const void *elem) GORO_HIDDEN;
G *goro__chan_recv_from(goro_chan *ch, struct goro__sudog *ssg, void *elem) GORO_HIDDEN;
/* Non-blocking attempts under the lock: 1 done (result in *res), 0 not ready.
 * *wake is the goroutine to ready after unlocking, or NULL. */
int goro__chan_trysend_locked(goro_chan *ch, const void *elem, int *res, G **wake) GORO_HIDDEN;
int goro__chan_tryrecv_locked(goro_chan *ch, void *elem, int *res, G **wake) GORO_HIDDEN;

/* goro_chan_free that reports: 0 freed (or ch NULL), -EBUSY not freed
 * because goroutines are still blocked on it. */
int goro__chan_free(goro_chan *ch) GORO_HIDDEN;

/* Per-thread fast random numbers (select's poll order). */
uint32_t goro__fastrand(void) GORO_HIDDEN;
static inline uint32_t goro__fastrandn(uint32_t n)
{
    /* Lemire's multiply-shift: uniform enough (bias < n / 2^32). */
    return (uint32_t)(((uint64_t)goro__fastrand() * n) >> 32);
}

#endif /* GORO_CHAN_H */
