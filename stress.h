/* stress.h: the stress engine: concurrent client workers in threads or
 * processes, their tallies and the merged summary (stress.c). */
#ifndef FILESERV_STRESS_H
#define FILESERV_STRESS_H

#include "fileserv.h"
#include "client.h"
#include "segment.h"
#include "stats.h"

#include <sched.h>
#include <stdio.h>
#include <stdint.h>

struct cJSON;
struct arrival_plan;
struct threshold;

enum stress_op { STRESS_UPLOAD, STRESS_DOWNLOAD, STRESS_LIST, STRESS_SCRIPT };

/* Named steps of a scenario (its client calls and fileserv.timer): at
 * most STRESS_STEPS_MAX distinct names per run, shared by every worker so
 * that a name has one index; each worker tallies its own. */
#define STRESS_STEPS_MAX     32
#define STRESS_STEP_NAME_MAX 48
struct stress_step_names {
	int lock, n; /* n is published after its name is written */
	char name[STRESS_STEPS_MAX][STRESS_STEP_NAME_MAX];
};
struct stress_step_tally {
	uint64_t ok, failed;
	struct histogram latency;
};
struct stress_steps {
	struct stress_step_names *names;
	uint32_t used; /* which steps are initialized since the last reset */
	struct stress_step_tally step[STRESS_STEPS_MAX];
};

/* What one client worker did; merged by the parent after join/waitpid. */
struct stress_tally {
	/* Past the warm-up: no more resets. From then on ok, failed, bytes
	 * and the latency counts are added atomically, so that the interval
	 * monitor can read them. First: a reset clears what follows it. */
	int measuring;
	int clients; /* it counts: 1, or an event thread's share */
	uint64_t ok, failed, bytes, verified;
	uint64_t errors[FS_ERR_COUNT];
	double busy;  /* seconds spent in operations: its clients' durations */
	double rates; /* an event thread's: its clients' bytes / busy, summed */
	double start, end; /* monotonic clock at release (or warm-up's end)
			      and at the end */
	double cpu_user, cpu_system; /* the worker's own CPU seconds */
	struct histogram latency;
	char first_error[200];
	struct stress_steps *steps; /* a scenario's, or NULL */
	char lost[160]; /* why a worker did not finish its run, if it did not */
	int finished;	/* the worker ran to the end of its run */
};

/* Counts one step of a scenario in the worker's tally: 0, or -1 with st
 * set when the name is too long or STRESS_STEPS_MAX other names are in
 * use. A tally without steps ignores it. */
int stress_step_record(struct stress_tally *t, const char *name, int ok,
		       double seconds, struct fs_status *st);

/* A scripted scenario: the engine calls these in each worker, in the
 * worker's own thread or process. */
struct stress_hooks {
	/* The worker's state, or NULL with st set. What the scenario's
	 * operations move goes into tally->bytes. */
	void *(*start)(void *ctx, int worker, struct stress_tally *tally,
		       struct fs_status *st);
	/* One iteration; 0 ok, -1 failed with st set, -2 the worker ends
	 * here (st says why) and its remaining iterations are lost. */
	int (*step)(void *state, int worker, long iteration,
		    struct fs_status *st);
	void (*stop)(void *state);
	void *ctx;
};

struct stress_config {
	struct fs_client server;
	enum stress_op op;
	const char *file; /* local file: upload source, download reference */
	const char *name; /* remote name */
	int clients;
	int processes; /* fork workers instead of starting threads */
	/* The thread pool's OS threads for plain operations, each driving
	 * its share of the clients through an event loop (event.c): 0 for
	 * the CPUs the clients may use, or STRESS_THREAD_PER_CLIENT (as a
	 * scenario always runs). */
	int threads;
	long iterations; /* per client; ignored when duration > 0 */
	double duration;
	double warmup; /* seconds before the duration that are not counted */
	int verify;
	int pinned; /* client workers run on the CPUs in cpus only */
	cpu_set_t cpus;
	const struct stress_hooks *hooks; /* for STRESS_SCRIPT */
	/* The open model: operations start when the plan says (duration is
	 * then the plan's length), and clients is the most in flight; NULL
	 * for the closed loop. */
	const struct arrival_plan *plan;
	double max_late; /* open model: arrivals later than this are dropped;
			    0 never */
	/* The closed model's client stages: worker k runs its next iteration
	 * only while the plan's value (from the release) is at least
	 * k - 0.5, and waits otherwise; duration is the plan's. NULL: all
	 * clients run throughout. */
	const struct arrival_plan *ramp;
	const struct threshold *thresholds;
	int nthresholds;
	/* interval output while the run goes: a JSON line per interval into
	 * stream, and/or a live line on live (a terminal); see interval.c */
	double interval; /* seconds; 0 none */
	FILE *stream;
	FILE *live;
	/* called with each interval's JSON object (as stream's lines) in
	 * the thread that called stress_run; -1 stops the run (the workers
	 * end after the operation they are in) and it is not called again */
	int (*on_interval)(void *ctx, const struct cJSON *interval);
	void *interval_ctx;
	/* One instance of a run spread over several: clients is the whole
	 * run's, of which this one runs its block (segment_share), with
	 * global worker numbers; in the open model it takes its interleaved
	 * arrivals of the one schedule. count 0: the whole run. */
	struct segment segment;
	double start_at; /* seconds since 1970: release the workers then;
			    0 at once */
};

#define STRESS_THREAD_PER_CLIENT (-1)
#define STRESS_THREADS_MAX	 1024

/* How a run's clients are run: "event" (threads with event loops),
 * "thread" (a thread per client) or "process" (a process per client). */
const char *stress_engine(const struct stress_config *cfg);

/* How far in the past a start_at may be when the run is checked, and how
 * far ahead. */
#define STRESS_START_PAST_S  1.0
#define STRESS_START_AHEAD_S 86400.0

/* Checks what the engine needs beyond each option's own range: 0, or -1
 * with st set (FS_ERR_USAGE). stress_run checks it too. */
int stress_check(const struct stress_config *cfg, struct fs_status *st);

/* An arrival that starts more than this after its intended time counts
 * as late. */
#define STRESS_LATE_S 0.001

/* What one worker saw of the open model's schedule. */
struct stress_open_tally {
	struct histogram service;  /* from the actual start to the end */
	struct histogram lateness; /* actual start - intended start */
	uint64_t started, late, dropped;
	double first_start, last_start; /* monotonic clock */
};

/* What the server's STATS said at one moment. */
struct stress_server_sample {
	int ok;	       /* STATS answered */
	int has_usage; /* with CPU and memory figures */
	char mode[16];
	int workers;
	char cpus[64]; /* the CPUs it may run on, as a list; "" unknown */
	uint64_t succeeded, failed;
	double cpu_user_s, cpu_system_s, peak_rss_bytes;
};

/* A latency histogram's figures, in ns. */
struct stress_latency {
	uint64_t n, min, max, p50, p90, p99;
	double mean;
};

/* One step over all workers, from their histograms merged. */
struct stress_step_result {
	char name[STRESS_STEP_NAME_MAX];
	uint64_t ok, failed;
	struct stress_latency latency;
};

struct stress_result {
	struct stress_tally total;
	int nsteps; /* a scenario's steps, in the order first seen */
	struct stress_step_result steps[STRESS_STEPS_MAX];
	double wall;	    /* seconds from release to last worker done */
	double client_time; /* mean of each client's own duration */
	double client_rate; /* mean of each client's bytes / duration */
	double started;	    /* when the run started, in seconds since 1970 */
	/* STATS before the measured part (after any warm-up) and after */
	struct stress_server_sample server_before, server_after;
	int interrupted;  /* the signal that stopped the run early, or 0 */
	int counted;	  /* the pool ran: the counts above are valid */
	int clients;	  /* this instance's workers (all of them when whole) */
	int first_worker; /* the global number of its first, from 1 */
	/* seconds since 1970: when the workers were released, and when the
	 * first worker started and the last one ended (0 when none ran) */
	double released_at, t_start, t_end;
	struct stress_open_tally open; /* open model: all workers merged */
	double achieved_rate; /* open model: operations started per second */
};

/* Asks the running workload (and any later one) to stop: workers end
 * after the operation they are in, and stress_run returns what ran, with
 * res->interrupted = sig. Async-signal-safe: for SIGINT/SIGTERM
 * handlers. */
void stress_interrupt(int sig);
/* The signal stress_interrupt() was given, or 0. */
int stress_interrupted(void);
/* "SIGINT", "SIGTERM", or "signal N" for others (static storage). */
const char *stress_signal_name(int sig);

/* Settles the open model: checks the combination of p (its rate or
 * stages), cfg's duration and warm-up and whether iterations were given,
 * and makes p cfg's plan, the duration then the plan's less the warm-up.
 * Messages name the options with `dash` before them ("--" for the CLI,
 * "" for Lua's keys). 0, or -1 with st set. */
int stress_plan(struct stress_config *cfg, struct arrival_plan *p,
		int iterations, const char *dash, struct fs_status *st);
/* Settles the closed model's client stages p (DURATION:CLIENTS, from 0
 * clients) as cfg's ramp: whole client counts, no duration or iterations
 * given, the warm-up shorter than the stages; clients (0: not given)
 * defaults to the largest stage and may not be below it. Messages name
 * options as stress_plan's. 0, or -1 with st set. */
int stress_ramp(struct stress_config *cfg, struct arrival_plan *p,
		int iterations, const char *dash, struct fs_status *st);
/* Runs the workload; 0, or -1 with st set if it could not start. When
 * not every worker could start, the others are stopped, res is still
 * filled (res->counted) and counts every iteration as run or failed. */
int stress_run(const struct stress_config *cfg, struct stress_result *res,
	       struct fs_status *st);
const char *stress_op_name(enum stress_op op);
/* The summary as JSON: the one representation the CLI prints and the Lua
 * binding converts. It checks cfg's thresholds: "thresholds" lists each
 * with its value and pass, and "thresholds_passed" says whether all did. */
/* Adds {min, mean, p50, p90, p99, max} in ms of h to obj under key, the
 * latency figures of a summary (merge writes its own the same way). */
void stress_add_latency(struct cJSON *obj, const char *key,
			const struct histogram *h);
struct cJSON *stress_to_json(const struct stress_config *cfg,
			     const struct stress_result *res);
/* The result of a run that may have failed, as written for a merger:
 * stress_to_json's summary when the pool ran, else an object with just
 * the segment (when known); with "error" and "error_class" from failure
 * (NULL when the run succeeded). */
struct cJSON *stress_result_json(const struct stress_config *cfg,
				 const struct stress_result *res,
				 const struct fs_status *failure);
int stress_op_parse(const char *text, enum stress_op *op);

/* The capacity search: open-model steps of cfg->duration through plan
 * (cfg->plan, settled by stress_plan), from plan->start_rate doubling
 * while every threshold of cfg holds, then bisecting between the last
 * rate that held and the first that did not until they are within 5% (at
 * most 8 more steps). After each step, on_step (if not NULL) gets its
 * number and {rate, achieved_rate, p99_ms, ok, failed, passed,
 * thresholds}. Returns {"find_max": {steps, max_rate, first_failing_rate}}
 * (the rates null when none), with *interrupted the signal that cut it
 * short, or 0; NULL with st set if a step could not run. */
struct cJSON *
stress_find_max(struct stress_config *cfg, struct arrival_plan *plan,
		void (*on_step)(void *ctx, int step, const struct cJSON *o),
		void *ctx, int *interrupted, struct fs_status *st);
/* A summary (stress_to_json's, or a merged one) as text on stdout, as
 * `fileserv stress` prints it (stress_cli.c). */
void stress_print(const struct cJSON *summary);
/* "N" (1 to STRESS_THREADS_MAX) or "per-client" into *threads; 0 or -1
 * with st set. */
int stress_threads_parse(const char *text, int *threads, struct fs_status *st);

#endif
