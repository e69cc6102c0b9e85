/* clock.h: the monotonic clock every duration is measured with
 * (clock.c). */
#ifndef FILESERV_CLOCK_H
#define FILESERV_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double clock_now(void);

#endif
