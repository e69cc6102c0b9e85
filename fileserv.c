/* fileserv.c: main and the server's options (`fileserv serve`).
 * Everything else lives in the modules listed in fileserv.h. */
#include "fileserv.h"
#include "affinity.h"
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

static const char serve_usage[] =
    "usage: fileserv serve [OPTIONS]\n"
    "\n"
    "  -m, --mode MODE         single, thread or process (default thread)\n"
    "  -w, --workers N         worker threads or processes, 1-1024 "
    "(default 5)\n"
    "  -H, --host ADDR         address to listen on (default 127.0.0.1:\n"
    "                          loopback only; --host 0.0.0.0 exposes the\n"
    "                          server to the network)\n"
    "  -d, --storage DIR       directory of the files (default ./storage,\n"
    "                          created if missing)\n"
    "  -l, --log-file FILE     also append the log to FILE\n"
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
    "      --max-conns N       open connections beyond N (heads being "
    "read,\n"
    "                          waiting or served) get a busy ERROR "
    "(default\n"
    "                          4096, lowered to fit the descriptor limit; "
    "a\n"
    "                          value the limit cannot hold is refused)\n"
    "      --queue-timeout T   a request no worker has taken within T gets "
    "a\n"
    "                          busy ERROR (default 10s)\n"
    "      --transfer-timeout T  cut a connection still transferring after "
    "T\n"
    "                          (default 1h; 0 off)\n"
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
    "      --cpus LIST         run the whole server (workers included) on\n"
    "                          these CPUs only, e.g. 0, 0-1 or 1,3\n"
    "      --ready-fd FD       write the port to FD once listening\n"
    "\n"
    "An event loop reads each request head without holding a worker, then\n"
    "hands the connection to a worker: single is one worker thread, thread\n"
    "N threads, process N pre-forked processes, each serving one "
    "connection\nat a time; further connections wait their turn, up to "
    "--queue-timeout.\nSIGTERM or SIGINT stops accepting, lets transfers "
    "finish, and exits 0; a\nsecond signal exits at once. SIGHUP reopens "
    "the log file; SIGUSR1, SIGUSR2\nand SIGALRM are logged and "
    "ignored.\n";

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
	OPT_USER,
	OPT_CPUS,
	OPT_QUEUE,
	OPT_TRANSFER
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

static int serve_option(void *ctx, int ch, const char *arg,
			struct fs_status *st)
{
	struct server_config *cfg = ctx;
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
	case 'H':
		cfg->host = arg;
		return 0;
	case 'd':
		cfg->storage = arg;
		return 0;
	case 'l':
		cfg->log_file = arg;
		return 0;
	case OPT_NO_SYNC:
		cfg->sync = 0;
		return 0;
	case OPT_IDLE:
		return units_parse_timeout(arg, &cfg->idle_timeout, st);
	case OPT_DRAIN:
		return units_parse_seconds(arg, &cfg->drain_timeout, st);
	case OPT_MAX_UPLOAD:
		return units_parse_size(arg, &cfg->max_upload, st);
	case OPT_HEAD:
		return units_parse_timeout(arg, &cfg->head_timeout, st);
	case OPT_MIN_RATE:
		return serve_rate(cfg, arg, st);
	case OPT_QUEUE:
		return units_parse_timeout(arg, &cfg->queue_timeout, st);
	case OPT_TRANSFER:
		return units_parse_seconds(arg, &cfg->transfer_timeout, st);
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
	case OPT_CPUS:
		cfg->pinned = 1;
		return affinity_parse(arg, &cfg->cpus, st);
	}
	return fs_fail(st, FS_ERR_USAGE, "unknown option");
}

#define FD_RESERVE	  32 /* stdio, listener, epoll, signals, channel, log... */
#define DEFAULT_MAX_CONNS 4096
#define FD_PER_WORKER	  2 /* a file being read or written, a replaced one */

/* Fits the connection cap to the descriptor limit: the acceptor's
 * process holds every connection open on the server's account, and in
 * thread and single mode also the files its workers have open. A default
 * cap is lowered to fit; a given one that does not fit, or a limit that
 * cannot hold a connection per worker, is refused. */
static int fit_descriptor_limit(struct server_config *cfg, struct fs_status *st)
{
	int cap_given = cfg->max_conns > 0;
	if (!cap_given)
		cfg->max_conns = DEFAULT_MAX_CONNS;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	long limit = (long)rl.rlim_cur;
	long files = strcmp(cfg->mode, "process") ? FD_PER_WORKER : 0;
	long fixed = FD_RESERVE + files * cfg->workers;
	if (limit - fixed < cfg->workers)
		return fs_fail(st, FS_ERR_USAGE,
			       "--workers %d in %s mode needs at least %ld "
			       "descriptors, but the limit (ulimit -n) is %ld",
			       cfg->workers, cfg->mode, fixed + cfg->workers,
			       limit);
	if (cap_given && fixed + cfg->max_conns > limit)
		return fs_fail(st, FS_ERR_USAGE,
			       "--max-conns %d needs %ld descriptors with %d "
			       "workers, but the limit (ulimit -n) is %ld: at "
			       "most --max-conns %ld",
			       cfg->max_conns, fixed + cfg->max_conns,
			       cfg->workers, limit, limit - fixed);
	if (cfg->max_conns > limit - fixed)
		cfg->max_conns = (int)(limit - fixed);
	return 0;
}

static const struct option serve_long[] = {
    {"mode", required_argument, NULL, 'm'},
    {"workers", required_argument, NULL, 'w'},
    {"host", required_argument, NULL, 'H'},
    {"storage", required_argument, NULL, 'd'},
    {"log-file", required_argument, NULL, 'l'},
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
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"queue-timeout", required_argument, NULL, OPT_QUEUE},
    {"transfer-timeout", required_argument, NULL, OPT_TRANSFER},
    {NULL, 0, NULL, 0},
};

static const struct cmdline_spec serve_spec = {
    .usage = serve_usage,
    .shortopts = "m:w:H:d:l:",
    .longopts = serve_long,
    .globals = CMDLINE_PORT | CMDLINE_QUIET,
    .no_operands = 1,
    .option = serve_option,
};

/* Parses the options; the index of the first operand, 0 after --help. */
static int serve_options(struct cmdline *cl, struct server_config *cfg,
			 int argc, char **argv, struct fs_status *st)
{
	int at = cmdline_parse(cl, &serve_spec, cfg, argc, argv, st);
	if (at <= 0)
		return at;
	if (cl->port)
		cfg->port = atoi(cl->port); /* range-checked by cmdline_parse */
	cfg->quiet = cl->quiet;
	if (strcmp(cfg->mode, "single") == 0)
		cfg->workers = 1;
	return fit_descriptor_limit(cfg, st) < 0 ? -1 : at;
}

int serve_main(struct cmdline *cl, int argc, char **argv)
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
	    .max_conns = 0, /* DEFAULT_MAX_CONNS, fitted */
	    .queue_timeout = 10,
	    .transfer_timeout = 3600,
	};
	struct fs_status st = {0};
	int rc = serve_options(cl, &cfg, argc, argv, &st);
	if (rc == 0)
		return 0;
	if (rc < 0)
		return cmdline_usage_error(cl, &st);
	/* before any thread or worker starts: they all inherit it */
	if (cfg.pinned && affinity_apply(&cfg.cpus, &st) < 0) {
		fprintf(stderr, "fileserv serve: %s\n", st.message);
		return fs_exit_code(st.code);
	}
	if (log_open(cfg.log_file, cfg.quiet, &st) < 0) {
		fprintf(stderr, "fileserv serve: %s\n", st.message);
		return fs_exit_code(st.code);
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
	return cmdline_main(argc, argv);
}
