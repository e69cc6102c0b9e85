/* commands.h: the subcommands the front-end (cmdline.c) dispatches to;
 * each returns the process exit status. cl holds the global options given
 * before the command; argv[0] is the command as typed. */
#ifndef FILESERV_COMMANDS_H
#define FILESERV_COMMANDS_H

#include "cmdline.h"

/* get, put, ls, rm, stats: cli.c */
int cli_main(struct cmdline *cl, int argc, char **argv);
/* stress: stress_cli.c */
int stress_main(struct cmdline *cl, int argc, char **argv);
/* run SCRIPT: lua/script.c */
int script_main(struct cmdline *cl, int argc, char **argv);
/* compare BASE NEW: lua/script.c */
int compare_main(struct cmdline *cl, int argc, char **argv);
/* merge FILES: merge_cli.c */
int merge_main(struct cmdline *cl, int argc, char **argv);
/* bench: bench.c */
int bench_main(struct cmdline *cl, int argc, char **argv);
/* serve: fileserv.c */
int serve_main(struct cmdline *cl, int argc, char **argv);

#endif
