/* stress_cli.c: `fileserv stress`: its options, the run through the stress
 * engine (stress.c), and the summary printed as text or JSON. */
#include "fileserv.h"
#include "client.h"
#include "cmdline.h"
#include "commands.h"
#include "stats.h"
#include "stress.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char stress_usage[] =
    "usage: fileserv stress --op OP [--file PATH] [--name NAME] "
    "[OPTIONS]\n"
    "\n"
    "Runs concurrent client workers against a server and prints a summary\n"
    "(the Python original's --mode stress).\n"
    "\n"
    "      --op OP           upload, download or list\n"
    "      --file PATH       local file: what upload sends, and what\n"
    "                        download is verified against\n"
    "  -n, --name NAME       name on the server (default: the file's name)\n"
    "  -c, --clients N       concurrent client workers, 1-10000 (default 1)\n"
    "  -P, --pool KIND       thread or process (default thread)\n"
    "  -i, --iterations N    operations per client (default 1)\n"
    "      --duration T      run for T (e.g. 30s) instead of iterations\n"
    "      --no-verify       do not compare downloads with --file\n"
    "  -j, --json            print the summary as JSON (valid on failure "
    "too)\n";

enum { OPT_OP = 256, OPT_FILE, OPT_DURATION, OPT_NO_VERIFY };

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
	return 0;
}

static void stress_print(const cJSON *j)
{
	const cJSON *l = cJSON_GetObjectItem(j, "latency_ms");
	const cJSON *srv = cJSON_GetObjectItem(j, "server");
	char a[32], b[32], c[32];
	printf("%s x %d %s workers: %d ok, %d failed in %.2f s\n",
	       cJSON_GetStringValue(cJSON_GetObjectItem(j, "op")),
	       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "clients")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(j, "pool")),
	       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "ok")),
	       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "failed")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(j, "wall_s")));
	printf("  moved %s, aggregate %s/s, per client %s/s\n",
	       units_format_bytes(
		   cJSON_GetNumberValue(cJSON_GetObjectItem(j, "bytes")), a,
		   sizeof(a)),
	       units_format_bytes(cJSON_GetNumberValue(
				      cJSON_GetObjectItem(j, "throughput_Bps")),
				  b, sizeof(b)),
	       units_format_bytes(cJSON_GetNumberValue(cJSON_GetObjectItem(
				      j, "client_throughput_Bps")),
				  c, sizeof(c)));
	printf("  latency ms: min %.1f mean %.1f p50 %.1f p90 %.1f p99 %.1f "
	       "max %.1f\n",
	       cJSON_GetNumberValue(cJSON_GetObjectItem(l, "min")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(l, "mean")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(l, "p50")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(l, "p90")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(l, "p99")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(l, "max")));
	if (cJSON_IsObject(srv))
		printf("  server: %d succeeded, %d failed\n",
		       (int)cJSON_GetNumberValue(
			   cJSON_GetObjectItem(srv, "succeeded")),
		       (int)cJSON_GetNumberValue(
			   cJSON_GetObjectItem(srv, "failed")));
	const char *err =
	    cJSON_GetStringValue(cJSON_GetObjectItem(j, "first_error"));
	if (err)
		printf("  first error: %s\n", err);
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
	return rc < 0 ? fs_exit_code(st.code) : failed ? 1 : 0;
}
