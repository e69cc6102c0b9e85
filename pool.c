/* pool.c: who serves a connection, and how the server stops.
 *
 * single:  the main process accepts and serves, one connection at a time.
 * thread:  N threads each block in accept() on the shared listener and
 *          serve what they get; SIGTERM/SIGINT are blocked in them and
 *          taken by the main thread with sigwait().
 * process: N pre-forked workers do the same in separate processes; the
 *          parent only supervises: it replaces a worker that dies (giving
 *          up if workers keep dying at start), forwards SIGTERM and reaps.
 *          Workers die with the parent (PR_SET_PDEATHSIG).
 *
 * pool_next() is the single point where a connection is handed to a
 * worker. Stopping: the listener is shut down so that no new connection is
 * taken, connections in flight finish, and whatever is still running at
 * the drain deadline is cut; a second signal exits at once. */
#include "fileserv.h"

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

static volatile sig_atomic_t stopping;
static unsigned drain_seconds;	  /* for the SIGALRM that ends a drain */
static int signal_listen_fd = -1; /* shut down by the first stop signal */

/* The next connection for this worker, or -1 once the server stops. */
static int pool_next(struct server *srv)
{
	while (!stopping) {
		int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* out of descriptors: back off, never spin */
			nanosleep(&(struct timespec){0, 50000000}, NULL);
		} else if (errno != EINTR && errno != ECONNABORTED &&
			   errno != EPROTO) {
			break; /* EINVAL: the listener was shut down */
		}
	}
	return -1;
}

static void pool_serve(struct server *srv, const char *worker)
{
	log_info(worker, "worker started");
	int fd;
	while ((fd = pool_next(srv)) >= 0)
		server_handle(srv, fd, worker);
	log_info(worker, "worker exiting");
}

static void on_stop_signal(int sig)
{
	(void)sig;
	if (stopping)
		_exit(1);
	stopping = 1;
	shutdown(signal_listen_fd, SHUT_RD); /* async-signal-safe */
	alarm(drain_seconds);
}

static void on_drain_deadline(int sig)
{
	(void)sig;
	_exit(0);
}

/* Handlers without SA_RESTART so that a blocking accept() returns. */
static void catch_signals(const struct server *srv)
{
	drain_seconds = (unsigned)srv->cfg.drain_timeout + 1;
	signal_listen_fd = srv->listen_fd;
	struct sigaction sa = {.sa_handler = on_stop_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_drain_deadline;
	sigaction(SIGALRM, &sa, NULL);
}

static void announce(struct server *srv)
{
	const struct server_config *c = &srv->cfg;
	int loopback = strncmp(c->host, "127.", 4) == 0 ||
		       strcmp(c->host, "::1") == 0 ||
		       strcmp(c->host, "localhost") == 0;
	log_info("main",
		 "fileserv %s serving %s on %s:%d (%s mode, %d worker%s)%s",
		 FILESERV_VERSION, c->storage, c->host, srv->port, c->mode,
		 c->workers, c->workers == 1 ? "" : "s",
		 loopback ? "; loopback only, --host 0.0.0.0 exposes it to "
			    "the network"
			  : "; reachable from the network");
	if (c->ready_fd >= 0) {
		dprintf(c->ready_fd, "%d\n", srv->port);
		close(c->ready_fd);
	}
}

/* Stops taking connections: accept() in every worker returns EINVAL. */
static void stop_listening(struct server *srv)
{
	shutdown(srv->listen_fd, SHUT_RD);
}

static int run_single(struct server *srv)
{
	catch_signals(srv);
	announce(srv);
	pool_serve(srv, "main");
	return 0;
}

/* ---- thread mode ---- */

struct thread_worker {
	pthread_t tid;
	struct server *srv;
	char name[32];
};

static void *thread_main(void *arg)
{
	struct thread_worker *w = arg;
	pool_serve(w->srv, w->name);
	return NULL;
}

/* Joins the workers until the drain deadline; a second signal ends it. */
static void join_until(struct thread_worker *w, int n, double deadline,
		       const sigset_t *set)
{
	for (int i = 0; i < n;) {
		struct timespec ts, zero = {0, 0};
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
		if (sigtimedwait(set, NULL, &zero) > 0 ||
		    units_now() > deadline) {
			log_info("main", "drain cut short: exiting now");
			return;
		}
	}
}

static int run_threads(struct server *srv)
{
	int n = srv->cfg.workers;
	struct thread_worker *w = calloc((size_t)n, sizeof(*w));
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; w && i < n; i++) {
		w[i].srv = srv;
		snprintf(w[i].name, sizeof(w[i].name), "worker-%d", i + 1);
		if (pthread_create(&w[i].tid, NULL, thread_main, &w[i])) {
			log_error("main", "cannot start worker threads");
			_exit(1);
		}
	}
	if (!w)
		return 1;
	announce(srv);
	int sig;
	sigwait(&set, &sig);
	log_info("main", "%s: stopping", strsignal(sig));
	stopping = 1;
	stop_listening(srv);
	join_until(w, n, units_now() + srv->cfg.drain_timeout, &set);
	free(w);
	return 0;
}

/* ---- process mode ---- */

#define RESPAWN_WINDOW 5.0 /* seconds */
#define RESPAWN_MAX    20  /* early deaths in a window that are fatal */

static pid_t spawn_worker(struct server *srv, int id, pid_t parent)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	catch_signals(srv);
	char name[32];
	snprintf(name, sizeof(name), "worker-%d", id + 1);
	if (getenv("FILESERV_TEST_WORKER_EXIT")) /* test hook: crash loop */
		_exit(3);
	pool_serve(srv, name);
	_exit(0);
}

static void stop_workers(pid_t *pids, int n, double deadline)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	int left = n;
	while (left > 0 && units_now() < deadline) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid > 0)
			left--;
		else if (pid < 0 && errno == ECHILD)
			return;
		else
			nanosleep(&(struct timespec){0, 20000000}, NULL);
	}
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;
}

static int find_worker(const pid_t *pids, int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (pids[i] == pid)
			return i;
	return -1;
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

/* Reaps and replaces workers until a stop signal; -1 if they keep dying. */
static int supervise(struct server *srv, pid_t *pids, int n, pid_t self)
{
	double window = units_now();
	int deaths = 0, status;
	while (!stopping) {
		pid_t pid = waitpid(-1, &status, 0);
		int id = pid > 0 ? find_worker(pids, n, pid) : -1;
		if (id < 0)
			continue;
		log_death(id, pid, status);
		if (units_now() - window > RESPAWN_WINDOW) {
			window = units_now();
			deaths = 0;
		}
		if (++deaths > RESPAWN_MAX) {
			pids[id] = -1;
			log_error("main", "workers keep dying: giving up");
			return -1;
		}
		if (deaths > n)
			nanosleep(&(struct timespec){0, 100000000}, NULL);
		pids[id] = spawn_worker(srv, id, self);
	}
	return 0;
}

static int run_processes(struct server *srv)
{
	int n = srv->cfg.workers;
	pid_t self = getpid(), *pids = calloc((size_t)n, sizeof(*pids));
	if (!pids)
		return 1;
	catch_signals(srv);
	for (int i = 0; i < n; i++)
		pids[i] = spawn_worker(srv, i, self);
	announce(srv);
	int rc = supervise(srv, pids, n, self);
	if (rc == 0)
		log_info("main", "stopping");
	stop_listening(srv);
	stop_workers(pids, n, units_now() + (rc ? 0 : srv->cfg.drain_timeout));
	free(pids);
	return rc ? 2 : 0;
}

int pool_run(struct server *srv)
{
	signal(SIGPIPE, SIG_IGN);
	const char *mode = srv->cfg.mode;
	int rc = strcmp(mode, "single") == 0   ? run_single(srv)
		 : strcmp(mode, "thread") == 0 ? run_threads(srv)
					       : run_processes(srv);
	log_info("main", "server stopped");
	return rc;
}
