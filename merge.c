/* merge.c: the summaries of the instances of one distributed stress run
 * (`fileserv stress --segment I/N`, one per host or launcher rank)
 * combined into the summary one process running the whole workload would
 * have written (merge.h); `fileserv merge` and fileserv.merge use it.
 *
 * Exact wherever the figures allow: counts, bytes and error classes are
 * added, latency histograms bucket by bucket (the same layout or none),
 * min and max kept, and the percentiles come from the merged buckets
 * through the same hist_quantile as a single run's. The wall time spans
 * the earliest recorded start to the latest end, and the rates are over
 * that span. Interval streams are aligned by interval index.
 *
 * A merge never yields a silently smaller total: a rank that wrote
 * nothing, an instance that reported an error or was interrupted, a rank
 * given twice, inputs of different runs or layouts each fail it with a
 * message naming the input. */
#include "merge.h"
#include "stats.h"
#include "stress.h"
#include "threshold.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A summary or stream file larger than this is not one of ours. */
#define MERGE_FILE_MAX (256L << 20)

/* ---- reading ---- */

/* The whole of path, NUL-terminated; NULL with st set. */
static char *read_text(const char *path, struct fs_status *st)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fs_fail(st, FS_ERR_LOCAL, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap + 1);
	while (buf) {
		len += fread(buf + len, 1, cap - len, f);
		if (len < cap || cap >= MERGE_FILE_MAX)
			break;
		char *more = realloc(buf, 2 * cap + 1);
		if (!more) {
			free(buf);
			buf = NULL;
		} else {
			buf = more;
			cap *= 2;
		}
	}
	int err = ferror(f);
	fclose(f);
	if (!buf || err || len == cap) {
		fs_fail(st, FS_ERR_LOCAL, "%s: %s", path,
			!buf  ? "out of memory"
			: err ? "read error"
			      : "too large for a stress result");
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* An interval stream: one JSON object per line, intervals then a last
 * {"summary": ...}. 0, or -1 with st set. */
static int read_stream(char *text, const char *path, struct merge_input *in,
		       struct fs_status *st)
{
	in->intervals = cJSON_CreateArray();
	int line = 0;
	for (char *s = text, *next; s && *s; s = next) {
		next = strchr(s, '\n');
		if (next)
			*next++ = '\0';
		line++;
		if (strspn(s, " \t\r") == strlen(s))
			continue;
		cJSON *o = cJSON_Parse(s);
		cJSON *summary = cJSON_DetachItemFromObject(o, "summary");
		if (summary && !in->summary) {
			in->summary = summary;
		} else if (!summary &&
			   cJSON_IsNumber(cJSON_GetObjectItem(o, "interval"))) {
			cJSON_AddItemToArray(in->intervals, o);
			continue;
		} else {
			cJSON_Delete(summary);
			cJSON_Delete(o);
			return fs_fail(st, FS_ERR_PROTOCOL,
				       "%s:%d: neither a stress summary nor an "
				       "interval line",
				       path, line);
		}
		cJSON_Delete(o);
	}
	if (!in->summary)
		return fs_fail(st, FS_ERR_PROTOCOL,
			       "%s: an interval stream without its summary "
			       "line (did the instance end?)",
			       path);
	return 0;
}

int merge_read(const char *path, struct merge_input *in, struct fs_status *st)
{
	memset(in, 0, sizeof(*in));
	char *text = read_text(path, st);
	if (!text)
		return -1;
	const char *end = NULL;
	cJSON *whole = cJSON_ParseWithOpts(text, &end, 1);
	int rc;
	if (cJSON_IsObject(whole) && !cJSON_GetObjectItem(whole, "summary")) {
		rc = merge_input_set(in, path, whole, st);
	} else {
		cJSON_Delete(whole);
		rc = read_stream(text, path, in, st);
		if (rc == 0)
			rc = merge_input_set(in, path, in->summary, st);
	}
	free(text);
	if (rc < 0)
		merge_input_free(in);
	return rc;
}

int merge_input_set(struct merge_input *in, const char *name, cJSON *summary,
		    struct fs_status *st)
{
	in->summary = summary;
	in->name = strdup(name);
	if (!in->name)
		return fs_fail(st, FS_ERR_LOCAL, "out of memory");
	if (!cJSON_IsObject(summary))
		return fs_fail(st, FS_ERR_PROTOCOL,
			       "%s: not a stress summary (a JSON object)",
			       name);
	return 0;
}

void merge_input_free(struct merge_input *in)
{
	cJSON_Delete(in->summary);
	cJSON_Delete(in->intervals);
	free(in->name);
	memset(in, 0, sizeof(*in));
}

/* ---- the merge ---- */

struct merger {
	const struct merge_input *in;
	int n;	       /* inputs */
	int count;     /* instances of the run */
	int segmented; /* the inputs carry segment records */
	int *rank;     /* each input's rank */
	int *input;    /* each rank's input */
	cJSON *out;    /* the merged summary being built */
	cJSON *warnings;
	struct histogram *latency, *service, *lateness;
	double t_start, t_end; /* epoch seconds; NAN when not recorded */
	struct fs_status *st;
};

static const cJSON *get(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItem(o, key);
}

static double number(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The whole number o[key] (a count, below 2^53) in *out; 0, or -1 with
 * st set naming the input. */
static int count_of(struct merger *m, int i, const cJSON *o, const char *key,
		    uint64_t *out)
{
	double v = number(o, key);
	if (!(v >= 0 && v < 9007199254740992.0) || v != floor(v))
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "%s: not a stress summary (\"%s\" is not a "
			       "count)",
			       m->in[i].name, key);
	*out = (uint64_t)v;
	return 0;
}

/* Input i's segment record: index and count; 0 when it has none (or
 * says it is a whole run, source "none"), -1 with st set when it is
 * malformed. */
static int segment_of(struct merger *m, int i, int *index, int *count)
{
	const cJSON *seg = get(m->in[i].summary, "segment");
	const char *source = cJSON_GetStringValue(get(seg, "source"));
	if (!seg || cJSON_IsNull(seg) || (source && !strcmp(source, "none")))
		return 0;
	double x = number(seg, "index"), c = number(seg, "count");
	if (!(c >= 1 && c <= 1e6 && x >= 0 && x < c) || x != floor(x) ||
	    c != floor(c))
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "%s: malformed \"segment\" record (want "
			       "{\"index\": I, \"count\": N}, 0 <= I < N)",
			       m->in[i].name);
	*index = (int)x;
	*count = (int)c;
	return 1;
}

/* The instances missing from the ranks, as "2, 5" in buf. */
static const char *missing_ranks(const struct merger *m, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int r = 0; r < m->count && len + 16 < size; r++)
		if (m->input[r] < 0)
			len += (size_t)snprintf(buf + len, size - len, "%s%d",
						len ? ", " : "", r);
	return buf;
}

/* Each input's rank (its segment record, else its place in the list)
 * and the run's instance count (the records', else --expect, else the
 * inputs'), every rank given once. */
static int ranks_assign(struct merger *m, int expect)
{
	int with = 0, count = 0;
	for (int i = 0; i < m->n; i++) {
		int index = i, c = 0, has = segment_of(m, i, &index, &c);
		if (has < 0)
			return -1;
		if (has && count && c != count)
			return fs_fail(m->st, FS_ERR_PROTOCOL,
				       "%s: segment of %d instances, but %s's "
				       "is of %d: results of different runs",
				       m->in[i].name, c, m->in[0].name, count);
		with += has;
		count = has ? c : count;
		m->rank[i] = index;
	}
	if (with && with < m->n)
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "%d of the %d inputs have no \"segment\" "
			       "record: results of different runs",
			       m->n - with, m->n);
	if (expect && count && expect != count)
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "--expect %d, but the segment records say the "
			       "run had %d instances",
			       expect, count);
	m->segmented = with > 0;
	m->count = count ? count : expect ? expect : m->n;
	m->input = malloc((size_t)m->count * sizeof(*m->input));
	if (!m->input)
		return fs_fail(m->st, FS_ERR_LOCAL, "out of memory");
	for (int r = 0; r < m->count; r++)
		m->input[r] = -1;
	for (int i = 0; i < m->n; i++) {
		int r = m->rank[i];
		if (r >= m->count)
			return fs_fail(m->st, FS_ERR_PROTOCOL,
				       "%s: %d results for a run of %d "
				       "instances (--expect)",
				       m->in[i].name, m->n, m->count);
		if (m->input[r] >= 0)
			return fs_fail(m->st, FS_ERR_PROTOCOL,
				       "rank %d given twice: %s and %s", r,
				       m->in[m->input[r]].name, m->in[i].name);
		m->input[r] = i;
	}
	char buf[200];
	if (m->n < m->count)
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "%d of %d instances have no result: rank %s "
			       "missing (an instance that wrote nothing "
			       "failed; the run is incomplete)",
			       m->count - m->n, m->count,
			       missing_ranks(m, buf, sizeof(buf)));
	return 0;
}

/* Input i ran its share to the end: no "error", not interrupted. */
static int input_complete(struct merger *m, int i)
{
	const cJSON *s = m->in[i].summary;
	const char *err = cJSON_GetStringValue(get(s, "error"));
	const char *sig = cJSON_GetStringValue(get(s, "interrupted"));
	if (err)
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "rank %d (%s) failed: %s", m->rank[i],
			       m->in[i].name, err);
	if (sig)
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "rank %d (%s) was interrupted by %s: its share "
			       "did not run to the end",
			       m->rank[i], m->in[i].name, sig);
	return 0;
}

/* Options an instance's share may differ in: the rest must be equal. */
static const char *const split_options[] = {"clients", "iterations", "rate",
					    "file",    "cpus",	     NULL};

static int is_split(const char *key)
{
	for (int k = 0; split_options[k]; k++)
		if (strcmp(key, split_options[k]) == 0)
			return 1;
	return 0;
}

/* Input i is of the same run as input 0: the same target, operation,
 * pool, run id and options but for each share's own. */
static int same_run(struct merger *m, int i)
{
	static const char *const keys[] = {"target", "op",	 "pool",
					   "run_id", "warmup_s", NULL};
	const cJSON *a = m->in[0].summary, *b = m->in[i].summary;
	const char *what = NULL;
	for (int k = 0; keys[k] && !what; k++)
		if (!cJSON_Compare(get(a, keys[k]), get(b, keys[k]), 1) &&
		    (get(a, keys[k]) || get(b, keys[k])))
			what = keys[k];
	const cJSON *o;
	cJSON_ArrayForEach(o, get(a, "options"))
	{
		if (!what && !is_split(o->string) &&
		    !cJSON_Compare(o, get(get(b, "options"), o->string), 1))
			what = o->string;
	}
	if (!what)
		return 0;
	return fs_fail(m->st, FS_ERR_PROTOCOL,
		       "%s and %s are not of the same run: their \"%s\" "
		       "differs",
		       m->in[0].name, m->in[i].name, what);
}

/* Whether histograms a and b have the same layout. */
static int same_layout(const cJSON *a, const cJSON *b)
{
	static const char *const keys[] = {"sub_bits", "max_bits", "unit",
					   NULL};
	for (int k = 0; keys[k]; k++)
		if (!cJSON_Compare(get(a, keys[k]), get(b, keys[k]), 1))
			return 0;
	return 1;
}

/* Adds input i's histogram (o[key], its figures in o[figures_key]) to
 * h: buckets exactly, min and max from the figures (ns printed as ms,
 * recovered by rounding), the sum from the mean. base is the same object
 * in the first input, whose layout every input must share. */
static int add_histogram(struct merger *m, int i, const cJSON *o,
			 const cJSON *base, const char *key,
			 const char *figures_key, struct histogram *h)
{
	const cJSON *j = get(o, key), *j0 = get(base, key);
	struct fs_status why;
	if (!cJSON_IsObject(j) || !cJSON_IsObject(j0))
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "%s: no \"%s\" (a summary of an older fileserv "
			       "cannot be merged exactly)",
			       m->in[cJSON_IsObject(j) ? 0 : i].name, key);
	if (!same_layout(j, j0))
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "%s: %s layout (sub_bits %g, max_bits %g) "
			       "differs from %s's (sub_bits %g, max_bits %g): "
			       "histograms of different layouts cannot be "
			       "merged",
			       m->in[i].name, key, number(j, "sub_bits"),
			       number(j, "max_bits"), m->in[0].name,
			       number(j0, "sub_bits"), number(j0, "max_bits"));
	if (hist_add_json(h, j, &why) < 0)
		return fs_fail(m->st, FS_ERR_PROTOCOL, "%s: %s: %s",
			       m->in[i].name, key, why.message);
	const cJSON *f = get(o, figures_key);
	double n = number(j, "n");
	if (n == 0)
		return 0;
	if (isnan(number(f, "min") + number(f, "max") + number(f, "mean")))
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "%s: no min, mean and max in \"%s\"",
			       m->in[i].name, figures_key);
	uint64_t min = (uint64_t)llround(number(f, "min") * 1e6);
	uint64_t max = (uint64_t)llround(number(f, "max") * 1e6);
	if (min < h->min_ns)
		h->min_ns = min;
	if (max > h->max_ns)
		h->max_ns = max;
	h->sum_ns += number(f, "mean") * 1e6 * n;
	return 0;
}

static void set_number(cJSON *o, const char *key, double v)
{
	cJSON *item = cJSON_GetObjectItem(o, key);
	if (item)
		cJSON_SetNumberValue(item, v);
	else
		cJSON_AddNumberToObject(o, key, v);
}

/* Adds input i's count o[key] to out[key]; 0 or -1. Doubles hold whole
 * numbers below 2^53 exactly, so the sums are exact. */
static int add_count(struct merger *m, int i, const cJSON *o, const char *key,
		     cJSON *out)
{
	uint64_t v = 0;
	if (count_of(m, i, o, key, &v) < 0)
		return -1;
	double sum = number(out, key);
	set_number(out, key, (isnan(sum) ? 0 : sum) + (double)v);
	return 0;
}

static void copy_item(cJSON *out, const cJSON *from, const char *key)
{
	const cJSON *v = get(from, key);
	cJSON_AddItemToObject(out, key,
			      v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
}

/* The merged summary's first fields, in stress_to_json's order, counts
 * at 0 for sum_input to add to. */
static void start_summary(struct merger *m)
{
	static const char *const zero[] = {
	    "clients", "interrupted",	 "ok", "failed", "errors", "wall_s",
	    "bytes",   "verified_bytes", NULL};
	const cJSON *s0 = m->in[m->input[0]].summary;
	m->out = cJSON_CreateObject();
	copy_item(m->out, s0, "target");
	copy_item(m->out, s0, "timestamp");
	copy_item(m->out, s0, "op");
	copy_item(m->out, s0, "pool");
	for (int k = 0; zero[k]; k++)
		if (strcmp(zero[k], "errors") == 0)
			cJSON_AddObjectToObject(m->out, "errors");
		else if (strcmp(zero[k], "interrupted") == 0)
			cJSON_AddNullToObject(m->out, "interrupted");
		else
			cJSON_AddNumberToObject(m->out, zero[k], 0);
}

/* Input i's counts added to the merged summary. */
static int sum_input(struct merger *m, int i)
{
	static const char *const counts[] = {
	    "clients", "ok", "failed", "bytes", "verified_bytes", NULL};
	const cJSON *s = m->in[i].summary, *e;
	for (int k = 0; counts[k]; k++)
		if (add_count(m, i, s, counts[k], m->out) < 0)
			return -1;
	cJSON *errors = cJSON_GetObjectItem(m->out, "errors");
	cJSON_ArrayForEach(e, get(s, "errors"))
	{
		if (add_count(m, i, get(s, "errors"), e->string, errors) < 0)
			return -1;
	}
	const char *stamp = cJSON_GetStringValue(get(s, "timestamp"));
	const char *first = cJSON_GetStringValue(get(m->out, "timestamp"));
	if (stamp && first && strcmp(stamp, first) < 0)
		cJSON_SetValuestring(cJSON_GetObjectItem(m->out, "timestamp"),
				     stamp);
	return 0;
}

/* The wall time: from the earliest start to the latest end when every
 * instance recorded them (t_start, t_end), else the longest instance's,
 * with a warning. */
static double wall_time(struct merger *m)
{
	double first = INFINITY, last = -INFINITY, longest = 0;
	int all = 1;
	for (int i = 0; i < m->n; i++) {
		const cJSON *s = m->in[i].summary;
		double a = number(s, "t_start"), b = number(s, "t_end");
		all &= !isnan(a) && !isnan(b);
		first = fmin(first, a);
		last = fmax(last, b);
		if (number(s, "wall_s") > longest)
			longest = number(s, "wall_s");
	}
	if (all && last >= first) {
		m->t_start = first;
		m->t_end = last;
		return last - first;
	}
	m->t_start = m->t_end = NAN;
	cJSON_AddItemToArray(
	    m->warnings,
	    cJSON_CreateString("not every instance recorded its start and "
			       "end (t_start, t_end): the wall time is the "
			       "longest instance's, as if all had started "
			       "together"));
	return longest;
}

/* Rates over the merged wall time; the client figures weighted by each
 * instance's clients, as one run's mean over all its clients; CPU
 * seconds added. */
static void add_rates(struct merger *m, double wall)
{
	double clients = number(m->out, "clients"), time = 0, rate = 0;
	double user = 0, system = 0;
	for (int i = 0; i < m->n; i++) {
		const cJSON *s = m->in[i].summary;
		double c = number(s, "clients");
		time += number(s, "client_time_s") * c;
		rate += number(s, "client_throughput_Bps") * c;
		user += number(s, "client_cpu_user_s");
		system += number(s, "client_cpu_system_s");
	}
	set_number(m->out, "wall_s", wall);
	cJSON *o = m->out;
	cJSON_AddNumberToObject(o, "throughput_Bps",
				wall > 0 ? number(o, "bytes") / wall : 0);
	cJSON_AddNumberToObject(o, "client_time_s",
				clients > 0 ? time / clients : 0);
	cJSON_AddNumberToObject(o, "client_throughput_Bps",
				clients > 0 ? rate / clients : 0);
	cJSON_AddNumberToObject(o, "ops_per_s",
				wall > 0 ? number(o, "ok") / wall : 0);
	cJSON_AddNumberToObject(o, "client_cpu_s", user + system);
	cJSON_AddNumberToObject(o, "client_cpu_user_s", user);
	cJSON_AddNumberToObject(o, "client_cpu_system_s", system);
	copy_item(o, m->in[m->input[0]].summary, "warmup_s");
}

/* The latency histograms (and the open model's) of every instance. */
static int merge_histograms(struct merger *m)
{
	const cJSON *s0 = m->in[0].summary;
	const cJSON *open0 = get(s0, "open_model");
	for (int i = 0; i < m->n; i++) {
		const cJSON *s = m->in[i].summary;
		const cJSON *open = get(s, "open_model");
		if (cJSON_IsObject(open) != cJSON_IsObject(open0))
			return fs_fail(m->st, FS_ERR_PROTOCOL,
				       "%s and %s are not of the same run: one "
				       "is of the open model, the other not",
				       m->in[0].name, m->in[i].name);
		if (add_histogram(m, i, s, s0, "latency_histogram",
				  "latency_ms", m->latency) < 0)
			return -1;
		if (cJSON_IsObject(open) &&
		    (add_histogram(m, i, s, s0, "service_histogram",
				   "service_ms", m->service) < 0 ||
		     add_histogram(m, i, open, open0, "lateness_histogram",
				   "lateness_ms", m->lateness) < 0))
			return -1;
	}
	return 0;
}

/* The open model's figures: counts and the achieved rates added (each
 * instance ran its share of the schedule over the same time), lateness
 * merged. A segment's target rate is the whole schedule's; whole runs'
 * targets add up. */
static int add_open(struct merger *m)
{
	static const char *const counts[] = {"started", "late", "dropped",
					     NULL};
	const cJSON *open0 = get(m->in[0].summary, "open_model");
	if (!cJSON_IsObject(open0)) {
		cJSON_AddNullToObject(m->out, "open_model");
		return 0;
	}
	cJSON *o = cJSON_AddObjectToObject(m->out, "open_model");
	double target = 0, achieved = 0;
	for (int i = 0; i < m->n; i++) {
		const cJSON *open = get(m->in[i].summary, "open_model");
		target += number(open, "target_rate");
		achieved += number(open, "achieved_rate");
	}
	cJSON_AddNumberToObject(o, "target_rate",
				m->segmented ? number(open0, "target_rate")
					     : target);
	copy_item(o, open0, "stages");
	copy_item(o, open0, "arrivals");
	cJSON_AddNumberToObject(o, "achieved_rate", achieved);
	for (int i = 0; i < m->n; i++)
		for (int k = 0; counts[k]; k++)
			if (add_count(m, i, get(m->in[i].summary, "open_model"),
				      counts[k], o) < 0)
				return -1;
	copy_item(o, open0, "late_threshold_ms");
	copy_item(o, open0, "max_late_s");
	stress_add_latency(o, "lateness_ms", m->lateness);
	cJSON_AddItemToObject(o, "lateness_histogram",
			      hist_to_json(m->lateness));
	stress_add_latency(m->out, "service_ms", m->service);
	cJSON_AddItemToObject(m->out, "service_histogram",
			      hist_to_json(m->service));
	return 0;
}

/* A scenario's steps: ok and failed added per name (their latency
 * figures are not histograms, so they are not merged). */
static int add_steps(struct merger *m)
{
	if (!get(m->in[0].summary, "steps"))
		return 0;
	cJSON *steps = cJSON_AddObjectToObject(m->out, "steps");
	for (int i = 0; i < m->n; i++) {
		const cJSON *step;
		cJSON_ArrayForEach(step, get(m->in[i].summary, "steps"))
		{
			cJSON *to = cJSON_GetObjectItem(steps, step->string);
			if (!to)
				to = cJSON_AddObjectToObject(steps,
							     step->string);
			if (add_count(m, i, step, "ok", to) < 0 ||
			    add_count(m, i, step, "failed", to) < 0)
				return -1;
		}
	}
	return 0;
}

/* The server's STATS: each instance saw the whole server over its own
 * window, so figures cannot be added; the widest window (most requests)
 * is given, with its rank. */
static void add_server(struct merger *m)
{
	int best = -1;
	double most = -1;
	for (int r = 0; r < m->count; r++) {
		const cJSON *srv = get(m->in[m->input[r]].summary, "server");
		double seen = number(srv, "succeeded") + number(srv, "failed");
		if (cJSON_IsObject(srv) && seen > most) {
			most = seen;
			best = r;
		}
	}
	if (best < 0) {
		cJSON_AddNullToObject(m->out, "server");
		return;
	}
	cJSON *srv =
	    cJSON_Duplicate(get(m->in[m->input[best]].summary, "server"), 1);
	cJSON_AddNumberToObject(srv, "window_rank", best);
	cJSON_AddItemToObject(m->out, "server", srv);
}

/* The options of rank 0 with the whole run's clients; the other shares'
 * own options (iterations, rate, ...) are left out when they differ. */
static void add_options(struct merger *m)
{
	cJSON *opt =
	    cJSON_Duplicate(get(m->in[m->input[0]].summary, "options"), 1);
	if (!cJSON_IsObject(opt)) {
		cJSON_Delete(opt);
		opt = cJSON_CreateObject();
	}
	for (int k = 0; split_options[k]; k++)
		for (int i = 1; i < m->n; i++)
			if (!cJSON_Compare(get(opt, split_options[k]),
					   get(get(m->in[i].summary, "options"),
					       split_options[k]),
					   1)) {
				cJSON_DeleteItemFromObject(opt,
							   split_options[k]);
				break;
			}
	set_number(opt, "clients", number(m->out, "clients"));
	cJSON_AddItemToObject(m->out, "options", opt);
}

static void add_thresholds(struct merger *m, const struct merge_options *opt)
{
	const cJSON *open = get(m->out, "open_model");
	struct threshold_figures f = {
	    .latency = m->latency,
	    .service = cJSON_IsObject(open) ? m->service : NULL,
	    .ok = (uint64_t)number(m->out, "ok"),
	    .failed = (uint64_t)number(m->out, "failed"),
	    .bytes = (uint64_t)number(m->out, "bytes"),
	    .seconds = number(m->out, "wall_s"),
	    .achieved_rate =
		cJSON_IsObject(open) ? number(open, "achieved_rate") : -1};
	int passed;
	cJSON_AddItemToObject(
	    m->out, "thresholds",
	    threshold_to_json(opt->thresholds, opt->nthresholds, &f, &passed));
	cJSON_AddBoolToObject(m->out, "thresholds_passed", passed);
}

/* When instance i started, in epoch seconds: its "start" record's actual
 * time, else its t_start; NAN when it recorded neither. */
static double started_at(const struct merger *m, int i)
{
	const cJSON *s = m->in[i].summary;
	double actual = number(get(s, "start"), "actual");
	return isnan(actual) ? number(s, "t_start") : actual;
}

/* The spread of the instances' start times, with a warning above the
 * bound; null when they were not recorded. */
static void add_start_spread(struct merger *m, double bound)
{
	int first = -1, last = -1;
	for (int i = 0; i < m->n; i++) {
		double t = started_at(m, i);
		if (isnan(t)) {
			cJSON_AddNullToObject(m->out, "start_spread_s");
			return;
		}
		if (first < 0 || t < started_at(m, first))
			first = i;
		if (last < 0 || t > started_at(m, last))
			last = i;
	}
	double spread = started_at(m, last) - started_at(m, first);
	cJSON_AddNumberToObject(m->out, "start_spread_s", spread);
	cJSON_AddNumberToObject(m->out, "max_start_spread_s", bound);
	if (spread <= bound)
		return;
	char text[300];
	snprintf(text, sizeof(text),
		 "the instances started %.3f s apart (rank %d first, rank %d "
		 "last), more than %.3f s: are the hosts' clocks synchronised "
		 "(chrony, PTP) and --start-at far enough ahead?",
		 spread, m->rank[first], m->rank[last], bound);
	cJSON_AddItemToArray(m->warnings, cJSON_CreateString(text));
}

/* One entry per rank: its input and what its share did. */
static void add_ranks(struct merger *m)
{
	static const char *const keys[] = {"clients", "ok",	"failed",
					   "bytes",   "wall_s", NULL};
	cJSON *ranks = cJSON_AddArrayToObject(m->out, "ranks");
	double first = INFINITY;
	for (int i = 0; i < m->n; i++)
		first = fmin(first, started_at(m, i));
	for (int r = 0; r < m->count; r++) {
		int i = m->input[r];
		const cJSON *s = m->in[i].summary;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "rank", r);
		cJSON_AddStringToObject(e, "file", m->in[i].name);
		for (int k = 0; keys[k]; k++)
			copy_item(e, s, keys[k]);
		double t = started_at(m, i);
		if (isnan(t))
			cJSON_AddNullToObject(e, "start_offset_s");
		else
			cJSON_AddNumberToObject(e, "start_offset_s", t - first);
		cJSON_AddNumberToObject(e, "p99_ms",
					number(get(s, "latency_ms"), "p99"));
		copy_item(e, s, "segment");
		cJSON_AddItemToArray(ranks, e);
	}
}

/* Adds input i's interval k (iv) to the merged o and h; 0 or -1. */
static int add_interval(struct merger *m, int i, int k, const cJSON *iv,
			cJSON *o, struct histogram *h)
{
	struct fs_status why;
	if (number(iv, "interval") != k)
		return fs_fail(m->st, FS_ERR_PROTOCOL,
			       "%s: interval line %d has index %g",
			       m->in[i].name, k + 1, number(iv, "interval"));
	if (add_count(m, i, iv, "ok", o) < 0 ||
	    add_count(m, i, iv, "failed", o) < 0 ||
	    add_count(m, i, iv, "bytes", o) < 0)
		return -1;
	if (hist_add_json(h, get(iv, "histogram"), &why) < 0)
		return fs_fail(m->st, FS_ERR_PROTOCOL, "%s: interval %d: %s",
			       m->in[i].name, k, why.message);
	return 0;
}

/* Interval k of every stream merged: counts added, buckets added, the
 * span from the earliest start to the latest end among the instances
 * that had it (each counts from its own start). NULL with st set. */
static cJSON *merge_interval(struct merger *m, int k, struct histogram *h)
{
	cJSON *o = cJSON_CreateObject();
	double start = INFINITY, end = -INFINITY;
	int have = 0;
	hist_init(h);
	cJSON_AddNumberToObject(o, "interval", k);
	cJSON_AddNumberToObject(o, "ok", 0);
	cJSON_AddNumberToObject(o, "failed", 0);
	cJSON_AddNumberToObject(o, "bytes", 0);
	for (int i = 0; i < m->n; i++) {
		const cJSON *iv = cJSON_GetArrayItem(m->in[i].intervals, k);
		if (!iv)
			continue;
		if (add_interval(m, i, k, iv, o, h) < 0) {
			cJSON_Delete(o);
			return NULL;
		}
		start = fmin(start, number(iv, "start_s"));
		end = fmax(end, number(iv, "end_s"));
		have++;
	}
	double span = end - start;
	h->min_ns = 0; /* unknown in an interval: quantiles unclamped */
	h->max_ns = UINT64_MAX;
	cJSON_AddNumberToObject(o, "start_s", start);
	cJSON_AddNumberToObject(o, "end_s", end);
	cJSON_AddNumberToObject(o, "instances", have);
	cJSON_AddNumberToObject(o, "ops_per_s",
				span > 0 ? number(o, "ok") / span : 0);
	cJSON_AddNumberToObject(o, "throughput_Bps",
				span > 0 ? number(o, "bytes") / span : 0);
	cJSON *l = cJSON_AddObjectToObject(o, "latency_ms");
	cJSON_AddNumberToObject(l, "p50",
				h->n ? hist_quantile(h, 0.5) / 1e6 : 0);
	cJSON_AddNumberToObject(l, "p99",
				h->n ? hist_quantile(h, 0.99) / 1e6 : 0);
	h->min_ns = UINT64_MAX;
	h->max_ns = 0;
	cJSON_AddItemToObject(o, "histogram", hist_to_json(h));
	return o;
}

/* The interval streams aligned by index, when every input had one. */
static int add_intervals(struct merger *m)
{
	int streams = 0, longest = 0;
	for (int i = 0; i < m->n; i++) {
		streams += m->in[i].intervals != NULL;
		int size = cJSON_GetArraySize(m->in[i].intervals);
		longest = size > longest ? size : longest;
	}
	if (streams == 0)
		return 0;
	if (streams < m->n) {
		char text[200];
		snprintf(text, sizeof(text),
			 "intervals not merged: %d of the %d inputs are "
			 "interval streams (--json-stream), the others "
			 "summaries",
			 streams, m->n);
		cJSON_AddItemToArray(m->warnings, cJSON_CreateString(text));
		return 0;
	}
	struct histogram *h = malloc(sizeof(*h));
	if (!h)
		return fs_fail(m->st, FS_ERR_LOCAL, "out of memory");
	cJSON *list = cJSON_AddArrayToObject(m->out, "intervals");
	cJSON *o = list;
	for (int k = 0; k < longest && o; k++) {
		o = merge_interval(m, k, h);
		cJSON_AddItemToArray(list, o);
	}
	free(h);
	return o ? 0 : -1;
}

static int merge_all(struct merger *m, const struct merge_options *opt)
{
	if (ranks_assign(m, opt->expect) < 0)
		return -1;
	for (int r = 0; r < m->count; r++)
		if (input_complete(m, m->input[r]) < 0)
			return -1;
	for (int r = 0; r < m->count; r++)
		if (same_run(m, m->input[r]) < 0)
			return -1;
	if (merge_histograms(m) < 0)
		return -1;
	start_summary(m);
	for (int r = 0; r < m->count; r++)
		if (sum_input(m, m->input[r]) < 0)
			return -1;
	add_rates(m, wall_time(m));
	stress_add_latency(m->out, "latency_ms", m->latency);
	cJSON_AddItemToObject(m->out, "latency_histogram",
			      hist_to_json(m->latency));
	if (add_open(m) < 0 || add_steps(m) < 0)
		return -1;
	add_server(m);
	add_options(m);
	add_thresholds(m, opt);
	cJSON_AddNumberToObject(m->out, "instances", m->count);
	add_start_spread(m, opt->max_start_spread > 0 ? opt->max_start_spread
						      : MERGE_START_SPREAD_S);
	if (!isnan(m->t_start)) {
		cJSON_AddNumberToObject(m->out, "t_start", m->t_start);
		cJSON_AddNumberToObject(m->out, "t_end", m->t_end);
	}
	add_ranks(m);
	return add_intervals(m);
}

cJSON *merge_run(const struct merge_input *in, int n,
		 const struct merge_options *opt, struct fs_status *st)
{
	if (n < 1) {
		fs_fail(st, FS_ERR_USAGE, "no results to merge");
		return NULL;
	}
	struct merger m = {.in = in, .n = n, .st = st};
	m.st->message[0] = '\0';
	m.rank = malloc((size_t)n * sizeof(*m.rank));
	m.latency = malloc(sizeof(*m.latency));
	m.service = malloc(sizeof(*m.service));
	m.lateness = malloc(sizeof(*m.lateness));
	m.warnings = cJSON_CreateArray();
	int rc = -1;
	if (!m.rank || !m.latency || !m.service || !m.lateness)
		fs_fail(st, FS_ERR_LOCAL, "out of memory");
	else {
		hist_init(m.latency);
		hist_init(m.service);
		hist_init(m.lateness);
		rc = merge_all(&m, opt);
	}
	if (rc == 0) {
		cJSON_AddItemToObject(m.out, "warnings", m.warnings);
		m.warnings = NULL;
	} else {
		cJSON_Delete(m.out);
		m.out = NULL;
	}
	cJSON_Delete(m.warnings);
	free(m.rank);
	free(m.input);
	free(m.latency);
	free(m.service);
	free(m.lateness);
	return m.out;
}
