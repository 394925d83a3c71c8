/*
 * signal.c - per-worker alternate signal stacks (first version; the fault
 * handlers for stack growth come with growable stacks).
 */
#include "internal.h"

#include <signal.h>
#include <stdlib.h>

#define SIGSTACK_SIZE (64 * 1024)

void goro__signal_init(void)
{
}

void goro__signal_fini(void)
{
}

void goro__signal_worker_init(W *w)
{
    w->sigstack = malloc(SIGSTACK_SIZE);
    if (w->sigstack == NULL)
        return;
    w->sigstack_size = SIGSTACK_SIZE;
    stack_t ss = { .ss_sp = w->sigstack, .ss_size = SIGSTACK_SIZE, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
}

void goro__signal_worker_fini(W *w)
{
    stack_t ss = { .ss_flags = SS_DISABLE };
    sigaltstack(&ss, NULL);
    free(w->sigstack);
    w->sigstack = NULL;
}
