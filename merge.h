/* merge.h: the results of the instances of one distributed stress run
 * combined into one summary, exactly (merge.c). */
#ifndef FILESERV_MERGE_H
#define FILESERV_MERGE_H

#include "fileserv.h"

struct cJSON;
struct threshold;

/* A start spread above this is reported as a warning, by default. */
#define MERGE_START_SPREAD_S 0.1

/* One instance's result: its summary (as `fileserv stress --json` or
 * --out-json writes it) and, when its interval stream was given, the
 * stream's interval objects. Both are owned. */
struct merge_input {
	char *name; /* the file, or what the caller calls it */
	struct cJSON *summary;
	struct cJSON *intervals; /* an array, or NULL */
};

struct merge_options {
	const struct threshold *thresholds; /* checked on the merged figures */
	int nthresholds;
	int expect;		 /* instances; 0: from the segment records */
	double max_start_spread; /* seconds; warn above it */
};

/* Reads path into in: a summary, or an interval stream (--json-stream)
 * whose last line holds the summary. 0, or -1 with st set naming path. */
int merge_read(const char *path, struct merge_input *in, struct fs_status *st);
/* Takes ownership of summary (a parsed summary object) under name. */
int merge_input_set(struct merge_input *in, const char *name,
		    struct cJSON *summary, struct fs_status *st);
void merge_input_free(struct merge_input *in);

/* The merged summary of in[0..n), in stress_to_json's form plus
 * "instances", "ranks" (one entry per instance), "start_spread_s",
 * "warnings" and, when every input had them, the merged "intervals".
 * NULL with st set (FS_ERR_PROTOCOL) naming the input and the problem
 * when the inputs do not make one whole run: an instance missing or
 * failed, a rank given twice, different runs, or histograms of different
 * layouts. */
struct cJSON *merge_run(const struct merge_input *in, int n,
			const struct merge_options *opt, struct fs_status *st);

#endif
