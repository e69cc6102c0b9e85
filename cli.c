/* cli.c: the client subcommands (get, put, ls, rm, stats, and the
 * original's words download, upload, list, delete): their options (parsed
 * by cmdline.c with the global ones), the progress line, get's target
 * (a file, a directory, stdout), the stats table, messages and exit
 * statuses. The work itself is client.c's. Exit status: 0 ok, 1 the server
 * answered ERROR, 2 usage, 3 network or local I/O failure. */
#include "fileserv.h"
#include "client.h"
#include "clock.h"
#include "commands.h"
#include "proto.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cli {
	const char *cmd;
	struct fs_client client;
	const char *output;
	int force, quiet, json;
	struct fs_status st;
};

static const char get_usage[] =
    "usage: fileserv get NAME [-o OUT] [-f]   (alias: download)\n"
    "\n"
    "Downloads NAME into ./NAME, or OUT. The bytes go to a temporary file\n"
    "beside it that is renamed at the end, so a failed download leaves\n"
    "nothing behind.\n"
    "\n"
    "  -o, --output OUT    write to OUT: a file, a directory (OUT/NAME, as\n"
    "                      cp does), or '-' for stdout\n"
    "  -f, --force         overwrite an existing file\n";

static const char put_usage[] =
    "usage: fileserv put FILE [NAME]   (alias: upload)\n"
    "\n"
    "Uploads FILE as NAME (default: FILE's name without its directory).\n"
    "The server replaces an existing NAME atomically.\n";

static const char ls_usage[] =
    "usage: fileserv ls   (alias: list)\n"
    "\n"
    "Lists the server's files, one name a line as they arrive, every byte\n"
    "visible: control bytes as C escapes (\\n, \\x1b), C1 controls and\n"
    "bidirectional characters as \\uXXXX, bytes that are not UTF-8 as "
    "\\xHH,\na backslash as \\\\.\n";

static const char rm_usage[] = "usage: fileserv rm NAME   (alias: delete)\n"
			       "\n"
			       "Deletes NAME on the server.\n";

static const char stats_usage[] =
    "usage: fileserv stats [--json]\n"
    "\n"
    "Shows the server's counters: uptime, connections, requests by "
    "command,\nfile bytes and wire (base64) bytes in each direction.\n"
    "\n"
    "  -j, --json          the raw STATS object, as the server sent it\n";

static const char cli_exit_note[] =
    "\nExit status: 0 ok, 1 the server answered ERROR, 2 usage, 3 network "
    "or\nlocal I/O failure.\n";

static int cli_fail(struct cli *cli, const char *what)
{
	const struct fs_client *c = &cli->client;
	if (cli->st.code == FS_ERR_SERVER)
		fprintf(stderr, "fileserv: %s%s%s: %s (server %s:%s)\n",
			cli->cmd, what ? " " : "", what ? what : "",
			cli->st.message, c->host, c->port);
	else
		fprintf(stderr, "fileserv: %s%s%s: %s\n", cli->cmd,
			what ? " " : "", what ? what : "", cli->st.message);
	return fs_exit_code(cli->st.code);
}

/* ---- progress ---- */

/* Shown on a terminal. An upload's size is the local file's, so it has a
 * total, a percentage and an ETA; a download's is unknown until the end
 * (GET replies do not carry it), so it shows bytes, rate and elapsed. */
struct progress {
	int enabled;
	double start, last;
	uint64_t done, total;
};

static void progress_draw(struct progress *p, double now)
{
	double elapsed = now - p->start;
	double rate = p->done / (elapsed + 1e-9);
	char a[32], b[32], r[32], t[32];
	p->last = now;
	units_format_bytes((double)p->done, a, sizeof(a));
	units_format_bytes(rate, r, sizeof(r));
	if (p->total) {
		units_format_seconds(rate > 0 ? (p->total - p->done) / rate : 0,
				     t, sizeof(t));
		fprintf(stderr, "\r\033[K%10s / %-10s %3d%%  %10s/s  ETA %s", a,
			units_format_bytes((double)p->total, b, sizeof(b)),
			(int)(p->done * 100 / p->total), r, t);
	} else {
		fprintf(stderr, "\r\033[K%10s  %10s/s  %s elapsed", a, r,
			units_format_seconds(elapsed, t, sizeof(t)));
	}
}

static void progress_show(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	double now = clock_now();
	p->done = done;
	p->total = total;
	if (p->enabled && (now - p->last >= 0.1 || done == total))
		progress_draw(p, now);
}

/* The last figures, then the line ends. */
static void progress_end(struct progress *p)
{
	if (!p->enabled || p->last == 0)
		return;
	progress_draw(p, clock_now());
	fputc('\n', stderr);
}

static void progress_init(struct progress *p, const struct cli *cli)
{
	memset(p, 0, sizeof(*p));
	p->enabled = !cli->quiet && isatty(STDERR_FILENO);
	p->start = clock_now();
}

static void report_transfer(const char *verb, const char *name,
			    const struct fs_result *res)
{
	char a[32], r[32];
	fprintf(stderr, "%s %s: %s in %.2f s (%s/s)\n", verb, name,
		units_format_bytes((double)res->bytes, a, sizeof(a)),
		res->seconds,
		units_format_bytes(res->bytes / (res->seconds + 1e-9), r,
				   sizeof(r)));
}

/* ---- get ---- */

/* OUT, or OUT/NAME when OUT is a directory or ends in '/', as cp does. */
static const char *get_target(const char *out, const char *name, char *buf,
			      size_t len)
{
	struct stat sb;
	size_t n = strlen(out);
	int slash = n > 0 && out[n - 1] == '/';
	if (strcmp(out, "-") == 0 ||
	    (!slash && (stat(out, &sb) < 0 || !S_ISDIR(sb.st_mode))))
		return out;
	snprintf(buf, len, "%s%s%s", out, slash ? "" : "/", name);
	return buf;
}

static int cmd_get(struct cli *cli, int argc, char **argv)
{
	if (cmdline_operands(argc, 1, 1, "one NAME", &cli->st) < 0)
		return -1;
	const char *name = argv[0];
	char joined[4096];
	const char *out =
	    cli->output ? get_target(cli->output, name, joined, sizeof(joined))
			: name;
	struct fs_result res;
	struct progress p;
	progress_init(&p, cli);
	int rc = client_get_file(&cli->client, name, out, cli->force,
				 progress_show, &p, &res, &cli->st);
	progress_end(&p);
	if (rc == 0 && !cli->quiet)
		report_transfer("downloaded", name, &res);
	client_result_free(&res);
	return rc;
}

/* ---- put, ls, rm, stats ---- */

static int cmd_put(struct cli *cli, int argc, char **argv)
{
	if (cmdline_operands(argc, 1, 2, "FILE and an optional NAME",
			     &cli->st) < 0)
		return -1;
	uint64_t size;
	int fd = client_open_source(argv[0], &size, &cli->st);
	if (fd < 0)
		return -1;
	char *copy = strdup(argv[0]);
	const char *name = argc == 2 ? argv[1] : basename(copy);
	struct progress p;
	progress_init(&p, cli);
	struct fs_result res;
	int rc = client_put(&cli->client, name, fd, size, progress_show, &p,
			    &res, &cli->st);
	progress_end(&p);
	close(fd);
	if (rc == 0 && !cli->quiet)
		report_transfer("uploaded", name, &res);
	client_result_free(&res);
	free(copy);
	return rc;
}

/* ---- stats ---- */

static double member(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A byte count from the reply, or "-" when the server lacks it. */
static const char *member_bytes(const cJSON *o, const char *name, char *buf,
				size_t len)
{
	double v = member(o, name);
	if (v < 0)
		return "-";
	return units_format_bytes(v, buf, len);
}

/* A server's text as a terminal may show it, cut to fit buf (see
 * proto_escape_visible). */
static const char *visible(const char *text, char *buf, size_t len)
{
	proto_escape_visible(text, strnlen(text, (len - 1) / 4), buf, len);
	return buf;
}

static void stats_print_commands(const cJSON *data)
{
	const cJSON *by = cJSON_GetObjectItemCaseSensitive(data, "commands");
	const cJSON *c;
	char name[4 * 32 + 1];
	printf("%-9s %10s %10s %10s\n", "command", "requests", "ok", "failed");
	cJSON_ArrayForEach(c, by)
	{
		printf("%-9s %10.0f %10.0f %10.0f\n",
		       visible(c->string, name, sizeof(name)),
		       member(c, "requests"), member(c, "succeeded"),
		       member(c, "failed"));
	}
}

static void stats_print_resources(const cJSON *data)
{
	char a[32], b[32];
	if (member(data, "cpu_user_s") < 0)
		return;
	printf("\ncpu        %.2f s user, %.2f s system\n",
	       member(data, "cpu_user_s"), member(data, "cpu_system_s"));
	printf("memory     peak %s (largest process), now %s over %.0f "
	       "process(es)\n",
	       member_bytes(data, "peak_rss_bytes", a, sizeof(a)),
	       member_bytes(data, "rss_sum_bytes", b, sizeof(b)),
	       member(data, "processes"));
}

/* The STATS object as a table; --json prints it as the server sent it. */
static void stats_print(const struct cli *cli, const cJSON *data)
{
	if (cli->json) {
		char *text = cJSON_Print(data);
		printf("%s\n", text ? text : "");
		free(text);
		return;
	}
	char up[32], fi[32], fo[32], wi[32], wo[32], shown[4 * 32 + 1];
	const char *mode = cJSON_GetStringValue(
	    cJSON_GetObjectItemCaseSensitive(data, "mode"));
	printf("server     %s:%s, %s mode, %.0f workers, up %s\n",
	       cli->client.host, cli->client.port,
	       mode ? visible(mode, shown, sizeof(shown)) : "?",
	       member(data, "workers"),
	       units_format_seconds(member(data, "uptime_s"), up, sizeof(up)));
	printf("requests   %.0f: %.0f ok, %.0f failed (STATS not counted), "
	       "over %.0f connections\n\n",
	       member(data, "requests"), member(data, "succeeded"),
	       member(data, "failed"), member(data, "connections"));
	stats_print_commands(data);
	printf("\n%-9s %16s %16s\n", "bytes", "in (uploads)",
	       "out (downloads)");
	printf("%-9s %16s %16s\n", "file",
	       member_bytes(data, "file_bytes_in", fi, sizeof(fi)),
	       member_bytes(data, "file_bytes_out", fo, sizeof(fo)));
	printf("%-9s %16s %16s   (base64 and JSON on the socket)\n", "wire",
	       member_bytes(data, "wire_bytes_in", wi, sizeof(wi)),
	       member_bytes(data, "wire_bytes_out", wo, sizeof(wo)));
	stats_print_resources(data);
}

/* ls's sink: one name a line, every byte visible. */
static int print_name(void *ctx, const void *name, size_t len)
{
	(void)ctx;
	char shown[4 * FS_NAME_MAX + 1];
	proto_escape_visible(name, len, shown, sizeof(shown));
	return puts(shown) < 0 ? -1 : 0;
}

static int cmd_simple(struct cli *cli, enum proto_command cmd, int argc,
		      char **argv)
{
	int want = cmd == CMD_DELETE ? 1 : 0;
	if (cmdline_operands(argc, want, want,
			     want ? "one NAME" : "no arguments", &cli->st) < 0)
		return -1;
	struct fs_result res;
	struct fs_sink names = {print_name, NULL};
	int rc = cmd == CMD_LIST
		     ? client_list(&cli->client, &names, &res, &cli->st)
		     : client_request(&cli->client, cmd, want ? argv[0] : NULL,
				      &res, &cli->st);
	cJSON *data = rc == 0 ? cJSON_GetObjectItem(res.reply, "data") : NULL;
	if (cmd == CMD_STATS && data) {
		stats_print(cli, data);
	} else if (cJSON_IsString(data) && !cli->quiet) {
		char shown[4 * 512 + 1];
		printf("%s\n",
		       visible(data->valuestring, shown, sizeof(shown)));
	}
	client_result_free(&res);
	return rc;
}

/* ---- dispatch ---- */

static int cli_option(void *ctx, int ch, const char *arg, struct fs_status *st)
{
	struct cli *cli = ctx;
	(void)st;
	if (ch == 'o')
		cli->output = arg;
	else if (ch == 'f')
		cli->force = 1;
	else
		cli->json = 1;
	return 0;
}

static const struct option get_options[] = {
    {"output", required_argument, NULL, 'o'},
    {"force", no_argument, NULL, 'f'},
    {NULL, 0, NULL, 0},
};

static const struct option stats_options[] = {
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
};

/* The command's options, by the protocol command it sends. */
static void cli_spec(enum proto_command pc, struct cmdline_spec *spec)
{
	*spec = (struct cmdline_spec){.globals = CMDLINE_CLIENT,
				      .option = cli_option};
	switch (pc) {
	case CMD_GET:
		spec->usage = get_usage;
		spec->shortopts = "o:f";
		spec->longopts = get_options;
		break;
	case CMD_UPLOAD:
		spec->usage = put_usage;
		break;
	case CMD_LIST:
		spec->usage = ls_usage;
		break;
	case CMD_DELETE:
		spec->usage = rm_usage;
		break;
	default:
		spec->usage = stats_usage;
		spec->shortopts = "j";
		spec->longopts = stats_options;
	}
}

static enum proto_command cli_command(const char *cmd)
{
	static const struct {
		const char *word;
		enum proto_command cmd;
	} words[] = {
	    {"get", CMD_GET},	  {"download", CMD_GET},
	    {"put", CMD_UPLOAD},  {"upload", CMD_UPLOAD},
	    {"ls", CMD_LIST},	  {"list", CMD_LIST},
	    {"rm", CMD_DELETE},	  {"delete", CMD_DELETE},
	    {"stats", CMD_STATS},
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(cmd, words[i].word) == 0)
			return words[i].cmd;
	return CMD_INVALID;
}

static int cli_run(struct cli *cli, enum proto_command pc, int argc,
		   char **argv)
{
	switch (pc) {
	case CMD_GET:
		return cmd_get(cli, argc, argv);
	case CMD_UPLOAD:
		return cmd_put(cli, argc, argv);
	default:
		return cmd_simple(cli, pc, argc, argv);
	}
}

int cli_main(struct cmdline *cl, int argc, char **argv)
{
	struct cli cli = {.cmd = cl->cmd};
	enum proto_command pc = cli_command(cl->cmd);
	struct cmdline_spec spec;
	cli_spec(pc, &spec);
	int at = cmdline_parse(cl, &spec, &cli, argc, argv, &cli.st);
	if (at == 0) {
		fputs(cli_exit_note, stdout);
		return 0;
	}
	cli.quiet = cl->quiet;
	int rc = at < 0 ? -1 : cmdline_client(cl, &cli.client, &cli.st);
	if (rc == 0) {
		argc -= at;
		argv += at;
		rc = cli_run(&cli, pc, argc, argv);
	}
	if (rc == 0)
		return 0;
	if (cli.st.code == FS_ERR_USAGE)
		return cmdline_usage_error(cl, &cli.st);
	/* the server's own messages already name the file */
	const char *what =
	    argc > 0 && cli.st.code != FS_ERR_SERVER ? argv[0] : NULL;
	return cli_fail(&cli, what);
}
