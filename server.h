/* server.h: the server: its configuration and listener (server.c), one
 * connection served (server.c), the acceptor's event loop and its handoff
 * to workers (acceptor.c), and the single, thread and process worker
 * models with their signals (pool.c). */
#ifndef FILESERV_SERVER_H
#define FILESERV_SERVER_H

#include "fileserv.h"
#include "storage.h"

#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

struct stats_counters;
struct usage;

struct server_config {
	const char *mode; /* "single", "thread", "process" */
	int workers;
	const char *host;
	int port;
	const char *storage;
	const char *log_file;
	int quiet;
	int sync;
	double idle_timeout;  /* seconds between reads or writes */
	double head_timeout;  /* seconds for a complete request head */
	double min_rate;      /* bytes/s over each idle_timeout window; 0 off */
	double queue_timeout; /* seconds a request waits for a worker */
	double transfer_timeout; /* seconds a connection may last; 0 off */
	int max_conns;		 /* open connections; 0 = no limit */
	double drain_timeout;
	uint64_t max_upload; /* decoded bytes; 0 = unlimited */
	int ready_fd;	     /* write "PORT\n" here once listening, or -1 */
	const char *user;    /* run as this user once listening, or NULL */
	int pinned;	     /* run on the CPUs in cpus only */
	cpu_set_t cpus;
};

struct server {
	struct server_config cfg;
	int listen_fd;
	int port;
	struct storage storage;
	struct stats_counters *stats;
	struct usage *usage; /* CPU and memory of every server process */
	int worker;	     /* process mode: this worker's number, else -1 */
	double started;
	int abandoned; /* a cut drain left worker threads running */
};

/* Listens, opens the storage and the shared counters, and then, with
 * cfg->user, becomes that user (root only; the storage must be writable
 * by it). */
int server_open(struct server *srv, const struct server_config *cfg,
		struct fs_status *st);
void server_close(struct server *srv);

/* A connection as the acceptor hands it to a worker: the descriptor, the
 * peer's address as accept() gave it, and the head bytes read so far. */
struct handoff {
	double queued; /* clock_now() when the request was complete */
	int fd;
	socklen_t peer_len;
	struct sockaddr_storage peer;
	size_t len;
	char head[FS_HEAD_MAX];
};

/* The STATS reply (the whole text, malloc'd; NULL when out of memory),
 * for the worker or the acceptor that answers it. */
char *server_stats_reply(struct server *srv);

/* Serves h's connection and closes it; worker names the worker in log
 * lines. The socket's timeouts are the caller's business (accepted ones
 * inherit the listener's). */
void server_handle(struct server *srv, const char *worker,
		   const struct handoff *h);

/* ---- acceptor.c ---- */

/* Runs the acceptor on srv's listener until SIGTERM or SIGINT (taken from
 * signals through a signalfd; they must be blocked), handing connections
 * over chan[0] (chan[1] is the workers' end, from which it takes back
 * what waits too long). SIGHUP reopens the log file, other signals in the
 * set are logged and ignored; SIGCHLD and SIGHUP then call on_signal (if
 * not NULL), whose -1 (with st set) is fatal. Closes the listener before
 * returning 0, or -1 with st set on a fatal error. */
int acceptor_run(struct server *srv, const int chan[2], const sigset_t *signals,
		 int (*on_signal)(void *ctx, int signo, struct fs_status *st),
		 void *ctx, struct fs_status *st);
/* A worker's next connection, into h: 0, or -1 once the acceptor has
 * closed, -2 if interrupted. */
int acceptor_receive(int chan, struct handoff *h);
/* As acceptor_receive(), without waiting: -3 at once when none waits. */
int acceptor_try_receive(int chan, struct handoff *h);
/* The reply to connections still waiting when a stop ends the drain. */
#define SERVER_BUSY_STOPPING "server busy: shutting down, try again later"
/* Best-effort ERROR reply with message to a connection, then closes it. */
void acceptor_refuse(int fd, const char *message);
/* Answers every connection still waiting in the channel (the workers'
 * end) with an ERROR reply, without waiting for more. */
void acceptor_refuse_waiting(int chan, const char *message);

/* ---- pool.c ---- */

/* Runs the server in its configured mode until SIGTERM/SIGINT. Returns 0,
 * or -1 with st set when the workers cannot be started or kept alive
 * (those already started are stopped first). */
int pool_run(struct server *srv, struct fs_status *st);

#endif
