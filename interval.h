/* interval.h: what a stress run shows while it goes: every interval, the
 * operations, bytes and latency since the last one, as a JSON line (with
 * the latency histogram's buckets, so that streams merge exactly) and as
 * one live line on a terminal. */
#ifndef FILESERV_INTERVAL_H
#define FILESERV_INTERVAL_H

#include "stress.h"

struct interval_monitor;

/* Starts a thread that samples tallies[0..n) every cfg->interval seconds
 * from `released` (monotonic), writing to cfg->stream and cfg->live.
 * NULL when the run asks for no interval output or the thread cannot
 * start (the run goes on without it). */
struct interval_monitor *interval_start(const struct stress_config *cfg,
					struct stress_tally *tallies, int n,
					double released);
/* After the workers have ended: stops the thread and writes the last
 * interval (up to the final tallies), so that the intervals add up to the
 * run's totals exactly; frees m. */
void interval_finish(struct interval_monitor *m);

#endif
