/* fileserv.c: main, the subcommand dispatch and the server's options.
 * Everything else lives in the modules listed in fileserv.h. */
#include "fileserv.h"
#include "codec.h"
#include "commands.h"
#include "log.h"
#include "server.h"
#include "units.h"

#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char main_usage[] =
    "usage: fileserv COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "A file server speaking the LIST/GET/UPLOAD/DELETE text protocol, its\n"
    "client, and a Lua-scripted stress tester, in one executable.\n"
    "\n"
    "commands:\n"
    "  serve            run the server (thread, process or single mode)\n"
    "  get NAME         download a file (alias: download)\n"
    "  put FILE [NAME]  upload a file (alias: upload)\n"
    "  ls               list the server's files (alias: list)\n"
    "  rm NAME          delete a file (alias: delete)\n"
    "  stats            show the server's counters\n"
    "  stress           run concurrent client workers against a server\n"
    "  run SCRIPT       run a Lua scenario script (e.g. "
    "scripts/stress_all.lua)\n"
    "  compare A B      compare two matrix results.json files\n"
    "\n"
    "  fileserv COMMAND --help   options of one command\n"
    "  fileserv --version        version\n";

static const char serve_usage[] =
    "usage: fileserv serve [OPTIONS]\n"
    "\n"
    "  -m, --mode MODE         single, thread or process (default thread)\n"
    "  -w, --workers N         worker threads or processes, 1-1024 "
    "(default 5)\n"
    "  -H, --host ADDR         address to listen on (default 127.0.0.1:\n"
    "                          loopback only; --host 0.0.0.0 exposes the\n"
    "                          server to the network)\n"
    "  -p, --port N            port, 0 for any free one (default 5666)\n"
    "  -d, --storage DIR       directory of the files (default ./storage,\n"
    "                          created if missing)\n"
    "  -l, --log-file FILE     also append the log to FILE\n"
    "  -q, --quiet             no log on stderr\n"
    "      --no-sync           skip fsync of uploads (benchmarks only: an\n"
    "                          acknowledged upload may not survive a "
    "crash)\n"
    "      --idle-timeout T    close a connection idle this long "
    "(default 60s)\n"
    "      --head-timeout T    a request head (command and name) must "
    "arrive\n"
    "                          within T (default 10s)\n"
    "      --min-rate RATE     cut a transfer moving less than RATE "
    "bytes/s over\n"
    "                          an idle-timeout window (default 4kB; 0 "
    "off)\n"
    "      --max-conns N       connections beyond N get a busy ERROR "
    "(default\n"
    "                          4096, lowered to fit the descriptor limit)\n"
    "      --drain-timeout T   on SIGTERM, wait this long for transfers in\n"
    "                          flight (default 10s)\n"
    "      --max-upload SIZE   refuse uploads larger than SIZE (default "
    "0,\n"
    "                          no limit; e.g. 10GB)\n"
    "      --codec NAME        base64 codec: auto, avx512, avx2,\n"
    "                          scalar, libb64\n"
    "      --user NAME         once listening, run as user NAME (when\n"
    "                          started as root, e.g. for a port below "
    "1024);\n"
    "                          the storage must be writable by NAME\n"
    "      --ready-fd FD       write the port to FD once listening\n"
    "\n"
    "An event loop reads each request head without holding a worker, then\n"
    "hands the connection to a worker: single is one worker thread, thread\n"
    "N threads, process N pre-forked processes, each serving one "
    "connection\nat a time; further connections wait their turn. SIGTERM "
    "or SIGINT stops\naccepting, lets transfers finish, and exits 0; a "
    "second signal exits\nat once.\n";

enum {
	OPT_NO_SYNC = 256,
	OPT_IDLE,
	OPT_DRAIN,
	OPT_MAX_UPLOAD,
	OPT_CODEC,
	OPT_READY_FD,
	OPT_HEAD,
	OPT_MIN_RATE,
	OPT_MAX_CONNS,
	OPT_USER
};

static int serve_rate(struct server_config *cfg, const char *arg,
		      struct fs_status *st)
{
	uint64_t rate;
	if (units_parse_size(arg, &rate, st) < 0)
		return -1;
	cfg->min_rate = (double)rate;
	return 0;
}

static int serve_option(struct server_config *cfg, int ch, const char *arg,
			struct fs_status *st)
{
	long n;
	switch (ch) {
	case 'm':
		if (strcmp(arg, "single") && strcmp(arg, "thread") &&
		    strcmp(arg, "process"))
			return fs_fail(st, FS_ERR_USAGE,
				       "invalid mode '%s' (single, thread or "
				       "process)",
				       arg);
		cfg->mode = arg;
		return 0;
	case 'w':
		if (units_parse_long(arg, 1, 1024, "worker count", &n, st) < 0)
			return -1;
		cfg->workers = (int)n;
		return 0;
	case 'p':
		if (units_parse_long(arg, 0, 65535, "port", &n, st) < 0)
			return -1;
		cfg->port = (int)n;
		return 0;
	case 'H':
		cfg->host = arg;
		return 0;
	case 'd':
		cfg->storage = arg;
		return 0;
	case 'l':
		cfg->log_file = arg;
		return 0;
	case 'q':
		cfg->quiet = 1;
		return 0;
	case OPT_NO_SYNC:
		cfg->sync = 0;
		return 0;
	case OPT_IDLE:
		return units_parse_seconds(arg, &cfg->idle_timeout, st);
	case OPT_DRAIN:
		return units_parse_seconds(arg, &cfg->drain_timeout, st);
	case OPT_MAX_UPLOAD:
		return units_parse_size(arg, &cfg->max_upload, st);
	case OPT_HEAD:
		return units_parse_seconds(arg, &cfg->head_timeout, st);
	case OPT_MIN_RATE:
		return serve_rate(cfg, arg, st);
	case OPT_MAX_CONNS:
		if (units_parse_long(arg, 1, 1000000, "connection cap", &n,
				     st) < 0)
			return -1;
		cfg->max_conns = (int)n;
		return 0;
	case OPT_CODEC:
		if (codec_select(arg) < 0)
			return fs_fail(st, FS_ERR_USAGE,
				       "codec '%s' is unknown or not supported "
				       "by this CPU",
				       arg);
		return 0;
	case OPT_READY_FD:
		if (units_parse_long(arg, 0, 1 << 20, "descriptor", &n, st) < 0)
			return -1;
		cfg->ready_fd = (int)n;
		return 0;
	case OPT_USER:
		cfg->user = arg;
		return 0;
	}
	return fs_fail(st, FS_ERR_USAGE, "unknown option");
}

/* Keeps the connection cap under the descriptor limit, leaving room for
 * the storage, logs, channel and a connection per worker. */
static void fit_descriptor_limit(struct server_config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	long room = (long)rl.rlim_cur - 32 - cfg->workers;
	if (room < 1)
		room = 1;
	if (cfg->max_conns > room)
		cfg->max_conns = (int)room;
}

static int serve_options(struct server_config *cfg, int argc, char **argv,
			 struct fs_status *st)
{
	static const struct option opts[] = {
	    {"mode", required_argument, NULL, 'm'},
	    {"workers", required_argument, NULL, 'w'},
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"storage", required_argument, NULL, 'd'},
	    {"log-file", required_argument, NULL, 'l'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"no-sync", no_argument, NULL, OPT_NO_SYNC},
	    {"idle-timeout", required_argument, NULL, OPT_IDLE},
	    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
	    {"max-upload", required_argument, NULL, OPT_MAX_UPLOAD},
	    {"codec", required_argument, NULL, OPT_CODEC},
	    {"ready-fd", required_argument, NULL, OPT_READY_FD},
	    {"head-timeout", required_argument, NULL, OPT_HEAD},
	    {"min-rate", required_argument, NULL, OPT_MIN_RATE},
	    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
	    {"user", required_argument, NULL, OPT_USER},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":m:w:H:p:d:l:qh", opts, NULL)) !=
	       -1) {
		if (ch == 'h') {
			fputs(serve_usage, stdout);
			return 1;
		}
		if (ch == '?' || ch == ':')
			return fs_fail(st, FS_ERR_USAGE, "%s option %s",
				       ch == ':' ? "missing value for"
						 : "unknown",
				       argv[optind - 1]);
		if (serve_option(cfg, ch, optarg, st) < 0)
			return -1;
	}
	if (optind < argc)
		return fs_fail(st, FS_ERR_USAGE, "unexpected argument '%s'",
			       argv[optind]);
	if (strcmp(cfg->mode, "single") == 0)
		cfg->workers = 1;
	if (cfg->idle_timeout <= 0)
		return fs_fail(st, FS_ERR_USAGE, "--idle-timeout must be > 0");
	if (cfg->head_timeout <= 0)
		return fs_fail(st, FS_ERR_USAGE, "--head-timeout must be > 0");
	fit_descriptor_limit(cfg);
	return 0;
}

int serve_main(int argc, char **argv)
{
	struct server_config cfg = {
	    .mode = "thread",
	    .workers = 5,
	    .host = "127.0.0.1",
	    .port = FS_DEFAULT_PORT,
	    .storage = "./storage",
	    .sync = 1,
	    .idle_timeout = 60,
	    .drain_timeout = 10,
	    .ready_fd = -1,
	    .head_timeout = 10,
	    .min_rate = 4000,
	    .max_conns = 4096,
	};
	struct fs_status st = {0};
	int rc = serve_options(&cfg, argc, argv, &st);
	if (rc > 0)
		return 0;
	if (rc < 0) {
		fprintf(stderr,
			"fileserv serve: %s\n(see fileserv serve "
			"--help)\n",
			st.message);
		return 2;
	}
	if (log_open(cfg.log_file, cfg.quiet) < 0) {
		perror(cfg.log_file);
		return 3;
	}
	/* static: worker threads a cut drain leaves running use it until
	 * the process is gone, after this function has returned */
	static struct server srv;
	if (server_open(&srv, &cfg, &st) < 0) {
		fprintf(stderr, "fileserv serve: %s\n", st.message);
		return fs_exit_code(st.code);
	}
	rc = 0;
	if (pool_run(&srv, &st) < 0) {
		log_error("main", "%s", st.message);
		rc = fs_exit_code(st.code);
	}
	server_close(&srv);
	return rc;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	/* Transfer buffers (up to ~1 MiB a connection) come from the heap and
	 * are reused, instead of being mapped, faulted in and unmapped for
	 * every request as glibc does above its default 128 KiB threshold;
	 * and freed ones are kept, not trimmed with madvise() after every
	 * request (which costs page faults and, with threads, a TLB
	 * shootdown on every core). */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(main_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("fileserv %s (base64 codec: %s)\n", FILESERV_VERSION,
		       codec_name());
		return 0;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "serve") == 0)
		return serve_main(argc - 1, argv + 1);
	if (strcmp(cmd, "stress") == 0)
		return stress_main(argc - 1, argv + 1);
	if (strcmp(cmd, "run") == 0)
		return script_main(argc - 1, argv + 1);
	if (strcmp(cmd, "bench") == 0)
		return bench_main(argc - 1, argv + 1);
	if (strcmp(cmd, "compare") == 0)
		return compare_main(argc - 1, argv + 1);
	static const char *const client_cmds[] = {
	    "get",  "download", "put",	  "upload", "ls",
	    "list", "rm",	"delete", "stats",  NULL};
	for (const char *const *c = client_cmds; *c; c++)
		if (strcmp(cmd, *c) == 0)
			return cli_main(cmd, argc - 1, argv + 1);
	fprintf(stderr,
		"fileserv: unknown command '%s' (see fileserv --help)\n", cmd);
	return 2;
}
