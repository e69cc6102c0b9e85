/* threshold.c: stress thresholds (threshold.h).
 *
 * Grammar: METRIC OP VALUE, spaces allowed around OP.
 *   METRIC  p50, p90, p99, p99.9 (any pNN.N), max, mean, med: latency;
 *           the same prefixed with service_ (service time);
 *           failed; throughput; ops; rate
 *   OP      <, <=, >, >=
 *   VALUE   latency: a duration with its unit (50ms, 1.5s, 800us);
 *           failed: a percentage (1%) or a ratio (0.01);
 *           throughput: a size per second (500MB/s, 1GiB/s);
 *           ops, rate: a number, optionally followed by /s. */
#include "threshold.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "units.h"

static int bad(struct fs_status *st, const char *text, const char *why)
{
	return fs_fail(st, FS_ERR_USAGE,
		       "invalid threshold '%s': %s (examples: p99<50ms, "
		       "failed<1%%, throughput>500MB/s, ops>1000)",
		       text, why);
}

/* The metric name before the operator; 0 or -1. */
static int parse_metric(const char *name, size_t len, struct threshold *t)
{
	char buf[32];
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, name, len);
	buf[len] = '\0';
	const char *m = buf;
	t->metric = TH_LATENCY;
	if (strncmp(m, "service_", 8) == 0) {
		t->metric = TH_SERVICE;
		m += 8;
	}
	static const struct {
		const char *name;
		enum threshold_metric metric;
	} plain[] = {{"failed", TH_FAILED},
		     {"throughput", TH_THROUGHPUT},
		     {"ops", TH_OPS},
		     {"rate", TH_RATE}};
	for (size_t i = 0; i < sizeof(plain) / sizeof(*plain); i++)
		if (t->metric == TH_LATENCY && strcmp(m, plain[i].name) == 0) {
			t->metric = plain[i].metric;
			return 0;
		}
	if (strcmp(m, "max") == 0)
		t->quantile = 1;
	else if (strcmp(m, "mean") == 0)
		t->quantile = -1;
	else if (strcmp(m, "med") == 0)
		t->quantile = 0.5;
	else if (m[0] == 'p' && m[1]) {
		char *end;
		errno = 0;
		double pct = strtod(m + 1, &end);
		if (*end || errno || !(pct >= 0 && pct <= 100))
			return -1;
		t->quantile = pct / 100;
	} else {
		return -1;
	}
	return 0;
}

/* A size per second ("500MB/s") into bytes per second. */
static int parse_bytes_rate(const char *v, double *out)
{
	char buf[64];
	size_t n = strlen(v);
	if (n < 3 || n >= sizeof(buf) || strcmp(v + n - 2, "/s") != 0)
		return -1;
	memcpy(buf, v, n - 2);
	buf[n - 2] = '\0';
	uint64_t bytes;
	if (units_parse_size(buf, &bytes, NULL) < 0)
		return -1;
	*out = (double)bytes;
	return 0;
}

/* The value after the operator, in the metric's base unit; 0 or -1. */
static int parse_value(const char *v, struct threshold *t)
{
	char *end;
	errno = 0;
	switch (t->metric) {
	case TH_LATENCY:
	case TH_SERVICE:
		/* a bare number would be ambiguous: the unit is required */
		strtod(v, &end);
		if (end == v || !*end)
			return -1;
		return units_parse_seconds(v, &t->limit, NULL);
	case TH_FAILED:
		t->limit = strtod(v, &end);
		if (end != v && strcmp(end, "%") == 0)
			t->limit /= 100;
		else if (end == v || *end)
			return -1;
		return t->limit >= 0 && t->limit <= 1 && !errno ? 0 : -1;
	case TH_THROUGHPUT:
		return parse_bytes_rate(v, &t->limit);
	case TH_OPS:
	case TH_RATE:
		t->limit = strtod(v, &end);
		if (end == v || (*end && strcmp(end, "/s") != 0) || errno ||
		    !isfinite(t->limit) || t->limit < 0)
			return -1;
		return 0;
	}
	return -1;
}

int threshold_parse(const char *text, struct threshold *t, struct fs_status *st)
{
	memset(t, 0, sizeof(*t));
	if (strlen(text) >= sizeof(t->text))
		return bad(st, text, "too long");
	strcpy(t->text, text);
	const char *op = strpbrk(text, "<>");
	if (!op)
		return bad(st, text, "no < or >");
	size_t len = (size_t)(op - text);
	while (len && text[len - 1] == ' ')
		len--;
	const char *name = text;
	while (*name == ' ' && len) {
		name++;
		len--;
	}
	if (parse_metric(name, len, t) < 0)
		return bad(st, text, "unknown metric");
	t->below = *op == '<';
	t->or_equal = op[1] == '=';
	const char *v = op + 1 + t->or_equal;
	while (*v == ' ')
		v++;
	if (parse_value(v, t) < 0)
		return bad(st, text, "bad value for this metric");
	return 0;
}

static double latency_value(const struct histogram *h, double q)
{
	if (h->n == 0)
		return NAN;
	if (q < 0)
		return h->sum_ns / (double)h->n / 1e9;
	return (double)hist_quantile(h, q) / 1e9;
}

double threshold_value(const struct threshold *t,
		       const struct threshold_figures *f)
{
	uint64_t all = f->ok + f->failed;
	double span = f->seconds > 0 ? f->seconds : NAN;
	switch (t->metric) {
	case TH_LATENCY:
		return latency_value(f->latency, t->quantile);
	case TH_SERVICE:
		return latency_value(f->service ? f->service : f->latency,
				     t->quantile);
	case TH_FAILED:
		return all ? (double)f->failed / (double)all : NAN;
	case TH_THROUGHPUT:
		return (double)f->bytes / span;
	case TH_OPS:
		return (double)f->ok / span;
	case TH_RATE:
		return f->achieved_rate >= 0 ? f->achieved_rate : NAN;
	}
	return NAN;
}

int threshold_passes(const struct threshold *t, double value)
{
	if (isnan(value))
		return 0;
	if (t->below)
		return t->or_equal ? value <= t->limit : value < t->limit;
	return t->or_equal ? value >= t->limit : value > t->limit;
}

const char *threshold_unit(const struct threshold *t)
{
	switch (t->metric) {
	case TH_LATENCY:
	case TH_SERVICE:
		return "s";
	case TH_FAILED:
		return "ratio";
	case TH_THROUGHPUT:
		return "B/s";
	case TH_OPS:
	case TH_RATE:
		return "/s";
	}
	return "";
}

cJSON *threshold_to_json(const struct threshold *t, int n,
			 const struct threshold_figures *f, int *passed)
{
	cJSON *list = cJSON_CreateArray();
	*passed = 1;
	for (int i = 0; i < n; i++) {
		double v = threshold_value(&t[i], f);
		int pass = threshold_passes(&t[i], v);
		cJSON *item = cJSON_CreateObject();
		cJSON_AddStringToObject(item, "threshold", t[i].text);
		if (isnan(v))
			cJSON_AddNullToObject(item, "value");
		else
			cJSON_AddNumberToObject(item, "value", v);
		cJSON_AddStringToObject(item, "unit", threshold_unit(&t[i]));
		cJSON_AddBoolToObject(item, "pass", pass);
		cJSON_AddItemToArray(list, item);
		*passed &= pass;
	}
	return list;
}
