/* stress.c: the stress engine: N concurrent client workers, threads or
 * forked processes, each running the same workload and keeping its own
 * tally (counters, error classes, latency histogram) with no locks; the
 * parent merges the tallies after join or waitpid (process workers write
 * theirs into a shared mapping). Plain operations are pure C through the
 * client API; a scripted scenario runs through hooks that the Lua glue
 * provides, one Lua state per worker, so the engine knows nothing of Lua.
 * All workers are released at once from a barrier; each notes its own
 * start and end, and the wall time runs from the first start to the last
 * end, so that it never depends on when the parent got the CPU. */
#include "fileserv.h"
#include "client.h"
#include "clock.h"
#include "conn.h"
#include "stats.h"
#include "stress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const op_names[] = {"upload", "download", "list", "script"};

const char *stress_op_name(enum stress_op op)
{
	return op_names[op];
}

int stress_op_parse(const char *text, enum stress_op *op)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(text, op_names[i]) == 0) {
			*op = i;
			return 0;
		}
	return -1;
}

/* ---- one worker ---- */

struct worker {
	const struct stress_config *cfg;
	int id;
	struct stress_tally *tally;
	int ref_fd;	/* local copy to verify downloads against */
	int release_fd; /* process workers wait for EOF on it */
	pthread_barrier_t *barrier;
	void *script;
	struct verify_sink *verify;
};

struct verify_sink {
	int fd;
	uint64_t size;	 /* of the reference, when the worker started */
	int cached;	 /* the whole reference is in buf */
	uint64_t offset; /* of the next downloaded byte */
	int mismatch;
	char buf[256 * 1024];
};

/* Opens the verifier on the reference: its size, and its bytes when they
 * fit the buffer (small files are then compared without a read). */
static void verify_open(struct verify_sink *v, int fd)
{
	struct stat sb;
	v->fd = fd;
	v->cached = 0;
	v->size = fd >= 0 && fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	if (fd >= 0 && v->size <= sizeof(v->buf))
		v->cached = pread(fd, v->buf, v->size, 0) == (ssize_t)v->size;
}

/* Compares downloaded bytes with the local reference at the same offset. */
static int verify_write(void *ctx, const void *data, size_t len)
{
	struct verify_sink *v = ctx;
	const char *p = data;
	if (v->cached && len > 0) {
		if (v->offset + len > v->size ||
		    memcmp(v->buf + v->offset, p, len) != 0) {
			v->mismatch = 1;
			errno = EIO;
			return -1;
		}
		v->offset += len;
		return 0;
	}
	while (len > 0 && v->fd >= 0) {
		size_t n = len < sizeof(v->buf) ? len : sizeof(v->buf);
		ssize_t got = pread(v->fd, v->buf, n, (off_t)v->offset);
		if (got <= 0 || memcmp(v->buf, p, (size_t)got) != 0) {
			v->mismatch = 1;
			errno = EIO;
			return -1;
		}
		v->offset += (uint64_t)got;
		p += got;
		len -= (size_t)got;
	}
	return 0;
}

static int op_download(struct worker *w, struct fs_result *res,
		       struct fs_status *st)
{
	struct verify_sink *v = w->verify;
	if (!v)
		return fs_fail(st, FS_ERR_LOCAL, "out of memory");
	v->offset = 0;
	v->mismatch = 0;
	struct fs_sink sink = {verify_write, v};
	int rc = client_get(&w->cfg->server, w->cfg->name, &sink, res, st);
	if (rc == 0 && v->fd >= 0 && v->size != res->bytes)
		v->mismatch = 1;
	if (v->mismatch)
		return fs_fail(st, FS_ERR_MISMATCH,
			       "%s: downloaded bytes differ from %s",
			       w->cfg->name, w->cfg->file);
	if (rc == 0 && v->fd >= 0)
		w->tally->verified += res->bytes;
	return rc;
}

static int op_upload(struct worker *w, struct fs_result *res,
		     struct fs_status *st)
{
	struct stat sb;
	if (fstat(w->ref_fd, &sb) < 0 || lseek(w->ref_fd, 0, SEEK_SET) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", w->cfg->file,
			       strerror(errno));
	return client_put(&w->cfg->server, w->cfg->name, w->ref_fd,
			  (uint64_t)sb.st_size, NULL, NULL, res, st);
}

/* One operation or scenario step; returns 0 or -1 with st set. */
static int worker_step(struct worker *w, long iteration, struct fs_status *st)
{
	const struct stress_config *cfg = w->cfg;
	struct fs_result res = {0};
	int rc;
	switch (cfg->op) {
	case STRESS_UPLOAD:
		rc = op_upload(w, &res, st);
		break;
	case STRESS_DOWNLOAD:
		rc = op_download(w, &res, st);
		break;
	case STRESS_LIST:
		rc = client_request(&cfg->server, CMD_LIST, NULL, &res, st);
		break;
	default:
		return cfg->hooks->step(w->script, w->id, iteration, st);
	}
	if (rc == 0)
		w->tally->bytes += res.bytes;
	client_result_free(&res);
	return rc;
}

static void tally_step(struct stress_tally *t, int rc,
		       const struct fs_status *st, double seconds)
{
	hist_record(&t->latency, (uint64_t)(seconds * 1e9));
	t->busy += seconds;
	if (rc == 0) {
		t->ok++;
		return;
	}
	t->failed++;
	t->errors[st->code < FS_ERR_COUNT ? st->code : FS_ERR_PROTOCOL]++;
	if (!t->first_error[0])
		snprintf(t->first_error, sizeof(t->first_error), "%s: %.180s",
			 fs_error_name(st->code), st->message);
}

static void worker_wait_release(struct worker *w)
{
	if (w->barrier) {
		pthread_barrier_wait(w->barrier);
	} else {
		char ch;
		while (read(w->release_fd, &ch, 1) < 0 && errno == EINTR)
			;
	}
}

static void worker_run(struct worker *w)
{
	const struct stress_config *cfg = w->cfg;
	struct fs_status st = {0};
	hist_init(&w->tally->latency);
	if (cfg->op == STRESS_DOWNLOAD &&
	    (w->verify = malloc(sizeof(*w->verify))))
		verify_open(w->verify, cfg->verify ? w->ref_fd : -1);
	if (cfg->op == STRESS_SCRIPT &&
	    !(w->script =
		  cfg->hooks->start(cfg->hooks->ctx, w->id, w->tally, &st)))
		tally_step(w->tally, -1, &st, 0);
	worker_wait_release(w);
	w->tally->start = clock_now();
	double end = cfg->duration > 0 ? w->tally->start + cfg->duration : 0;
	for (long i = 0; w->script || cfg->op != STRESS_SCRIPT; i++) {
		if (end ? clock_now() >= end : i >= cfg->iterations)
			break;
		double t0 = clock_now();
		int rc = worker_step(w, i, &st);
		tally_step(w->tally, rc, &st, clock_now() - t0);
	}
	w->tally->end = clock_now();
	if (w->script)
		cfg->hooks->stop(w->script);
	free(w->verify);
}

static void *worker_thread(void *arg)
{
	worker_run(arg);
	return NULL;
}

/* ---- the pool of workers ---- */

static int run_threads(struct worker *w, int n)
{
	pthread_barrier_t barrier;
	pthread_t *tids = calloc((size_t)n, sizeof(*tids));
	if (!tids || pthread_barrier_init(&barrier, NULL, (unsigned)n + 1)) {
		free(tids);
		return -1;
	}
	int started = 0;
	for (; started < n; started++) {
		w[started].barrier = &barrier;
		if (pthread_create(&tids[started], NULL, worker_thread,
				   &w[started]))
			break;
	}
	if (started < n) /* cannot happen short of resource exhaustion */
		abort();
	pthread_barrier_wait(&barrier);
	for (int i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
	pthread_barrier_destroy(&barrier);
	free(tids);
	return 0;
}

static int run_processes(struct worker *w, int n)
{
	int release[2];
	pid_t *pids = calloc((size_t)n, sizeof(*pids));
	if (!pids || pipe2(release, O_CLOEXEC) < 0) {
		free(pids);
		return -1;
	}
	pid_t parent = getpid();
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(release[1]);
			w[i].release_fd = release[0];
			if (getppid() == parent)
				worker_run(&w[i]);
			_exit(0);
		}
	}
	close(release[0]);
	close(release[1]); /* EOF releases every worker at once */
	for (int i = 0; i < n; i++)
		while (pids[i] > 0 && waitpid(pids[i], NULL, 0) < 0 &&
		       errno == EINTR)
			;
	free(pids);
	return 0;
}

static void merge(struct stress_result *res, const struct stress_tally *t,
		  int n)
{
	struct stress_tally *all = &res->total;
	hist_init(&all->latency);
	double first = t[0].start, last = t[0].end;
	for (int i = 0; i < n; i++) {
		if (t[i].start < first)
			first = t[i].start;
		if (t[i].end > last)
			last = t[i].end;
		all->ok += t[i].ok;
		all->failed += t[i].failed;
		all->bytes += t[i].bytes;
		all->verified += t[i].verified;
		for (int e = 0; e < FS_ERR_COUNT; e++)
			all->errors[e] += t[i].errors[e];
		hist_merge(&all->latency, &t[i].latency);
		if (!all->first_error[0])
			memcpy(all->first_error, t[i].first_error,
			       sizeof(all->first_error));
		res->client_time += t[i].busy / n;
		if (t[i].busy > 0)
			res->client_rate += (double)t[i].bytes / t[i].busy / n;
	}
	res->wall = last - first;
}

/* The server's success and failure counts, from STATS. */
static int server_counts(const struct fs_client *c, uint64_t *ok,
			 uint64_t *failed)
{
	struct fs_result res;
	struct fs_status st;
	int rc = client_request(c, CMD_STATS, NULL, &res, &st);
	cJSON *data = rc == 0 ? cJSON_GetObjectItem(res.reply, "data") : NULL;
	cJSON *s = cJSON_GetObjectItem(data, "succeeded");
	cJSON *f = cJSON_GetObjectItem(data, "failed");
	rc = cJSON_IsNumber(s) && cJSON_IsNumber(f) ? 0 : -1;
	if (rc == 0) {
		*ok = (uint64_t)s->valuedouble;
		*failed = (uint64_t)f->valuedouble;
	}
	client_result_free(&res);
	return rc;
}

/* The local file a worker reads: a descriptor, -1 when none is needed,
 * or -2 on error with st set. */
static int open_reference(const struct stress_config *cfg, struct fs_status *st)
{
	if (cfg->op == STRESS_UPLOAD && !cfg->file) {
		fs_fail(st, FS_ERR_USAGE, "upload needs a local file");
		return -2;
	}
	if (!cfg->file || (cfg->op != STRESS_UPLOAD &&
			   !(cfg->op == STRESS_DOWNLOAD && cfg->verify)))
		return -1;
	int fd = open(cfg->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fs_fail(st, FS_ERR_LOCAL, "%s: %s", cfg->file, strerror(errno));
		return -2;
	}
	return fd;
}

int stress_run(const struct stress_config *cfg, struct stress_result *res,
	       struct fs_status *st)
{
	memset(res, 0, sizeof(*res));
	int n = cfg->clients;
	size_t size = (size_t)n * sizeof(struct stress_tally);
	struct stress_tally *tallies = mmap(NULL, size, PROT_READ | PROT_WRITE,
					    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct worker *w = calloc((size_t)n, sizeof(*w));
	if (tallies == MAP_FAILED || !w) {
		free(w);
		return fs_fail(st, FS_ERR_LOCAL, "out of memory");
	}
	uint64_t ok0 = 0, failed0 = 0, ok1, failed1;
	int have_stats = server_counts(&cfg->server, &ok0, &failed0) == 0;
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		w[i] = (struct worker){
		    .cfg = cfg, .id = i + 1, .tally = &tallies[i]};
		w[i].ref_fd = open_reference(cfg, st);
		if (w[i].ref_fd == -2)
			rc = -1;
	}
	if (rc == 0)
		rc = cfg->processes ? run_processes(w, n) : run_threads(w, n);
	if (rc == 0) {
		merge(res, tallies, n);
		res->server_stats =
		    have_stats &&
		    server_counts(&cfg->server, &ok1, &failed1) == 0;
		res->server_succeeded = res->server_stats ? ok1 - ok0 : 0;
		res->server_failed = res->server_stats ? failed1 - failed0 : 0;
	}
	for (int i = 0; i < n; i++)
		if (w[i].ref_fd >= 0)
			close(w[i].ref_fd);
	munmap(tallies, size);
	free(w);
	return rc;
}

/* ---- the summary ---- */

static void add_latency(cJSON *obj, const struct histogram *h)
{
	cJSON *l = cJSON_AddObjectToObject(obj, "latency_ms");
	cJSON_AddNumberToObject(l, "min", h->n ? h->min_ns / 1e6 : 0);
	cJSON_AddNumberToObject(l, "mean", h->n ? h->sum_ns / h->n / 1e6 : 0);
	cJSON_AddNumberToObject(l, "p50", hist_quantile(h, 0.50) / 1e6);
	cJSON_AddNumberToObject(l, "p90", hist_quantile(h, 0.90) / 1e6);
	cJSON_AddNumberToObject(l, "p99", hist_quantile(h, 0.99) / 1e6);
	cJSON_AddNumberToObject(l, "max", h->max_ns / 1e6);
}

cJSON *stress_to_json(const struct stress_config *cfg,
		      const struct stress_result *res)
{
	const struct stress_tally *t = &res->total;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "op", stress_op_name(cfg->op));
	cJSON_AddStringToObject(o, "pool",
				cfg->processes ? "process" : "thread");
	cJSON_AddNumberToObject(o, "clients", cfg->clients);
	cJSON_AddNumberToObject(o, "ok", (double)t->ok);
	cJSON_AddNumberToObject(o, "failed", (double)t->failed);
	cJSON *e = cJSON_AddObjectToObject(o, "errors");
	for (int i = FS_ERR_SERVER; i < FS_ERR_COUNT; i++)
		cJSON_AddNumberToObject(e, fs_error_name(i),
					(double)t->errors[i]);
	if (t->first_error[0])
		cJSON_AddStringToObject(o, "first_error", t->first_error);
	cJSON_AddNumberToObject(o, "wall_s", res->wall);
	cJSON_AddNumberToObject(o, "bytes", (double)t->bytes);
	cJSON_AddNumberToObject(o, "verified_bytes", (double)t->verified);
	cJSON_AddNumberToObject(o, "throughput_Bps",
				res->wall > 0 ? t->bytes / res->wall : 0);
	cJSON_AddNumberToObject(o, "client_time_s", res->client_time);
	cJSON_AddNumberToObject(o, "client_throughput_Bps", res->client_rate);
	add_latency(o, &t->latency);
	if (res->server_stats) {
		cJSON *s = cJSON_AddObjectToObject(o, "server");
		cJSON_AddNumberToObject(s, "succeeded",
					(double)res->server_succeeded);
		cJSON_AddNumberToObject(s, "failed",
					(double)res->server_failed);
	} else {
		cJSON_AddNullToObject(o, "server");
	}
	return o;
}
