/*
 * signal.c - the SIGSEGV/SIGBUS handler behind stack growth, and the
 * per-worker alternate signal stacks it runs on.
 *
 * A goroutine that runs off its stack faults on the guard page below it;
 * the handler cannot run on that stack, so every worker has an alternate
 * signal stack (64 KiB, with a guard page of its own) and the handler is
 * installed with SA_ONSTACK. It asks stack_fault.c whether the fault was a guard
 * hit of the goroutine running on this thread; if so the stack has grown
 * and the handler returns, so the faulting instruction runs again.
 *
 * Any other fault is a real one (DESIGN.md, Stacks 6): when the program had
 * installed a SIGSEGV/SIGBUS handler of its own before goro_run, that
 * handler is called, exactly as the kernel would have (it sees its own
 * faults, say a JIT's or a GC's write barrier, and decides); otherwise the
 * runtime prints
 *     goro: fatal: segmentation fault at ADDR in goroutine N (stack LO-HI)
 * restores the default action and returns: the instruction faults again
 * and the process dies by the signal, as it would have without goro.
 *
 * The handlers are installed at goro_run start and the program's previous
 * ones restored when goro_run returns. A handler the program installs for
 * these two signals while the runtime runs replaces goro's and ends stack
 * growth: the README says so.
 */
#include "internal.h"
#include "annotate.h"  /* GORO_ANN_UNSEEN */

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIGSTACK_SIZE (64 * 1024)

static struct sigaction old_segv, old_bus;
static bool installed;

/* Unseen by ThreadSanitizer (annotate.h): its accesses to errno are the
 * handler's, which TSan's wrapper saves and restores around it anyway. */
static GORO_ANN_UNSEEN void on_fault(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    if (goro__stack_fault(sig, si, uc)) {
        errno = saved_errno;
        return;
    }

    struct sigaction *prev = sig == SIGSEGV ? &old_segv : &old_bus;
    if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction != NULL) {
        errno = saved_errno;
        prev->sa_sigaction(sig, si, uc);
        return;
    }
    if (!(prev->sa_flags & SA_SIGINFO) && prev->sa_handler != SIG_DFL &&
        prev->sa_handler != SIG_IGN) {
        errno = saved_errno;
        prev->sa_handler(sig);
        return;
    }

    /* A real fault and nobody else wants it: say where, then die by it. */
    char buf[256];
    const char *what = sig == SIGSEGV ? "segmentation fault" : "bus error";
    W *w = goro__self_w();
    G *g = w ? w->curg : NULL;
    int n;
    if (g != NULL)
        n = snprintf(buf, sizeof buf, "goro: fatal: %s at %p in goroutine %llu (stack %p-%p)\n",
                     what, si->si_addr, (unsigned long long)g->id,
                     (void *)g->stack.lo, (void *)g->stack.hi);
    else
        n = snprintf(buf, sizeof buf, "goro: fatal: %s at %p (not on a goroutine)\n",
                     what, si->si_addr);
    if (n > 0 && write(2, buf, (size_t)n) < 0)
        n = 0;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    /* A fault re-executes on return and kills us. A signal someone sent is
     * not re-executed: send it again (it stays blocked until we return). */
    if (si->si_code <= 0)
        raise(sig);
}

void goro__signal_init(void)
{
    if (installed)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    /* nothing else interrupts a stack move half done */
    sigfillset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    installed = true;
}

void goro__signal_fini(void)
{
    if (!installed)
        return;
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    installed = false;
}

void goro__signal_worker_init(W *w)
{
    size_t pg = goro__pagesize();
    char *p = mmap(NULL, SIGSTACK_SIZE + pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        goro__fatal("cannot map the signal stack of worker %d", w->id);
    mprotect(p, pg, PROT_NONE); /* an overflow of the handler faults */
    w->sigstack = p;
    w->sigstack_size = SIGSTACK_SIZE + pg;
    stack_t ss = { .ss_sp = p + pg, .ss_size = SIGSTACK_SIZE, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0)
        goro__fatal("sigaltstack failed on worker %d", w->id);
}

void goro__signal_worker_fini(W *w)
{
    stack_t ss = { .ss_flags = SS_DISABLE };
    sigaltstack(&ss, NULL);
    if (w->sigstack)
        munmap(w->sigstack, w->sigstack_size);
    w->sigstack = NULL;
}
