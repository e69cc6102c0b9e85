/* interval.c: interval output of a stress run (interval.h).
 *
 * At each interval boundary the stress engine's parent, in the caller's
 * thread (so that a Lua callback runs in the script's own state), sums
 * what the workers have counted so far: their counters and latency
 * buckets, read with atomic loads while the workers add atomically. A
 * worker is read only once it is `measuring` (past its warm-up resets),
 * so its counts only grow; an interval is the difference between two
 * sums. The last interval is taken from the final tallies after the
 * workers have ended, so the intervals add up to the summary exactly. */
#include "interval.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "clock.h"
#include "units.h"

struct totals {
	uint64_t ok, failed, bytes;
	struct histogram latency; /* only count[] and n are used */
};

struct interval_monitor {
	const struct stress_config *cfg;
	struct stress_tally *tallies;
	int n, index;
	int failed; /* cfg->on_interval failed: not called again */
	double released, last_end;
	struct totals prev, now, diff;
};

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static double quantile_ms(const struct histogram *h, double q)
{
	return h->n ? hist_quantile(h, q) / 1e6 : 0;
}

/* Sums the measuring workers' counts into t. The histogram's n is the
 * sum of the buckets as read, so that an interval's buckets add up to
 * its count even while workers record (an event thread records for many
 * clients, often between the two reads). */
static void sample(struct interval_monitor *m, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < m->n; i++) {
		struct stress_tally *w = &m->tallies[i];
		if (!__atomic_load_n(&w->measuring, __ATOMIC_ACQUIRE))
			continue;
		t->ok += load(&w->ok);
		t->failed += load(&w->failed);
		t->bytes += load(&w->bytes);
		for (int b = 0; b < HIST_BUCKETS; b++) {
			uint64_t count = load(&w->latency.count[b]);
			t->latency.count[b] += count;
			t->latency.n += count;
		}
	}
}

/* diff = now - prev; a histogram of the interval, min and max spanning
 * its buckets so that hist_quantile can clamp. */
static void difference(struct interval_monitor *m)
{
	struct totals *d = &m->diff;
	d->ok = m->now.ok - m->prev.ok;
	d->failed = m->now.failed - m->prev.failed;
	d->bytes = m->now.bytes - m->prev.bytes;
	d->latency.n = m->now.latency.n - m->prev.latency.n;
	d->latency.min_ns = 0;
	d->latency.max_ns = UINT64_MAX;
	for (int b = 0; b < HIST_BUCKETS; b++)
		d->latency.count[b] =
		    m->now.latency.count[b] - m->prev.latency.count[b];
}

/* The interval as --json-stream writes it and on_interval receives it. */
static cJSON *interval_json(struct interval_monitor *m, double start,
			    double end)
{
	const struct totals *d = &m->diff;
	double span = end - start;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "interval", m->index);
	cJSON_AddNumberToObject(o, "start_s", start);
	cJSON_AddNumberToObject(o, "end_s", end);
	cJSON_AddNumberToObject(o, "ok", (double)d->ok);
	cJSON_AddNumberToObject(o, "failed", (double)d->failed);
	cJSON_AddNumberToObject(o, "bytes", (double)d->bytes);
	cJSON_AddNumberToObject(o, "ops_per_s", span > 0 ? d->ok / span : 0);
	cJSON_AddNumberToObject(o, "throughput_Bps",
				span > 0 ? d->bytes / span : 0);
	cJSON *l = cJSON_AddObjectToObject(o, "latency_ms");
	cJSON_AddNumberToObject(l, "p50", quantile_ms(&d->latency, 0.5));
	cJSON_AddNumberToObject(l, "p99", quantile_ms(&d->latency, 0.99));
	cJSON_AddItemToObject(o, "histogram", hist_to_json(&d->latency));
	return o;
}

static void write_json(struct interval_monitor *m, const cJSON *o)
{
	char *text = cJSON_PrintUnformatted(o);
	if (text)
		fprintf(m->cfg->stream, "%s\n", text);
	fflush(m->cfg->stream);
	free(text);
}

static void write_live(struct interval_monitor *m, double start, double end,
		       int last)
{
	const struct totals *d = &m->diff;
	double span = end - start;
	char rate[32];
	units_format_bytes(span > 0 ? d->bytes / span : 0, rate, sizeof(rate));
	fprintf(m->cfg->live,
		"\r%7.1fs  ok %llu failed %llu  %8.1f ops/s  %s/s  p50 %.2f "
		"ms  p99 %.2f ms   %s",
		end, (unsigned long long)m->now.ok,
		(unsigned long long)m->now.failed, span > 0 ? d->ok / span : 0,
		rate, quantile_ms(&d->latency, 0.5),
		quantile_ms(&d->latency, 0.99), last ? "\n" : "");
	fflush(m->cfg->live);
}

/* Emits the interval from prev to now, ending at `end` (seconds since
 * the release), and makes now the new prev; -1 if on_interval failed. */
static int emit(struct interval_monitor *m, double end, int last)
{
	const struct stress_config *cfg = m->cfg;
	difference(m);
	cJSON *o = interval_json(m, m->last_end, end);
	if (cfg->stream)
		write_json(m, o);
	if (cfg->live)
		write_live(m, m->last_end, end, last);
	if (cfg->on_interval && !m->failed)
		m->failed = cfg->on_interval(cfg->interval_ctx, o) < 0;
	cJSON_Delete(o);
	m->prev = m->now;
	m->last_end = end;
	m->index++;
	return m->failed ? -1 : 0;
}

struct interval_monitor *interval_start(const struct stress_config *cfg,
					struct stress_tally *tallies, int n,
					double released)
{
	if (cfg->interval <= 0 ||
	    (!cfg->stream && !cfg->live && !cfg->on_interval))
		return NULL;
	struct interval_monitor *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->cfg = cfg;
	m->tallies = tallies;
	m->n = n;
	m->released = released;
	return m;
}

double interval_due(const struct interval_monitor *m)
{
	return m->released + (m->index + 1) * m->cfg->interval;
}

int interval_emit(struct interval_monitor *m)
{
	double due = interval_due(m);
	sample(m, &m->now);
	return emit(m, due - m->released, 0);
}

int interval_finish(struct interval_monitor *m)
{
	if (!m)
		return 0;
	/* the workers have ended: every tally is final */
	for (int i = 0; i < m->n; i++)
		m->tallies[i].measuring = 1;
	sample(m, &m->now);
	int rc = emit(m, clock_now() - m->released, 1);
	free(m);
	return rc;
}
