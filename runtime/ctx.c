/*
 * ctx.c - goro_ctx, Go's context.Context for cancellation and deadlines:
 * a tree of contexts, each with a done channel that is closed when it is
 * cancelled, by goro_ctx_cancel (of it or an ancestor), by goro_ctx_free,
 * or by its deadline.
 *
 * Design. Every context is a heap record with its parent, its children
 * (first child, siblings doubly linked), an error word, its effective
 * deadline, a deadline timer and its done channel, a signal channel (elem
 * 0, cap 0) built in place in the record as goro_chan_make would. One
 * process-wide lock, tree_lock, protects the tree's links and the
 * cancellation of every node; goro_ctx_err reads the error word without it.
 *
 * Cancelling a node cancels its subtree: a walk in pre-order through the
 * child and sibling links, with no recursion (a chain of 100,000 contexts
 * would overflow a thread's stack; a goroutine's would grow to megabytes)
 * and no allocation, that sets each node's error and closes its done
 * channel (which wakes every goroutine receiving from it or selecting on
 * it). A node already cancelled has its whole subtree cancelled already
 * (below), so the walk skips it. Children take their parent's error, as in
 * Go (a deadline that fires cancels the subtree with -ETIMEDOUT).
 *
 * Deadlines. A child's deadline is never later than its parent's. A node
 * arms a timer only when its deadline is earlier than its parent's (else
 * the parent's timer cancels it). The callback (poller thread) cancels the
 * subtree under tree_lock. A deadline already past at creation cancels the
 * new node at once.
 *
 * Freeing in any order. goro_ctx_free cancels the node and marks it freed;
 * its memory goes once it is freed, its timer is gone, and it has no
 * children left. A child's reclamation unlinks it from its parent, and may
 * so reclaim a freed parent, and so on up. Before the timer is known gone
 * (goro__timer_del waits for a running callback, and the callback takes
 * tree_lock, so it is called without it) nothing reclaims the node.
 *
 * Invariants (tree_lock held):
 *  - a node with err != 0 has every descendant with err != 0, and its done
 *    channel and theirs closed;
 *  - a node is linked in its parent's child list until it is reclaimed; a
 *    parent is reclaimed only after all its children;
 *  - deadline == 0 or deadline <= parent->deadline (when that is non-zero).
 *
 * Rejected: a lock per context (a walk over a subtree would take every
 * lock in it, and creation would need the parent's and the child's in
 * order); reference counts (free in any order is simpler with the
 * "freed and childless" rule, under the one lock); creating done channels
 * lazily (Go does; one record here is smaller than two allocations).
 */
#include "chan.h"
#include "ctx.h"
#include "sync.h"

#include <stdlib.h>

struct goro_ctx {
    struct goro_ctx *parent;                 /* under tree_lock */
    struct goro_ctx *child;                  /* first child, under tree_lock */
    struct goro_ctx *next, *prev;            /* siblings, under tree_lock */
    volatile AO_t err;                       /* 0, or -ECANCELED / -ETIMEDOUT as
                                                (AO_t)(long); written under
                                                tree_lock, read without */
    int64_t deadline;                        /* effective; immutable */
    struct goro__timer timer;                /* when has_timer */
    bool has_timer;                          /* immutable */
    bool freed;                              /* goro_ctx_free called; tree_lock */
    bool timer_gone;                         /* timer deleted (or none); tree_lock */
    struct goro_chan done;                   /* signal channel, in place */
};

static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER;
volatile AO_t goro__ctx_live;                /* records not yet reclaimed (tests) */

/* tree_lock held: cancel root's subtree with err (root not cancelled). */
static void cancel_subtree(struct goro_ctx *root, int err)
{
    struct goro_ctx *n = root;
    for (;;) {
        /* relaxed: err is written only under tree_lock, which we hold */
        bool fresh = AO_load(&n->err) == 0;
        if (fresh) {
            /* release: a goroutine that sees err sees what the canceller
             * did before (the close below also orders its waiters) */
            AO_store_release(&n->err, (AO_t)(long)err);
            goro_chan_close(&n->done);
            if (n->child) {
                n = n->child;
                continue;
            }
        }
        while (n != root && n->next == NULL)
            n = n->parent;
        if (n == root)
            return;
        n = n->next;
    }
}

/* Deadline callback (poller thread, no heap lock). The record stays
 * alive meanwhile: goro_ctx_free deletes this timer (waiting for us)
 * before the record can be reclaimed. */
static void ctx_deadline(struct goro__timer *t)
{
    struct goro_ctx *c = t->arg;
    pthread_mutex_lock(&tree_lock);
    if (AO_load(&c->err) == 0)   /* relaxed: under tree_lock, its writers' lock */
        cancel_subtree(c, -ETIMEDOUT);
    pthread_mutex_unlock(&tree_lock);
}

goro_ctx *goro_ctx_new(goro_ctx *parent, int64_t deadline_ns)
{
    if (deadline_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    struct goro_ctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    c->done.elem_size = 0;   /* a signal channel: what goro_chan_make(0, 0) sets up */
    c->done.cap = 0;
    c->done.buf = NULL;
    c->done.embedded = true;   /* goro_chan_free refuses it */
    c->timer.fn = ctx_deadline;
    c->timer.arg = c;
    c->timer_gone = true;
    AO_fetch_and_add1(&goro__ctx_live);   /* a counter: no ordering */

    pthread_mutex_lock(&tree_lock);
    int64_t pd = parent ? parent->deadline : 0;
    int64_t d = deadline_ns;
    if (pd != 0 && (d == 0 || pd < d))
        d = pd;
    c->deadline = d;
    if (parent) {
        c->parent = parent;
        c->next = parent->child;
        if (parent->child)
            parent->child->prev = c;
        parent->child = c;
    }
    long perr = parent ? (long)AO_load(&parent->err) : 0;   /* relaxed: under tree_lock */
    if (perr != 0) {
        cancel_subtree(c, (int)perr);
    } else if (d != 0 && d <= goro_now()) {
        cancel_subtree(c, -ETIMEDOUT);
    } else if (d != 0 && d != pd) {
        /* our own deadline, earlier than any ancestor's */
        if (goro__running()) {
            c->has_timer = true;
            c->timer_gone = false;
            c->timer.when = d;
            goro__timer_add(&c->timer);   /* lock order: tree_lock > timer heap */
        }
    }
    pthread_mutex_unlock(&tree_lock);
    return c;
}

void goro_ctx_cancel(goro_ctx *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&tree_lock);
    if (AO_load(&c->err) == 0)   /* relaxed: under tree_lock */
        cancel_subtree(c, -ECANCELED);
    pthread_mutex_unlock(&tree_lock);
}

goro_chan *goro_ctx_done(goro_ctx *c)
{
    return c ? &c->done : NULL;
}

int goro_ctx_err(goro_ctx *c)
{
    /* acquire: pairs with the release store in cancel_subtree */
    return c ? (int)(long)AO_load_acquire(&c->err) : -EINVAL;
}

int64_t goro_ctx_deadline(goro_ctx *c)
{
    return c ? c->deadline : 0;
}

/* tree_lock held: reclaim c and then its freed ancestors while each is
 * freed, timer-free and childless. */
static void reclaim(struct goro_ctx *c)
{
    while (c && c->freed && c->timer_gone && c->child == NULL) {
        struct goro_ctx *p = c->parent;
        if (p) {
            if (c->prev)
                c->prev->next = c->next;
            else
                p->child = c->next;
            if (c->next)
                c->next->prev = c->prev;
        }
        free(c);   /* its done channel with it: closed, nobody queued */
        AO_fetch_and_sub1(&goro__ctx_live);   /* a counter: no ordering */
        c = p;
    }
}

void goro_ctx_free(goro_ctx *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&tree_lock);
    if (AO_load(&c->err) == 0)   /* relaxed: under tree_lock */
        cancel_subtree(c, -ECANCELED);
    c->freed = true;
    bool timer = c->has_timer;
    pthread_mutex_unlock(&tree_lock);
    if (timer)
        goro__timer_del(&c->timer);   /* waits for a running callback */
    pthread_mutex_lock(&tree_lock);
    c->timer_gone = true;
    reclaim(c);
    pthread_mutex_unlock(&tree_lock);
}
