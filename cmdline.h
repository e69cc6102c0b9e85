/* cmdline.h: the command-line front-end (cmdline.c): the global options,
 * one getopt_long loop each command feeds with its own options, and the
 * one wording of a usage error. */
#ifndef FILESERV_CMDLINE_H
#define FILESERV_CMDLINE_H

#include "fileserv.h"

struct fs_client;
struct option;

/* Global options: which ones a command takes (cmdline_spec.globals). */
enum {
	CMDLINE_SERVER = 1,  /* -s, --server HOST[:PORT] */
	CMDLINE_PORT = 2,    /* -p, --port N */
	CMDLINE_TIMEOUT = 4, /* -t, --timeout T */
	CMDLINE_QUIET = 8,   /* -q, --quiet */
	CMDLINE_CLIENT = 15, /* all four: the commands that talk to a server */
};

/* What the global options said, before or after the command. */
struct cmdline {
	const char *cmd;	   /* the command as typed, for messages */
	const char *server, *port; /* as given, or NULL; port range-checked */
	double timeout;		   /* seconds, or 0 when not given */
	int quiet;
	unsigned given; /* CMDLINE_* seen, checked against the command's */
};

/* One command's options, for cmdline_parse. */
struct cmdline_spec {
	const char *usage;	       /* --help text, before the globals */
	const char *shortopts;	       /* the command's own, getopt syntax */
	const struct option *longopts; /* the command's own, NULL-ended */
	unsigned globals;	       /* CMDLINE_* the command takes */
	int in_order;		       /* stop at the first operand (run) */
	int no_operands;	       /* refuse any operand */
	/* Applies one of the command's options; -1 with st set. */
	int (*option)(void *ctx, int ch, const char *arg, struct fs_status *st);
};

/* The process's command line: global options, then the command. */
int cmdline_main(int argc, char **argv);
/* Parses argv (argv[0] is the command) with getopt_long: the command's
 * options through spec->option(ctx), the globals into cl. Returns the
 * index of the first operand, 0 after printing --help, -1 with st set. */
int cmdline_parse(struct cmdline *cl, const struct cmdline_spec *spec,
		  void *ctx, int argc, char **argv, struct fs_status *st);
/* Prints the command's --help: its usage, then the globals it takes. */
void cmdline_help(const struct cmdline *cl, const struct cmdline_spec *spec);
/* Checks min <= have <= max operands; the message says "expected WHAT". */
int cmdline_operands(int have, int min, int max, const char *what,
		     struct fs_status *st);
/* Prints "fileserv CMD: MESSAGE (see 'fileserv CMD --help')"; returns 2. */
int cmdline_usage_error(const struct cmdline *cl, const struct fs_status *st);
/* -1 with st set if a global option not in `globals` (CMDLINE_*) was
 * given, for a command that parses its own options (compare). */
int cmdline_check_globals(const struct cmdline *cl, unsigned globals,
			  struct fs_status *st);
/* client_init with the global -s, -p and -t. */
int cmdline_client(const struct cmdline *cl, struct fs_client *c,
		   struct fs_status *st);

#endif
