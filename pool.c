/* pool.c: who serves a connection, and how the server stops.
 *
 * In every mode the acceptor (acceptor.c) runs in the main process's main
 * thread, reads request heads and hands connections over a Unix socket;
 * workers block in acceptor_receive() and serve one connection at a time.
 *   single:  one worker thread.
 *   thread:  N worker threads.
 *   process: N pre-forked worker processes. The parent also supervises:
 *            it replaces a worker that dies (and gives up, exit 3, if
 *            workers keep dying), and workers die with it
 *            (PR_SET_PDEATHSIG).
 * SIGTERM/SIGINT: the acceptor closes the listener (new connections are
 * refused at once) and the channel; workers finish the connections they
 * hold or that were already handed over, then see the channel's end and
 * exit. Whatever still runs at --drain-timeout is cut, and a second signal
 * cuts it at once.
 * Other signals never kill the server silently: SIGHUP reopens the log
 * file (log rotation; the parent passes it on to process workers), and
 * SIGUSR1, SIGUSR2 and SIGALRM are logged and ignored. */
#include "fileserv.h"
#include "clock.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "storage.h"
#include "usage.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping; /* a process worker was told to stop */

#define PUBLISH_EVERY 0.01 /* seconds between a busy worker's publications */

/* When a process worker publishes its usage for STATS (usage.c): after a
 * request once the last publication is PUBLISH_EVERY old, and always
 * before it waits idle. A quiet server's STATS is exact, a busy one's
 * at most PUBLISH_EVERY of each worker's work behind; a getrusage after
 * every request was 2.3% of a process-mode server's CPU (1 KB GETs). */
struct publisher {
	double at;
	int stale; /* work done since the last publication */
};

static void publish_after_request(struct server *srv, struct publisher *p)
{
	double now = clock_now();
	p->stale = srv->worker >= 0;
	if (p->stale && now - p->at >= PUBLISH_EVERY) {
		usage_publish(srv->usage, srv->worker);
		p->at = now;
		p->stale = 0;
	}
}

/* The next connection (acceptor_receive), publishing first if the
 * worker is about to wait with unpublished work. */
static int next_connection(struct server *srv, int chan, struct handoff *h,
			   struct publisher *p)
{
	int rc = p->stale ? acceptor_try_receive(chan, h) : -3;
	if (rc != -3)
		return rc;
	if (p->stale) {
		usage_publish(srv->usage, srv->worker);
		p->at = clock_now();
		p->stale = 0;
	}
	return acceptor_receive(chan, h);
}

static void pool_serve(struct server *srv, int chan, const char *worker)
{
	struct handoff *h = malloc(sizeof(*h));
	struct publisher pub = {0, 0};
	int rc = 0;
	log_info(worker, "worker started");
	while (h && !stopping &&
	       (rc = next_connection(srv, chan, h, &pub)) != -1) {
		if (rc == -2)
			continue;
		__atomic_fetch_add(&srv->stats->dispatched, 1,
				   __ATOMIC_RELAXED);
		server_handle(srv, worker, h);
		__atomic_fetch_add(&srv->stats->completed, 1, __ATOMIC_RELAXED);
		publish_after_request(srv, &pub);
	}
	free(h);
	log_info(worker, "worker exiting");
}

static void announce(struct server *srv)
{
	const struct server_config *c = &srv->cfg;
	int loopback = strncmp(c->host, "127.", 4) == 0 ||
		       strcmp(c->host, "::1") == 0 ||
		       strcmp(c->host, "localhost") == 0;
	log_info("main",
		 "fileserv %s serving %s on %s:%d (%s mode, %d worker%s%s%s)%s",
		 FILESERV_VERSION, c->storage, c->host, srv->port, c->mode,
		 c->workers, c->workers == 1 ? "" : "s",
		 c->user ? ", as user " : "", c->user ? c->user : "",
		 loopback ? "; loopback only, --host 0.0.0.0 exposes it to "
			    "the network"
			  : "; reachable from the network");
	if (c->ready_fd >= 0) {
		dprintf(c->ready_fd, "%d\n", srv->port);
		close(c->ready_fd);
	}
}

/* A second stop signal, without waiting; a SIGHUP meanwhile still
 * reopens the log. */
static int second_signal(const sigset_t *set)
{
	struct timespec zero = {0, 0};
	int sig;
	while ((sig = sigtimedwait(set, NULL, &zero)) > 0) {
		if (sig == SIGTERM || sig == SIGINT)
			return 1;
		if (sig == SIGHUP)
			log_reopen();
	}
	return 0;
}

/* ---- single and thread mode ---- */

struct thread_worker {
	pthread_t tid;
	struct server *srv;
	int chan;
	char name[32];
};

static void *thread_main(void *arg)
{
	struct thread_worker *w = arg;
	pool_serve(w->srv, w->chan, w->name);
	return NULL;
}

/* Joins the workers until the drain deadline or a second signal;
 * returns whether all of them ended. */
static int join_until(struct thread_worker *w, int n, double deadline,
		      const sigset_t *set)
{
	for (int i = 0; i < n;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_timedjoin_np(w[i].tid, NULL, &ts) == 0) {
			i++;
			continue;
		}
		if (second_signal(set) || clock_now() > deadline) {
			log_info("main", "drain cut short: exiting now");
			while (i < n) /* the process exits under them */
				pthread_detach(w[i++].tid);
			return 0;
		}
	}
	return 1;
}

/* Starts n worker threads. If one cannot start, closes the acceptor's end
 * of the channel so that those already running exit, joins them and
 * returns -1 with st set. */
static int start_threads(struct thread_worker *w, int n, int chan[2],
			 struct fs_status *st)
{
	for (int i = 0; i < n; i++) {
		int err = pthread_create(&w[i].tid, NULL, thread_main, &w[i]);
		if (err == 0)
			continue;
		close(chan[0]);
		for (int j = 0; j < i; j++)
			pthread_join(w[j].tid, NULL);
		return fs_fail(
		    st, FS_ERR_LOCAL,
		    "cannot start worker thread %d of %d: %s (the %d "
		    "started were stopped)",
		    i + 1, n, strerror(err), i);
	}
	return 0;
}

static int run_threads(struct server *srv, int chan[2], const sigset_t *set,
		       struct fs_status *st)
{
	int n = srv->cfg.workers;
	struct thread_worker *w = calloc((size_t)n, sizeof(*w));
	if (!w) {
		close(chan[0]);
		close(chan[1]);
		return fs_fail(st, FS_ERR_LOCAL, "out of memory for %d workers",
			       n);
	}
	for (int i = 0; i < n; i++) {
		w[i].srv = srv;
		w[i].chan = chan[1];
		snprintf(w[i].name, sizeof(w[i].name), "worker-%d", i + 1);
	}
	if (start_threads(w, n, chan, st) < 0) {
		close(chan[1]);
		free(w);
		return -1;
	}
	announce(srv);
	int rc = acceptor_run(srv, chan, set, NULL, NULL, st);
	close(chan[0]);
	/* Workers still running at the deadline keep their memory and the
	 * channel: the process exits under them. */
	if (join_until(w, n, clock_now() + srv->cfg.drain_timeout, set)) {
		close(chan[1]);
		free(w);
	} else {
		acceptor_refuse_waiting(chan[1], SERVER_BUSY_STOPPING);
		srv->abandoned = 1;
	}
	return rc;
}

/* ---- process mode ---- */

#define RESPAWN_WINDOW 5.0 /* seconds */
#define RESPAWN_MAX    20  /* early deaths in a window that are fatal */
#define EARLY_DEATH    1.0 /* seconds: a worker dying this young counts */

struct supervisor {
	struct server *srv;
	pid_t *pids, self;
	double *born; /* when each worker was started */
	int n, chan[2];
	double window;
	int deaths; /* early deaths in the current window */
	sigset_t oldmask;
};

static void on_stop_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void on_hangup(int sig)
{
	(void)sig;
	log_reopen();
}

/* A worker process's signals: SIGTERM/SIGINT stop it after its
 * connection, SIGHUP reopens its log, the others the server ignores are
 * ignored. */
static void worker_signals(const sigset_t *oldmask)
{
	struct sigaction stop = {.sa_handler = on_stop_signal};
	struct sigaction hup = {.sa_handler = on_hangup,
				.sa_flags = SA_RESTART};
	sigaction(SIGTERM, &stop, NULL);
	sigaction(SIGINT, &stop, NULL);
	sigaction(SIGHUP, &hup, NULL);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGALRM, SIG_IGN);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
}

/* In a new worker: close what belongs to the parent (the listener, the
 * acceptor's end, the acceptor's own descriptors and the connections it
 * is reading), keeping stdio, the channel, the storage and the log. */
static void close_inherited(const struct supervisor *sup)
{
	int keep[] = {sup->chan[1], sup->srv->storage.dirfd, log_file_fd()};
	unsigned from = 3;
	for (;;) {
		unsigned next = ~0u;
		for (int i = 0; i < 3; i++)
			if (keep[i] >= (int)from && (unsigned)keep[i] < next)
				next = (unsigned)keep[i];
		if (next > from)
			close_range(from, next - 1, 0);
		if (next == ~0u)
			return;
		from = next + 1;
	}
}

/* Forks worker id; returns its pid, or -1 (errno set). The child never
 * returns: it serves until the channel closes and then leaves with
 * _exit(), which skips the parent's atexit handlers and stdio buffers
 * that the fork copied. */
static pid_t spawn_worker(struct supervisor *sup, int id)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != sup->self)
		_exit(0);
	close_inherited(sup);
	worker_signals(&sup->oldmask);
	if (getenv("FILESERV_TEST_WORKER_EXIT")) /* test hook: crash loop */
		_exit(3);
	char name[32];
	snprintf(name, sizeof(name), "worker-%d", id + 1);
	sup->srv->worker = id;
	usage_publish(sup->srv->usage, id);
	pool_serve(sup->srv, sup->chan[1], name);
	_exit(0);
}

static void log_death(int id, pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		log_error("main", "worker-%d (pid %d) killed by signal %d",
			  id + 1, (int)pid, WTERMSIG(status));
	else
		log_error("main", "worker-%d (pid %d) exited with status %d",
			  id + 1, (int)pid, WEXITSTATUS(status));
}

/* SIGHUP: each worker reopens its own log descriptor. */
static int pass_hangup(struct supervisor *sup)
{
	for (int i = 0; i < sup->n; i++)
		if (sup->pids[i] > 0)
			kill(sup->pids[i], SIGHUP);
	return 0;
}

/* SIGCHLD: reaps and replaces workers; -1 with st set if they keep dying
 * or one cannot be replaced. SIGHUP: passed on to the workers. */
static int supervise(void *ctx, int signo, struct fs_status *st)
{
	struct supervisor *sup = ctx;
	if (signo == SIGHUP)
		return pass_hangup(sup);
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int id = 0;
		while (id < sup->n && sup->pids[id] != pid)
			id++;
		if (id == sup->n)
			continue;
		log_death(id, pid, status);
		usage_reaped(sup->srv->usage, id);
		storage_sweep(&sup->srv->storage, pid);
		if (clock_now() - sup->window > RESPAWN_WINDOW) {
			sup->window = clock_now();
			sup->deaths = 0;
		}
		sup->pids[id] = -1;
		/* Only a worker that dies young suggests a crash loop; healthy
		 * workers killed one by one are simply replaced. */
		if (clock_now() - sup->born[id] < EARLY_DEATH &&
		    ++sup->deaths > RESPAWN_MAX)
			return fs_fail(st, FS_ERR_LOCAL,
				       "workers keep dying: giving up");
		if (sup->deaths > sup->n) /* slow a crash loop down */
			nanosleep(&(struct timespec){0, 100000000}, NULL);
		sup->born[id] = clock_now();
		sup->pids[id] = spawn_worker(sup, id);
		if (sup->pids[id] < 0)
			return fs_fail(st, FS_ERR_LOCAL,
				       "cannot replace worker-%d: fork: %s",
				       id + 1, strerror(errno));
	}
	return 0;
}

/* Waits for the workers to finish; SIGKILL at the deadline or on a
 * second signal. */
static void stop_workers(struct supervisor *sup, double deadline,
			 const sigset_t *set)
{
	int left = 0;
	for (int i = 0; i < sup->n; i++)
		left += sup->pids[i] > 0;
	while (left > 0 && clock_now() < deadline && !second_signal(set)) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid > 0)
			left--;
		else if (pid < 0)
			break;
		else
			nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	for (int i = 0; i < sup->n; i++)
		if (sup->pids[i] > 0)
			kill(sup->pids[i], SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;
}

/* Forks the workers; if one cannot start, stops those already running
 * and returns -1 with st set. */
static int start_processes(struct supervisor *sup, const sigset_t *set,
			   struct fs_status *st)
{
	for (int i = 0; i < sup->n; i++) {
		sup->born[i] = clock_now();
		sup->pids[i] = spawn_worker(sup, i);
		if (sup->pids[i] >= 0)
			continue;
		int err = errno;
		close(sup->chan[0]);
		stop_workers(sup, clock_now() + sup->srv->cfg.drain_timeout,
			     set);
		return fs_fail(st, FS_ERR_LOCAL,
			       "cannot start worker process %d of %d: fork: %s "
			       "(the %d started were stopped)",
			       i + 1, sup->n, strerror(err), i);
	}
	return 0;
}

static int run_processes(struct server *srv, int chan[2], sigset_t *set,
			 const sigset_t *oldmask, struct fs_status *st)
{
	struct supervisor sup = {.srv = srv,
				 .self = getpid(),
				 .n = srv->cfg.workers,
				 .chan = {chan[0], chan[1]},
				 .window = clock_now(),
				 .oldmask = *oldmask};
	sup.pids = calloc((size_t)sup.n, sizeof(*sup.pids));
	sup.born = calloc((size_t)sup.n, sizeof(*sup.born));
	int rc = -1;
	if (!sup.pids || !sup.born) {
		fs_fail(st, FS_ERR_LOCAL, "out of memory for %d workers",
			sup.n);
		close(chan[0]);
		goto out;
	}
	sigaddset(set, SIGCHLD);
	sigprocmask(SIG_BLOCK, set, NULL);
	if (start_processes(&sup, set, st) < 0)
		goto out;
	usage_publish(srv->usage, -1);
	announce(srv);
	rc = acceptor_run(srv, chan, set, supervise, &sup, st);
	close(chan[0]);
	stop_workers(&sup, clock_now() + (rc ? 0 : srv->cfg.drain_timeout),
		     set);
	acceptor_refuse_waiting(chan[1], SERVER_BUSY_STOPPING);
out:
	close(chan[1]);
	free(sup.pids);
	free(sup.born);
	return rc;
}

int pool_run(struct server *srv, struct fs_status *st)
{
	signal(SIGPIPE, SIG_IGN);
	sigset_t set, oldmask;
	sigemptyset(&set);
	int handled[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM};
	for (size_t i = 0; i < sizeof(handled) / sizeof(*handled); i++)
		sigaddset(&set, handled[i]);
	pthread_sigmask(SIG_BLOCK, &set, &oldmask);
	int chan[2], rc;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "socketpair: %s",
			       strerror(errno));
	if (strcmp(srv->cfg.mode, "process") == 0)
		rc = run_processes(srv, chan, &set, &oldmask, st);
	else
		rc = run_threads(srv, chan, &set, st);
	if (rc == 0)
		log_info("main", "server stopped");
	return rc;
}
