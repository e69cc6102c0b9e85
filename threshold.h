/* threshold.h: pass/fail conditions over a stress run's figures, such as
 * "p99<50ms", "failed<1%" or "throughput>500MB/s", parsed once and
 * checked against the summary; a failed one sets the exit status (k6's
 * thresholds do this for CI). */
#ifndef FILESERV_THRESHOLD_H
#define FILESERV_THRESHOLD_H

#include <stdint.h>

#include "fileserv.h"

struct cJSON;
struct histogram;

/* The exit status of a run whose thresholds did not all pass. */
#define THRESHOLD_EXIT 4

enum threshold_metric {
	TH_LATENCY,    /* latency (from the intended start in the open model) */
	TH_SERVICE,    /* service time: from the actual start */
	TH_FAILED,     /* failed / (ok + failed) */
	TH_THROUGHPUT, /* file bytes per second */
	TH_OPS,	       /* operations per second */
	TH_RATE,       /* achieved arrival rate, per second */
};

struct threshold {
	char text[64]; /* as written */
	enum threshold_metric metric;
	double quantile; /* latency and service: 0..1, or -1 for the mean */
	int below;	 /* the value must be below the limit (else above) */
	int or_equal;
	double limit; /* seconds, a ratio, bytes/s or per second */
};

/* What thresholds are checked against. */
struct threshold_figures {
	const struct histogram *latency;
	const struct histogram *service; /* NULL: the same as latency */
	uint64_t ok, failed, bytes;
	double seconds;	      /* the span the rates are over */
	double achieved_rate; /* arrivals per second; below 0 in closed runs */
};

/* Parses text into t; 0, or -1 with a message naming the bad part. */
int threshold_parse(const char *text, struct threshold *t,
		    struct fs_status *st);
/* The figure t is about, in its base unit; NAN when it does not apply
 * (no operation, or a rate threshold on a closed run). */
double threshold_value(const struct threshold *t,
		       const struct threshold_figures *f);
/* Whether value meets t (a NAN value does not). */
int threshold_passes(const struct threshold *t, double value);
/* The base unit of t's metric: "s", "ratio", "B/s" or "/s". */
const char *threshold_unit(const struct threshold *t);
/* The n thresholds t checked against f, as a JSON array of {"threshold",
 * "value" (null when it does not apply), "unit", "pass"}; *passed says
 * whether all did. */
struct cJSON *threshold_to_json(const struct threshold *t, int n,
				const struct threshold_figures *f, int *passed);

#endif
