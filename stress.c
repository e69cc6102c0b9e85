/* stress.c: the stress engine: N concurrent client workers, threads or
 * forked processes, each running the same workload and keeping its own
 * tally (counters, error classes, latency histogram) with no locks; the
 * parent merges the tallies after join or waitpid (process workers write
 * theirs into a shared mapping). Plain operations are pure C through the
 * client API; a scripted scenario runs through hooks that the Lua glue
 * provides, one Lua state per worker, so the engine knows nothing of Lua.
 * All workers are released at once when the parent closes a pipe, or told
 * not to run when one of them could not start; each notes its own
 * start and end, and the wall time runs from the first start to the last
 * end, so that it never depends on when the parent got the CPU.
 *
 * In the closed loop each worker starts its next operation when the last
 * one ends. In the open model (wrk2's -R, k6's arrival rates) operations
 * start on a schedule (arrival.c) that replies cannot slow down: a free
 * worker takes the next arrival under a lock shared by threads and
 * processes alike, sleeps until its time on an absolute deadline, and
 * measures latency from that intended time. */
#include "fileserv.h"
#include "affinity.h"
#include "arrival.h"
#include "client.h"
#include "clock.h"
#include "interval.h"
#include "conn.h"
#include "event.h"
#include "stats.h"
#include "stress.h"
#include "threshold.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const op_names[] = {"upload", "download", "list", "script"};

/* ---- stopping early ---- */

static volatile sig_atomic_t stop_signal;  /* this process was asked */
static int *volatile stop_word;		   /* the running workload's */
static volatile sig_atomic_t worker_asked; /* a process worker's own */

void stress_interrupt(int sig)
{
	int *word = stop_word;
	stop_signal = sig;
	if (word)
		__atomic_store_n(word, sig, __ATOMIC_RELAXED);
}

int stress_interrupted(void)
{
	return stop_signal;
}

const char *stress_signal_name(int sig)
{
	static char other[32];
	if (sig == SIGINT)
		return "SIGINT";
	if (sig == SIGTERM)
		return "SIGTERM";
	snprintf(other, sizeof(other), "signal %d", sig);
	return other;
}

const char *stress_engine(const struct stress_config *cfg)
{
	if (cfg->processes)
		return "process";
	if (cfg->op == STRESS_SCRIPT ||
	    cfg->threads == STRESS_THREAD_PER_CLIENT)
		return "thread";
	return "event";
}

static int uses_event(const struct stress_config *cfg)
{
	return strcmp(stress_engine(cfg), "event") == 0;
}

int stress_threads_parse(const char *text, int *threads, struct fs_status *st)
{
	long n;
	if (strcmp(text, "per-client") == 0) {
		*threads = STRESS_THREAD_PER_CLIENT;
		return 0;
	}
	if (units_parse_long(text, 1, STRESS_THREADS_MAX, "thread count", &n,
			     st) < 0)
		return -1;
	*threads = (int)n;
	return 0;
}

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

int stress_plan(struct stress_config *cfg, struct arrival_plan *p,
		int iterations, const char *dash, struct fs_status *st)
{
	if (iterations)
		return fs_fail(st, FS_ERR_USAGE,
			       "%siterations is for the closed loop; with "
			       "%srate give %sduration",
			       dash, dash, dash);
	if (p->nstages && cfg->duration > 0)
		return fs_fail(st, FS_ERR_USAGE,
			       "%sstages set the duration; leave out "
			       "%sduration",
			       dash, dash);
	if (!p->nstages && cfg->duration <= 0)
		return fs_fail(st, FS_ERR_USAGE, "%srate needs %sduration",
			       dash, dash);
	/* the warm-up comes first, then the duration; stages hold both */
	p->duration = cfg->duration + cfg->warmup;
	if (arrival_check(p, st) < 0)
		return -1;
	if (p->nstages && arrival_length(p) <= cfg->warmup)
		return fs_fail(st, FS_ERR_USAGE,
			       "the stages last %gs, no more than %swarmup",
			       arrival_length(p), dash);
	cfg->duration = arrival_length(p) - cfg->warmup;
	cfg->plan = p;
	return 0;
}

int stress_ramp(struct stress_config *cfg, struct arrival_plan *p,
		int iterations, const char *dash, struct fs_status *st)
{
	double most = 0;
	if (iterations || cfg->duration > 0)
		return fs_fail(st, FS_ERR_USAGE,
			       "client stages set the duration; leave out "
			       "%sduration and %siterations",
			       dash, dash);
	for (int i = 0; i < p->nstages; i++) {
		double c = p->stage[i].rate;
		if (c != floor(c) || c > 10000)
			return fs_fail(st, FS_ERR_USAGE,
				       "invalid client stage %gs:%g (want a "
				       "whole number of clients, 0 to 10000)",
				       p->stage[i].seconds, c);
		most = c > most ? c : most;
	}
	if (most < 1)
		return fs_fail(st, FS_ERR_USAGE,
			       "the client stages never have a client");
	if (cfg->clients && cfg->clients < most)
		return fs_fail(st, FS_ERR_USAGE,
			       "a client stage asks for %g clients, more than "
			       "%sclients %d",
			       most, dash, cfg->clients);
	if (arrival_length(p) <= cfg->warmup)
		return fs_fail(st, FS_ERR_USAGE,
			       "the client stages last %gs, no more than "
			       "%swarmup",
			       arrival_length(p), dash);
	if (!cfg->clients)
		cfg->clients = (int)most;
	p->start_rate = 0;
	cfg->duration = arrival_length(p) - cfg->warmup;
	cfg->ramp = p;
	return 0;
}

/* ---- one worker ---- */

/* What the parent and its workers share (a MAP_SHARED mapping, so that
 * process workers see it as threads do). */
struct run_shared {
	double released; /* when the parent released the workers */
	int cancel;	 /* a worker could not start: the others do not run */
	int stop; /* every worker is to stop: the signal, or -1 (on_interval) */
	int running; /* thread workers that have not ended */
	/* the open model: the next arrival, taken under the lock (shared
	 * between processes) */
	pthread_mutex_t arrivals;
	uint64_t next_arrival;
	struct arrival_clock clock;
	struct stress_open_tally *open; /* one per worker, or NULL */
	struct stress_step_names step_names;
	struct stress_tally tally[];
	/* then, for a scenario, each worker's struct stress_steps */
};

/* In a process worker: a signal sent to it alone stops it alone. */
static void worker_on_signal(int sig)
{
	worker_asked = sig;
}

static int worker_stopped(const struct run_shared *shared)
{
	return worker_asked || __atomic_load_n(&shared->stop, __ATOMIC_RELAXED);
}

struct worker {
	const struct stress_config *cfg;
	int id;
	struct run_shared *shared;
	struct stress_tally *tally;
	struct stress_open_tally *open; /* open model only */
	int ref_fd;	/* local copy to verify downloads against */
	int release_fd; /* workers wait for EOF on it */
	int done_fd;	/* the last thread worker to end writes to it */
	void *script;
	struct verify_sink *verify;
	int clients;		 /* 1, or the clients of an event thread */
	int first;		 /* those before its first client */
	struct event_loop *loop; /* an event thread's */
	double warm;		 /* the end of the warm-up (monotonic), or 0 */
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
		__atomic_fetch_add(&w->tally->bytes, res.bytes,
				   __ATOMIC_RELAXED);
	client_result_free(&res);
	return rc;
}

static void tally_step(struct stress_tally *t, int rc,
		       const struct fs_status *st, double seconds)
{
	hist_record(&t->latency, (uint64_t)(seconds * 1e9));
	t->busy += seconds;
	if (rc == 0) {
		__atomic_fetch_add(&t->ok, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_fetch_add(&t->failed, 1, __ATOMIC_RELAXED);
	t->errors[st->code < FS_ERR_COUNT ? st->code : FS_ERR_PROTOCOL]++;
	if (!t->first_error[0])
		snprintf(t->first_error, sizeof(t->first_error), "%s: %.180s",
			 fs_error_name(st->code), st->message);
}

/* CPU seconds the calling thread has used (a process worker is one
 * thread, so for it this is also its process's). */
static void thread_cpu(double *user, double *system)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	*user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
	*system = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Forgets what was counted so far. */
static void tally_reset(struct stress_tally *t)
{
	struct stress_steps *steps = t->steps;
	/* all but `measuring`, which the interval monitor reads meanwhile
	 * (and which is 0 whenever a reset can happen) */
	size_t skip = offsetof(struct stress_tally, ok);
	memset((char *)t + skip, 0, sizeof(*t) - skip);
	hist_init(&t->latency);
	t->steps = steps;
	if (steps)
		steps->used = 0;
}

/* The index of step `name`, added if new; -1 when the table is full. */
static int step_index(struct stress_step_names *names, const char *name)
{
	int n = __atomic_load_n(&names->n, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++)
		if (strcmp(names->name[i], name) == 0)
			return i;
	while (__atomic_exchange_n(&names->lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
	int i = 0;
	n = names->n;
	while (i < n && strcmp(names->name[i], name) != 0)
		i++;
	if (i == n && n < STRESS_STEPS_MAX) {
		snprintf(names->name[n], STRESS_STEP_NAME_MAX, "%s", name);
		__atomic_store_n(&names->n, n + 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&names->lock, 0, __ATOMIC_RELEASE);
	return i < STRESS_STEPS_MAX ? i : -1;
}

int stress_step_record(struct stress_tally *t, const char *name, int ok,
		       double seconds, struct fs_status *st)
{
	struct stress_steps *steps = t->steps;
	if (!steps)
		return 0;
	if (strlen(name) >= STRESS_STEP_NAME_MAX)
		return fs_fail(st, FS_ERR_USAGE,
			       "step name '%.60s...' is longer than %d bytes",
			       name, STRESS_STEP_NAME_MAX - 1);
	int i = step_index(steps->names, name);
	if (i < 0)
		return fs_fail(st, FS_ERR_USAGE,
			       "step '%s': a run has at most %d step names",
			       name, STRESS_STEPS_MAX);
	struct stress_step_tally *s = &steps->step[i];
	if (!(steps->used & 1u << i)) {
		s->ok = s->failed = 0;
		hist_init(&s->latency);
		steps->used |= 1u << i;
	}
	hist_record(&s->latency, (uint64_t)(seconds * 1e9));
	if (ok)
		s->ok++;
	else
		s->failed++;
	return 0;
}

/* From now on the tally only grows: the interval monitor may read it. */
static void tally_measuring(struct stress_tally *t)
{
	__atomic_store_n(&t->measuring, 1, __ATOMIC_RELEASE);
}

/* The measured part starts at `start`; CPU is counted from now. */
static void tally_begin(struct stress_tally *t, double start)
{
	t->start = start;
	thread_cpu(&t->cpu_user, &t->cpu_system);
}

static void tally_end(struct stress_tally *t)
{
	double user, system;
	t->end = clock_now();
	if (t->end < t->start) /* stopped during the warm-up */
		t->end = t->start;
	thread_cpu(&user, &system);
	t->cpu_user = user - t->cpu_user;
	t->cpu_system = system - t->cpu_system;
}

/* Waits for the parent to close the release pipe; returns whether the
 * run goes ahead (it is cancelled when a worker could not start). */
static int worker_wait_release(struct worker *w)
{
	char ch;
	double released; /* acquired: the parent's writes before it are seen */
	while (read(w->release_fd, &ch, 1) < 0 && errno == EINTR)
		;
	__atomic_load(&w->shared->released, &released, __ATOMIC_ACQUIRE);
	return !__atomic_load_n(&w->shared->cancel, __ATOMIC_ACQUIRE);
}

/* Counts what a worker that did not finish its run left undone as failed
 * iterations of class "worker": the rest of its clients' iterations (in
 * a timed run, the one it was in), and why, in its tally. */
static void tally_lost(struct stress_tally *t, const struct stress_config *cfg,
		       const char *cause)
{
	uint64_t done = t->ok + t->failed, lost = 1;
	uint64_t all = (uint64_t)cfg->iterations * (uint64_t)t->clients;
	if (cfg->duration <= 0 && all > done)
		lost = all - done;
	t->failed += lost;
	t->errors[FS_ERR_WORKER] += lost;
	snprintf(t->lost, sizeof(t->lost), "%s (%llu iteration%s lost)", cause,
		 (unsigned long long)lost, lost == 1 ? "" : "s");
}

/* ---- the open model ---- */

static uint64_t to_ns(double seconds)
{
	return seconds > 0 ? (uint64_t)(seconds * 1e9) : 0;
}

static void open_reset(struct stress_open_tally *o)
{
	memset(o, 0, sizeof(*o));
	hist_init(&o->service);
	hist_init(&o->lateness);
}

/* The next arrival's intended start (monotonic clock) and its index in
 * *index; -1 once the plan has ended. An instance of a run spread over
 * several takes its own arrivals of the one schedule. */
static double arrival_take(struct run_shared *shared,
			   const struct segment *segment, long *index)
{
	pthread_mutex_lock(&shared->arrivals);
	uint64_t k = segment_arrival(segment, shared->next_arrival++);
	double t = arrival_clock_at(&shared->clock, k);
	pthread_mutex_unlock(&shared->arrivals);
	*index = (long)k;
	return t < 0 ? -1 : shared->released + t;
}

/* Sleeps until the monotonic time `when` on an absolute deadline (no
 * drift from rounding sleeps), waking at least every 50 ms to see whether
 * the run was stopped. */
static void sleep_until(const struct run_shared *shared, double when)
{
	for (double now;
	     (now = clock_now()) < when && !worker_stopped(shared);) {
		double until = when - now > 0.05 ? now + 0.05 : when;
		struct timespec ts = {
		    (time_t)until,
		    (long)((until - (double)(time_t)until) * 1e9)};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
}

/* An arrival due at `due` that a worker can start at t0: 0 to run it,
 * -1 when it is dropped as later than --max-late. Every engine counts
 * its arrivals here. */
static int open_begin(struct worker *w, double due, double t0)
{
	struct stress_open_tally *o = w->open;
	double late = t0 - due;
	if (!o)
		return 0;
	if (w->cfg->max_late > 0 && late > w->cfg->max_late) {
		o->dropped++;
		return -1;
	}
	if (o->started++ == 0)
		o->first_start = t0;
	o->last_start = t0;
	o->late += late > STRESS_LATE_S;
	hist_record(&o->lateness, to_ns(late));
	return 0;
}

/* Counts an operation due at `due` (its start, in the closed loop) that
 * started at t0 and ended at t1. One that ends in the warm-up resets the
 * tallies instead: what ends after it is what counts. */
static void worker_record(struct worker *w, int rc, const struct fs_status *st,
			  double due, double t0, double t1)
{
	tally_step(w->tally, rc, st, t1 - due);
	if (w->open)
		hist_record(&w->open->service, to_ns(t1 - t0));
	if (t1 < w->warm) {
		tally_reset(w->tally);
		tally_begin(w->tally, w->warm);
		if (w->open)
			open_reset(w->open);
	} else if (!w->tally->measuring) {
		tally_measuring(w->tally);
	}
}

/* The open model's loop: take the next arrival, wait for its time, run
 * it. Latency counts from the intended start, so time spent waiting for
 * a free worker (coordinated omission) is in it; the service time from
 * the actual start is kept beside it. */
static void worker_loop_open(struct worker *w)
{
	struct fs_status st = {0};
	long k;
	double due;
	while (!worker_stopped(w->shared) &&
	       (due = arrival_take(w->shared, &w->cfg->segment, &k)) >= 0) {
		sleep_until(w->shared, due);
		if (worker_stopped(w->shared))
			break;
		double t0 = clock_now();
		if (open_begin(w, due, t0) < 0)
			continue;
		int rc = worker_step(w, k, &st);
		worker_record(w, rc, &st, due, t0, clock_now());
	}
}

/* Client stages: waits until the plan lets worker w run (at least
 * w->id - 0.5 clients); 0 when the plan ends first or the run stops. */
static int worker_turn(struct worker *w)
{
	const struct run_shared *shared = w->shared;
	double released = shared->released;
	double t = arrival_time_reaching(w->cfg->ramp, w->id - 0.5,
					 clock_now() - released);
	if (t < 0)
		return 0;
	sleep_until(shared, released + t);
	return !worker_stopped(shared);
}

/* ---- the event engine's hooks: the same counting, per thread ---- */

static double hook_take(void *ctx, long *index)
{
	struct worker *w = ctx;
	return arrival_take(w->shared, &w->cfg->segment, index);
}

static int hook_begin(void *ctx, double due, double t0)
{
	return open_begin(ctx, due, t0);
}

static void hook_end(void *ctx, int rc, const struct fs_status *st,
		     uint64_t bytes, uint64_t verified, double due, double t0,
		     double t1)
{
	struct worker *w = ctx;
	if (rc == 0) {
		__atomic_fetch_add(&w->tally->bytes, bytes, __ATOMIC_RELAXED);
		w->tally->verified += verified;
	}
	worker_record(w, rc, st, due, t0, t1);
}

static int hook_stopped(void *ctx)
{
	struct worker *w = ctx;
	return worker_stopped(w->shared);
}

/* Client stages: as worker_turn, for client `number` of the thread. */
static double hook_turn(void *ctx, int number)
{
	struct worker *w = ctx;
	double released = w->shared->released;
	double t = arrival_time_reaching(w->cfg->ramp, number - 0.5,
					 clock_now() - released);
	return t < 0 ? -1 : released + t;
}

/* An event thread's run: its clients, their counts in its tally. */
static void worker_drive(struct worker *w, double end)
{
	struct event_hooks hooks = {hook_take,
				    hook_begin,
				    hook_end,
				    hook_stopped,
				    w->cfg->ramp ? hook_turn : NULL,
				    w};
	double rates = event_drive(w->loop, &hooks, end, w->warm);
	w->tally->rates = rates;
}

/* The closed loop: each operation starts when the last one ends. */
static void worker_loop_closed(struct worker *w, double end)
{
	const struct stress_config *cfg = w->cfg;
	struct fs_status st = {0};
	for (long i = 0;; i++) {
		if (end ? clock_now() >= end : i >= cfg->iterations)
			break;
		if (worker_stopped(w->shared) || (cfg->ramp && !worker_turn(w)))
			break;
		double t0 = clock_now();
		int rc = worker_step(w, i, &st);
		if (rc == -2) { /* the scenario ended its worker */
			tally_lost(w->tally, cfg, st.message);
			break;
		}
		worker_record(w, rc, &st, t0, t0, clock_now());
	}
}

/* What a worker sets up before the release: an event thread's loop
 * (NULL with *setup set if it could not be made), a download's
 * verifier, a scenario's state (its failure counted as one). */
static void worker_prepare(struct worker *w, struct fs_status *setup)
{
	const struct stress_config *cfg = w->cfg;
	struct fs_status st = {0};
	if (uses_event(cfg)) {
		w->loop =
		    event_open(cfg, w->first, w->clients, w->ref_fd, setup);
		return;
	}
	if (cfg->op == STRESS_DOWNLOAD &&
	    (w->verify = malloc(sizeof(*w->verify))))
		verify_open(w->verify, cfg->verify ? w->ref_fd : -1);
	if (cfg->op == STRESS_SCRIPT &&
	    !(w->script =
		  cfg->hooks->start(cfg->hooks->ctx, w->id, w->tally, &st)))
		tally_step(w->tally, -1, &st, 0);
}

static void worker_release_state(struct worker *w)
{
	if (w->script)
		w->cfg->hooks->stop(w->script);
	free(w->verify);
	event_close(w->loop);
}

static void worker_run(struct worker *w)
{
	const struct stress_config *cfg = w->cfg;
	struct fs_status st = {0}, setup = {0};
	tally_reset(w->tally);
	if (w->open)
		open_reset(w->open);
	if (cfg->pinned && affinity_apply(&cfg->cpus, &st) < 0)
		tally_step(w->tally, -1, &st, 0);
	worker_prepare(w, &setup);
	if (!worker_wait_release(w)) { /* a worker could not start */
		worker_release_state(w);
		return;
	}
	/* The warm-up ends at the same moment for every worker and for the
	 * parent's sample of the server's figures. */
	double start = clock_now(), end = 0;
	if (cfg->duration > 0) {
		w->warm = w->shared->released + cfg->warmup;
		end = (w->warm > start ? w->warm : start) + cfg->duration;
	}
	int warming = cfg->warmup > 0 && w->warm > start;
	tally_begin(w->tally, warming ? w->warm : start);
	if (!warming)
		tally_measuring(w->tally);
	if (uses_event(cfg) && !w->loop) {
		char cause[sizeof(setup.message) + 32];
		snprintf(cause, sizeof(cause), "worker %d: %s", w->id,
			 setup.message);
		tally_lost(w->tally, cfg, cause);
	} else if (w->loop) {
		worker_drive(w, end);
	} else if (w->script || cfg->op != STRESS_SCRIPT) {
		if (w->open)
			worker_loop_open(w);
		else
			worker_loop_closed(w, end);
	}
	tally_end(w->tally);
	worker_release_state(w);
	w->tally->finished = 1;
}

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	worker_run(w);
	if (__atomic_sub_fetch(&w->shared->running, 1, __ATOMIC_ACQ_REL) == 0)
		while (write(w->done_fd, "", 1) < 0 && errno == EINTR)
			;
	return NULL;
}

/* ---- the pool of workers ---- */

/* A count from a server's reply: the number if it is one in [0, max],
 * else 0 (casting NaN or an out-of-range double is undefined). */
static double reply_count(const cJSON *item, double max)
{
	double v = cJSON_GetNumberValue(item);
	return v >= 0 && v <= max ? v : 0;
}

/* The server's figures from STATS; sample->ok says whether it answered. */
static void server_sample(const struct fs_client *c,
			  struct stress_server_sample *sample)
{
	struct fs_result res;
	struct fs_status st;
	memset(sample, 0, sizeof(*sample));
	int rc = client_request(c, CMD_STATS, NULL, &res, &st);
	cJSON *data = rc == 0 ? cJSON_GetObjectItem(res.reply, "data") : NULL;
	cJSON *ok = cJSON_GetObjectItem(data, "succeeded");
	cJSON *failed = cJSON_GetObjectItem(data, "failed");
	cJSON *user = cJSON_GetObjectItem(data, "cpu_user_s");
	cJSON *system = cJSON_GetObjectItem(data, "cpu_system_s");
	cJSON *rss = cJSON_GetObjectItem(data, "peak_rss_bytes");
	const char *mode =
	    cJSON_GetStringValue(cJSON_GetObjectItem(data, "mode"));
	sample->ok = cJSON_IsNumber(ok) && cJSON_IsNumber(failed);
	sample->succeeded = (uint64_t)reply_count(ok, 0x1p63);
	sample->failed = (uint64_t)reply_count(failed, 0x1p63);
	const char *cpus =
	    cJSON_GetStringValue(cJSON_GetObjectItem(data, "cpus"));
	snprintf(sample->mode, sizeof(sample->mode), "%s", mode ? mode : "");
	snprintf(sample->cpus, sizeof(sample->cpus), "%s", cpus ? cpus : "");
	sample->workers =
	    (int)reply_count(cJSON_GetObjectItem(data, "workers"), INT_MAX);
	sample->has_usage = cJSON_IsNumber(user) && cJSON_IsNumber(system) &&
			    cJSON_IsNumber(rss);
	sample->cpu_user_s = cJSON_GetNumberValue(user);
	sample->cpu_system_s = cJSON_GetNumberValue(system);
	sample->peak_rss_bytes = cJSON_GetNumberValue(rss);
	client_result_free(&res);
}

static int parent_stopped(const struct run_shared *shared)
{
	return __atomic_load_n(&shared->stop, __ATOMIC_RELAXED) != 0;
}

/* Sleeps until the monotonic time `until` or until done_fd is readable
 * (every worker has ended); returns whether it is. */
static int parent_sleep(int done_fd, double until)
{
	struct pollfd p = {.fd = done_fd, .events = POLLIN};
	if (isinf(until)) /* no time to convert: (long)inf is undefined */
		return ppoll(&p, 1, NULL, NULL) > 0;
	double left = until - clock_now();
	if (left < 0)
		left = 0;
	struct timespec ts = {(time_t)left,
			      (long)((left - (double)(time_t)left) * 1e9)};
	return ppoll(&p, 1, &ts, NULL) > 0;
}

/* In the parent, in the caller's thread, while the workers run: with a
 * warm-up, the server's "before" figures as it ends (so that they leave
 * it out as the workers' do), and the interval output at each interval's
 * end, until done_fd says every worker has ended. A failed on_interval
 * stops the run. */
static void parent_wait(const struct stress_config *cfg,
			struct run_shared *shared, struct interval_monitor *m,
			int done_fd, struct stress_result *res)
{
	int sampled = cfg->duration <= 0 || cfg->warmup <= 0;
	double warm = shared->released + cfg->warmup;
	for (;;) {
		double due = m ? interval_due(m) : INFINITY;
		if (!sampled && !parent_stopped(shared) && warm < due)
			due = warm;
		if (parent_sleep(done_fd, due))
			break;
		double now = clock_now();
		if (!sampled && (now >= warm || parent_stopped(shared))) {
			server_sample(&cfg->server, &res->server_before);
			sampled = 1;
		}
		if (m && now >= interval_due(m) && interval_emit(m) < 0)
			__atomic_store_n(&shared->stop, -1, __ATOMIC_RELAXED);
	}
	if (!sampled)
		server_sample(&cfg->server, &res->server_before);
}

/* A pool start: how many workers started, and why the next one did not. */
struct start {
	int started;
	const char *call; /* "fork" or "pthread_create" that failed */
	int err;
};

/* Counts the workers of a failed start: the ones started and then
 * stopped, and the ones never started. */
static void start_count(const struct start *s, struct worker *w, int n,
			const struct stress_config *cfg)
{
	char cause[160];
	for (int i = 0; s->call && i < n; i++) {
		struct stress_tally *t = w[i].tally;
		if (i < s->started)
			snprintf(cause, sizeof(cause),
				 "worker %d stopped: worker %d could not start",
				 w[i].id, w[s->started].id);
		else
			snprintf(cause, sizeof(cause),
				 "worker %d not started: %s: %s", w[i].id,
				 s->call, strerror(s->err));
		if (!t->finished && !t->lost[0])
			tally_lost(t, cfg, cause);
	}
}

/* Waits for the wall-clock time `at` (start_at), on absolute deadlines of
 * CLOCK_REALTIME, so that a clock step while waiting is followed; wakes
 * at least every 50 ms to see whether the run was stopped. */
static void wait_for_start(const struct run_shared *shared, double at)
{
	for (double now; (now = clock_wall()) < at &&
			 !__atomic_load_n(&shared->stop, __ATOMIC_RELAXED);) {
		double until = at - now > 0.05 ? now + 0.05 : at;
		struct timespec ts = {
		    (time_t)until,
		    (long)((until - (double)(time_t)until) * 1e9)};
		clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL);
	}
}

/* Releases the workers started (EOF on the pipe), at start_at if given,
 * and, when they all
 * started, waits in parent_wait until done_fd says they have ended;
 * returns the interval monitor, if any, for interval_finish. After a
 * failed start, lets them end without running. */
static struct interval_monitor *release_workers(struct worker *w, int n,
						int release_wr, int done_fd,
						const struct start *s,
						struct stress_result *res)
{
	if (s->call)
		__atomic_store_n(&w[0].shared->cancel, 1, __ATOMIC_RELEASE);
	else if (w[0].cfg->start_at > 0)
		wait_for_start(w[0].shared, w[0].cfg->start_at);
	res->released_at = clock_wall();
	double now = clock_now(); /* published before the workers read it */
	__atomic_store(&w[0].shared->released, &now, __ATOMIC_RELEASE);
	close(release_wr);
	if (s->call)
		return NULL;
	struct interval_monitor *m =
	    interval_start(w[0].cfg, w[0].shared->tally, n, now);
	parent_wait(w[0].cfg, w[0].shared, m, done_fd, res);
	return m;
}

/* After the joins: the last interval; a failed on_interval marks the run
 * stopped as parent_wait does. */
static void finish_intervals(struct interval_monitor *m,
			     struct run_shared *shared)
{
	if (interval_finish(m) < 0)
		__atomic_store_n(&shared->stop, -1, __ATOMIC_RELAXED);
}

/* Runs the workers as threads; a thread that cannot be created cancels
 * the run, and the threads already created are released only to end. */
static void run_threads(struct worker *w, int n, int release[2], int done[2],
			struct start *s, struct stress_result *res)
{
	pthread_t *tids = calloc((size_t)n, sizeof(*tids));
	if (!tids) {
		*s = (struct start){0, "calloc", ENOMEM};
		release_workers(w, n, release[1], done[0], s, res);
		return;
	}
	w[0].shared->running = n;
	/* Stop signals are for the caller's thread: workers block them and
	 * learn of them through the stop word. */
	sigset_t stops, old;
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stops, &old);
	for (; s->started < n; s->started++) {
		w[s->started].release_fd = release[0];
		w[s->started].done_fd = done[1];
		int err = pthread_create(&tids[s->started], NULL, worker_thread,
					 &w[s->started]);
		if (err) {
			*s = (struct start){s->started, "pthread_create", err};
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	struct interval_monitor *m =
	    release_workers(w, n, release[1], done[0], s, res);
	for (int i = 0; i < s->started; i++)
		pthread_join(tids[i], NULL);
	finish_intervals(m, w[0].shared);
	free(tids);
}

static void process_died(struct worker *w, int status)
{
	char cause[120];
	if (WIFSIGNALED(status))
		snprintf(cause, sizeof(cause), "worker %d killed by signal %d",
			 w->id, WTERMSIG(status));
	else
		snprintf(cause, sizeof(cause),
			 "worker %d exited with status %d before the end of "
			 "its run",
			 w->id, WEXITSTATUS(status));
	if (w->tally->start > 0 && w->tally->end == 0)
		w->tally->end = clock_now(); /* when it was found dead */
	tally_lost(w->tally, w->cfg, cause);
}

static pid_t process_start(struct worker *w, int release[2], pid_t parent)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGINT, worker_on_signal);
	signal(SIGTERM, worker_on_signal);
	close(release[1]);
	w->release_fd = release[0];
	if (getppid() == parent)
		worker_run(w);
	_exit(0);
}

/* Runs the workers as forked processes, which write their tallies into
 * the shared mapping. A worker that dies before the end of its run (a
 * signal) has what it left undone counted; a fork that fails cancels the
 * run as in run_threads. Each holds done[1] until it exits: EOF on done[0]
 * says they all have. */
static void run_processes(struct worker *w, int n, int release[2], int done[2],
			  struct start *s, struct stress_result *res)
{
	pid_t *pids = calloc((size_t)n, sizeof(*pids));
	if (!pids) {
		*s = (struct start){0, "calloc", ENOMEM};
		release_workers(w, n, release[1], done[0], s, res);
		return;
	}
	pid_t parent = getpid();
	fflush(NULL); /* a worker's exit must not write the parent's buffers */
	for (; s->started < n; s->started++) {
		pids[s->started] =
		    process_start(&w[s->started], release, parent);
		if (pids[s->started] < 0) {
			*s = (struct start){s->started, "fork", errno};
			break;
		}
	}
	close(done[1]);
	done[1] = -1;
	struct interval_monitor *m =
	    release_workers(w, n, release[1], done[0], s, res);
	for (int i = 0; i < s->started; i++) {
		int status;
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!w[i].tally->finished && !s->call)
			process_died(&w[i], status);
	}
	finish_intervals(m, w[0].shared);
	free(pids);
}

/* Starts the pool and counts what its workers did or left undone;
 * -1 with st set if not every worker could start. */
static int run_pool(const struct stress_config *cfg, struct worker *w, int n,
		    struct stress_result *res, struct fs_status *st)
{
	int release[2], done[2];
	if (pipe2(release, O_CLOEXEC) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "pipe: %s", strerror(errno));
	if (pipe2(done, O_CLOEXEC) < 0) {
		close(release[0]);
		close(release[1]);
		return fs_fail(st, FS_ERR_LOCAL, "pipe: %s", strerror(errno));
	}
	struct start s = {0};
	if (cfg->processes)
		run_processes(w, n, release, done, &s, res);
	else
		run_threads(w, n, release, done, &s, res);
	close(release[0]);
	close(done[0]);
	if (done[1] >= 0)
		close(done[1]);
	if (!s.call)
		return 0;
	start_count(&s, w, n, cfg);
	return fs_fail(st, FS_ERR_LOCAL,
		       "cannot start %s worker %d of %d: %s: %s (the %d "
		       "started were stopped)",
		       cfg->processes ? "process" : "thread", s.started + 1, n,
		       s.call, strerror(s.err), s.started);
}

/* Every worker's tally into res->total; the per-client means are over
 * this instance's clients, however many each worker ran. `released` is
 * the monotonic time of res->released_at, to turn the first start and
 * last end into wall-clock times. */
static void merge(struct stress_result *res, const struct stress_tally *t,
		  int n, int clients, double released)
{
	struct stress_tally *all = &res->total;
	hist_init(&all->latency);
	double first = 0, last = 0; /* over the workers that ran */
	for (int i = 0; i < n; i++) {
		if (t[i].start > 0 && (first == 0 || t[i].start < first))
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
		if (!all->lost[0])
			memcpy(all->lost, t[i].lost, sizeof(all->lost));
		all->cpu_user += t[i].cpu_user;
		all->cpu_system += t[i].cpu_system;
		res->client_time += t[i].busy / clients;
		if (t[i].rates > 0)
			res->client_rate += t[i].rates / clients;
		else if (t[i].busy > 0)
			res->client_rate +=
			    (double)t[i].bytes / t[i].busy / clients;
	}
	res->wall = first > 0 && last > first ? last - first : 0;
	if (first > 0) {
		res->t_start = res->released_at + (first - released);
		res->t_end = res->t_start + res->wall;
	}
}

static struct stress_latency latency_of(const struct histogram *h)
{
	return (struct stress_latency){
	    .n = h->n,
	    .min = h->n ? h->min_ns : 0,
	    .max = h->max_ns,
	    .p50 = hist_quantile(h, 0.50),
	    .p90 = hist_quantile(h, 0.90),
	    .p99 = hist_quantile(h, 0.99),
	    .mean = h->n ? h->sum_ns / h->n : 0,
	};
}

/* Each step over all workers: counts added, histograms merged exactly. */
static int merge_steps(struct stress_result *res,
		       const struct run_shared *shared,
		       const struct stress_tally *t, int n)
{
	struct histogram *h = malloc(sizeof(*h));
	if (!h)
		return -1;
	res->nsteps = shared->step_names.n;
	for (int i = 0; i < res->nsteps; i++) {
		struct stress_step_result *r = &res->steps[i];
		memcpy(r->name, shared->step_names.name[i], sizeof(r->name));
		hist_init(h);
		for (int w = 0; w < n; w++) {
			const struct stress_steps *s = t[w].steps;
			if (!s || !(s->used & 1u << i))
				continue;
			r->ok += s->step[i].ok;
			r->failed += s->step[i].failed;
			hist_merge(h, &s->step[i].latency);
		}
		r->latency = latency_of(h);
	}
	free(h);
	return 0;
}

static void merge_open(struct stress_result *res,
		       const struct stress_open_tally *o, int n)
{
	struct stress_open_tally *all = &res->open;
	open_reset(all);
	for (int i = 0; i < n; i++) {
		hist_merge(&all->service, &o[i].service);
		hist_merge(&all->lateness, &o[i].lateness);
		all->late += o[i].late;
		all->dropped += o[i].dropped;
		if (!o[i].started)
			continue;
		if (!all->started || o[i].first_start < all->first_start)
			all->first_start = o[i].first_start;
		if (!all->started || o[i].last_start > all->last_start)
			all->last_start = o[i].last_start;
		all->started += o[i].started;
	}
	double span = all->last_start - all->first_start;
	res->achieved_rate = all->started > 1 && span > 0
				 ? (double)(all->started - 1) / span
				 : 0;
}

/* The bytes of n workers' open-model tallies (at least one, for an
 * instance that has no worker). */
static size_t open_size(int n)
{
	return (size_t)(n > 0 ? n : 1) * sizeof(struct stress_open_tally);
}

/* The open model's shared parts: the arrival lock and clock, and a tally
 * per worker (mapped only for open runs: 75 KB a worker). 0 or -1. */
static int open_setup(const struct stress_config *cfg,
		      struct run_shared *shared, int n)
{
	pthread_mutexattr_t attr;
	shared->open = mmap(NULL, open_size(n), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared->open == MAP_FAILED) {
		shared->open = NULL;
		return -1;
	}
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&shared->arrivals, &attr);
	pthread_mutexattr_destroy(&attr);
	arrival_clock_init(&shared->clock, cfg->plan);
	return 0;
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
	uint64_t size;
	int fd = client_open_source(cfg->file, &size, st);
	return fd < 0 ? -2 : fd;
}

/* The clients before worker i's, of n sharing `clients`: an even
 * split. */
static int client_first(long clients, int n, int i)
{
	return (int)((long)i * clients / n);
}

/* The clients worker i of n runs. */
static int client_share(long clients, int n, int i)
{
	return client_first(clients, n, i + 1) - client_first(clients, n, i);
}

/* The workers that run `clients` clients: one each, or the event
 * engine's threads (never more than the clients). */
static int pool_size(const struct stress_config *cfg, long clients)
{
	if (!uses_event(cfg))
		return (int)clients;
	int threads = event_threads(cfg);
	return threads < clients ? threads : (int)clients;
}

/* A socket per client: the soft limit on descriptors is raised towards
 * the hard one when it would not hold them all. */
static void raise_fd_limit(int clients)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)clients + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int stress_check(const struct stress_config *cfg, struct fs_status *st)
{
	const struct segment *seg = &cfg->segment;
	if (seg->count > 0 && (seg->index < 0 || seg->index >= seg->count))
		return fs_fail(st, FS_ERR_USAGE,
			       "segment %d of %d does not exist", seg->index,
			       seg->count);
	if (cfg->plan && seg->count > cfg->clients)
		return fs_fail(st, FS_ERR_USAGE,
			       "the open model over %d segments needs at least "
			       "%d clients (one in each), not %d",
			       seg->count, seg->count, cfg->clients);
	double late = clock_wall() - cfg->start_at;
	if (cfg->start_at > 0 && late > STRESS_START_PAST_S)
		return fs_fail(st, FS_ERR_USAGE,
			       "the start time %.3f is %.3f s in the past (at "
			       "most %g s is allowed: give a time far enough "
			       "ahead for every instance to start, and check "
			       "that the hosts' clocks are synchronised)",
			       cfg->start_at, late, STRESS_START_PAST_S);
	if (cfg->start_at > 0 && -late > STRESS_START_AHEAD_S)
		return fs_fail(st, FS_ERR_USAGE,
			       "the start time %.3f is %.0f s ahead, more than "
			       "a day (seconds since 1970 expected, not ms)",
			       cfg->start_at, -late);
	return 0;
}

int stress_run(const struct stress_config *cfg, struct stress_result *res,
	       struct fs_status *st)
{
	memset(res, 0, sizeof(*res));
	if (stress_check(cfg, st) < 0)
		return -1;
	/* this instance's clients, numbered from first + 1; a worker per
	 * client, or per event thread */
	long first, clients;
	segment_share(&cfg->segment, cfg->clients, &first, &clients);
	int n = pool_size(cfg, clients);
	res->clients = (int)clients;
	res->first_worker = (int)first + 1;
	raise_fd_limit((int)clients);
	/* Step tallies take memory only for the pages a worker touches. */
	size_t tallies =
	    sizeof(struct run_shared) + (size_t)n * sizeof(struct stress_tally);
	size_t size = tallies + (cfg->op == STRESS_SCRIPT
				     ? (size_t)n * sizeof(struct stress_steps)
				     : 0);
	struct run_shared *shared =
	    mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct worker *w = calloc((size_t)(n > 0 ? n : 1), sizeof(*w));
	if (shared == MAP_FAILED || !w) {
		free(w);
		return fs_fail(st, FS_ERR_LOCAL, "out of memory");
	}
	if (cfg->plan && open_setup(cfg, shared, n) < 0) {
		munmap(shared, size);
		free(w);
		return fs_fail(st, FS_ERR_LOCAL, "out of memory");
	}
	res->started = (double)time(NULL);
	stop_word = &shared->stop;
	if (stop_signal) /* asked before this run began */
		__atomic_store_n(&shared->stop, stop_signal, __ATOMIC_RELAXED);
	if (cfg->duration <= 0 || cfg->warmup <= 0)
		server_sample(&cfg->server, &res->server_before);
	int rc = 0;
	for (int i = 0; i < n; i++) {
		int before = (int)first + client_first(clients, n, i);
		w[i] = (struct worker){.cfg = cfg,
				       .id = before + 1,
				       .shared = shared,
				       .tally = &shared->tally[i],
				       .open = shared->open ? &shared->open[i]
							    : NULL,
				       .ref_fd = -1,
				       .clients = client_share(clients, n, i),
				       .first = before};
		shared->tally[i].clients = w[i].clients;
		if (size > tallies) {
			struct stress_steps *steps =
			    (struct stress_steps *)((char *)shared + tallies) +
			    i;
			steps->names = &shared->step_names;
			shared->tally[i].steps = steps;
		}
	}
	for (int i = 0; i < n && rc == 0; i++)
		if ((w[i].ref_fd = open_reference(cfg, st)) == -2)
			rc = -1;
	int ran = rc == 0;
	if (ran && n > 0)
		rc = run_pool(cfg, w, n, res, st);
	stop_word = NULL;
	if (ran) {
		res->counted = 1;
		merge(res, shared->tally, n, res->clients, shared->released);
		if (shared->open)
			merge_open(res, shared->open, n);
		if (merge_steps(res, shared, shared->tally, n) < 0)
			rc = fs_fail(st, FS_ERR_LOCAL, "out of memory");
		int stop = __atomic_load_n(&shared->stop, __ATOMIC_RELAXED);
		res->interrupted = stop > 0 ? stop : 0;
		server_sample(&cfg->server, &res->server_after);
	}
	for (int i = 0; i < n; i++)
		if (w[i].ref_fd >= 0)
			close(w[i].ref_fd);
	if (shared->open) {
		pthread_mutex_destroy(&shared->arrivals);
		munmap(shared->open, open_size(n));
	}
	munmap(shared, size);
	free(w);
	return rc;
}

/* ---- the summary ---- */

static void add_figures(cJSON *obj, const char *key, struct stress_latency l)
{
	cJSON *o = cJSON_AddObjectToObject(obj, key);
	cJSON_AddNumberToObject(o, "min", l.min / 1e6);
	cJSON_AddNumberToObject(o, "mean", l.mean / 1e6);
	cJSON_AddNumberToObject(o, "p50", l.p50 / 1e6);
	cJSON_AddNumberToObject(o, "p90", l.p90 / 1e6);
	cJSON_AddNumberToObject(o, "p99", l.p99 / 1e6);
	cJSON_AddNumberToObject(o, "max", l.max / 1e6);
}

void stress_add_latency(cJSON *obj, const char *key, const struct histogram *h)
{
	add_figures(obj, key, latency_of(h));
}

/* A scenario's steps by name: ok, failed, latency_ms. */
static void add_steps(cJSON *o, const struct stress_result *res)
{
	cJSON *steps = cJSON_AddObjectToObject(o, "steps");
	for (int i = 0; i < res->nsteps; i++) {
		const struct stress_step_result *r = &res->steps[i];
		cJSON *s = cJSON_AddObjectToObject(steps, r->name);
		cJSON_AddNumberToObject(s, "ok", (double)r->ok);
		cJSON_AddNumberToObject(s, "failed", (double)r->failed);
		add_figures(s, "latency_ms", r->latency);
	}
}

static void add_number_or_null(cJSON *o, const char *key, int valid,
			       double value)
{
	if (valid)
		cJSON_AddNumberToObject(o, key, value);
	else
		cJSON_AddNullToObject(o, key);
}

/* The server side: its mode and workers and what changed over the
 * measured part, from STATS; null when STATS was not answered. */
static void add_server(cJSON *o, const struct stress_result *res,
		       uint64_t bytes)
{
	const struct stress_server_sample *a = &res->server_before;
	const struct stress_server_sample *b = &res->server_after;
	if (!a->ok || !b->ok) {
		cJSON_AddNullToObject(o, "server");
		return;
	}
	cJSON *s = cJSON_AddObjectToObject(o, "server");
	cJSON_AddStringToObject(s, "mode", b->mode);
	cJSON_AddNumberToObject(s, "workers", b->workers);
	if (b->cpus[0])
		cJSON_AddStringToObject(s, "cpus", b->cpus);
	else
		cJSON_AddNullToObject(s, "cpus");
	cJSON_AddNumberToObject(s, "succeeded",
				(double)(b->succeeded - a->succeeded));
	cJSON_AddNumberToObject(s, "failed", (double)(b->failed - a->failed));
	int usage = a->has_usage && b->has_usage;
	double user = b->cpu_user_s - a->cpu_user_s;
	double system = b->cpu_system_s - a->cpu_system_s;
	add_number_or_null(s, "cpu_user_s", usage, user);
	add_number_or_null(s, "cpu_system_s", usage, system);
	add_number_or_null(s, "cpu_s", usage, user + system);
	add_number_or_null(s, "cpu_s_per_gb", usage && bytes > 0,
			   (user + system) / (bytes / 1e9));
	add_number_or_null(s, "peak_rss_bytes", usage, b->peak_rss_bytes);
	add_number_or_null(s, "peak_rss_growth_bytes", usage,
			   b->peak_rss_bytes - a->peak_rss_bytes);
}

/* The closed model's client stages as [{duration_s, clients}], or null. */
static void add_client_stages(cJSON *o, const struct arrival_plan *ramp)
{
	if (!ramp) {
		cJSON_AddNullToObject(o, "client_stages");
		return;
	}
	cJSON *list = cJSON_AddArrayToObject(o, "client_stages");
	for (int i = 0; i < ramp->nstages; i++) {
		cJSON *s = cJSON_CreateObject();
		cJSON_AddNumberToObject(s, "duration_s",
					ramp->stage[i].seconds);
		cJSON_AddNumberToObject(s, "clients", ramp->stage[i].rate);
		cJSON_AddItemToArray(list, s);
	}
}

/* What the run was asked to do. */
static void add_options(cJSON *o, const struct stress_config *cfg)
{
	cJSON *opt = cJSON_AddObjectToObject(o, "options");
	cJSON_AddStringToObject(opt, "op", stress_op_name(cfg->op));
	if (cfg->file)
		cJSON_AddStringToObject(opt, "file", cfg->file);
	if (cfg->name)
		cJSON_AddStringToObject(opt, "name", cfg->name);
	cJSON_AddNumberToObject(opt, "clients", cfg->clients);
	cJSON_AddStringToObject(opt, "pool",
				cfg->processes ? "process" : "thread");
	add_number_or_null(opt, "iterations", cfg->duration <= 0,
			   (double)cfg->iterations);
	add_number_or_null(opt, "duration_s", cfg->duration > 0, cfg->duration);
	add_number_or_null(opt, "rate", cfg->plan && !cfg->plan->nstages,
			   cfg->plan ? cfg->plan->start_rate : 0);
	add_client_stages(opt, cfg->ramp);
	cJSON_AddNumberToObject(opt, "warmup_s", cfg->warmup);
	cJSON_AddBoolToObject(opt, "verify", cfg->verify);
	char cpus[256];
	if (cfg->pinned)
		cJSON_AddStringToObject(
		    opt, "cpus",
		    affinity_format(&cfg->cpus, cpus, sizeof(cpus)));
	else
		cJSON_AddNullToObject(opt, "cpus");
	cJSON_AddNumberToObject(opt, "timeout_s", cfg->server.timeout);
}

static void add_target(cJSON *o, const struct stress_config *cfg,
		       const struct stress_result *res)
{
	char target[300], stamp[32];
	const char *host = cfg->server.host;
	int v6 = strchr(host, ':') != NULL;
	snprintf(target, sizeof(target), "%s%s%s:%s", v6 ? "[" : "", host,
		 v6 ? "]" : "", cfg->server.port);
	cJSON_AddStringToObject(o, "target", target);
	time_t when = (time_t)res->started;
	struct tm tm;
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ",
		 gmtime_r(&when, &tm));
	cJSON_AddStringToObject(o, "timestamp", stamp);
}

/* The open model's figures: the schedule asked for and what it got. */
static void add_open(cJSON *o, const struct stress_config *cfg,
		     const struct stress_result *res)
{
	const struct stress_open_tally *op = &res->open;
	const struct arrival_plan *p = cfg->plan;
	cJSON *m = cJSON_AddObjectToObject(o, "open_model");
	double length = arrival_length(p);
	if (p->nstages)
		cJSON_AddNumberToObject(m, "target_rate",
					arrival_total(p) / length);
	else
		cJSON_AddNumberToObject(m, "target_rate", p->start_rate);
	cJSON_AddBoolToObject(m, "stages", p->nstages > 0);
	cJSON_AddStringToObject(m, "arrivals",
				p->poisson ? "poisson" : "uniform");
	cJSON_AddNumberToObject(m, "achieved_rate", res->achieved_rate);
	cJSON_AddNumberToObject(m, "started", (double)op->started);
	cJSON_AddNumberToObject(m, "late", (double)op->late);
	cJSON_AddNumberToObject(m, "late_threshold_ms", STRESS_LATE_S * 1e3);
	cJSON_AddNumberToObject(m, "dropped", (double)op->dropped);
	add_number_or_null(m, "max_late_s", cfg->max_late > 0, cfg->max_late);
	stress_add_latency(m, "lateness_ms", &op->lateness);
	cJSON_AddItemToObject(m, "lateness_histogram",
			      hist_to_json(&op->lateness));
	stress_add_latency(o, "service_ms", &op->service);
	cJSON_AddItemToObject(o, "service_histogram",
			      hist_to_json(&op->service));
}

/* Which share of a distributed run this was. */
static void add_segment(cJSON *o, const struct stress_config *cfg)
{
	const struct segment *seg = &cfg->segment;
	long first, clients;
	segment_share(seg, cfg->clients, &first, &clients);
	cJSON *s = cJSON_AddObjectToObject(o, "segment");
	cJSON_AddNumberToObject(s, "index", seg->count > 0 ? seg->index : 0);
	cJSON_AddNumberToObject(s, "count", seg->count > 0 ? seg->count : 1);
	cJSON_AddStringToObject(s, "source",
				seg->source ? seg->source : "none");
	cJSON_AddNumberToObject(s, "first_worker", (double)first + 1);
	cJSON_AddNumberToObject(s, "clients", (double)clients);
}

/* When the run was to start and when it did, in seconds since 1970; the
 * first and last operation's times (null when no worker ran). */
static void add_times(cJSON *o, const struct stress_config *cfg,
		      const struct stress_result *res)
{
	int released = res->released_at > 0, asked = cfg->start_at > 0;
	cJSON *s = cJSON_AddObjectToObject(o, "start");
	add_number_or_null(s, "at", asked, cfg->start_at);
	add_number_or_null(s, "actual", released, res->released_at);
	add_number_or_null(s, "late_s", asked && released,
			   res->released_at - cfg->start_at);
	add_number_or_null(o, "t_start", res->t_start > 0, res->t_start);
	add_number_or_null(o, "t_end", res->t_start > 0, res->t_end);
}

static void add_thresholds(cJSON *o, const struct stress_config *cfg,
			   const struct stress_result *res)
{
	const struct stress_tally *t = &res->total;
	struct threshold_figures f = {
	    .latency = &t->latency,
	    .service = cfg->plan ? &res->open.service : NULL,
	    .ok = t->ok,
	    .failed = t->failed,
	    .bytes = t->bytes,
	    .seconds = res->wall,
	    .achieved_rate = cfg->plan ? res->achieved_rate : -1};
	int passed;
	cJSON_AddItemToObject(
	    o, "thresholds",
	    threshold_to_json(cfg->thresholds, cfg->nthresholds, &f, &passed));
	cJSON_AddBoolToObject(o, "thresholds_passed", passed);
}

cJSON *stress_to_json(const struct stress_config *cfg,
		      const struct stress_result *res)
{
	const struct stress_tally *t = &res->total;
	cJSON *o = cJSON_CreateObject();
	add_target(o, cfg, res);
	cJSON_AddStringToObject(o, "op", stress_op_name(cfg->op));
	cJSON_AddStringToObject(o, "pool",
				cfg->processes ? "process" : "thread");
	cJSON_AddStringToObject(o, "engine", stress_engine(cfg));
	add_number_or_null(o, "threads", uses_event(cfg),
			   pool_size(cfg, res->clients));
	cJSON_AddNumberToObject(o, "clients", res->clients);
	add_segment(o, cfg);
	add_times(o, cfg, res);
	if (res->interrupted)
		cJSON_AddStringToObject(o, "interrupted",
					stress_signal_name(res->interrupted));
	else
		cJSON_AddNullToObject(o, "interrupted");
	cJSON_AddNumberToObject(o, "ok", (double)t->ok);
	cJSON_AddNumberToObject(o, "failed", (double)t->failed);
	cJSON *e = cJSON_AddObjectToObject(o, "errors");
	for (int i = FS_ERR_SERVER; i < FS_ERR_COUNT; i++)
		cJSON_AddNumberToObject(e, fs_error_name(i),
					(double)t->errors[i]);
	if (t->first_error[0])
		cJSON_AddStringToObject(o, "first_error", t->first_error);
	if (t->lost[0])
		cJSON_AddStringToObject(o, "worker_lost", t->lost);
	cJSON_AddNumberToObject(o, "wall_s", res->wall);
	cJSON_AddNumberToObject(o, "bytes", (double)t->bytes);
	cJSON_AddNumberToObject(o, "verified_bytes", (double)t->verified);
	cJSON_AddNumberToObject(o, "throughput_Bps",
				res->wall > 0 ? t->bytes / res->wall : 0);
	cJSON_AddNumberToObject(o, "client_time_s", res->client_time);
	cJSON_AddNumberToObject(o, "client_throughput_Bps", res->client_rate);
	cJSON_AddNumberToObject(o, "ops_per_s",
				res->wall > 0 ? t->ok / res->wall : 0);
	cJSON_AddNumberToObject(o, "client_cpu_s", t->cpu_user + t->cpu_system);
	cJSON_AddNumberToObject(o, "client_cpu_user_s", t->cpu_user);
	cJSON_AddNumberToObject(o, "client_cpu_system_s", t->cpu_system);
	cJSON_AddNumberToObject(o, "warmup_s",
				cfg->duration > 0 ? cfg->warmup : 0);
	stress_add_latency(o, "latency_ms", &t->latency);
	cJSON_AddItemToObject(o, "latency_histogram",
			      hist_to_json(&t->latency));
	if (cfg->plan)
		add_open(o, cfg, res);
	else
		cJSON_AddNullToObject(o, "open_model");
	if (cfg->op == STRESS_SCRIPT)
		add_steps(o, res);
	add_server(o, res, t->bytes);
	add_options(o, cfg);
	add_thresholds(o, cfg, res);
	return o;
}

/* ---- the capacity search ---- */

/* One step of the capacity search as JSON: its rate and what it got. */
static cJSON *search_step(const cJSON *j, double rate, int pass)
{
	const cJSON *m = cJSON_GetObjectItem(j, "open_model");
	const cJSON *l = cJSON_GetObjectItem(j, "latency_ms");
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "rate", rate);
	cJSON_AddNumberToObject(
	    o, "achieved_rate",
	    cJSON_GetNumberValue(cJSON_GetObjectItem(m, "achieved_rate")));
	cJSON_AddNumberToObject(
	    o, "p99_ms", cJSON_GetNumberValue(cJSON_GetObjectItem(l, "p99")));
	cJSON_AddNumberToObject(
	    o, "ok", cJSON_GetNumberValue(cJSON_GetObjectItem(j, "ok")));
	cJSON_AddNumberToObject(
	    o, "failed",
	    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "failed")));
	cJSON_AddBoolToObject(o, "passed", pass);
	cJSON_AddItemToObject(
	    o, "thresholds",
	    cJSON_Duplicate(cJSON_GetObjectItem(j, "thresholds"), 1));
	return o;
}

cJSON *stress_find_max(struct stress_config *cfg, struct arrival_plan *plan,
		       void (*on_step)(void *ctx, int step, const cJSON *o),
		       void *ctx, int *interrupted, struct fs_status *st)
{
	double lo = 0, hi = 0, rate = plan->start_rate;
	cJSON *steps = cJSON_CreateArray();
	int bisections = 0;
	*interrupted = 0;
	for (int step = 1; rate <= 1e7 && !*interrupted; step++) {
		struct stress_result res;
		plan->start_rate = rate;
		if (stress_run(cfg, &res, st) < 0) {
			cJSON_Delete(steps);
			return NULL;
		}
		cJSON *j = stress_to_json(cfg, &res);
		int pass =
		    cJSON_IsTrue(cJSON_GetObjectItem(j, "thresholds_passed"));
		cJSON *o = search_step(j, rate, pass);
		cJSON_Delete(j);
		cJSON_AddItemToArray(steps, o);
		if (on_step)
			on_step(ctx, step, o);
		*interrupted = res.interrupted;
		*(pass ? &lo : &hi) = rate;
		if (!hi)
			rate *= 2;
		else if (!lo || (hi - lo) <= 0.05 * lo || ++bisections > 8)
			break;
		else
			rate = (lo + hi) / 2;
	}
	cJSON *out = cJSON_CreateObject();
	cJSON *fm = cJSON_AddObjectToObject(out, "find_max");
	cJSON_AddItemToObject(fm, "steps", steps);
	add_number_or_null(fm, "max_rate", lo > 0, lo);
	add_number_or_null(fm, "first_failing_rate", hi > 0, hi);
	return out;
}

cJSON *stress_result_json(const struct stress_config *cfg,
			  const struct stress_result *res,
			  const struct fs_status *failure)
{
	cJSON *o;
	if (res->counted) {
		o = stress_to_json(cfg, res);
	} else {
		o = cJSON_CreateObject();
		if (cfg->segment.count > 0)
			add_segment(o, cfg);
	}
	if (failure) {
		cJSON_AddStringToObject(o, "error", failure->message);
		cJSON_AddStringToObject(o, "error_class",
					fs_error_name(failure->code));
	}
	return o;
}
