/* event.h: the event engine (event.c): one OS thread drives many stress
 * clients' plain operations (download, upload, list) over nonblocking
 * sockets and an epoll loop, each client a fiber on a small stack, so
 * that a client costs a few KB instead of a thread with its buffers. The
 * stress engine (stress.c) runs one of these per thread of its thread
 * pool and keeps the counting: the hooks below are its own. */
#ifndef FILESERV_EVENT_H
#define FILESERV_EVENT_H

#include "fileserv.h"
#include "stress.h"

#include <stdint.h>

/* What the stress engine does around each operation of a client. */
struct event_hooks {
	/* The open model: the next arrival's intended start (monotonic
	 * clock) and its index, or -1 once the plan has ended. */
	double (*take)(void *ctx, long *index);
	/* An operation meant to start at `due` starts at t0 (due == t0 in
	 * the closed loop): 0 to run it, -1 when it is dropped (too late). */
	int (*begin)(void *ctx, double due, double t0);
	/* It ended at t1: rc 0, or -1 with st set; the file bytes moved
	 * and those verified against the reference. */
	void (*end)(void *ctx, int rc, const struct fs_status *st,
		    uint64_t bytes, uint64_t verified, double due, double t0,
		    double t1);
	int (*stopped)(void *ctx);
	/* Client stages (NULL without): the monotonic time from which client
	 * `number` (1 to the run's clients) may start its next operation,
	 * or -1 when the stages have no more turns for it. */
	double (*turn)(void *ctx, int number);
	void *ctx;
};

struct event_loop;

/* The OS threads a run's thread pool has: cfg->threads, or by default
 * the CPUs the clients may run on, never more than the clients. */
int event_threads(const struct stress_config *cfg);
/* Prepares a loop for `clients` clients of cfg's operation, numbered
 * from first + 1 (their fibers, the resolved server, the reference file
 * ref_fd mapped, or -1); NULL with st set. */
struct event_loop *event_open(const struct stress_config *cfg, int first,
			      int clients, int ref_fd, struct fs_status *st);
/* Runs the clients to the end: each closed-loop client its iterations,
 * or until `end` (monotonic; 0 none); in the open model, arrivals from
 * hooks->take, at most `clients` in flight. Returns the sum over the
 * clients of their bytes per second busy, counting operations that end
 * from `warm` on (the per-client throughput, before the mean). */
double event_drive(struct event_loop *l, const struct event_hooks *hooks,
		   double end, double warm);
void event_close(struct event_loop *l);

#endif
