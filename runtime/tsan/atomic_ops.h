/*
 * runtime/tsan/atomic_ops.h - libatomic_ops' interface, as much of it as
 * goro uses, on the compiler's __atomic builtins, for ThreadSanitizer
 * builds only: `make SAN=thread` puts this directory first on the include
 * path, so `#include <atomic_ops.h>` finds this file there and the real one
 * everywhere else.
 *
 * Why. libatomic_ops implements its operations with inline assembly or
 * with __atomic_thread_fence, and ThreadSanitizer sees neither: the
 * runtime's synchronization would be invisible to it (every queue hand-off
 * a false race), and gcc refuses the fence under -fsanitize=thread.
 *
 * The orderings are what the x86-64 instructions behind libatomic_ops give,
 * not the weaker ones the names promise on other machines: a plain AO_load
 * is a mov, which acquires on x86; AO_store a mov, which releases; every
 * read-modify-write a locked instruction, a full barrier. goro runs on
 * x86-64 only, so this is the synchronization the code really has.
 *
 * AO_nop_full (mfence) becomes a sequentially consistent read-modify-write
 * of one shared word: TSan does not model fences, and all full fences
 * then synchronize with one another through that word, which orders the
 * store-fence-load pairs the runtime uses them for (sched.c's wake-up
 * protocol) as the fence does.
 */
#ifndef GORO_TSAN_ATOMIC_OPS_H
#define GORO_TSAN_ATOMIC_OPS_H

#include <stddef.h>

typedef size_t AO_t;
typedef AO_t AO_TS_t;
#define AO_TS_CLEAR 0
#define AO_TS_SET 1
#define AO_TS_INITIALIZER ((AO_TS_t)AO_TS_CLEAR)

#define AO_ACQ __ATOMIC_ACQUIRE
#define AO_REL __ATOMIC_RELEASE
#define AO_SC  __ATOMIC_SEQ_CST

/* one word for every AO_nop_full in the program (weak: one copy per link) */
__attribute__((weak)) volatile AO_t goro__ao_fence_word;

static inline AO_t AO_load(const volatile AO_t *p) { return __atomic_load_n(p, AO_ACQ); }
static inline AO_t AO_load_acquire(const volatile AO_t *p) { return __atomic_load_n(p, AO_ACQ); }
static inline void AO_store(volatile AO_t *p, AO_t v) { __atomic_store_n(p, v, AO_REL); }
static inline void AO_store_release(volatile AO_t *p, AO_t v) { __atomic_store_n(p, v, AO_REL); }

static inline AO_t AO_fetch_and_add(volatile AO_t *p, AO_t v) { return __atomic_fetch_add(p, v, AO_SC); }
static inline AO_t AO_fetch_and_add_full(volatile AO_t *p, AO_t v) { return __atomic_fetch_add(p, v, AO_SC); }
static inline AO_t AO_fetch_and_add1(volatile AO_t *p) { return __atomic_fetch_add(p, 1, AO_SC); }
static inline AO_t AO_fetch_and_add1_full(volatile AO_t *p) { return __atomic_fetch_add(p, 1, AO_SC); }
static inline AO_t AO_fetch_and_sub1(volatile AO_t *p) { return __atomic_fetch_sub(p, 1, AO_SC); }
static inline AO_t AO_fetch_and_sub1_full(volatile AO_t *p) { return __atomic_fetch_sub(p, 1, AO_SC); }

static inline int AO_compare_and_swap_full(volatile AO_t *p, AO_t old, AO_t nv)
{
    return __atomic_compare_exchange_n(p, &old, nv, 0, AO_SC, AO_SC);
}
static inline int AO_compare_and_swap(volatile AO_t *p, AO_t old, AO_t nv)
{
    return AO_compare_and_swap_full(p, old, nv);
}
static inline int AO_compare_and_swap_acquire(volatile AO_t *p, AO_t old, AO_t nv)
{
    return AO_compare_and_swap_full(p, old, nv);
}
static inline int AO_compare_and_swap_release(volatile AO_t *p, AO_t old, AO_t nv)
{
    return AO_compare_and_swap_full(p, old, nv);
}

static inline void AO_nop_full(void)
{
    __atomic_fetch_add(&goro__ao_fence_word, 0, AO_SC);
}

static inline AO_TS_t AO_test_and_set_acquire(volatile AO_TS_t *p)
{
    return __atomic_exchange_n(p, (AO_TS_t)AO_TS_SET, AO_SC);
}
static inline AO_TS_t AO_test_and_set(volatile AO_TS_t *p)
{
    return __atomic_exchange_n(p, (AO_TS_t)AO_TS_SET, AO_SC);
}
#define AO_CLEAR(p) __atomic_store_n((p), (AO_TS_t)AO_TS_CLEAR, AO_REL)

#endif
