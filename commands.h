/* commands.h: the subcommands main() dispatches to; each returns the
 * process exit status. */
#ifndef FILESERV_COMMANDS_H
#define FILESERV_COMMANDS_H

/* get, put, ls, rm, stats: cli.c */
int cli_main(const char *cmd, int argc, char **argv);
/* stress: stress.c */
int stress_main(int argc, char **argv);
/* run SCRIPT: lua/script.c */
int script_main(int argc, char **argv);
/* compare BASE NEW: lua/script.c */
int compare_main(int argc, char **argv);
/* bench: bench.c */
int bench_main(int argc, char **argv);
/* serve: fileserv.c */
int serve_main(int argc, char **argv);

#endif
