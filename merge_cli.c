/* merge_cli.c: `fileserv merge FILES...`: the results of a distributed
 * stress run's instances read, merged (merge.c), checked against
 * thresholds and printed as text or JSON. */
#include "fileserv.h"
#include "cmdline.h"
#include "commands.h"
#include "merge.h"
#include "stress.h"
#include "threshold.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char merge_usage[] =
    "usage: fileserv merge [OPTIONS] FILE...\n"
    "\n"
    "Merges the results of the instances of one distributed stress run\n"
    "(fileserv stress --segment I/N --out-json FILE, one file per "
    "instance)\n"
    "into the summary one process running the whole workload would have\n"
    "printed: counts, bytes and error classes added, latency histograms\n"
    "merged bucket by bucket (percentiles from the merged buckets), the\n"
    "wall time from the earliest start to the latest end, and the rates\n"
    "over it. A FILE may be an instance's --json-stream file instead\n"
    "(its last line is the summary); when every FILE is, the intervals\n"
    "are merged too, aligned by interval index. See docs/distributed.md.\n"
    "\n"
    "A rank with no file, an instance that failed or was interrupted, a\n"
    "rank given twice, results of different runs or histogram layouts:\n"
    "the merge fails with a message naming the file, never a smaller\n"
    "total.\n"
    "\n"
    "      --expect N        the run had N instances (default: from the\n"
    "                        files' segment records, else the file count)\n"
    "      --threshold EXPR  a condition the merged figures must meet, as\n"
    "                        for stress (p99<50ms, failed<1%, ...);\n"
    "                        repeatable\n"
    "      --max-start-spread T  warn when the instances started more\n"
    "                        than T apart (default 100ms)\n"
    "  -j, --json            print the merged summary as JSON (valid on\n"
    "                        failure too)\n"
    "\n"
    "Exit status: 0 all ok, 1 some operations failed, 2 usage, 3 the "
    "files\n"
    "do not make one whole run (unreadable, missing or failed instance,\n"
    "different runs), 4 a threshold failed.\n";

enum { OPT_EXPECT = 256, OPT_THRESHOLD, OPT_MAX_SPREAD };

#define MAX_THRESHOLDS 32

struct merge_cli {
	struct merge_options opt;
	struct threshold thresholds[MAX_THRESHOLDS];
	int json;
};

static int merge_option(void *ctx, int ch, const char *arg,
			struct fs_status *st)
{
	struct merge_cli *mc = ctx;
	long n;
	switch (ch) {
	case OPT_EXPECT:
		if (units_parse_long(arg, 1, 1000000, "instance count", &n,
				     st) < 0)
			return -1;
		mc->opt.expect = (int)n;
		return 0;
	case OPT_THRESHOLD:
		if (mc->opt.nthresholds == MAX_THRESHOLDS)
			return fs_fail(st, FS_ERR_USAGE,
				       "at most %d thresholds", MAX_THRESHOLDS);
		return threshold_parse(
		    arg, &mc->thresholds[mc->opt.nthresholds++], st);
	case OPT_MAX_SPREAD:
		return units_parse_seconds(arg, &mc->opt.max_start_spread, st);
	case 'j':
		mc->json = 1;
		return 0;
	}
	return fs_fail(st, FS_ERR_USAGE, "unknown option");
}

static const struct option merge_long[] = {
    {"expect", required_argument, NULL, OPT_EXPECT},
    {"threshold", required_argument, NULL, OPT_THRESHOLD},
    {"max-start-spread", required_argument, NULL, OPT_MAX_SPREAD},
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
};

static const struct cmdline_spec merge_spec = {
    .usage = merge_usage,
    .shortopts = "j",
    .longopts = merge_long,
    .option = merge_option,
};

static double number(const cJSON *o, const char *key)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItem(o, key));
}

/* The merge's own lines: the instances, each rank's share and the start
 * spread, then the summary as stress prints it. */
static void merge_print(const cJSON *j)
{
	const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "ranks"), 0);
	const char *source = cJSON_GetStringValue(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(r, "segment"), "source"));
	printf("merged %d instances", (int)number(j, "instances"));
	if (source && strcmp(source, "none") != 0)
		printf(" (segments from %s)", source);
	printf(":\n");
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "ranks"))
	{
		double off = number(r, "start_offset_s");
		printf("  rank %d (%s): %d clients, %d ok, %d failed, %.0f "
		       "bytes in %.2f s, p99 %.2f ms",
		       (int)number(r, "rank"),
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "file")),
		       (int)number(r, "clients"), (int)number(r, "ok"),
		       (int)number(r, "failed"), number(r, "bytes"),
		       number(r, "wall_s"), number(r, "p99_ms"));
		if (!isnan(off))
			printf(", started +%.1f ms", off * 1e3);
		printf("\n");
	}
	double spread = number(j, "start_spread_s");
	if (isnan(spread))
		printf("  start spread: unknown (the instances recorded no "
		       "start time)\n");
	else
		printf("  start spread %.1f ms (warning above %.1f ms)\n",
		       spread * 1e3, number(j, "max_start_spread_s") * 1e3);
	stress_print(j);
}

static void print_json(const cJSON *j)
{
	char *text = cJSON_Print(j);
	printf("%s\n", text ? text : "{}");
	free(text);
}

int merge_main(struct cmdline *cl, int argc, char **argv)
{
	struct merge_cli mc = {0};
	struct fs_status st = {0};
	int at = cmdline_parse(cl, &merge_spec, &mc, argc, argv, &st);
	if (at == 0)
		return 0;
	if (at > 0 &&
	    cmdline_operands(argc - at, 1, 100000, "result files", &st) < 0)
		at = -1;
	if (at < 0)
		return cmdline_usage_error(cl, &st);
	mc.opt.thresholds = mc.thresholds;
	int n = argc - at, rc = 0;
	struct merge_input *in = calloc((size_t)n, sizeof(*in));
	if (!in)
		rc = fs_fail(&st, FS_ERR_LOCAL, "out of memory");
	for (int i = 0; i < n && rc == 0; i++)
		rc = merge_read(argv[at + i], &in[i], &st);
	cJSON *j = rc == 0 ? merge_run(in, n, &mc.opt, &st) : NULL;
	for (int i = 0; in && i < n; i++)
		merge_input_free(&in[i]);
	free(in);
	if (!j) {
		fprintf(stderr, "fileserv merge: %s\n", st.message);
		if (mc.json) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "error", st.message);
			print_json(e);
			cJSON_Delete(e);
		}
		return 3;
	}
	if (mc.json)
		print_json(j);
	else
		merge_print(j);
	const cJSON *w;
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "warnings"))
	{
		fprintf(stderr, "fileserv merge: warning: %s\n",
			w->valuestring);
	}
	int missed = cJSON_IsFalse(cJSON_GetObjectItem(j, "thresholds_passed"));
	int failed = number(j, "failed") > 0;
	cJSON_Delete(j);
	return missed ? THRESHOLD_EXIT : failed ? 1 : 0;
}
