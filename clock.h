/* clock.h: the monotonic clock every duration is measured with, and the
 * wall clock that hosts share (clock.c). */
#ifndef FILESERV_CLOCK_H
#define FILESERV_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double clock_now(void);
/* Seconds since 1970 on CLOCK_REALTIME (UTC): for times other hosts
 * share, never for durations. */
double clock_wall(void);

#endif
