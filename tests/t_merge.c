/* t_merge.c: unit tests for the merge of a distributed run's results
 * (merge.c) and the histogram's JSON form (stats.c).
 *
 * The instances' summaries are made here from known samples: the samples
 * of one workload are dealt out to N histograms, each written as an
 * instance's summary; their merge must equal the summary of the one
 * histogram holding all samples bucket for bucket, with the same min,
 * max and percentiles. Then each way a merge must refuse: a missing or
 * failed instance, a rank given twice, another run, another layout.
 * Ends with "t_merge: N passed, N failed (N checks)" (tests/check.h). */
#include "fileserv.h"
#include "merge.h"
#include "stats.h"
#include "stress.h"
#include "threshold.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

#define INSTANCES 4
#define SAMPLES	  20000

/* An instance's summary, as fileserv stress writes it: rank of count
 * (a whole run's segment record, source "none", when count is 0), ok operations
 * of 1000 bytes each, the latencies in h, started at t0 and ended at t1. */
static cJSON *summary(int rank, int count, const struct histogram *h, double t0,
		      double t1)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "target", "127.0.0.1:5666");
	cJSON_AddStringToObject(o, "op", "download");
	cJSON_AddStringToObject(o, "pool", "thread");
	cJSON_AddNumberToObject(o, "clients", 2);
	cJSON_AddNullToObject(o, "interrupted");
	cJSON_AddNumberToObject(o, "ok", (double)h->n - rank);
	cJSON_AddNumberToObject(o, "failed", rank);
	cJSON *e = cJSON_AddObjectToObject(o, "errors");
	cJSON_AddNumberToObject(e, "timeout", rank);
	cJSON_AddNumberToObject(e, "reset", 0);
	cJSON_AddNumberToObject(o, "wall_s", t1 - t0);
	cJSON_AddNumberToObject(o, "bytes", 1000.0 * ((double)h->n - rank));
	cJSON_AddNumberToObject(o, "verified_bytes",
				1000.0 * ((double)h->n - rank));
	cJSON_AddNumberToObject(o, "client_time_s", t1 - t0);
	cJSON_AddNumberToObject(o, "client_cpu_user_s", 0.5);
	cJSON_AddNumberToObject(o, "client_cpu_system_s", 0.25);
	cJSON_AddNumberToObject(o, "warmup_s", 0);
	stress_add_latency(o, "latency_ms", h);
	cJSON_AddItemToObject(o, "latency_histogram", hist_to_json(h));
	cJSON_AddNullToObject(o, "open_model");
	cJSON *opt = cJSON_AddObjectToObject(o, "options");
	cJSON_AddStringToObject(opt, "op", "download");
	cJSON_AddNumberToObject(opt, "clients", 2);
	cJSON_AddNumberToObject(opt, "iterations", 10 + rank);
	cJSON_AddNumberToObject(opt, "timeout_s", 300);
	cJSON *seg = cJSON_AddObjectToObject(o, "segment");
	cJSON_AddNumberToObject(seg, "index", count ? rank : 0);
	cJSON_AddNumberToObject(seg, "count", count ? count : 1);
	cJSON_AddStringToObject(seg, "source", count ? "option" : "none");
	cJSON_AddNumberToObject(o, "t_start", t0);
	cJSON_AddNumberToObject(o, "t_end", t1);
	return o;
}

static struct histogram *hist_new(void)
{
	struct histogram *h = xmalloc(sizeof(*h));
	hist_init(h);
	return h;
}

/* The workload: SAMPLES latencies from 10 us to 10 s, log-uniform,
 * dealt out to part[0..INSTANCES) unevenly and all recorded in whole. */
static void deal(struct histogram *whole, struct histogram **part)
{
	for (int i = 0; i < SAMPLES; i++) {
		double u = (double)(rnd() >> 11) / 9007199254740992.0;
		uint64_t ns = (uint64_t)(1e4 * exp(u * log(1e6)));
		hist_record(whole, ns);
		hist_record(part[(i % 7) % INSTANCES], ns);
	}
}

/* in[0..INSTANCES) from the parts, ranks in reverse file order. */
static void make_inputs(struct merge_input *in, struct histogram **part,
			int count)
{
	for (int r = 0; r < INSTANCES; r++) {
		char name[32];
		snprintf(name, sizeof(name), "r-%d.json", r);
		struct merge_input *x = &in[INSTANCES - 1 - r];
		memset(x, 0, sizeof(*x));
		merge_input_set(
		    x, name,
		    summary(r, count, part[r], 1000.0 + r * 0.01, 1010.0 + r),
		    NULL);
	}
}

static void free_inputs(struct merge_input *in, int n)
{
	for (int i = 0; i < n; i++)
		merge_input_free(&in[i]);
}

static double number(const cJSON *o, const char *key)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItem(o, key));
}

static void test_exact(void)
{
	struct histogram *whole = hist_new(), *part[INSTANCES];
	for (int r = 0; r < INSTANCES; r++)
		part[r] = hist_new();
	deal(whole, part);
	struct merge_input in[INSTANCES];
	make_inputs(in, part, INSTANCES);
	struct threshold th[2];
	threshold_parse("p99<1h", &th[0], NULL);
	threshold_parse("ops>1000000", &th[1], NULL);
	struct merge_options opt = {.thresholds = th, .nthresholds = 2};
	struct fs_status st = {0};
	cJSON *m = merge_run(in, INSTANCES, &opt, &st);
	CHECK(m != NULL, "merge: %s", st.message);
	if (!m)
		return;
	cJSON *want = hist_to_json(whole);
	CHECK(
	    cJSON_Compare(cJSON_GetObjectItem(m, "latency_histogram"), want, 1),
	    "merged buckets differ from the single histogram's");
	cJSON *fig = cJSON_CreateObject();
	stress_add_latency(fig, "latency_ms", whole);
	const cJSON *got = cJSON_GetObjectItem(m, "latency_ms");
	static const char *const keys[] = {"min", "p50", "p90", "p99", "max"};
	for (int k = 0; k < 5; k++)
		CHECK(
		    number(got, keys[k]) ==
			number(cJSON_GetObjectItem(fig, "latency_ms"), keys[k]),
		    "%s: merged %.9g, single %.9g", keys[k],
		    number(got, keys[k]),
		    number(cJSON_GetObjectItem(fig, "latency_ms"), keys[k]));
	double mean = number(cJSON_GetObjectItem(fig, "latency_ms"), "mean");
	CHECK(fabs(number(got, "mean") - mean) < 1e-9 * mean, "mean %.12g",
	      number(got, "mean"));
	int failed = 0 + 1 + 2 + 3;
	CHECK(number(m, "ok") == SAMPLES - failed, "ok %g", number(m, "ok"));
	CHECK(number(m, "failed") == failed, "failed %g", number(m, "failed"));
	CHECK(number(cJSON_GetObjectItem(m, "errors"), "timeout") == failed,
	      "errors.timeout");
	CHECK(number(m, "bytes") == 1000.0 * (SAMPLES - failed), "bytes");
	CHECK(number(m, "clients") == 2 * INSTANCES, "clients");
	CHECK(number(m, "instances") == INSTANCES, "instances");
	CHECK(fabs(number(m, "wall_s") - 13) < 1e-9,
	      "wall %g: from the first "
	      "start to the last end",
	      number(m, "wall_s"));
	CHECK(fabs(number(m, "ops_per_s") - (SAMPLES - failed) / 13.0) < 1e-6,
	      "ops/s");
	CHECK(fabs(number(m, "start_spread_s") - 0.03) < 1e-9, "spread %g",
	      number(m, "start_spread_s"));
	CHECK(fabs(number(m, "client_cpu_s") - 3) < 1e-9, "cpu");
	const cJSON *opts = cJSON_GetObjectItem(m, "options");
	CHECK(number(opts, "clients") == 2 * INSTANCES &&
		  !cJSON_GetObjectItem(opts, "iterations"),
	      "options: whole clients, per-share iterations left out");
	const cJSON *t = cJSON_GetObjectItem(m, "thresholds");
	CHECK(number(cJSON_GetArrayItem(t, 0), "value") ==
		  hist_quantile(whole, 0.99) / 1e9,
	      "p99 threshold from the merged buckets");
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(m, "thresholds_passed")),
	      "ops>1000000 fails");
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(m, "warnings")) == 0,
	      "no warning");
	const cJSON *r1 =
	    cJSON_GetArrayItem(cJSON_GetObjectItem(m, "ranks"), 1);
	CHECK(number(r1, "rank") == 1 &&
		  strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r1, "file")),
			 "r-1.json") == 0,
	      "ranks in rank order");
	cJSON_Delete(fig);
	cJSON_Delete(want);
	cJSON_Delete(m);
	free_inputs(in, INSTANCES);
	for (int r = 0; r < INSTANCES; r++)
		free(part[r]);
	free(whole);
}

/* merge_run on in with opt fails, its message containing want. */
static void refused(int line, struct merge_input *in, int n,
		    const struct merge_options *opt, const char *want)
{
	struct fs_status st = {0};
	cJSON *m = merge_run(in, n, opt, &st);
	CHECK(!m && strstr(st.message, want), "line %d: want '%s', got '%s'",
	      line, want, m ? "a merged result" : st.message);
	cJSON_Delete(m);
}

static void set(struct merge_input *x, const char *key, cJSON *v)
{
	cJSON_DeleteItemFromObject(x->summary, key);
	cJSON_AddItemToObject(x->summary, key, v);
}

/* The layout of in[0..n)'s latency histograms: sub_bits. */
static void set_sub_bits(struct merge_input *in, int n, int bits)
{
	for (int i = 0; i < n; i++) {
		cJSON *h =
		    cJSON_GetObjectItem(in[i].summary, "latency_histogram");
		cJSON_SetNumberValue(cJSON_GetObjectItem(h, "sub_bits"), bits);
	}
}

static void test_refused(void)
{
	struct histogram *whole = hist_new(), *part[INSTANCES];
	for (int r = 0; r < INSTANCES; r++)
		part[r] = hist_new();
	deal(whole, part);
	struct merge_input in[INSTANCES];
	struct merge_options opt = {0}, expect = {.expect = INSTANCES + 1};

	make_inputs(in, part, INSTANCES); /* in[i] is rank 3 - i */
	refused(__LINE__, in + 1, INSTANCES - 1, &opt,
		"1 of 4 instances have no result: rank 3 missing");
	refused(__LINE__, in, INSTANCES, &expect,
		"--expect 5, but the segment records say the run had 4");
	set(&in[2], "error", cJSON_CreateString("connection refused"));
	refused(__LINE__, in, INSTANCES, &opt,
		"rank 1 (r-1.json) failed: connection refused");
	cJSON_DeleteItemFromObject(in[2].summary, "error");
	set(&in[2], "interrupted", cJSON_CreateString("SIGINT"));
	refused(__LINE__, in, INSTANCES, &opt,
		"rank 1 (r-1.json) was interrupted by SIGINT");
	set(&in[2], "interrupted", cJSON_CreateNull());
	set(&in[1], "op", cJSON_CreateString("upload"));
	refused(__LINE__, in, INSTANCES, &opt,
		"r-3.json and r-2.json are not of the same run: their \"op\"");
	set(&in[1], "op", cJSON_CreateString("download"));
	set_sub_bits(in + 3, 1, 5);
	refused(__LINE__, in, INSTANCES, &opt,
		"r-0.json: latency_histogram layout (sub_bits 5, max_bits 43) "
		"differs from r-3.json's (sub_bits 7");
	set_sub_bits(in, 3, 5);
	refused(__LINE__, in, INSTANCES, &opt,
		"histogram layout sub_bits 5, max_bits 43, unit ns; this "
		"fileserv's is sub_bits 7");
	set_sub_bits(in, INSTANCES, 7);
	cJSON_SetNumberValue(
	    cJSON_GetObjectItem(
		cJSON_GetObjectItem(in[3].summary, "latency_histogram"), "n"),
	    1);
	refused(__LINE__, in, INSTANCES, &opt, "counts add up to");
	free_inputs(in, INSTANCES);

	make_inputs(in, part, INSTANCES);
	cJSON_SetNumberValue(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(in[0].summary, "segment"),
				"index"),
	    1);
	refused(__LINE__, in, INSTANCES, &opt, "rank 1 given twice");
	free_inputs(in, INSTANCES);

	make_inputs(in, part, 0); /* whole runs: ranks by order */
	refused(__LINE__, in, INSTANCES, &expect,
		"1 of 5 instances have no result: rank 4 missing");
	struct fs_status st = {0};
	cJSON *m = merge_run(in, INSTANCES, &opt, &st);
	CHECK(m && number(m, "ok") == SAMPLES - 6, "without records: %s",
	      st.message);
	cJSON_Delete(m);
	free_inputs(in, INSTANCES);
	for (int r = 0; r < INSTANCES; r++)
		free(part[r]);
	free(whole);
}

/* Interval streams: aligned by index, counts and buckets added. */
static void test_intervals(void)
{
	struct histogram *a = hist_new(), *b = hist_new();
	hist_record(a, 1000);
	hist_record(b, 5000);
	struct merge_input in[2];
	for (int i = 0; i < 2; i++) {
		memset(&in[i], 0, sizeof(in[i]));
		merge_input_set(&in[i], i ? "b" : "a",
				summary(i, 2, i ? b : a, 0, 1), NULL);
		in[i].intervals = cJSON_CreateArray();
		for (int k = 0; k < 2 + i; k++) {
			cJSON *iv = cJSON_CreateObject();
			cJSON_AddNumberToObject(iv, "interval", k);
			cJSON_AddNumberToObject(iv, "start_s", k);
			cJSON_AddNumberToObject(iv, "end_s", k + 1);
			cJSON_AddNumberToObject(iv, "ok", k == 0);
			cJSON_AddNumberToObject(iv, "failed", 0);
			cJSON_AddNumberToObject(iv, "bytes", 7);
			struct histogram *e = hist_new();
			cJSON_AddItemToObject(iv, "histogram",
					      hist_to_json(k   ? e
							   : i ? b
							       : a));
			free(e);
			cJSON_AddItemToArray(in[i].intervals, iv);
		}
	}
	struct merge_options opt = {0};
	struct fs_status st = {0};
	cJSON *m = merge_run(in, 2, &opt, &st);
	const cJSON *iv = cJSON_GetObjectItem(m, "intervals");
	CHECK(cJSON_GetArraySize(iv) == 3, "3 intervals: %s", st.message);
	const cJSON *first = cJSON_GetArrayItem(iv, 0);
	const cJSON *last = cJSON_GetArrayItem(iv, 2);
	CHECK(number(first, "ok") == 2 && number(first, "bytes") == 14 &&
		  number(first, "instances") == 2,
	      "interval 0 of both");
	CHECK(number(cJSON_GetObjectItem(first, "histogram"), "n") == 2,
	      "interval 0's buckets added");
	CHECK(number(last, "instances") == 1 && number(last, "bytes") == 7,
	      "interval 2 of the longer stream only");
	cJSON_Delete(m);
	cJSON_Delete(in[1].intervals);
	in[1].intervals = NULL;
	m = merge_run(in, 2, &opt, &st);
	CHECK(m && !cJSON_GetObjectItem(m, "intervals") &&
		  cJSON_GetArraySize(cJSON_GetObjectItem(m, "warnings")) == 1,
	      "one stream of two: intervals not merged, a warning");
	cJSON_Delete(m);
	free_inputs(in, 2);
	free(a);
	free(b);
}

/* hist_to_json and hist_add_json round-trip a histogram's buckets. */
static void test_hist_json(void)
{
	struct histogram *h = hist_new(), *back = hist_new();
	for (int i = 0; i < 1000; i++)
		hist_record(h, rnd() >> (rnd() % 64));
	cJSON *j = hist_to_json(h);
	struct fs_status st = {0};
	CHECK(hist_add_json(back, j, &st) == 0, "%s", st.message);
	CHECK(back->n == h->n &&
		  memcmp(back->count, h->count, sizeof(h->count)) == 0,
	      "buckets round-trip");
	cJSON_AddNumberToObject(cJSON_GetObjectItem(j, "counts"), "99999", 1);
	CHECK(hist_add_json(back, j, &st) < 0 &&
		  strstr(st.message, "bucket \"99999\""),
	      "an index out of range: %s", st.message);
	cJSON_Delete(j);
	free(h);
	free(back);
}

int main(void)
{
	alarm(60);
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN_TEST(test_hist_json);
	RUN_TEST(test_exact);
	RUN_TEST(test_refused);
	RUN_TEST(test_intervals);
	return check_done("t_merge");
}
