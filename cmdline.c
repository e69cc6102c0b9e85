/* cmdline.c: the command-line front-end shared by every subcommand: the
 * command table and `fileserv --help` / `fileserv help [CMD]`, the global
 * options (-s/--server, -p/--port, -t/--timeout, -q/--quiet) accepted
 * before or after the command, one getopt_long loop that each command
 * feeds with its own options, and the one wording of a usage error:
 *
 *   fileserv get: unknown option '-x' (see 'fileserv get --help')
 *
 * which always exits 2. Numbers go through units.c (ranges, suffixes). */
#include "cmdline.h"
#include "client.h"
#include "codec.h"
#include "commands.h"
#include "units.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct command {
	const char *name, *args, *alias, *summary;
	int (*main)(struct cmdline *cl, int argc, char **argv);
};

static const struct command commands[] = {
    {"get", "NAME", "download", "download a file", cli_main},
    {"put", "FILE [NAME]", "upload", "upload a file", cli_main},
    {"ls", "", "list", "list the server's files", cli_main},
    {"rm", "NAME", "delete", "delete a file", cli_main},
    {"stats", "", NULL, "show the server's counters", cli_main},
    {"serve", "", NULL, "run the server", serve_main},
    {"stress", "--op OP", NULL,
     "run concurrent client workers against a server", stress_main},
    {"merge", "FILE...", NULL,
     "merge the results of a distributed stress run's instances", merge_main},
    {"run", "SCRIPT [ARGS]", NULL, "run a Lua scenario script", script_main},
    {"compare", "BASE NEW", NULL, "compare two matrix results.json files",
     compare_main},
    {"bench", "", NULL, "measure this machine (make bench)", bench_main},
    {"help", "[COMMAND]", NULL, "this help, or one command's", NULL},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *command_find(const char *word)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(word, commands[i].name) == 0 ||
		    (commands[i].alias && strcmp(word, commands[i].alias) == 0))
			return &commands[i];
	return NULL;
}

/* ---- global options ---- */

static const struct global {
	struct option opt;
	unsigned flag;
	const char *help;
} globals[] = {
    {{"server", required_argument, NULL, 's'},
     CMDLINE_SERVER,
     "  -s, --server HOST[:PORT]  server (default $FILESERV_SERVER, else\n"
     "                            127.0.0.1:5666)\n"},
    {{"port", required_argument, NULL, 'p'},
     CMDLINE_PORT,
     "  -p, --port N              port (default 5666; serve: the port to "
     "listen on,\n"
     "                            0 for any free one)\n"},
    {{"timeout", required_argument, NULL, 't'},
     CMDLINE_TIMEOUT,
     "  -t, --timeout T           give up after T without progress, or "
     "when a\n"
     "                            T window moves under 1 kB/s (default "
     "300s)\n"},
    {{"quiet", no_argument, NULL, 'q'},
     CMDLINE_QUIET,
     "  -q, --quiet               no progress display (serve: no log on "
     "stderr)\n"},
};

#define N_GLOBALS (sizeof(globals) / sizeof(globals[0]))

static void main_help(FILE *out)
{
	fputs("usage: fileserv [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
	      "\n"
	      "A file server speaking the LIST/GET/UPLOAD/DELETE text "
	      "protocol, its\nclient, and a Lua-scripted stress tester, in "
	      "one executable.\n\ncommands:\n",
	      out);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		char both[40], alias[32] = "";
		snprintf(both, sizeof(both), "%s %s", commands[i].name,
			 commands[i].args);
		if (commands[i].alias)
			snprintf(alias, sizeof(alias), " (alias: %s)",
				 commands[i].alias);
		fprintf(out, "  %-20s %s%s\n", both, commands[i].summary,
			alias);
	}
	fputs("\nglobal options, before or after the command:\n", out);
	for (size_t i = 0; i < N_GLOBALS; i++)
		fputs(globals[i].help, out);
	fputs("\n"
	      "  fileserv help COMMAND     options of one command (also "
	      "COMMAND --help)\n"
	      "  fileserv --version        version\n"
	      "\n"
	      "Exit status: 0 ok, 1 the server answered ERROR (or a stress "
	      "operation\nfailed), 2 usage, 3 network or local I/O "
	      "failure.\n",
	      out);
}

static const struct global *global_find(int ch)
{
	for (size_t i = 0; i < N_GLOBALS; i++)
		if (globals[i].opt.val == ch)
			return &globals[i];
	return NULL;
}

/* Records global option ch; -1 with st set when its value is bad. */
static int global_set(struct cmdline *cl, int ch, const char *arg,
		      struct fs_status *st)
{
	long n;
	cl->given |= global_find(ch)->flag;
	switch (ch) {
	case 's':
		cl->server = arg;
		return 0;
	case 'p':
		cl->port = arg;
		return units_parse_long(arg, 0, 65535, "port", &n, st);
	case 't':
		return units_parse_timeout(arg, &cl->timeout, st);
	default:
		cl->quiet = 1;
		return 0;
	}
}

/* The option as the user typed it, for messages: "--output" or "-o". */
static const char *option_typed(char **argv, char *buf, size_t len)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	if (strncmp(arg, "--", 2) == 0 || optopt == 0) {
		snprintf(buf, len, "%.*s", (int)strcspn(arg, "="), arg);
		return buf;
	}
	snprintf(buf, len, "-%c", optopt);
	return buf;
}

static int option_error(int ch, char **argv, struct fs_status *st)
{
	char buf[64];
	const char *opt = option_typed(argv, buf, sizeof(buf));
	if (ch == ':')
		return fs_fail(st, FS_ERR_USAGE, "option '%s' needs a value",
			       opt);
	return fs_fail(st, FS_ERR_USAGE, "unknown option '%s'", opt);
}

/* Names the option whose value was bad in front of st's message. */
static int option_value_error(int ch, int longindex, const struct option *opts,
			      struct fs_status *st)
{
	char msg[sizeof(st->message)];
	memcpy(msg, st->message, sizeof(msg));
	if (longindex >= 0)
		return fs_fail(st, st->code, "option '--%s': %.400s",
			       opts[longindex].name, msg);
	return fs_fail(st, st->code, "option '-%c': %.400s", ch, msg);
}

/* ---- one command's options ---- */

#define MAX_OPTIONS 64

/* The command's long options followed by the globals and --help. */
static void options_merge(const struct cmdline_spec *spec, struct option *out,
			  char *shortopts, size_t len)
{
	size_t n = 0;
	for (const struct option *o = spec->longopts; o && o->name; o++)
		if (n < MAX_OPTIONS - N_GLOBALS - 2)
			out[n++] = *o;
	for (size_t i = 0; i < N_GLOBALS; i++)
		out[n++] = globals[i].opt;
	out[n++] = (struct option){"help", no_argument, NULL, 'h'};
	out[n] = (struct option){NULL, 0, NULL, 0};
	snprintf(shortopts, len, "%s:%ss:p:t:qh", spec->in_order ? "+" : "",
		 spec->shortopts ? spec->shortopts : "");
}

int cmdline_check_globals(const struct cmdline *cl, unsigned globals_taken,
			  struct fs_status *st)
{
	for (size_t i = 0; i < N_GLOBALS; i++)
		if ((cl->given & globals[i].flag) &&
		    !(globals_taken & globals[i].flag))
			return fs_fail(st, FS_ERR_USAGE,
				       "option -%c (--%s) does not apply to %s",
				       globals[i].opt.val, globals[i].opt.name,
				       cl->cmd);
	return 0;
}

void cmdline_help(const struct cmdline *cl, const struct cmdline_spec *spec)
{
	(void)cl;
	fputs(spec->usage, stdout);
	if (!spec->globals)
		return;
	fputs("\nglobal options (before or after the command):\n", stdout);
	for (size_t i = 0; i < N_GLOBALS; i++)
		if (spec->globals & globals[i].flag)
			fputs(globals[i].help, stdout);
}

int cmdline_parse(struct cmdline *cl, const struct cmdline_spec *spec,
		  void *ctx, int argc, char **argv, struct fs_status *st)
{
	struct option opts[MAX_OPTIONS];
	char shortopts[128];
	options_merge(spec, opts, shortopts, sizeof(shortopts));
	int ch, at = -1;
	optind = 0; /* a fresh scan: the front-end used getopt before */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shortopts, opts, &at)) != -1) {
		if (ch == 'h') {
			cmdline_help(cl, spec);
			return 0;
		}
		if (ch == '?' || ch == ':')
			return option_error(ch, argv, st);
		int rc = global_find(ch) ? global_set(cl, ch, optarg, st)
					 : spec->option(ctx, ch, optarg, st);
		if (rc < 0)
			return option_value_error(ch, at, opts, st);
		at = -1;
	}
	if (cmdline_check_globals(cl, spec->globals, st) < 0)
		return -1;
	if (spec->no_operands && optind < argc)
		return fs_fail(st, FS_ERR_USAGE, "unexpected argument '%s'",
			       argv[optind]);
	return optind;
}

int cmdline_operands(int have, int min, int max, const char *what,
		     struct fs_status *st)
{
	if (have < min)
		return fs_fail(st, FS_ERR_USAGE, "expected %s", what);
	if (have > max)
		return fs_fail(st, FS_ERR_USAGE,
			       "unexpected argument (expected "
			       "%s)",
			       what);
	return 0;
}

int cmdline_usage_error(const struct cmdline *cl, const struct fs_status *st)
{
	const char *cmd = cl && cl->cmd ? cl->cmd : NULL;
	fprintf(stderr, "fileserv%s%s: %s (see 'fileserv%s%s --help')\n",
		cmd ? " " : "", cmd ? cmd : "", st->message, cmd ? " " : "",
		cmd ? cmd : "");
	return 2;
}

int cmdline_client(const struct cmdline *cl, struct fs_client *c,
		   struct fs_status *st)
{
	if (client_init(c, cl->server, cl->port, st) < 0)
		return -1;
	if (cl->timeout > 0)
		c->timeout = cl->timeout;
	return 0;
}

/* ---- the front-end ---- */

/* Global options before the command; returns the command's index in
 * argv, 0 after --help or --version, -1 on a usage error. */
static int front_options(struct cmdline *cl, int argc, char **argv,
			 struct fs_status *st)
{
	struct option opts[N_GLOBALS + 3];
	for (size_t i = 0; i < N_GLOBALS; i++)
		opts[i] = globals[i].opt;
	opts[N_GLOBALS] = (struct option){"help", no_argument, NULL, 'h'};
	opts[N_GLOBALS + 1] =
	    (struct option){"version", no_argument, NULL, 'V'};
	opts[N_GLOBALS + 2] = (struct option){NULL, 0, NULL, 0};
	int ch, at = -1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:s:p:t:qhV", opts, &at)) != -1) {
		if (ch == 'h') {
			main_help(stdout);
			return 0;
		}
		if (ch == 'V') {
			printf("fileserv %s (base64 codec: %s)\n",
			       FILESERV_VERSION, codec_name());
			return 0;
		}
		if (ch == '?' || ch == ':')
			return option_error(ch, argv, st);
		if (global_set(cl, ch, optarg, st) < 0)
			return option_value_error(ch, at, opts, st);
		at = -1;
	}
	if (optind >= argc)
		return fs_fail(st, FS_ERR_USAGE, "no command given");
	return optind;
}

/* `fileserv help [COMMAND]`: the command's own --help. */
static int help_main(struct cmdline *cl, int argc, char **argv,
		     struct fs_status *st)
{
	if (argc < 2) {
		main_help(stdout);
		return 0;
	}
	const struct command *c = command_find(argv[1]);
	if (!c || !c->main)
		return fs_fail(st, FS_ERR_USAGE, "unknown command '%s'",
			       argv[1]);
	char *help_argv[] = {argv[1], "--help", NULL};
	cl->cmd = argv[1];
	return c->main(cl, 2, help_argv);
}

int cmdline_main(int argc, char **argv)
{
	struct cmdline cl = {0};
	struct fs_status st = {0};
	int at = front_options(&cl, argc, argv, &st);
	if (at <= 0)
		return at == 0 ? 0 : cmdline_usage_error(NULL, &st);
	const struct command *c = command_find(argv[at]);
	if (!c) {
		fs_fail(&st, FS_ERR_USAGE, "unknown command '%s'", argv[at]);
		return cmdline_usage_error(NULL, &st);
	}
	if (!c->main) {
		int rc = help_main(&cl, argc - at, argv + at, &st);
		return rc < 0 ? cmdline_usage_error(NULL, &st) : rc;
	}
	cl.cmd = argv[at];
	return c->main(&cl, argc - at, argv + at);
}
