/* arrival.h: the open model's schedule: when the k-th request of a run is
 * meant to start, from a constant rate or stages with linear ramps, evenly
 * spaced or Poisson, independent of how fast replies come. The closed
 * model's client stages are the same piecewise linear plan, of active
 * clients instead of a rate. */
#ifndef FILESERV_ARRIVAL_H
#define FILESERV_ARRIVAL_H

#include <stdint.h>

#include "fileserv.h"

#define ARRIVAL_MAX_STAGES 64

/* A stage lasts `seconds` while the rate moves linearly from where the
 * previous stage ended (or the plan's start rate) to `rate`. */
struct arrival_stage {
	double seconds;
	double rate; /* arrivals per second at the end of the stage */
};

struct arrival_plan {
	double start_rate; /* at time 0; also the whole plan without stages */
	int nstages;
	struct arrival_stage stage[ARRIVAL_MAX_STAGES];
	int poisson;	 /* exponential gaps instead of even ones */
	uint64_t seed;	 /* of the Poisson gaps */
	double duration; /* without stages: seconds the plan lasts, 0 none */
};

/* Parses "10s:100,30s:500,10s:0" (duration:rate pairs) into p's stages.
 * Returns 0, or -1 with a message naming the bad stage. */
int arrival_parse_stages(const char *text, struct arrival_plan *p,
			 struct fs_status *st);
/* Checks the plan: rates and durations finite and not negative, some
 * arrival possible; 0 or -1 with st set. */
int arrival_check(const struct arrival_plan *p, struct fs_status *st);
/* Seconds the plan lasts (0: no end). */
double arrival_length(const struct arrival_plan *p);
/* Arrivals the plan holds up to its end (the integral of its rate). */
double arrival_total(const struct arrival_plan *p);
/* The rate at time t. */
double arrival_rate_at(const struct arrival_plan *p, double t);
/* The first time t >= from (seconds from the start) at which the rate of
 * p's stages is at least `level`; -1 when their end comes first. */
double arrival_time_reaching(const struct arrival_plan *p, double level,
			     double from);
/* The time (seconds from the start) at which the plan has had `count`
 * arrivals' worth of rate; -1 when its end comes first. */
double arrival_time_of(const struct arrival_plan *p, double count);

/* Where the k-th arrival falls in "arrival count" units: k for even
 * spacing, the sum of k unit exponential gaps for Poisson. The gaps come
 * from a generator keyed by (seed, index), so any process can compute
 * its own arrivals of one shared schedule. */
struct arrival_clock {
	const struct arrival_plan *plan;
	uint64_t summed; /* Poisson gaps added into count so far */
	double count;	 /* position of arrival summed - 1 */
};
void arrival_clock_init(struct arrival_clock *c, const struct arrival_plan *p);
/* Advances to arrival `index` (never below the previous call's) and
 * returns its intended start in seconds from the run's start, or -1 past
 * the end of the plan. */
double arrival_clock_at(struct arrival_clock *c, uint64_t index);

#endif
