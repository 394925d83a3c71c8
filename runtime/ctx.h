/*
 * ctx.h - what ctx.c shows the tests: its count of live records.
 */
#ifndef GORO_CTX_H
#define GORO_CTX_H

#include "internal.h"

/* goro_ctx records allocated and not yet reclaimed (a counter, relaxed). */
extern volatile AO_t goro__ctx_live GORO_HIDDEN;

#endif /* GORO_CTX_H */
