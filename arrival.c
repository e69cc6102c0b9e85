/* arrival.c: the open model's schedule (arrival.h).
 *
 * The rate r(t) is piecewise linear, so the number of arrivals owed by
 * time t, N(t), is piecewise quadratic; the k-th arrival is meant to start
 * at the t where N(t) reaches its position: k itself for even spacing
 * (wrk2's and k6's constant-arrival-rate model), or a running sum of unit
 * exponential gaps for Poisson arrivals (the same inversion turns a unit
 * Poisson process into one of rate r(t)). Nothing here reads a clock:
 * intended times depend only on the plan, never on replies. */
#include "arrival.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

int arrival_parse_stages(const char *text, struct arrival_plan *p,
			 struct fs_status *st)
{
	char buf[1024];
	if (strlen(text) >= sizeof(buf))
		return fs_fail(st, FS_ERR_USAGE, "--stages: too long");
	strcpy(buf, text);
	p->nstages = 0;
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (!colon || p->nstages == ARRIVAL_MAX_STAGES)
			return fs_fail(
			    st, FS_ERR_USAGE,
			    "invalid stage '%s' (want DURATION:RATE, "
			    "e.g. 10s:100, at most %d stages)",
			    tok, ARRIVAL_MAX_STAGES);
		*colon = '\0';
		struct arrival_stage *s = &p->stage[p->nstages];
		char *end;
		errno = 0;
		s->rate = strtod(colon + 1, &end);
		if (units_parse_seconds(tok, &s->seconds, st) < 0)
			return -1;
		if (end == colon + 1 || *end || errno || !isfinite(s->rate) ||
		    s->rate < 0 || s->seconds <= 0)
			return fs_fail(st, FS_ERR_USAGE,
				       "invalid stage '%s:%s' (want a duration "
				       "above 0 and a rate of 0 or more)",
				       tok, colon + 1);
		p->nstages++;
	}
	if (p->nstages == 0)
		return fs_fail(st, FS_ERR_USAGE, "--stages: no stage in '%s'",
			       text);
	return 0;
}

int arrival_check(const struct arrival_plan *p, struct fs_status *st)
{
	if (!isfinite(p->start_rate) || p->start_rate < 0 ||
	    p->start_rate > 1e7)
		return fs_fail(
		    st, FS_ERR_USAGE,
		    "invalid rate %g (want 0 to 10000000 per second)",
		    p->start_rate);
	if (p->nstages == 0 && p->start_rate <= 0)
		return fs_fail(st, FS_ERR_USAGE,
			       "a rate must be above 0 (got %g)",
			       p->start_rate);
	for (int i = 0; i < p->nstages; i++)
		if (p->stage[i].rate > 1e7)
			return fs_fail(st, FS_ERR_USAGE,
				       "invalid stage rate %g (at most "
				       "10000000 per second)",
				       p->stage[i].rate);
	if (p->nstages > 0 && arrival_total(p) < 1)
		return fs_fail(st, FS_ERR_USAGE,
			       "the stages hold no arrival (every rate 0?)");
	return 0;
}

double arrival_length(const struct arrival_plan *p)
{
	if (p->nstages == 0)
		return p->duration;
	double t = 0;
	for (int i = 0; i < p->nstages; i++)
		t += p->stage[i].seconds;
	return t;
}

/* Arrivals over `tau` seconds of a stage of `len` seconds whose rate goes
 * from r0 to r1. */
static double stage_count(double r0, double r1, double len, double tau)
{
	return r0 * tau + (r1 - r0) * tau * tau / (2 * len);
}

double arrival_total(const struct arrival_plan *p)
{
	if (p->nstages == 0)
		return p->duration > 0 ? p->start_rate * p->duration : INFINITY;
	double n = 0, r0 = p->start_rate;
	for (int i = 0; i < p->nstages; i++) {
		const struct arrival_stage *s = &p->stage[i];
		n += stage_count(r0, s->rate, s->seconds, s->seconds);
		r0 = s->rate;
	}
	return n;
}

double arrival_rate_at(const struct arrival_plan *p, double t)
{
	double r0 = p->start_rate;
	for (int i = 0; i < p->nstages; i++) {
		const struct arrival_stage *s = &p->stage[i];
		if (t < s->seconds)
			return r0 + (s->rate - r0) * t / s->seconds;
		t -= s->seconds;
		r0 = s->rate;
	}
	return p->nstages ? 0 : p->start_rate;
}

double arrival_time_reaching(const struct arrival_plan *p, double level,
			     double from)
{
	double t0 = 0, r0 = p->start_rate;
	for (int i = 0; i < p->nstages; i++) {
		const struct arrival_stage *s = &p->stage[i];
		double t1 = t0 + s->seconds;
		if (from < t1) {
			double at = from > t0 ? from : t0;
			if (arrival_rate_at(p, at) >= level)
				return at;
			if (s->rate >= level) /* rising through level */
				return t0 + (level - r0) / (s->rate - r0) *
						s->seconds;
		}
		t0 = t1;
		r0 = s->rate;
	}
	return -1;
}

/* The tau in [0, len] where a stage has had `c` arrivals (c is within the
 * stage's own count): the root of the quadratic stage_count = c. */
static double stage_solve(double r0, double r1, double len, double c)
{
	double a = (r1 - r0) / (2 * len), b = r0;
	if (c <= 0)
		return 0;
	if (fabs(a) * len < 1e-12 * (b > 0 ? b : 1))
		return c / b;
	/* the stable form of (-b + sqrt(b^2 + 4ac)) / 2a */
	double tau = 2 * c / (b + sqrt(b * b + 4 * a * c));
	return tau < len ? tau : len;
}

double arrival_time_of(const struct arrival_plan *p, double count)
{
	if (p->nstages == 0) {
		double t = count / p->start_rate;
		return p->duration > 0 && t >= p->duration ? -1 : t;
	}
	double t0 = 0, r0 = p->start_rate;
	for (int i = 0; i < p->nstages; i++) {
		const struct arrival_stage *s = &p->stage[i];
		double n = stage_count(r0, s->rate, s->seconds, s->seconds);
		if (count < n)
			return t0 + stage_solve(r0, s->rate, s->seconds, count);
		count -= n;
		t0 += s->seconds;
		r0 = s->rate;
	}
	return -1;
}

/* splitmix64 of (seed, index): the generator keyed by arrival index. */
static double unit_exponential(uint64_t seed, uint64_t index)
{
	uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	double u = ((double)(z >> 11) + 0.5) / 9007199254740992.0; /* (0,1) */
	return -log(u);
}

void arrival_clock_init(struct arrival_clock *c, const struct arrival_plan *p)
{
	c->plan = p;
	c->summed = 0;
	c->count = 0;
}

double arrival_clock_at(struct arrival_clock *c, uint64_t index)
{
	const struct arrival_plan *p = c->plan;
	if (!p->poisson)
		return arrival_time_of(p, (double)index);
	/* the first arrival comes after one gap, as in a Poisson process;
	 * skipping ahead adds the gaps in between */
	while (c->summed <= index)
		c->count += unit_exponential(p->seed, c->summed++);
	return arrival_time_of(p, c->count);
}
