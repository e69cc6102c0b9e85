/* stress_cli.c: `fileserv stress`: its options, the run through the stress
 * engine (stress.c), and the summary printed as text or JSON. */
#include "fileserv.h"
#include "affinity.h"
#include "arrival.h"
#include "client.h"
#include "cmdline.h"
#include "commands.h"
#include "result.h"
#include "segment.h"
#include "stats.h"
#include "stress.h"
#include "threshold.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char stress_usage[] =
    "usage: fileserv stress --op OP [--file PATH] [--name NAME] "
    "[OPTIONS]\n"
    "\n"
    "Runs concurrent client workers against a server and prints a summary\n"
    "(the Python original's --mode stress): operations and bytes (verified\n"
    "ones too), throughput, operations/s, latency, the client workers' CPU\n"
    "seconds and, from the server's STATS, its mode and workers and the\n"
    "CPU seconds and memory it spent meanwhile; a note says when the\n"
    "client spent more CPU than the server (on shared cores the load\n"
    "generator may then limit what is measured).\n"
    "\n"
    "      --op OP           upload, download or list\n"
    "      --file PATH       local regular file: what upload sends, and\n"
    "                        what download is verified against\n"
    "  -n, --name NAME       name on the server (default: the file's name)\n"
    "  -c, --clients N       concurrent client workers, 1-10000 (default 1)\n"
    "  -P, --pool KIND       the CLIENT's worker pool: thread or process\n"
    "                        (default thread); the server's own mode is\n"
    "                        set by its `serve --mode` and reported here\n"
    "      --threads N       the thread pool's OS threads (default: the\n"
    "                        CPUs), each driving its share of the clients\n"
    "                        through an event loop (the event engine: a\n"
    "                        few KB a client); per-client gives each\n"
    "                        client a thread of its own (the thread\n"
    "                        engine, as scenarios run); --pool process\n"
    "                        forks a process per client (the process\n"
    "                        engine); the summary names the engine\n"
    "  -i, --iterations N    operations per client (default 1)\n"
    "      --duration T      run for T (e.g. 30s) instead of iterations\n"
    "      --warmup T        with --duration: run T more first, and count\n"
    "                        nothing that finishes in it (default 0)\n"
    "      --no-verify       do not compare downloads with --file\n"
    "      --client-stages LIST  DURATION:CLIENTS,... the closed loop with\n"
    "                        a number of active clients that ramps\n"
    "                        linearly from 0 through each stage (the\n"
    "                        others wait): 10s:5,20s:50,10s:0; sets the\n"
    "                        duration; --clients (default: the largest\n"
    "                        stage) is the pool\n"
    "\n"
    "Open model (operations start on a schedule, not when the last ends):\n"
    "      --rate R          R operations per second, all workers together;\n"
    "                        --clients is then the most in flight; needs\n"
    "                        --duration or --stages\n"
    "      --stages LIST     DURATION:RATE,... with linear ramps between\n"
    "                        them, from --rate (default 0): 10s:100,30s:500\n"
    "      --poisson         exponential gaps (seeded by --seed N) instead\n"
    "                        of even ones\n"
    "      --max-late T      drop (do not send) arrivals that could not\n"
    "                        start within T of their time\n"
    "Latency is then measured from each operation's intended start (time\n"
    "spent waiting for a free worker counts), with the service time from\n"
    "its actual start beside it.\n"
    "\n"
    "      --threshold EXPR  a condition the run must meet, repeatable:\n"
    "                        p99<50ms, service_p99<10ms, failed<1%,\n"
    "                        throughput>500MB/s, ops>1000, rate>990;\n"
    "                        exit status 4 when one fails\n"
    "\n"
    "While it runs, on a terminal, one line shows every --interval (1s)\n"
    "the operations, ops/s, MB/s and the interval's p50 and p99 (-q hides\n"
    "it).\n"
    "      --json-stream FILE  write one JSON object per interval (counts,\n"
    "                        bytes, latency histogram buckets) and a last\n"
    "                        {\"summary\": ...} line to FILE (- for stdout,\n"
    "                        which then carries nothing else)\n"
    "      --interval T      the interval (default 1s)\n"
    "\n"
    "      --find-max        capacity search: open-model steps of --duration\n"
    "                        each, from --rate (default 10/s) doubling until\n"
    "                        a --threshold fails, then halving the gap to "
    "5%;\n"
    "                        prints every step and the highest rate that\n"
    "                        held (exit status 4 if none did)\n"
    "One instance of a run spread over several hosts (the options are the\n"
    "whole run's; the instances together run exactly what one would):\n"
    "      --segment I/N     run segment I (from 0) of N: a block of the\n"
    "                        clients, or in the open model the arrivals k\n"
    "                        with k mod N = I; without it, from Open MPI,\n"
    "                        MPICH, Slurm or a Kubernetes Indexed Job\n"
    "      --segments N      the count, for JOB_COMPLETION_INDEX (or\n"
    "                        FILESERV_SEGMENTS); checked against others\n"
    "      --start-at TIME   release the workers at TIME: epoch seconds or\n"
    "                        2026-11-30T10:00:00Z (at most 1 s past)\n"
    "      --out-json FILE   also write the --json summary to FILE, whole\n"
    "                        or not at all, with \"error\" if the run\n"
    "                        failed; %r in FILE (and --json-stream) is\n"
    "                        the segment's index, %n the count\n"
    "\n"
    "      --cpus LIST       run the client workers on these CPUs only\n"
    "                        (e.g. 0, 0-1, 1,3; the server has its own\n"
    "                        serve --cpus)\n"
    "  -j, --json            print the summary as JSON (valid on failure "
    "too)\n"
    "\n"
    "SIGINT (Ctrl-C) or SIGTERM stops the workers after the operation each\n"
    "is in and prints the summary of what ran, marked interrupted; the\n"
    "exit status is then 130 or 143. A second signal ends it at once.\n"
    "Exit status: 0 all ok, 1 some operations failed, 2 usage, 3 the run\n"
    "could not start, 4 a threshold failed.\n";

enum {
	OPT_OP = 256,
	OPT_FILE,
	OPT_DURATION,
	OPT_WARMUP,
	OPT_CPUS,
	OPT_NO_VERIFY,
	OPT_RATE,
	OPT_STAGES,
	OPT_POISSON,
	OPT_SEED,
	OPT_MAX_LATE,
	OPT_THRESHOLD,
	OPT_INTERVAL,
	OPT_JSON_STREAM,
	OPT_FIND_MAX,
	OPT_CLIENT_STAGES,
	OPT_THREADS,
	OPT_SEGMENT,
	OPT_SEGMENTS,
	OPT_START_AT,
	OPT_OUT_JSON
};

#define MAX_THRESHOLDS 32

struct stress_cli {
	struct stress_config cfg;
	int json, have_op, open, have_iterations, find_max;
	int have_clients, have_ramp;
	const char *stream_path;
	const char *segment, *segments; /* --segment I/N, --segments N */
	const char *out_path;		/* --out-json, as given */
	/* --out-json and --json-stream with %r and %n expanded */
	char out_file[RESULT_PATH_MAX], stream_file[RESULT_PATH_MAX];
	struct arrival_plan plan;
	struct arrival_plan ramp; /* --client-stages */
	struct threshold thresholds[MAX_THRESHOLDS];
};

/* The open model's options; 0 or -1 with st set. */
static int open_option(struct stress_cli *sc, int ch, const char *arg,
		       struct fs_status *st)
{
	struct arrival_plan *p = &sc->plan;
	long n;
	char *end;
	sc->open |= ch == OPT_RATE || ch == OPT_STAGES;
	switch (ch) {
	case OPT_RATE:
		p->start_rate = strtod(arg, &end);
		if (end == arg || *end || !(p->start_rate > 0))
			return fs_fail(st, FS_ERR_USAGE,
				       "invalid rate '%s' (operations per "
				       "second, above 0)",
				       arg);
		return 0;
	case OPT_STAGES:
		return arrival_parse_stages(arg, p, st);
	case OPT_POISSON:
		p->poisson = 1;
		return 0;
	case OPT_SEED:
		if (units_parse_long(arg, 0, (1L << 62), "seed", &n, st) < 0)
			return -1;
		p->seed = (uint64_t)n;
		return 0;
	case OPT_MAX_LATE:
		return units_parse_seconds(arg, &sc->cfg.max_late, st);
	}
	if (sc->cfg.nthresholds == MAX_THRESHOLDS)
		return fs_fail(st, FS_ERR_USAGE, "at most %d thresholds",
			       MAX_THRESHOLDS);
	return threshold_parse(arg, &sc->thresholds[sc->cfg.nthresholds++], st);
}

static int stress_option(void *ctx, int ch, const char *arg,
			 struct fs_status *st)
{
	struct stress_cli *sc = ctx;
	struct stress_config *cfg = &sc->cfg;
	long n;
	switch (ch) {
	case OPT_OP:
		sc->have_op = 1;
		return stress_op_parse(arg, &cfg->op) < 0
			   ? fs_fail(st, FS_ERR_USAGE, "invalid op '%s'", arg)
			   : 0;
	case OPT_FILE:
		cfg->file = arg;
		return 0;
	case 'n':
		cfg->name = arg;
		return 0;
	case 'c':
		if (units_parse_long(arg, 1, 10000, "client count", &n, st) < 0)
			return -1;
		cfg->clients = (int)n;
		sc->have_clients = 1;
		return 0;
	case 'P':
		if (strcmp(arg, "thread") && strcmp(arg, "process"))
			return fs_fail(st, FS_ERR_USAGE,
				       "invalid pool '%s' (thread or process)",
				       arg);
		cfg->processes = strcmp(arg, "process") == 0;
		return 0;
	case 'i':
		sc->have_iterations = 1;
		return units_parse_long(arg, 1, 1L << 40, "iteration count",
					&cfg->iterations, st);
	case OPT_DURATION:
		return units_parse_seconds(arg, &cfg->duration, st);
	case OPT_WARMUP:
		return units_parse_seconds(arg, &cfg->warmup, st);
	case OPT_CPUS:
		cfg->pinned = 1;
		return affinity_parse(arg, &cfg->cpus, st);
	case OPT_NO_VERIFY:
		cfg->verify = 0;
		return 0;
	case 'j':
		sc->json = 1;
		return 0;
	case OPT_RATE:
	case OPT_STAGES:
	case OPT_POISSON:
	case OPT_SEED:
	case OPT_MAX_LATE:
	case OPT_THRESHOLD:
		return open_option(sc, ch, arg, st);
	case OPT_INTERVAL:
		if (units_parse_seconds(arg, &cfg->interval, st) < 0)
			return -1;
		return cfg->interval >= 0.01
			   ? 0
			   : fs_fail(st, FS_ERR_USAGE,
				     "invalid interval '%s' (at least 10ms)",
				     arg);
	case OPT_JSON_STREAM:
		sc->stream_path = arg;
		return 0;
	case OPT_FIND_MAX:
		sc->find_max = 1;
		return 0;
	case OPT_CLIENT_STAGES:
		sc->have_ramp = 1;
		return arrival_parse_stages(arg, &sc->ramp, st);
	case OPT_THREADS:
		return stress_threads_parse(arg, &cfg->threads, st);
	case OPT_SEGMENT:
		sc->segment = arg;
		return 0;
	case OPT_SEGMENTS:
		sc->segments = arg;
		return 0;
	case OPT_START_AT:
		return units_parse_time(arg, &cfg->start_at, st);
	case OPT_OUT_JSON:
		sc->out_path = arg;
		return 0;
	}
	return fs_fail(st, FS_ERR_USAGE, "unknown option");
}

static const struct option stress_long[] = {
    {"op", required_argument, NULL, OPT_OP},
    {"file", required_argument, NULL, OPT_FILE},
    {"name", required_argument, NULL, 'n'},
    {"clients", required_argument, NULL, 'c'},
    {"pool", required_argument, NULL, 'P'},
    {"iterations", required_argument, NULL, 'i'},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"rate", required_argument, NULL, OPT_RATE},
    {"stages", required_argument, NULL, OPT_STAGES},
    {"poisson", no_argument, NULL, OPT_POISSON},
    {"seed", required_argument, NULL, OPT_SEED},
    {"max-late", required_argument, NULL, OPT_MAX_LATE},
    {"threshold", required_argument, NULL, OPT_THRESHOLD},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"json-stream", required_argument, NULL, OPT_JSON_STREAM},
    {"find-max", no_argument, NULL, OPT_FIND_MAX},
    {"client-stages", required_argument, NULL, OPT_CLIENT_STAGES},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"segment", required_argument, NULL, OPT_SEGMENT},
    {"segments", required_argument, NULL, OPT_SEGMENTS},
    {"start-at", required_argument, NULL, OPT_START_AT},
    {"out-json", required_argument, NULL, OPT_OUT_JSON},
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
};

static const struct cmdline_spec stress_spec = {
    .usage = stress_usage,
    .shortopts = "n:c:P:i:j",
    .longopts = stress_long,
    .globals = CMDLINE_SERVER | CMDLINE_PORT | CMDLINE_TIMEOUT | CMDLINE_QUIET,
    .no_operands = 1,
    .option = stress_option,
};

/* Parses the options; 1 to run, 0 after --help, -1 with st set. */
static int stress_options(struct cmdline *cl, struct stress_cli *sc, int argc,
			  char **argv, struct fs_status *st)
{
	int at = cmdline_parse(cl, &stress_spec, sc, argc, argv, st);
	if (at <= 0)
		return at;
	if (!sc->have_op)
		return fs_fail(st, FS_ERR_USAGE, "--op is required");
	return 1;
}

/* Fills the defaults that depend on other options; -1 on bad combos. */
static int stress_settle(const struct cmdline *cl, struct stress_cli *sc,
			 struct fs_status *st)
{
	struct stress_config *cfg = &sc->cfg;
	if (cmdline_client(cl, &cfg->server, st) < 0)
		return -1;
	if (!cfg->name && cfg->file) {
		const char *slash = strrchr(cfg->file, '/');
		cfg->name = slash ? slash + 1 : cfg->file;
	}
	if (cfg->op != STRESS_LIST && !cfg->name)
		return fs_fail(st, FS_ERR_USAGE, "%s needs --file or --name",
			       stress_op_name(cfg->op));
	if (cfg->op == STRESS_UPLOAD && !cfg->file)
		return fs_fail(st, FS_ERR_USAGE, "upload needs --file");
	cfg->thresholds = sc->thresholds;
	if (sc->have_ramp && (sc->open || sc->find_max))
		return fs_fail(st, FS_ERR_USAGE,
			       "--client-stages is the closed model: it takes "
			       "no --rate, --stages or --find-max");
	if (sc->have_ramp && !sc->have_clients)
		cfg->clients = 0; /* the largest stage */
	if (sc->have_ramp &&
	    stress_ramp(cfg, &sc->ramp, sc->have_iterations, "--", st) < 0)
		return -1;
	if (segment_resolve(sc->segment, sc->segments, &cfg->segment, st) < 0)
		return -1;
	if (sc->out_path &&
	    result_path(sc->out_path, &cfg->segment, sc->out_file,
			sizeof(sc->out_file), st) < 0)
		return -1;
	if (sc->stream_path &&
	    result_path(sc->stream_path, &cfg->segment, sc->stream_file,
			sizeof(sc->stream_file), st) < 0)
		return -1;
	if (sc->find_max) {
		if (!cfg->nthresholds || sc->plan.nstages || sc->stream_path ||
		    sc->out_path || cfg->segment.count > 1 || cfg->start_at > 0)
			return fs_fail(
			    st, FS_ERR_USAGE,
			    "--find-max needs a --threshold to hold, "
			    "and takes no --stages, --json-stream, "
			    "--out-json, --segment or --start-at");
		if (!sc->open)
			sc->plan.start_rate = 10;
		sc->open = 1;
	}
	if (sc->open &&
	    stress_plan(cfg, &sc->plan, sc->have_iterations, "--", st) < 0)
		return -1;
	if (!sc->open && (sc->plan.poisson || cfg->max_late > 0))
		return fs_fail(st, FS_ERR_USAGE,
			       "--poisson and --max-late need --rate or "
			       "--stages");
	if (cfg->warmup > 0 && cfg->duration <= 0)
		return fs_fail(st, FS_ERR_USAGE, "--warmup needs --duration");
	return stress_check(cfg, st);
}

/* The line that says which share of a distributed run this is. */
static void stress_note_segment(const struct stress_config *cfg)
{
	const struct segment *seg = &cfg->segment;
	long first, n;
	if (strcmp(seg->source, "none") == 0)
		return;
	segment_share(seg, cfg->clients, &first, &n);
	fprintf(stderr,
		"fileserv stress: segment %d/%d (from %s%s%s): ", seg->index,
		seg->count, seg->source, seg->variables[0] ? " " : "",
		seg->variables);
	if (n == 0)
		fprintf(stderr, "no client of %d: nothing to run\n",
			cfg->clients);
	else
		fprintf(stderr, "clients %ld-%ld of %d%s\n", first + 1,
			first + n, cfg->clients,
			cfg->plan ? ", every arrival k with k mod count = index"
				  : "");
}

/* A field's number, 0 when absent (a merged result has no segment's
 * first worker, say): cJSON's NaN would reach int casts. */
static double number(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(obj, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *string(const cJSON *obj, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(obj, key));
	return s ? s : "?";
}

/* The server's side of the summary, from STATS. */
static void stress_print_server(const cJSON *srv)
{
	char a[32];
	if (!cJSON_IsObject(srv)) {
		printf("  server: STATS not available\n");
		return;
	}
	printf("  server: %s mode, %d workers; %d succeeded, %d failed\n",
	       string(srv, "mode"), (int)number(srv, "workers"),
	       (int)number(srv, "succeeded"), (int)number(srv, "failed"));
	if (!cJSON_IsNumber(cJSON_GetObjectItem(srv, "cpu_s"))) {
		printf("  server CPU and memory: not reported by its STATS\n");
		return;
	}
	printf("  server CPU %.3f s (user %.3f, system %.3f)",
	       number(srv, "cpu_s"), number(srv, "cpu_user_s"),
	       number(srv, "cpu_system_s"));
	if (cJSON_IsNumber(cJSON_GetObjectItem(srv, "cpu_s_per_gb")))
		printf(", %.3f s/GB", number(srv, "cpu_s_per_gb"));
	printf(", peak RSS %s\n",
	       units_format_bytes(number(srv, "peak_rss_bytes"), a, sizeof(a)));
}

/* A note when the client workers spent more CPU than the server did:
 * on cores they share, the load generator then limits what is measured
 * (docs/performance.md, "The load generator's cost"). */
static void stress_print_load(const cJSON *j)
{
	const cJSON *srv = cJSON_GetObjectItem(j, "server");
	double client = number(j, "client_cpu_s"),
	       server = number(srv, "cpu_s");
	if (server <= 0 || client <= server)
		return;
	printf("  note: the client workers spent %.2fx the server's CPU; on "
	       "cores they share, the load generator may limit what this "
	       "measures (--cpus and serve --cpus can keep them apart)\n",
	       client / server);
}

/* The open model's lines: the schedule asked for, what it got, and the
 * service time beside the latency. */
static void stress_print_open(const cJSON *j)
{
	const cJSON *m = cJSON_GetObjectItem(j, "open_model");
	if (!cJSON_IsObject(m))
		return;
	const cJSON *s = cJSON_GetObjectItem(j, "service_ms");
	const cJSON *l = cJSON_GetObjectItem(m, "lateness_ms");
	printf("  open model (%s arrivals): target %.1f/s, achieved %.1f/s; "
	       "%d started, %d late by over %.0f ms (p99 %.1f ms, max %.1f "
	       "ms), %d dropped\n",
	       string(m, "arrivals"), number(m, "target_rate"),
	       number(m, "achieved_rate"), (int)number(m, "started"),
	       (int)number(m, "late"), number(m, "late_threshold_ms"),
	       number(l, "p99"), number(l, "max"), (int)number(m, "dropped"));
	printf("  latency is from each intended start; service time ms: p50 "
	       "%.1f p90 %.1f p99 %.1f max %.1f\n",
	       number(s, "p50"), number(s, "p90"), number(s, "p99"),
	       number(s, "max"));
}

static void stress_print_thresholds(const cJSON *j)
{
	const cJSON *t;
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "thresholds"))
	{
		const cJSON *v = cJSON_GetObjectItem(t, "value");
		printf("  threshold %-24s %s (value %s%.6g %s)\n",
		       string(t, "threshold"),
		       cJSON_IsTrue(cJSON_GetObjectItem(t, "pass")) ? "pass"
								    : "FAIL",
		       cJSON_IsNumber(v) ? "" : "n/a ",
		       cJSON_IsNumber(v) ? v->valuedouble : 0,
		       cJSON_IsNumber(v) ? string(t, "unit") : "");
	}
}

/* Which share of a distributed run this was, and how late it started. */
static void stress_print_segment(const cJSON *j)
{
	const cJSON *seg = cJSON_GetObjectItem(j, "segment");
	const cJSON *late =
	    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "start"), "late_s");
	int first = (int)number(seg, "first_worker");
	int clients = (int)number(seg, "clients");
	if (number(seg, "count") > 1 && clients > 0)
		printf("  segment %d of %d (from %s): clients %d-%d\n",
		       (int)number(seg, "index"), (int)number(seg, "count"),
		       string(seg, "source"), first, first + clients - 1);
	else if (number(seg, "count") > 1)
		printf("  segment %d of %d (from %s): no client\n",
		       (int)number(seg, "index"), (int)number(seg, "count"),
		       string(seg, "source"));
	if (cJSON_IsNumber(late))
		printf("  started %.3f ms after --start-at\n",
		       late->valuedouble * 1e3);
}

void stress_print(const cJSON *j)
{
	const cJSON *l = cJSON_GetObjectItem(j, "latency_ms");
	char a[32], b[32], c[32], d[32];
	printf("%s x %d client workers (%s pool) on %s: %d ok, %d failed in "
	       "%.2f s%s\n",
	       string(j, "op"), (int)number(j, "clients"), string(j, "pool"),
	       string(j, "target"), (int)number(j, "ok"),
	       (int)number(j, "failed"), number(j, "wall_s"),
	       number(j, "warmup_s") > 0 ? " after the warm-up" : "");
	const char *sig =
	    cJSON_GetStringValue(cJSON_GetObjectItem(j, "interrupted"));
	if (sig)
		printf("  interrupted by %s: this is what ran until then\n",
		       sig);
	stress_print_segment(j);
	printf("  moved %s (verified %s), aggregate %s/s, per client %s/s, "
	       "%.1f ops/s\n",
	       units_format_bytes(number(j, "bytes"), a, sizeof(a)),
	       units_format_bytes(number(j, "verified_bytes"), b, sizeof(b)),
	       units_format_bytes(number(j, "throughput_Bps"), c, sizeof(c)),
	       units_format_bytes(number(j, "client_throughput_Bps"), d,
				  sizeof(d)),
	       number(j, "ops_per_s"));
	printf("  latency ms: min %.1f mean %.1f p50 %.1f p90 %.1f p99 %.1f "
	       "max %.1f\n",
	       number(l, "min"), number(l, "mean"), number(l, "p50"),
	       number(l, "p90"), number(l, "p99"), number(l, "max"));
	stress_print_open(j);
	printf("  client CPU %.3f s (user %.3f, system %.3f), %s engine",
	       number(j, "client_cpu_s"), number(j, "client_cpu_user_s"),
	       number(j, "client_cpu_system_s"), string(j, "engine"));
	if (cJSON_IsNumber(cJSON_GetObjectItem(j, "threads")))
		printf(" on %d thread%s", (int)number(j, "threads"),
		       number(j, "threads") == 1 ? "" : "s");
	printf("\n");
	stress_print_server(cJSON_GetObjectItem(j, "server"));
	stress_print_load(j);
	const char *err =
	    cJSON_GetStringValue(cJSON_GetObjectItem(j, "first_error"));
	if (err)
		printf("  first error: %s\n", err);
	err = cJSON_GetStringValue(cJSON_GetObjectItem(j, "worker_lost"));
	if (err)
		printf("  worker lost: %s\n", err);
	stress_print_thresholds(j);
}

/* The first SIGINT or SIGTERM stops the run, whose summary is printed;
 * a second one ends the process at once. */
static void stress_on_signal(int sig)
{
	if (stress_interrupted()) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	stress_interrupt(sig);
}

/* A capacity search's step, printed as it ends (text output). */
static void find_max_print(void *ctx, int step, const cJSON *o)
{
	(void)ctx;
	printf("step %d: %.1f/s -> achieved %.1f/s, p99 %.2f ms, %d failed: "
	       "%s\n",
	       step, number(o, "rate"), number(o, "achieved_rate"),
	       number(o, "p99_ms"), (int)number(o, "failed"),
	       cJSON_IsTrue(cJSON_GetObjectItem(o, "passed"))
		   ? "held"
		   : "a threshold failed");
	fflush(stdout);
}

/* --find-max: the search (stress_find_max) and its result; fills *out
 * and returns the exit status. */
static int find_max(struct stress_cli *sc, cJSON **out, struct fs_status *st)
{
	int interrupted = 0;
	*out = stress_find_max(&sc->cfg, &sc->plan,
			       sc->json ? NULL : find_max_print, NULL,
			       &interrupted, st);
	if (!*out)
		return fs_exit_code(st->code);
	const cJSON *fm = cJSON_GetObjectItem(*out, "find_max");
	double lo = number(fm, "max_rate"),
	       hi = number(fm, "first_failing_rate");
	if (!sc->json && lo > 0)
		printf("highest rate that held every threshold: %.1f/s%s\n", lo,
		       hi > 0 ? "" : " (the search stopped before one failed)");
	else if (!sc->json)
		printf("no rate held every threshold (the first step, %.1f/s, "
		       "failed)\n",
		       hi);
	if (interrupted)
		return 128 + interrupted;
	return lo > 0 ? 0 : THRESHOLD_EXIT;
}

int stress_main(struct cmdline *cl, int argc, char **argv)
{
	struct stress_cli sc = {
	    .cfg = {.clients = 1, .iterations = 1, .verify = 1}};
	struct fs_status st = {0};
	int rc = stress_options(cl, &sc, argc, argv, &st);
	if (rc == 0)
		return 0;
	if (rc > 0)
		rc = stress_settle(cl, &sc, &st);
	FILE *stream = NULL;
	if (rc == 0 && sc.stream_path) {
		stream = strcmp(sc.stream_file, "-") == 0
			     ? stdout
			     : fopen(sc.stream_file, "w");
		if (!stream)
			rc = fs_fail(&st, FS_ERR_LOCAL, "--json-stream %s: %s",
				     sc.stream_file, strerror(errno));
	}
	sc.cfg.stream = stream;
	if (isatty(STDERR_FILENO) && !cl->quiet && stream != stdout)
		sc.cfg.live = stderr;
	if (sc.cfg.interval <= 0)
		sc.cfg.interval = 1;
	struct stress_result res = {0};
	struct sigaction sa = {.sa_handler = stress_on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (rc == 0 && sc.find_max) {
		cJSON *fm = NULL;
		rc = find_max(&sc, &fm, &st);
		if (fm && sc.json) {
			char *text = cJSON_Print(fm);
			printf("%s\n", text ? text : "{}");
			free(text);
		}
		cJSON_Delete(fm);
		if (!fm)
			fprintf(stderr, "fileserv stress: %s\n", st.message);
		return rc;
	}
	if (rc == 0 && !cl->quiet)
		stress_note_segment(&sc.cfg);
	if (rc == 0)
		rc = stress_run(&sc.cfg, &res, &st);
	cJSON *j = stress_result_json(&sc.cfg, &res, rc < 0 ? &st : NULL);
	if (rc < 0) {
		if (st.code == FS_ERR_USAGE)
			cmdline_usage_error(cl, &st);
		else
			fprintf(stderr, "fileserv stress: %s\n", st.message);
	}
	if (stream) {
		cJSON *last = cJSON_CreateObject();
		cJSON_AddItemReferenceToObject(last, "summary", j);
		char *text = cJSON_PrintUnformatted(last);
		fprintf(stream, "%s\n", text ? text : "{}");
		free(text);
		cJSON_Delete(last);
		if (stream != stdout && fclose(stream) != 0 && rc == 0)
			fprintf(stderr,
				"fileserv stress: --json-stream %s: %s\n",
				sc.stream_file, strerror(errno));
	}
	if (stream != stdout && sc.json) { /* else the stream is the output */
		char *text = cJSON_Print(j);
		printf("%s\n", text ? text : "{}");
		free(text);
	} else if (stream != stdout && res.counted) {
		stress_print(j);
	}
	struct fs_status out = {0};
	int unsaved = sc.out_file[0] && result_write(sc.out_file, j, &out) < 0;
	if (unsaved)
		fprintf(stderr, "fileserv stress: --out-json %s\n",
			out.message);
	int failed = rc == 0 && res.total.failed > 0;
	int missed = rc == 0 &&
		     cJSON_IsFalse(cJSON_GetObjectItem(j, "thresholds_passed"));
	cJSON_Delete(j);
	if (rc == 0 && res.interrupted)
		return 128 + res.interrupted;
	if (rc < 0)
		return fs_exit_code(st.code);
	if (unsaved)
		return fs_exit_code(out.code);
	return missed ? THRESHOLD_EXIT : failed ? 1 : 0;
}
