/* cli.c: the client subcommands (get, put, ls, rm, stats, and the
 * original's words download, upload, list, delete): options, the progress
 * bar, safe local writes, messages and exit statuses. The work itself is
 * client.c's. Exit status: 0 ok, 1 the server answered ERROR, 2 usage,
 * 3 network or local I/O failure. */
#include "fileserv.h"
#include "client.h"
#include "commands.h"
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
	int force, quiet;
	struct fs_status st;
};

static const char cli_usage[] =
    "usage: fileserv get NAME [-o OUT] [-f]     download NAME (alias: "
    "download)\n"
    "       fileserv put FILE [NAME]            upload FILE as NAME "
    "(alias: upload)\n"
    "       fileserv ls                         list the server's files "
    "(alias: list)\n"
    "       fileserv rm NAME                    delete NAME (alias: "
    "delete)\n"
    "       fileserv stats                      the server's counters\n"
    "\n"
    "options:\n"
    "  -s, --server HOST[:PORT]  server (default 127.0.0.1, or "
    "$FILESERV_SERVER)\n"
    "  -p, --port N              port (default 5666)\n"
    "  -t, --timeout SECONDS     give up after this long without progress "
    "(default 300s)\n"
    "  -o, --output OUT          get: write to OUT ('-' for stdout) "
    "instead of ./NAME\n"
    "  -f, --force               get: overwrite an existing file\n"
    "  -q, --quiet               no progress bar\n"
    "  -h, --help                this help\n"
    "\n"
    "A download goes to a temporary file that is renamed at the end, so a "
    "failed\ndownload leaves nothing behind. Exit status: 0 ok, 1 the "
    "server answered\nERROR, 2 usage, 3 network or local I/O failure.\n";

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

struct progress {
	int enabled;
	double start, last;
	uint64_t done;
};

static void progress_show(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	double now = units_now();
	p->done = done;
	if (!p->enabled || (now - p->last < 0.1 && done != total))
		return;
	p->last = now;
	double rate = done / (now - p->start + 1e-9);
	char a[32], b[32], r[32];
	units_format_bytes((double)done, a, sizeof(a));
	if (total) {
		units_format_bytes((double)total, b, sizeof(b));
		fprintf(stderr, "\r%10s / %-10s %3d%%  %10s/s  ETA %4.0fs ", a,
			b, (int)(done * 100 / total),
			units_format_bytes(rate, r, sizeof(r)),
			rate > 0 ? (total - done) / rate : 0);
	} else {
		fprintf(stderr, "\r%10s  %10s/s ", a,
			units_format_bytes(rate, r, sizeof(r)));
	}
}

static void progress_end(struct progress *p)
{
	if (p->enabled && p->last > 0)
		fputc('\n', stderr);
}

static void progress_init(struct progress *p, const struct cli *cli)
{
	memset(p, 0, sizeof(*p));
	p->enabled = !cli->quiet && isatty(STDERR_FILENO);
	p->start = units_now();
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

static int cmd_get(struct cli *cli, int argc, char **argv)
{
	if (argc != 1)
		return fs_fail(&cli->st, FS_ERR_USAGE, "expected one NAME");
	const char *name = argv[0];
	const char *out = cli->output ? cli->output : name;
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
	if (argc < 1 || argc > 2)
		return fs_fail(&cli->st, FS_ERR_USAGE,
			       "expected FILE and an optional NAME");
	int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		int e = fd < 0 ? errno : EINVAL;
		if (fd >= 0)
			close(fd);
		return fs_fail(&cli->st, FS_ERR_LOCAL, "%s: %s", argv[0],
			       e == EINVAL ? "not a regular file"
					   : strerror(e));
	}
	char *copy = strdup(argv[0]);
	const char *name = argc == 2 ? argv[1] : basename(copy);
	struct progress p;
	progress_init(&p, cli);
	struct fs_result res;
	int rc = client_put(&cli->client, name, fd, (uint64_t)sb.st_size,
			    progress_show, &p, &res, &cli->st);
	progress_end(&p);
	close(fd);
	if (rc == 0 && !cli->quiet)
		report_transfer("uploaded", name, &res);
	client_result_free(&res);
	free(copy);
	return rc;
}

static int cmd_simple(struct cli *cli, enum proto_command cmd, int argc,
		      char **argv)
{
	int want = cmd == CMD_DELETE ? 1 : 0;
	if (argc != want)
		return fs_fail(&cli->st, FS_ERR_USAGE,
			       want ? "expected one NAME"
				    : "expected no arguments");
	struct fs_result res;
	int rc = client_request(&cli->client, cmd, want ? argv[0] : NULL, &res,
				&cli->st);
	cJSON *data = rc == 0 ? cJSON_GetObjectItem(res.reply, "data") : NULL;
	if (cmd == CMD_LIST) {
		cJSON *item;
		cJSON_ArrayForEach(item, data) if (cJSON_IsString(item))
		    printf("%s\n", item->valuestring);
	} else if (cmd == CMD_STATS && data) {
		char *text = cJSON_Print(data);
		printf("%s\n", text ? text : "");
		free(text);
	} else if (cJSON_IsString(data) && !cli->quiet) {
		printf("%s\n", data->valuestring);
	}
	client_result_free(&res);
	return rc;
}

/* ---- dispatch ---- */

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

static int cli_options(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"port", required_argument, NULL, 'p'},
	    {"timeout", required_argument, NULL, 't'},
	    {"output", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *server = NULL, *port = NULL, *timeout = NULL;
	int ch;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":s:p:t:o:fqh", opts, NULL)) !=
	       -1) {
		switch (ch) {
		case 's':
			server = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 't':
			timeout = optarg;
			break;
		case 'o':
			cli->output = optarg;
			break;
		case 'f':
			cli->force = 1;
			break;
		case 'q':
			cli->quiet = 1;
			break;
		case 'h':
			fputs(cli_usage, stdout);
			return 1;
		case ':':
			return fs_fail(&cli->st, FS_ERR_USAGE,
				       "option %s needs a value",
				       argv[optind - 1]);
		default:
			return fs_fail(&cli->st, FS_ERR_USAGE,
				       "unknown option %s", argv[optind - 1]);
		}
	}
	if (client_init(&cli->client, server, port, &cli->st) < 0)
		return -1;
	if (timeout &&
	    units_parse_seconds(timeout, &cli->client.timeout, &cli->st) < 0)
		return -1;
	return 0;
}

int cli_main(const char *cmd, int argc, char **argv)
{
	struct cli cli = {.cmd = cmd};
	enum proto_command pc = cli_command(cmd);
	int rc = cli_options(&cli, argc, argv);
	if (rc > 0)
		return 0;
	if (rc == 0) {
		argc -= optind;
		argv += optind;
		rc = pc == CMD_GET	? cmd_get(&cli, argc, argv)
		     : pc == CMD_UPLOAD ? cmd_put(&cli, argc, argv)
					: cmd_simple(&cli, pc, argc, argv);
	}
	if (rc == 0)
		return 0;
	/* the server's own messages already name the file */
	const char *what =
	    argc > 0 && cli.st.code != FS_ERR_SERVER ? argv[0] : NULL;
	if (cli.st.code == FS_ERR_USAGE)
		fprintf(stderr, "fileserv %s: %s\n(see fileserv %s --help)\n",
			cmd, cli.st.message, cmd);
	else
		return cli_fail(&cli, what);
	return 2;
}
