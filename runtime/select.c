/*
 * select.c - goro_select, on Go's selectgo (runtime/select.go).
 *
 * 1. Check the cases (op, NULL channels, a send of NULL data) before
 *    touching any channel, so a bad call changes nothing.
 * 2. Build a random poll order of the non-NULL cases (an inside-out
 *    Fisher-Yates shuffle: a uniformly random permutation, so the first
 *    ready case in it is uniform among the ready cases) and a lock order:
 *    the channels sorted by address. Two selects that lock the same channels
 *    always lock them in the same order, so they cannot deadlock; a channel
 *    named by several cases is locked once.
 * 3. Lock every channel, then try the cases in poll order with the same
 *    non-blocking code as the try calls (chan.c). The first that can proceed
 *    wins: unlock, ready the partner, return its index.
 * 4. timeout 0: unlock and return -EAGAIN. Otherwise fill one waiter record
 *    per case in a malloc'd block (with the timer and a copy of the lock
 *    order), clear g->selectdone and park. The park commit, running after
 *    the switch, queues every record, arms the timeout timer, and unlocks
 *    the channels from the highest address down, so the lowest stays held
 *    until the commit touches the block no more (a waker may ready us the
 *    moment the first channel is unlocked; we then block on the lowest lock
 *    until the commit is done).
 *    The block is on the heap, not on this goroutine's stack, because the
 *    records of the cases that lose stay queued on their channels, and the
 *    timer in the heap, after we run again, until step 5 takes them out:
 *    if the stack grew (moved) in between, as it may in any call, the
 *    channels and the timer heap would point into the old stack (stack_fault.c:
 *    nothing outside a running goroutine's stack may point into it). Go
 *    keeps its sudogs off the stack for the same reason.
 * 5. A waker (send, recv, close on one of the channels, or the timer) must
 *    win the CAS on g->selectdone before it may use our record; the winner
 *    writes the outcome and sets g->param to its record (0 for the timer).
 *    Woken, we delete the timer (waiting for its callback if it is running),
 *    lock all channels again, unlink the records that did not win, unlock,
 *    and report.
 *
 * Rejected: polling the cases in index order (unfair: Go randomises for a
 * reason); one global select lock (serialises every select in the process);
 * locking channels one at a time with try-lock and back-off (livelocks under
 * contention, and still needs a total order to be correct).
 *
 * NULL channels are skipped. A select that has no non-NULL case and no
 * timeout would wait forever: -EINVAL (as the blocking send/recv on a NULL
 * channel); with timeout 0 it is -EAGAIN, with a timeout it sleeps and
 * returns -ETIMEDOUT.
 */
#include "chan.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Cases whose order arrays live on the stack. */
#define SELECT_INLINE 4

/* A blocked select's state, on the heap (see step 4). */
struct select_block {
    struct goro__timer timer;
    bool has_timer;
    size_t nch;                 /* non-NULL cases */
    goro_chan **lockorder;      /* the channels, sorted by address (in sg[nch]) */
    struct goro__sudog sg[];    /* one per non-NULL case, then lockorder */
};

static void sellock(goro_chan **lo, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (i == 0 || lo[i] != lo[i - 1])
            goro__chan_lock(lo[i]);
}

/* Highest address first; lo[0] is released last. See step 4 above. */
static void selunlock(goro_chan **lo, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        goro_chan *c = lo[i];
        bool dup = i > 0 && lo[i - 1] == c;   /* read before unlocking c */
        if (!dup)
            goro__chan_unlock(c);
    }
}

static int cmp_chan(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (goro_chan *const *)a, y = (uintptr_t) * (goro_chan *const *)b;
    return x < y ? -1 : x > y;
}

static void sort_chans(goro_chan **lo, size_t n)
{
    if (n > 32) {
        qsort(lo, n, sizeof *lo, cmp_chan);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        goro_chan *c = lo[i];
        size_t j = i;
        for (; j > 0 && (uintptr_t)lo[j - 1] > (uintptr_t)c; j--)
            lo[j] = lo[j - 1];
        lo[j] = c;
    }
}

/* Timer callback (poller thread): the timeout competes with the channels. */
static void select_timeout_fire(struct goro__timer *t)
{
    G *g = t->arg;
    /* full: see goro__waitq_pop; the loser of this CAS leaves g alone */
    if (AO_compare_and_swap_full(&g->selectdone, 0, 1)) {
        g->param = 0;
        goro__ready(g, false);
    }
}

/* Park commit: runs after the switch, with every channel still locked. */
static bool select_park_commit(G *g, void *arg)
{
    struct select_block *b = arg;
    /* The cases' elem pointers may point into g's stack, which may have
     * moved since goro_select filled the block: take them only now, from
     * the case array as g->waitobj names it (stack_fault.c moves that field with
     * the stack, and a parked stack stays put). */
    const goro_case *cases = g->waitobj;
    for (size_t k = 0; k < b->nch; k++) {
        struct goro__sudog *sg = &b->sg[k];
        sg->elem = cases[sg->idx].elem;
        goro_chan *ch = sg->ch;
        goro__waitq_push(sg->is_send ? &ch->sendq : &ch->recvq, sg);
    }
    /* Read b before the timer is armed: once it is, it may fire and g run
     * and free b, and with no channel (a select on a timeout alone) no
     * lock makes g wait for us (ThreadSanitizer saw the read race with
     * the free, test_stale). With channels, g frees b only once it holds
     * their locks, after our unlocks. */
    goro_chan **lockorder = b->lockorder;
    size_t nch = b->nch;
    if (b->has_timer)
        goro__timer_add(&b->timer);   /* lock order: channels > timer heap */
    selunlock(lockorder, nch);
    return true;
}

int goro_select(goro_case *cases, size_t n, int64_t timeout_ns)
{
    if (n > 0 && !cases)
        return -EINVAL;
    if (n > INT_MAX)
        return -EINVAL;
    size_t nch = 0;
    for (size_t i = 0; i < n; i++) {
        goro_case *c = &cases[i];
        if (c->op != GORO_SEND && c->op != GORO_RECV)
            return -EINVAL;
        if (!c->ch)
            continue;
        if (c->op == GORO_SEND && !c->elem && c->ch->elem_size)
            return -EINVAL;
        nch++;
    }
    G *self = goro__self();
    if (timeout_ns != 0 && !self)
        return -EPERM;
    if (nch == 0 && timeout_ns < 0)
        return -EINVAL;   /* nothing could ever be ready */

    uint32_t poll_inl[SELECT_INLINE];
    goro_chan *lock_inl[SELECT_INLINE];
    uint32_t *pollorder = poll_inl;
    goro_chan **lockorder = lock_inl;
    void *mem = NULL;
    if (nch > SELECT_INLINE) {
        /* lockorder first (pointer-aligned), then pollorder */
        mem = malloc(nch * (sizeof *lockorder + sizeof *pollorder));
        if (!mem)
            return -ENOMEM;
        lockorder = mem;
        pollorder = (uint32_t *)(lockorder + nch);
    }

    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cases[i].ch)
            continue;
        uint32_t j = goro__fastrandn((uint32_t)k + 1);
        pollorder[k] = pollorder[j];
        pollorder[j] = (uint32_t)i;
        lockorder[k] = cases[i].ch;
        k++;
    }
    sort_chans(lockorder, nch);

    int ret;
    sellock(lockorder, nch);
    for (k = 0; k < nch; k++) {
        uint32_t i = pollorder[k];
        goro_case *c = &cases[i];
        int res, ok;
        G *wake;
        if (c->op == GORO_SEND)
            ok = goro__chan_trysend_locked(c->ch, c->elem, &res, &wake);
        else
            ok = goro__chan_tryrecv_locked(c->ch, c->elem, &res, &wake);
        if (ok) {
            selunlock(lockorder, nch);
            if (wake)
                goro__ready(wake, true);
            else
                goro__nudge();
            c->result = res;
            ret = (int)i;
            goto out_free;
        }
    }
    if (timeout_ns == 0) {
        selunlock(lockorder, nch);
        ret = -EAGAIN;
        goto out_free;
    }

    /* Block. The records, the timer and the lock order go on the heap
     * (step 4). Allocated here, under the channel locks, so that a select
     * that does not block pays nothing for it. */
    struct select_block *b =
        malloc(sizeof *b + nch * (sizeof b->sg[0] + sizeof *b->lockorder));
    if (!b) {
        selunlock(lockorder, nch);
        ret = -ENOMEM;
        goto out_free;
    }
    b->nch = nch;
    b->lockorder = (goro_chan **)(void *)(b->sg + nch);
    memcpy(b->lockorder, lockorder, nch * sizeof *lockorder);
    k = 0;
    for (size_t i = 0; i < n; i++) {
        goro_case *c = &cases[i];
        if (!c->ch)
            continue;
        b->sg[k++] = (struct goro__sudog){
            .g = self, .elem = NULL /* set by the commit */, .ch = c->ch, .idx = (uint32_t)i,
            .is_select = true, .is_send = c->op == GORO_SEND,
        };
    }
    b->timer = (struct goro__timer){ 0 };
    b->has_timer = timeout_ns > 0;
    if (b->has_timer) {
        int64_t now = goro_now();
        b->timer.when = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
        b->timer.fn = select_timeout_fire;
        b->timer.arg = self;
    }
    /* no ordering: published to wakers by the channel unlocks (release) and
     * the timer heap lock in the park commit */
    AO_store(&self->selectdone, 0);
    goro__park(select_park_commit, b, W_SELECT, cases);

    struct goro__sudog *win = (struct goro__sudog *)self->param;
    if (b->has_timer)
        goro__timer_del(&b->timer);   /* waits for a running callback */
    sellock(b->lockorder, nch);
    for (k = 0; k < nch; k++) {
        struct goro__sudog *sk = &b->sg[k];
        if (sk == win)
            continue;
        goro__waitq_remove(sk->is_send ? &sk->ch->sendq : &sk->ch->recvq, sk);
    }
    /* the commit's last touch of b was its unlock of the lowest channel,
     * which our sellock acquired first */
    selunlock(b->lockorder, nch);

    if (!win) {
        free(b);
        ret = -ETIMEDOUT;
        goto out_free;
    }
    goro_case *c = &cases[win->idx];
    if (c->op == GORO_RECV) {
        if (win->success) {
            c->result = 1;
        } else {
            if (c->elem && c->ch->elem_size)
                memset(c->elem, 0, c->ch->elem_size);
            c->result = 0;
        }
    } else {
        c->result = win->success ? 0 : -EPIPE;
    }
    ret = (int)win->idx;
    free(b);
out_free:
    free(mem);
    return ret;
}
