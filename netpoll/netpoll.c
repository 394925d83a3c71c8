/*
 * netpoll.c - file descriptors waited on through the poller (first version:
 * no descriptors yet; the poller thread serves timers only).
 */
#include "internal.h"

void goro__netpoll_init(void)
{
}

void goro__netpoll_fini(void)
{
}

void goro__netpoll_event(void *pd, uint32_t events)
{
    (void)pd;
    (void)events;
}

void goro__netpoll_flush(void)
{
}
