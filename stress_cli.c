/* stress_cli.c: `fileserv stress`: its options, the run through the stress
 * engine (stress.c), and the summary printed as text or JSON. */
#include "fileserv.h"
#include "affinity.h"
#include "client.h"
#include "cmdline.h"
#include "commands.h"
#include "stats.h"
#include "stress.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char stress_usage[] =
    "usage: fileserv stress --op OP [--file PATH] [--name NAME] "
    "[OPTIONS]\n"
    "\n"
    "Runs concurrent client workers against a server and prints a summary\n"
    "(the Python original's --mode stress): operations and bytes (verified\n"
    "ones too), throughput, operations/s, latency, the client workers' CPU\n"
    "seconds and, from the server's STATS, its mode and workers and the\n"
    "CPU seconds and memory it spent meanwhile.\n"
    "\n"
    "      --op OP           upload, download or list\n"
    "      --file PATH       local file: what upload sends, and what\n"
    "                        download is verified against\n"
    "  -n, --name NAME       name on the server (default: the file's name)\n"
    "  -c, --clients N       concurrent client workers, 1-10000 (default 1)\n"
    "  -P, --pool KIND       the CLIENT's worker pool: thread or process\n"
    "                        (default thread); the server's own mode is\n"
    "                        set by its `serve --mode` and reported here\n"
    "  -i, --iterations N    operations per client (default 1)\n"
    "      --duration T      run for T (e.g. 30s) instead of iterations\n"
    "      --warmup T        with --duration: run T more first, and count\n"
    "                        nothing that finishes in it (default 0)\n"
    "      --no-verify       do not compare downloads with --file\n"
    "      --cpus LIST       run the client workers on these CPUs only\n"
    "                        (e.g. 0, 0-1, 1,3; the server has its own\n"
    "                        serve --cpus)\n"
    "  -j, --json            print the summary as JSON (valid on failure "
    "too)\n"
    "\n"
    "SIGINT (Ctrl-C) or SIGTERM stops the workers after the operation each\n"
    "is in and prints the summary of what ran, marked interrupted; the\n"
    "exit status is then 130 or 143. A second signal ends it at once.\n";

enum {
	OPT_OP = 256,
	OPT_FILE,
	OPT_DURATION,
	OPT_WARMUP,
	OPT_CPUS,
	OPT_NO_VERIFY
};

struct stress_cli {
	struct stress_config cfg;
	int json, have_op;
};

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
		return 0;
	case 'P':
		if (strcmp(arg, "thread") && strcmp(arg, "process"))
			return fs_fail(st, FS_ERR_USAGE,
				       "invalid pool '%s' (thread or process)",
				       arg);
		cfg->processes = strcmp(arg, "process") == 0;
		return 0;
	case 'i':
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
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
};

static const struct cmdline_spec stress_spec = {
    .usage = stress_usage,
    .shortopts = "n:c:P:i:j",
    .longopts = stress_long,
    .globals = CMDLINE_SERVER | CMDLINE_PORT | CMDLINE_TIMEOUT,
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
	if (cfg->warmup > 0 && cfg->duration <= 0)
		return fs_fail(st, FS_ERR_USAGE, "--warmup needs --duration");
	return 0;
}

static double number(const cJSON *obj, const char *key)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItem(obj, key));
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

static void stress_print(const cJSON *j)
{
	const cJSON *l = cJSON_GetObjectItem(j, "latency_ms");
	char a[32], b[32], c[32], d[32];
	printf(
	    "%s x %d client workers (%s pool) on %s: %d ok, %d failed in %.2f s"
	    "%s\n",
	    string(j, "op"), (int)number(j, "clients"), string(j, "pool"),
	    string(j, "target"), (int)number(j, "ok"), (int)number(j, "failed"),
	    number(j, "wall_s"),
	    number(j, "warmup_s") > 0 ? " after the warm-up" : "");
	const char *sig =
	    cJSON_GetStringValue(cJSON_GetObjectItem(j, "interrupted"));
	if (sig)
		printf("  interrupted by %s: this is what ran until then\n",
		       sig);
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
	printf("  client CPU %.3f s (user %.3f, system %.3f)\n",
	       number(j, "client_cpu_s"), number(j, "client_cpu_user_s"),
	       number(j, "client_cpu_system_s"));
	stress_print_server(cJSON_GetObjectItem(j, "server"));
	const char *err =
	    cJSON_GetStringValue(cJSON_GetObjectItem(j, "first_error"));
	if (err)
		printf("  first error: %s\n", err);
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
	struct stress_result res;
	struct sigaction sa = {.sa_handler = stress_on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (rc == 0)
		rc = stress_run(&sc.cfg, &res, &st);
	cJSON *j =
	    rc == 0 ? stress_to_json(&sc.cfg, &res) : cJSON_CreateObject();
	if (rc < 0) {
		cJSON_AddStringToObject(j, "error", st.message);
		cJSON_AddStringToObject(j, "error_class",
					fs_error_name(st.code));
		if (st.code == FS_ERR_USAGE)
			cmdline_usage_error(cl, &st);
		else
			fprintf(stderr, "fileserv stress: %s\n", st.message);
	}
	if (sc.json) {
		char *text = cJSON_Print(j);
		printf("%s\n", text ? text : "{}");
		free(text);
	} else if (rc == 0) {
		stress_print(j);
	}
	int failed = rc == 0 && res.total.failed > 0;
	cJSON_Delete(j);
	if (rc == 0 && res.interrupted)
		return 128 + res.interrupted;
	return rc < 0 ? fs_exit_code(st.code) : failed ? 1 : 0;
}
