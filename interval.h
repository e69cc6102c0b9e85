/* interval.h: what a stress run shows while it goes: every interval, the
 * operations, bytes and latency since the last one, as a JSON line (with
 * the latency histogram's buckets, so that streams merge exactly) and as
 * one live line on a terminal. */
#ifndef FILESERV_INTERVAL_H
#define FILESERV_INTERVAL_H

#include "stress.h"

struct interval_monitor;

/* A monitor of tallies[0..n) with an interval every cfg->interval seconds
 * from `released` (monotonic), written to cfg->stream and cfg->live and
 * handed to cfg->on_interval. NULL when the run asks for no interval
 * output (or out of memory: the run goes on without it). It has no
 * thread: the caller calls interval_emit when interval_due comes. */
struct interval_monitor *interval_start(const struct stress_config *cfg,
					struct stress_tally *tallies, int n,
					double released);
/* When the current interval ends (monotonic). */
double interval_due(const struct interval_monitor *m);
/* At or after interval_due: the interval up to it, from what the workers
 * have counted so far. 0, or -1 when cfg->on_interval failed (it is not
 * called again). */
int interval_emit(struct interval_monitor *m);
/* After the workers have ended: the last interval (up to the final
 * tallies), so that the intervals add up to the run's totals exactly;
 * frees m. 0, or -1 as interval_emit. */
int interval_finish(struct interval_monitor *m);

#endif
