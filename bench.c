/* bench.c: `fileserv bench` (`make bench`): the figures the README quotes,
 * each measured side by side in one run on this machine and reported as
 * the median of several runs:
 *   1. the base64 codecs (libb64, scalar, AVX2, AVX-512), encode and
 *      decode;
 *   2. the loopback reference: one TCP stream of our own (as iperf3 makes
 *      it) and iperf3's when installed, the faster being the reference;
 *      a 100 MB get and put through a real server (with and without
 *      fsync) against it, each run paired with a reference run just
 *      before it, and against the base64 ceiling (3/4 of it: the wire
 *      carries 4 bytes per 3 of file), and a 10 MB put plus get of
 *      files by two whole `fileserv` processes;
 *   3. 50 concurrent 10 MB downloads against 5 workers, thread and
 *      process mode, and 10,000 concurrent 1 MB downloads from one
 *      stress process (the event engine), with server and client peak
 *      memory;
 *   4. 1 KB GETs per second with 50 clients, one connection per request,
 *      fileserv (thread and process) beside nginx (one worker) driven by
 *      wrk when both are installed.
 * Servers are real `fileserv serve` children on loopback; clients are the
 * client API and the stress engine, run in a forked child when their peak
 * memory is reported, so that the benchmark's own buffers do not count.
 * Rows with a client and a server also give each side's CPU per unit of
 * work, so that a client costlier than the server it loads shows; each
 * row starts once the file system has written back what the rows before
 * left dirty. The other programs are bench_peers.c's. */
#include "fileserv.h"
#include "bench.h"
#include "client.h"
#include "clock.h"
#include "codec.h"
#include "commands.h"
#include "conn.h"
#include "spawn.h"
#include "stats.h"
#include "stress.h"
#include "testdata.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct bench {
	int runs;
	double scale;		  /* 1, or smaller with --quick */
	uint64_t big, mid, small; /* the "100 MB", "10 MB", "1 MB" files */
	char dir[64];
	cJSON *rows;
	double reference; /* loopback MB/s transfers are set against */
	const char *reference_name; /* which stream that was */
	struct peer iperf;	    /* iperf3 -s while transfers are measured */
	int progress; /* stderr is a terminal: show each row as it comes */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A file size for a row's label: "100 MB", "2 MB", "200 kB". */
static const char *size_label(uint64_t n, char *buf, size_t len)
{
	if (n % 1000000 == 0)
		snprintf(buf, len, "%llu MB",
			 (unsigned long long)(n / 1000000));
	else if (n % 1000 == 0)
		snprintf(buf, len, "%llu kB", (unsigned long long)(n / 1000));
	else
		units_format_bytes((double)n, buf, len);
	return buf;
}

static double smallest(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double largest(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

/* A row: the median of the runs' values, and their range beside it, so
 * that a reader sees how much the figure moved. */
static cJSON *row(struct bench *b, const char *what, double *runs, int n,
		  const char *unit)
{
	double value = median(runs, n);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "what", what);
	cJSON_AddNumberToObject(r, "value", value);
	cJSON_AddNumberToObject(r, "min", smallest(runs, n));
	cJSON_AddNumberToObject(r, "max", largest(runs, n));
	cJSON_AddStringToObject(r, "unit", unit);
	cJSON_AddItemToArray(b->rows, r);
	if (b->progress)
		fprintf(stderr, "\r\033[K[%d] %s: %.0f %s ...",
			cJSON_GetArraySize(b->rows), what, value, unit);
	return r;
}

/* A row that could not be measured: no value, and why in its note. */
static void skipped(struct bench *b, const char *what, const char *unit,
		    const char *why)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "what", what);
	cJSON_AddNullToObject(r, "value");
	cJSON_AddStringToObject(r, "unit", unit);
	cJSON_AddStringToObject(r, "note", why);
	cJSON_AddItemToArray(b->rows, r);
}

static void note(cJSON *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(cJSON *r, const char *fmt, ...)
{
	char buf[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(r, "note", buf);
}

/* ---- CPU per unit of work, each side ---- */

/* CPU seconds of the two sides of a measurement. The client side is this
 * process and every child it has waited for (a stress run's fork and its
 * client processes, `fileserv put`, `iperf3 -c`, wrk); the server side is
 * the server's process tree, read from /proc while it runs. */
struct cpu_use {
	double client, server;
};

static double seconds_of(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static struct cpu_use cpu_now(pid_t server)
{
	struct rusage self, kids;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return (struct cpu_use){
	    seconds_of(self.ru_utime) + seconds_of(self.ru_stime) +
		seconds_of(kids.ru_utime) + seconds_of(kids.ru_stime),
	    peers_cpu(server)};
}

/* Adds what each side spent since mark to sum. */
static void cpu_add(struct cpu_use *sum, struct cpu_use mark, pid_t server)
{
	struct cpu_use now = cpu_now(server);
	sum->client += now.client - mark.client;
	sum->server += now.server - mark.server;
}

/* Records each side's CPU seconds per unit of work (a GB moved, a GET)
 * in row r, for the table's CPU column and the JSON. */
static void cpu_note(cJSON *r, struct cpu_use used, double units,
		     const char *per)
{
	if (units <= 0)
		return;
	cJSON *c = cJSON_AddObjectToObject(r, "cpu");
	cJSON_AddNumberToObject(c, "client", used.client / units);
	cJSON_AddNumberToObject(c, "server", used.server / units);
	cJSON_AddStringToObject(c, "per", per);
}

/* Writes back what earlier rows left dirty in the bench directory's file
 * system (a --no-sync put's 100 MB), so that its writeback does not run
 * during, and count against, the next row. */
static void settle(const struct bench *b)
{
	int fd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
}

/* ---- 1. codecs ---- */

/* Seconds to encode (or decode) the n bytes (chars) at in, reps times
 * over, as one stream each time. */
static double time_codec(int decode, const char *in, size_t n, char *out,
			 int reps)
{
	double t0 = clock_now();
	for (int i = 0; i < reps; i++) {
		if (decode) {
			struct b64_decoder d;
			b64_decoder_init(&d);
			if (b64_decode_update(&d, in, n, out) < 0 ||
			    b64_decode_final(&d) < 0)
				return -1;
		} else {
			struct b64_encoder e;
			b64_encoder_init(&e);
			size_t m = b64_encode_update(&e, in, n, out);
			b64_encode_final(&e, out + m);
		}
	}
	return clock_now() - t0;
}

/* MB/s of the selected codec in one direction, per run, into rate;
 * returns their median: reps passes over the first n bytes of raw (or
 * over their encoding). */
static double codec_rate(const struct bench *b, int dir, char *raw, char *text,
			 char *back, size_t n, int reps, double *rate)
{
	size_t len = dir ? B64_ENCODED_MAX(n) - 4 : n;
	time_codec(0, raw, n, text, 1); /* warm, and the text to decode */
	for (int r = 0; r < b->runs; r++)
		rate[r] = (double)n * reps /
			  time_codec(dir, dir ? text : raw, len,
				     dir ? back : text, reps) /
			  1e6;
	return median(rate, b->runs);
}

/* Codecs as transfers use them: FS_IO_CHUNK at a time, from and into
 * buffers that the read or recv just before left in cache; and, for the
 * note, one pass over a 48 MB buffer, where memory bandwidth rules. */
static void bench_codecs(struct bench *b)
{
	static const char *const names[] = {"libb64", "scalar", "avx2",
					    "avx512"};
	size_t n = (size_t)(48e6 * b->scale) / 3 * 3, chunk = FS_IO_CHUNK;
	int reps = (int)(n / chunk);
	char *raw = malloc(n), *text = malloc(B64_ENCODED_MAX(n)),
	     *back = malloc(n + 8);
	for (size_t i = 0; i < n && raw; i++)
		raw[i] = (char)(i * 2654435761u >> 13);
	double base[2] = {0, 0};
	for (int c = 0; c < 4 && raw && text && back; c++) {
		if (codec_select(names[c]) < 0)
			continue;
		for (int dir = 0; dir < 2; dir++) {
			double runs[9], big_runs[9];
			double mbs = codec_rate(b, dir, raw, text, back, chunk,
						reps, runs);
			double big =
			    codec_rate(b, dir, raw, text, back, n, 1, big_runs);
			char what[64], size[32];
			snprintf(what, sizeof(what), "codec %s %s",
				 dir ? "decode" : "encode", names[c]);
			cJSON *r = row(b, what, runs, b->runs, "MB/s");
			size_label(n, size, sizeof(size));
			if (c == 0) {
				base[dir] = mbs;
				note(r, "%s buffer: %.0f MB/s", size, big);
			} else {
				note(r, "%.1fx libb64; %s buffer: %.0f MB/s",
				     mbs / base[dir], size, big);
			}
		}
	}
	codec_select("auto");
	free(raw);
	free(text);
	free(back);
}

/* ---- 2. loopback and single transfers ---- */

/* The loopback reference: our own stream and iperf3's, run by turns;
 * the faster median becomes b->reference, and iperf3 -s stays up for
 * the transfers' paired runs (reference_once). Each row gives the range
 * of its runs: the machine's own speed moves. */
static void bench_reference(struct bench *b)
{
	uint64_t n = (uint64_t)(1e9 * b->scale);
	double own[9], ip[9];
	struct fs_status st, ip_st;
	int have_iperf = peers_iperf3_start(&b->iperf, &ip_st) == 0;
	struct cpu_use used = {0, 0};
	for (int r = 0; r < b->runs; r++) {
		own[r] = peers_loopback(n, &st);
		struct cpu_use mark = cpu_now(b->iperf.pid);
		if (have_iperf &&
		    (ip[r] = peers_iperf3_run(&b->iperf, n, &ip_st)) < 0)
			have_iperf = 0;
		cpu_add(&used, mark, b->iperf.pid);
	}
	if (!have_iperf && b->iperf.pid > 0)
		peers_stop(&b->iperf);
	double mine = median(own, b->runs), theirs = 0;
	char size[32];
	cJSON *r = row(b, "loopback TCP, one stream, fileserv's own", own,
		       b->runs, "MB/s");
	if (have_iperf)
		theirs = median(ip, b->runs);
	b->reference = theirs > mine ? theirs : mine;
	b->reference_name = theirs > mine ? "iperf3" : "own stream";
	note(r, "128 KB sends to another process, as iperf3 does%s",
	     theirs > mine ? "" : "; the reference");
	if (have_iperf) {
		r = row(b, "loopback TCP, one stream, iperf3", ip, b->runs,
			"MB/s");
		note(r, "iperf3 -c -n %s (CPU: sender / receiver)%s",
		     size_label(n, size, sizeof(size)),
		     theirs > mine ? "; the reference" : "");
		cpu_note(r, used, (double)n * b->runs / 1e9, "GB");
	} else
		skipped(b, "loopback TCP, one stream, iperf3", "MB/s",
			ip_st.message);
}

/* One run of the reference stream, to pair with a transfer's run; MB/s,
 * or -1. */
static double reference_once(struct bench *b)
{
	uint64_t n = (uint64_t)(1e9 * b->scale);
	struct fs_status st;
	return strcmp(b->reference_name, "iperf3") == 0
		   ? peers_iperf3_run(&b->iperf, n, &st)
		   : peers_loopback(n, &st);
}

/* The note of a transfer row: the median of its runs' ratios to the
 * reference run just before each, their range, and the same against
 * the base64 ceiling. Pairing keeps a change of the machine's speed
 * between the reference row and this one out of the ratio. */
static void note_transfer(const struct bench *b, cJSON *r, double *ratio, int n)
{
	double m = median(ratio, n);
	note(r,
	     "%.2f of loopback (%s, paired runs %.2f-%.2f), %.2f of the "
	     "base64 ceiling",
	     m, b->reference_name, smallest(ratio, n), largest(ratio, n),
	     m / 0.75);
}

/* The row what: median MB/s of a get (put = 0) or put of path as name,
 * against the reference and the ceiling, with each side's CPU per GB. */
static void transfer_row(struct bench *b, const struct fs_client *c,
			 pid_t server, const char *path, int put,
			 const char *what)
{
	double t[9], ratio[9];
	uint64_t bytes = 0;
	struct cpu_use used = {0, 0};
	for (int r = 0; r < b->runs; r++) {
		settle(b);
		double ref = reference_once(b);
		struct fs_result res;
		struct fs_status st;
		struct fs_sink sink = {client_discard, NULL};
		int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
		off_t size = lseek(fd, 0, SEEK_END);
		lseek(fd, 0, SEEK_SET);
		struct cpu_use mark = cpu_now(server);
		rc = put ? client_put(c, "bench", fd, (uint64_t)size, NULL,
				      NULL, &res, &st)
			 : client_get(c, "bench", &sink, &res, &st);
		cpu_add(&used, mark, server);
		close(fd);
		client_result_free(&res);
		if (rc < 0) {
			skipped(b, what, "MB/s", st.message);
			return;
		}
		t[r] = res.seconds;
		bytes = res.bytes;
		ratio[r] = bytes / t[r] / 1e6 / (ref > 0 ? ref : b->reference);
	}
	for (int r = 0; r < b->runs; r++)
		t[r] = bytes / t[r] / 1e6; /* MB/s */
	cJSON *r = row(b, what, t, b->runs, "MB/s");
	note_transfer(b, r, ratio, b->runs);
	cpu_note(r, used, (double)bytes * b->runs / 1e9, "GB");
}

/* Runs this executable with args (NULL-terminated) and waits; its exit
 * status, or -1. */
static int run_self(const char *const *args)
{
	pid_t pid = fork();
	if (pid == 0) {
		execv("/proc/self/exe", (char **)args);
		_exit(127); /* the child of fork(): exec failed */
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Milliseconds per run, into t, for `fileserv put FILE` then `fileserv
 * get -f` into a file that exists already, two whole processes; 0, or -1
 * on failure. Adds each side's CPU over the counted runs to used. */
static int round_trip(struct bench *b, pid_t pid, int port, const char *file,
		      struct cpu_use *used, double *t)
{
	char server[32], out[128];
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	snprintf(out, sizeof(out), "%s/round-trip", b->dir);
	const char *put[] = {"fileserv", "-q", "-s", server,
			     "put",	 file, "rt", NULL};
	const char *get[] = {"fileserv", "-q", "-s", server, "get",
			     "rt",	 "-o", out,  "-f",   NULL};
	settle(b);
	for (int r = -1; r < b->runs; r++) { /* run -1 makes the file */
		struct cpu_use mark = cpu_now(pid);
		double t0 = clock_now();
		if (run_self(put) != 0 || run_self(get) != 0)
			return -1;
		if (r >= 0) {
			t[r] = (clock_now() - t0) * 1e3;
			cpu_add(used, mark, pid);
		}
	}
	unlink(out);
	return 0;
}

static void bench_transfers(struct bench *b, const char *file,
			    const char *file10)
{
	bench_reference(b);
	for (int sync = 0; sync < 2; sync++) {
		const char *args[] = {"--quiet", "--port",
				      "0",	 "--storage",
				      b->dir,	 sync ? NULL : "--no-sync",
				      NULL};
		int port;
		struct fs_status st;
		pid_t pid = server_spawn(args, &port, &st);
		if (pid < 0) {
			fprintf(stderr, "fileserv bench: %s\n", st.message);
			break;
		}
		struct fs_client c;
		char ps[16];
		snprintf(ps, sizeof(ps), "%d", port);
		client_init(&c, "127.0.0.1", ps, NULL);
		char what[80], size[32];
		size_label(b->big, size, sizeof(size));
		snprintf(what, sizeof(what), "put %s, %s", size,
			 sync ? "fsync" : "--no-sync");
		transfer_row(b, &c, pid, file, 1, what);
		if (!sync) {
			snprintf(what, sizeof(what), "get %s", size);
			transfer_row(b, &c, pid, file, 0, what);
			struct cpu_use used = {0, 0};
			double ms[9];
			int failed =
			    round_trip(b, pid, port, file10, &used, ms) < 0;
			snprintf(what, sizeof(what),
				 "put + get %s, two processes, files",
				 size_label(b->mid, size, sizeof(size)));
			if (failed) {
				skipped(b, what, "ms", "a put or get failed");
			} else {
				cJSON *r = row(b, what, ms, b->runs, "ms");
				note(r,
				     "whole `fileserv put` and `get -f` over "
				     "an existing file, --no-sync server");
				cpu_note(r, used, b->runs, "round trip");
			}
		}
		server_reap(pid, 10);
	}
	if (b->iperf.pid > 0)
		peers_stop(&b->iperf);
}

/* ---- 3 and 4: concurrent clients ---- */

/* Peak RSS in kB of a server: the largest of its processes. */
static long server_peak_kb(pid_t pid)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd),
		 "for p in %d $(cat /proc/%d/task/*/children 2>/dev/null); do "
		 "grep VmHWM /proc/$p/status; done",
		 (int)pid, (int)pid);
	FILE *f = popen(cmd, "r");
	long best = 0, kb;
	char line[128];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld", &kb) == 1 && kb > best)
			best = kb;
	if (f)
		pclose(f);
	return best;
}

struct stress_out {
	double throughput, p50, p99, ok_per_s;
	uint64_t ok, failed, bytes;
	long client_kb;
};

/* Runs the stress in a forked child so that its peak RSS is its own. */
static int stress_child(const struct stress_config *cfg, struct stress_out *out)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		struct stress_result res;
		struct fs_status st;
		struct stress_out o = {0};
		if (stress_run(cfg, &res, &st) == 0) {
			struct rusage self, kids;
			getrusage(RUSAGE_SELF, &self);
			getrusage(RUSAGE_CHILDREN, &kids);
			o.throughput = res.total.bytes / res.wall / 1e6;
			o.p50 = hist_quantile(&res.total.latency, 0.5) / 1e6;
			o.p99 = hist_quantile(&res.total.latency, 0.99) / 1e6;
			o.ok = res.total.ok;
			o.bytes = res.total.bytes;
			o.failed = res.total.failed;
			o.ok_per_s = res.total.ok / res.wall;
			o.client_kb = self.ru_maxrss > kids.ru_maxrss
					  ? self.ru_maxrss
					  : kids.ru_maxrss;
		}
		/* the measuring child of fork() ends here */
		_exit(write(p[1], &o, sizeof(o)) == sizeof(o) ? 0 : 1);
	}
	close(p[1]);
	ssize_t n = read(p[0], out, sizeof(*out));
	close(p[0]);
	waitpid(pid, NULL, 0);
	return n == sizeof(*out) ? 0 : -1;
}

/* A --no-sync server with 5 workers in mode, taking clients connections
 * at once (its default cap is 4096). */
static pid_t start_pool(struct bench *b, const char *mode, int clients,
			struct fs_client *c)
{
	char cap[16];
	snprintf(cap, sizeof(cap), "%d",
		 clients + 64 > 4096 ? clients + 64 : 4096);
	const char *args[] = {
	    "--quiet",	   "--port", "0",	  "--storage", b->dir,
	    "--mode",	   mode,     "--workers", "5",	       "--no-sync",
	    "--max-conns", cap,	     NULL};
	int port;
	struct fs_status st;
	pid_t pid = server_spawn(args, &port, &st);
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	if (pid > 0)
		client_init(c, "127.0.0.1", ps, NULL);
	else
		fprintf(stderr, "fileserv bench: %s\n", st.message);
	return pid;
}

/* Uploads path as name, for the stress runs to download. */
static void put_file(const struct fs_client *c, const char *path,
		     const char *name, uint64_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct fs_result res;
	client_put(c, name, fd, size, NULL, NULL, &res, NULL);
	client_result_free(&res);
	close(fd);
}

/* One row: clients download file (size bytes) once each per run, verified,
 * from 5 workers in the given mode (thread or process, the client's pool
 * the same). */
static void concurrent_row(struct bench *b, int process, const char *file,
			   const char *name, uint64_t size, int clients,
			   const char *why)
{
	static const char *const modes[] = {"thread", "process"};
	struct stress_config cfg = {.op = STRESS_DOWNLOAD,
				    .file = file,
				    .name = name,
				    .clients = clients,
				    .iterations = 1,
				    .verify = 1,
				    .processes = process};
	pid_t pid = start_pool(b, modes[process], clients, &cfg.server);
	if (pid < 0)
		return;
	put_file(&cfg.server, file, name, size);
	settle(b);
	struct stress_out o[9] = {{0}};
	double tp[9], p50[9], p99[9];
	long ckb = 0;
	uint64_t failed = 0, bytes = 0;
	struct cpu_use used = {0, 0};
	for (int r = 0; r < b->runs; r++) {
		struct cpu_use mark = cpu_now(pid);
		stress_child(&cfg, &o[r]);
		cpu_add(&used, mark, pid);
		bytes += o[r].bytes;
		tp[r] = o[r].throughput;
		p50[r] = o[r].p50;
		p99[r] = o[r].p99;
		failed += o[r].failed + (o[r].ok != (uint64_t)clients);
		if (o[r].client_kb > ckb)
			ckb = o[r].client_kb;
	}
	char what[80], label[32];
	snprintf(what, sizeof(what), "%d x %s downloads, 5 workers, %s",
		 clients, size_label(size, label, sizeof(label)),
		 modes[process]);
	cJSON *row_ = row(b, what, tp, b->runs, "MB/s");
	note(row_,
	     "p50 %.0f ms, p99 %.0f ms; peak RSS server %.1f MB, client %.1f "
	     "MB; %s%s",
	     median(p50, b->runs), median(p99, b->runs),
	     server_peak_kb(pid) / 1024.0, ckb / 1024.0,
	     failed ? "SOME FAILED" : "all verified", why);
	cpu_note(row_, used, (double)bytes / 1e9, "GB");
	server_reap(pid, 10);
}

static void bench_concurrent(struct bench *b, const char *file10)
{
	for (int m = 0; m < 2; m++)
		concurrent_row(b, m, file10, "bench10", b->mid, 50, "");
}

/* 10,000 clients of 1 MB files from one stress process (the event
 * engine), as many as the descriptor limit lets both the client and the
 * server open (the soft limit is raised to the hard one first). */
static void bench_many(struct bench *b, const char *file1m)
{
	int want = (int)(10000 * b->scale), clients = want;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur != RLIM_INFINITY &&
		    (rlim_t)clients + 256 > rl.rlim_cur)
			clients =
			    rl.rlim_cur > 512 ? (int)rl.rlim_cur - 256 : 256;
	}
	char why[96] = "";
	if (clients < want)
		snprintf(why, sizeof(why),
			 "; %d clients wanted, the descriptor limit allows %d",
			 want, clients);
	concurrent_row(b, 0, file1m, "bench1m", b->small, clients, why);
}

/* nginx serving a copy of the 1 KB file as dir/nginx/www/f1k. */
static int start_nginx(struct bench *b, struct peer *ng, char *dir, size_t len,
		       struct fs_status *st)
{
	char www[160];
	snprintf(dir, len, "%s/nginx", b->dir);
	snprintf(www, sizeof(www), "%s/www", dir);
	if ((mkdir(dir, 0755) < 0 || mkdir(www, 0755) < 0) && errno != EEXIST)
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", www,
			       strerror(errno));
	snprintf(www, sizeof(www), "%s/www/f1k", dir);
	if (testdata_make(www, 1000, 3) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", www,
			       strerror(errno));
	return peers_nginx_start(ng, dir, st);
}

/* 1 KB GETs, one connection each, 50 clients: fileserv's client and
 * server in both modes and nginx with wrk, by turns. */
static void bench_gets(struct bench *b, const char *file1k)
{
	static const char *const modes[] = {"thread", "process"};
	struct stress_config cfg[2];
	pid_t pid[2];
	for (int m = 0; m < 2; m++) {
		cfg[m] = (struct stress_config){.op = STRESS_DOWNLOAD,
						.file = file1k,
						.name = "bench1k",
						.clients = 50,
						.duration = 3 * b->scale,
						.verify = 1,
						.processes = m};
		pid[m] = start_pool(b, modes[m], 50, &cfg[m].server);
		if (pid[m] < 0)
			return;
		put_file(&cfg[m].server, file1k, "bench1k", 1000);
	}
	struct peer ng = {-1, 0};
	struct fs_status ng_st;
	char dir[128];
	int nginx = start_nginx(b, &ng, dir, sizeof(dir), &ng_st) == 0;
	settle(b);
	double rate[3][9], gets[3] = {0, 0, 0};
	struct cpu_use used[3] = {{0, 0}, {0, 0}, {0, 0}};
	for (int r = 0; r < b->runs; r++) {
		for (int m = 0; m < 2; m++) {
			struct stress_out o = {0};
			struct cpu_use mark = cpu_now(pid[m]);
			stress_child(&cfg[m], &o);
			cpu_add(&used[m], mark, pid[m]);
			rate[m][r] = o.ok_per_s;
			gets[m] += (double)o.ok;
		}
		struct cpu_use mark = cpu_now(ng.pid);
		double n = 0;
		if (nginx &&
		    (rate[2][r] = peers_wrk_run(&ng, "f1k", 50, cfg[0].duration,
						&n, &ng_st)) < 0)
			nginx = 0;
		cpu_add(&used[2], mark, ng.pid);
		gets[2] += n;
	}
	if (ng.pid > 0)
		peers_stop(&ng);
	double fs[2], theirs = nginx ? median(rate[2], b->runs) : 0;
	for (int m = 0; m < 2; m++) {
		char what[80];
		snprintf(what, sizeof(what), "1 KB GETs, 50 clients, %s",
			 modes[m]);
		cJSON *r = row(b, what, rate[m], b->runs, "GET/s");
		fs[m] = median(rate[m], b->runs);
		if (nginx)
			note(r, "one connection per request; %.2fx nginx",
			     fs[m] / theirs);
		else
			note(r, "one connection per request");
		cpu_note(r, used[m], gets[m], "GET");
		server_reap(pid[m], 10);
	}
	const char *what = "1 KB GETs, 50 connections, nginx + wrk";
	if (nginx) {
		cJSON *r = row(b, what, rate[2], b->runs, "GET/s");
		note(r, "one nginx worker, wrk -t 2 -c 50, Connection: close "
			"(CPU: wrk / nginx)");
		cpu_note(r, used[2], gets[2], "GET");
	} else
		skipped(b, what, "GET/s", ng_st.message);
}

/* ---- output ---- */

/* The CPU column: each side's seconds per GB, or per GET or round trip
 * in the unit that suits them. */
static void cpu_cell(const cJSON *cpu, char *out, size_t len)
{
	const cJSON *c = cJSON_GetObjectItem(cpu, "client"),
		    *s = cJSON_GetObjectItem(cpu, "server");
	const char *per = cJSON_GetStringValue(cJSON_GetObjectItem(cpu, "per"));
	if (!cJSON_IsNumber(c) || !cJSON_IsNumber(s) || !per)
		return;
	if (strcmp(per, "GB") == 0)
		snprintf(out, len, "%.2f/%.2f s/GB", c->valuedouble,
			 s->valuedouble);
	else if (c->valuedouble < 1e-3)
		snprintf(out, len, "%.0f/%.0f us/%s", c->valuedouble * 1e6,
			 s->valuedouble * 1e6, per);
	else
		snprintf(out, len, "%.1f/%.1f ms", c->valuedouble * 1e3,
			 s->valuedouble * 1e3);
}

static void print_table(const struct bench *b)
{
	char cpu[128] = "unknown CPU", line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "model name : %127[^\n]", cpu) == 1)
			break;
	if (f)
		fclose(f);
	printf("fileserv %s bench: %ld cores, %s; codec auto = %s; "
	       "median of %d run%s%s\n\n",
	       FILESERV_VERSION, sysconf(_SC_NPROCESSORS_ONLN), cpu,
	       codec_name(), b->runs, b->runs == 1 ? "" : "s",
	       b->scale < 1 ? "; --quick: smaller files and shorter runs, "
			      "not comparable with a full run"
			    : "");
	printf("%-42s %12s  %-11s %-19s %s\n", "measurement", "median", "runs",
	       "CPU client/server", "note");
	const cJSON *r;
	cJSON_ArrayForEach(r, b->rows)
	{
		const char *n =
		    cJSON_GetStringValue(cJSON_GetObjectItem(r, "note"));
		const cJSON *v = cJSON_GetObjectItem(r, "value");
		const cJSON *lo = cJSON_GetObjectItem(r, "min"),
			    *hi = cJSON_GetObjectItem(r, "max");
		char value[32] = "-", range[40] = "", cpu[40] = "";
		if (cJSON_IsNumber(v))
			snprintf(value, sizeof(value), "%.0f", v->valuedouble);
		if (cJSON_IsNumber(lo) && cJSON_IsNumber(hi))
			snprintf(range, sizeof(range), "%.0f-%.0f",
				 lo->valuedouble, hi->valuedouble);
		cpu_cell(cJSON_GetObjectItem(r, "cpu"), cpu, sizeof(cpu));
		printf("%-42s %7s %-5s %-11s %-19s %s\n",
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "what")),
		       value,
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "unit")),
		       range, cpu, n ? n : "");
	}
}

static const char bench_usage[] =
    "usage: fileserv bench [--runs N] [--quick] [--json] [-q]\n"
    "\n"
    "Measures, side by side in one run: the base64 codecs; loopback TCP,\n"
    "one stream of its own and iperf3's (when installed; the faster is\n"
    "the reference); 100 MB get and put through a real server against\n"
    "it (each run paired with a reference run just before it) and the\n"
    "base64 ceiling (3/4 of it); a 10 MB put + get of files\n"
    "by two fileserv processes; 50 concurrent 10 MB downloads against 5\n"
    "workers (thread and process); 10,000 concurrent 1 MB downloads from\n"
    "one stress process, with its peak memory (fewer when the descriptor\n"
    "limit is lower; the row says so); 1 KB GETs per second with 50 clients,\n"
    "beside nginx (one worker) driven by wrk when both are installed.\n"
    "Prints the median of --runs runs (default 5) and their range, and\n"
    "where a row runs a client and a server, each side's CPU per GB,\n"
    "GET or round trip (client/server; iperf3: sender/receiver;\n"
    "wrk/nginx). On loopback a packet's receive work is charged to its\n"
    "sender, so each side's figure includes some of its peer's. On a\n"
    "terminal, each row is shown on stderr as it is measured (not with\n"
    "-q).\n"
    "\n"
    "  -r, --runs N   runs per measurement, 1-9 (default 5)\n"
    "      --quick    small sizes and one run, for a smoke test (rows\n"
    "                 name the sizes actually used)\n"
    "  -j, --json     the rows as a JSON array\n";

enum { OPT_QUICK = 256 };

struct bench_cli {
	struct bench *b;
	int json;
};

static int bench_option(void *ctx, int ch, const char *arg,
			struct fs_status *st)
{
	struct bench_cli *bc = ctx;
	long runs;
	if (ch == 'r') {
		if (units_parse_long(arg, 1, 9, "run count", &runs, st) < 0)
			return -1;
		bc->b->runs = (int)runs;
	} else if (ch == OPT_QUICK) {
		bc->b->runs = 1;
		bc->b->scale = 0.02;
	} else {
		bc->json = 1;
	}
	return 0;
}

static const struct option bench_long[] = {
    {"runs", required_argument, NULL, 'r'},
    {"quick", no_argument, NULL, OPT_QUICK},
    {"json", no_argument, NULL, 'j'},
    {NULL, 0, NULL, 0},
};

static const struct cmdline_spec bench_spec = {
    .usage = bench_usage,
    .shortopts = "r:j",
    .longopts = bench_long,
    .globals = CMDLINE_QUIET,
    .no_operands = 1,
    .option = bench_option,
};

int bench_main(struct cmdline *cl, int argc, char **argv)
{
	struct bench b = {.runs = 5, .scale = 1};
	struct bench_cli bc = {.b = &b};
	struct fs_status st;
	int at = cmdline_parse(cl, &bench_spec, &bc, argc, argv, &st);
	if (at == 0)
		return 0;
	if (at < 0)
		return cmdline_usage_error(cl, &st);
	int json = bc.json;
	snprintf(b.dir, sizeof(b.dir), "/tmp/fileserv-bench-XXXXXX");
	if (!mkdtemp(b.dir)) {
		perror("fileserv bench: mkdtemp");
		return 3;
	}
	char f100[128], f10[128], f1m[128], f1k[128];
	snprintf(f100, sizeof(f100), "%s/f100", b.dir);
	snprintf(f10, sizeof(f10), "%s/f10", b.dir);
	snprintf(f1m, sizeof(f1m), "%s/f1m", b.dir);
	snprintf(f1k, sizeof(f1k), "%s/f1k", b.dir);
	b.big = (uint64_t)(100e6 * b.scale);
	b.mid = (uint64_t)(10e6 * b.scale);
	b.small = (uint64_t)(1e6 * b.scale);
	if (testdata_make(f100, b.big, 1) < 0 ||
	    testdata_make(f10, b.mid, 2) < 0 ||
	    testdata_make(f1m, b.small, 4) < 0 ||
	    testdata_make(f1k, 1000, 3) < 0) {
		perror("fileserv bench: test files");
		return 3;
	}
	b.rows = cJSON_CreateArray();
	b.progress = !cl->quiet && isatty(STDERR_FILENO);
	settle(&b); /* the test files just made */
	bench_codecs(&b);
	bench_transfers(&b, f100, f10);
	bench_concurrent(&b, f10);
	bench_many(&b, f1m);
	bench_gets(&b, f1k);
	if (b.progress)
		fputs("\r\033[K", stderr);
	if (json) {
		char *text = cJSON_Print(b.rows);
		printf("%s\n", text);
		free(text);
	} else {
		print_table(&b);
	}
	cJSON_Delete(b.rows);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b.dir);
	return system(cmd) == 0 ? 0 : 3;
}
