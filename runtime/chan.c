/*
 * chan.c - channels, on Go's algorithm (runtime/chan.go).
 *
 * A channel is one heap block: the record below, then cap * elem_size bytes
 * of ring buffer. One spinlock guards it. Blocked senders and receivers wait
 * in two FIFO queues of waiter records (struct goro__sudog, chan.h) that live
 * on the blocked goroutines' own stacks.
 *
 * How an operation goes, under the lock:
 *   send: closed -> -EPIPE. A receiver is waiting -> copy the value straight
 *         into its destination (never through the buffer), mark its record,
 *         and after unlocking ready it into our runnext: it runs next on this
 *         worker, in the same cache. Room in the buffer -> copy in. Otherwise
 *         park on sendq.
 *   recv: a sender is waiting -> unbuffered: copy straight from the sender;
 *         buffered (then the buffer is full): take the head of the buffer and
 *         put the sender's value at its tail, so FIFO order holds; ready the
 *         sender. Elements buffered -> copy out. Closed -> 0, zero-filled.
 *         Otherwise park on recvq.
 *   close: wake every receiver (they return 0) and every sender (-EPIPE).
 * Parking: the waiter record is filled in on the goroutine's stack, and
 * goro__park's commit function (run on the next context, after the switch)
 * links it into the queue and only then drops the channel lock. So nothing
 * outside a goroutine's stack ever points into it while it can still run,
 * and a waker can never find a goroutine that has not finished switching
 * away. The waker writes the outcome into the record (success) and
 * g->param, and the woken goroutine reads it after goro__park returns.
 *
 * Invariants (ch->lock held):
 *   - At least one of sendq and recvq is empty, except while a select's
 *     own records sit on both sides of the same channel (a goroutine cannot
 *     meet itself; other goroutines still pair up with those records).
 *   - cap == 0, or sendq is empty, or count == cap (senders wait only on a
 *     full buffer); cap == 0, or recvq is empty, or count == 0.
 *   - closed implies both queues are empty: close empties them, and
 *     nothing queues on a closed channel (a closed channel is always ready).
 *   - 0 <= count <= cap; the elements are buf[recvx], buf[recvx+1], ...,
 *     count of them, modulo cap; sendx == (recvx + count) % cap.
 *   - A record on a queue belongs to a goroutine that is WAITING (or, for a
 *     select, one whose selectdone may already be set by another case).
 *
 * Rejected alternatives: a lock-free ring (fast for buffered SPSC, but
 * parking, close and select across channels need a lock anyway, and Go's
 * lock is uncontended in the common case); heap-allocated waiter records
 * (an allocation or a pool per blocking operation; the stack is free and a
 * parked stack does not move); passing values through the buffer on
 * hand-off (an extra copy and a cache line more).
 *
 * NULL channels: a NULL channel is never ready. In select such a case is
 * skipped; the try calls return -EAGAIN; the blocking send/recv, which would
 * block forever in Go, return -EINVAL; close returns -EINVAL; len and cap
 * are 0; free does nothing.
 */
#include "chan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The buffer starts at this alignment after the record. */
#define CHAN_BUF_ALIGN 16

goro_chan *goro_chan_make(size_t elem_size, size_t cap)
{
    size_t bytes, hdr = (sizeof(goro_chan) + CHAN_BUF_ALIGN - 1) & ~(size_t)(CHAN_BUF_ALIGN - 1);
    if (__builtin_mul_overflow(elem_size, cap, &bytes) || bytes > PTRDIFF_MAX - hdr) {
        errno = EINVAL;
        return NULL;
    }
    goro_chan *ch = malloc(hdr + bytes);
    if (!ch) {
        errno = ENOMEM;
        return NULL;
    }
    memset(ch, 0, sizeof *ch);
    ch->elem_size = elem_size;
    ch->cap = cap;
    ch->buf = (char *)ch + hdr;
    return ch;
}

int goro__chan_free(goro_chan *ch)
{
    if (!ch)
        return 0;
    goro__chan_lock(ch);
    bool busy = ch->recvq.first || ch->sendq.first;
    goro__chan_unlock(ch);
    if (busy)
        return -EBUSY;
    free(ch);
    return 0;
}

void goro_chan_free(goro_chan *ch)
{
    if (ch && ch->embedded) {
        fprintf(stderr, "goro: goro_chan_free(%p): a timer's or a context's channel; "
                        "free the timer or the context instead\n", (void *)ch);
        return;
    }
    if (goro__chan_free(ch) == -EBUSY)
        fprintf(stderr, "goro: goro_chan_free(%p): goroutines are still blocked on "
                        "this channel; not freed\n", (void *)ch);
}

size_t goro_chan_len(goro_chan *ch)
{
    /* no ordering: a snapshot that may be stale by the time it returns */
    return ch ? (size_t)AO_load(&ch->count) : 0;
}

size_t goro_chan_cap(goro_chan *ch)
{
    return ch ? ch->cap : 0;
}

static inline void copy_elem(void *dst, const void *src, size_t n)
{
    if (n && dst)
        memcpy(dst, src, n);
}

static inline void zero_elem(void *dst, size_t n)
{
    if (n && dst)
        memset(dst, 0, n);
}

/* ch->lock held; rsg already dequeued from recvq (and won, if a select). */
G *goro__chan_send_to(goro_chan *ch, struct goro__sudog *rsg, const void *elem)
{
    copy_elem(rsg->elem, elem, ch->elem_size);
    rsg->success = true;
    rsg->g->param = (uintptr_t)rsg;
    return rsg->g;
}

/* ch->lock held; ssg already dequeued from sendq (and won, if a select). */
G *goro__chan_recv_from(goro_chan *ch, struct goro__sudog *ssg, void *elem)
{
    if (ch->cap == 0) {
        copy_elem(elem, ssg->elem, ch->elem_size);
    } else {
        /* The buffer is full (a sender waits): take its head, and put the
         * sender's value in the slot just freed, which is now the tail. */
        void *slot = goro__chan_slot(ch, ch->recvx);
        copy_elem(elem, slot, ch->elem_size);
        copy_elem(slot, ssg->elem, ch->elem_size);
        if (++ch->recvx == ch->cap)
            ch->recvx = 0;
        ch->sendx = ch->recvx;
    }
    ssg->success = true;
    ssg->g->param = (uintptr_t)ssg;
    return ssg->g;
}

int goro__chan_trysend_locked(goro_chan *ch, const void *elem, int *res, G **wake)
{
    *wake = NULL;
    if (ch->closed) {
        *res = -EPIPE;
        return 1;
    }
    struct goro__sudog *rsg = goro__waitq_pop(&ch->recvq);
    if (rsg) {
        *wake = goro__chan_send_to(ch, rsg, elem);
        *res = 0;
        return 1;
    }
    size_t count = ch->count;
    if (count < ch->cap) {
        copy_elem(goro__chan_slot(ch, ch->sendx), elem, ch->elem_size);
        if (++ch->sendx == ch->cap)
            ch->sendx = 0;
        /* under the lock; AO_store only so that goro_chan_len's unlocked
         * read is not a data race. No ordering needed. */
        AO_store(&ch->count, count + 1);
        *res = 0;
        return 1;
    }
    return 0;
}

int goro__chan_tryrecv_locked(goro_chan *ch, void *elem, int *res, G **wake)
{
    *wake = NULL;
    struct goro__sudog *ssg = goro__waitq_pop(&ch->sendq);
    if (ssg) {
        *wake = goro__chan_recv_from(ch, ssg, elem);
        *res = 1;
        return 1;
    }
    size_t count = ch->count;
    if (count > 0) {
        copy_elem(elem, goro__chan_slot(ch, ch->recvx), ch->elem_size);
        if (++ch->recvx == ch->cap)
            ch->recvx = 0;
        AO_store(&ch->count, count - 1);  /* as in trysend */
        *res = 1;
        return 1;
    }
    if (ch->closed) {
        zero_elem(elem, ch->elem_size);
        *res = 0;
        return 1;
    }
    return 0;
}

/* Park commit (runs on the next context, after the switch): queue the
 * record, then release the channel. Touch nothing of the record after the
 * unlock: the goroutine may already be running again. */
static bool chan_park_commit(G *g, void *arg)
{
    struct goro__sudog *sg = arg;
    goro_chan *ch = sg->ch;
    goro__waitq_push(sg->is_send ? &ch->sendq : &ch->recvq, sg);
    goro__chan_unlock(ch);
    return true;
}

static int chan_send(goro_chan *ch, const void *elem, bool block)
{
    int res;
    G *wake;
    goro__chan_lock(ch);
    if (goro__chan_trysend_locked(ch, elem, &res, &wake)) {
        goro__chan_unlock(ch);
        if (wake)
            goro__ready(wake, true);
        else
            goro__nudge();
        return res;
    }
    if (!block) {
        goro__chan_unlock(ch);
        return -EAGAIN;
    }
    struct goro__sudog sg = {
        .g = goro__self(), .elem = (void *)elem, .ch = ch, .is_send = true,
    };
    goro__park(chan_park_commit, &sg, W_CHAN_SEND, ch);
    /* the waker's writes to sg happen-before goro__ready returned us */
    return sg.success ? 0 : -EPIPE;
}

static int chan_recv(goro_chan *ch, void *elem, bool block)
{
    int res;
    G *wake;
    goro__chan_lock(ch);
    if (goro__chan_tryrecv_locked(ch, elem, &res, &wake)) {
        goro__chan_unlock(ch);
        if (wake)
            goro__ready(wake, true);
        else
            goro__nudge();
        return res;
    }
    if (!block) {
        goro__chan_unlock(ch);
        return -EAGAIN;
    }
    struct goro__sudog sg = { .g = goro__self(), .elem = elem, .ch = ch };
    goro__park(chan_park_commit, &sg, ch->is_timer ? W_TIMER : W_CHAN_RECV, ch);
    if (sg.success)
        return 1;
    zero_elem(elem, ch->elem_size);  /* woken by close */
    return 0;
}

int goro_chan_send(goro_chan *ch, const void *elem)
{
    if (unlikely(!ch || (!elem && ch->elem_size)))
        return -EINVAL;
    if (unlikely(!goro__self()))
        return -EPERM;
    return chan_send(ch, elem, true);
}

int goro_chan_recv(goro_chan *ch, void *elem)
{
    if (unlikely(!ch))
        return -EINVAL;
    if (unlikely(!goro__self()))
        return -EPERM;
    return chan_recv(ch, elem, true);
}

int goro_chan_trysend(goro_chan *ch, const void *elem)
{
    if (!ch)
        return -EAGAIN;   /* never ready */
    if (unlikely(!elem && ch->elem_size))
        return -EINVAL;
    return chan_send(ch, elem, false);
}

int goro_chan_tryrecv(goro_chan *ch, void *elem)
{
    if (!ch)
        return -EAGAIN;   /* never ready */
    return chan_recv(ch, elem, false);
}

int goro_chan_close(goro_chan *ch)
{
    if (!ch)
        return -EINVAL;
    goro__chan_lock(ch);
    if (ch->closed) {
        goro__chan_unlock(ch);
        return -EPIPE;
    }
    ch->closed = true;
    /* Collect every waiter (FIFO, receivers first) on a private list linked
     * through next; they are off the queues, so only we touch them until
     * each is readied. */
    struct goro__sudog *head = NULL, **tail = &head, *sg;
    while ((sg = goro__waitq_pop(&ch->recvq)) || (sg = goro__waitq_pop(&ch->sendq))) {
        sg->success = false;
        sg->g->param = (uintptr_t)sg;
        sg->next = NULL;
        *tail = sg;
        tail = &sg->next;
    }
    goro__chan_unlock(ch);
    while (head) {
        sg = head;
        head = sg->next;     /* read before the goroutine may run */
        goro__ready(sg->g, false);
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Per-thread random numbers (wyrand). Thread-local is fine: nothing here
 * switches goroutines between reading and writing the state.
 * ------------------------------------------------------------------- */
static __thread uint64_t rand_state;

uint32_t goro__fastrand(void)
{
    uint64_t s = rand_state;
    if (unlikely(s == 0))
        s = (uint64_t)goro_now() ^ (uint64_t)(uintptr_t)&rand_state;
    s += 0xa0761d6478bd642fULL;
    rand_state = s;
    __uint128_t m = (__uint128_t)s * (s ^ 0xe7037ed1a0b428dbULL);
    return (uint32_t)((uint64_t)(m >> 64) ^ (uint64_t)m);
}
