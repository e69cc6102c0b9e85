/* acceptor.c: the event loop in front of the worker pools.
 *
 * DESIGN. One thread owns the listening socket and an epoll set. It
 * accepts every connection non-blocking and reads its request head (at
 * most FS_HEAD_MAX bytes) without holding a worker, so clients that
 * trickle a request byte by byte cost a descriptor and a small buffer,
 * never a worker. A head must be complete within --head-timeout, and an
 * UPLOAD must also bring its whole request or a full buffer of data by
 * then. A complete head (or one already known to be invalid) is handed to
 * the workers with the bytes read so far, over one SOCK_SEQPACKET Unix
 * socket: the descriptor travels as SCM_RIGHTS, so thread and process
 * workers receive connections the same way, each message going to exactly
 * one idle worker. When every worker is busy the handed-over connections
 * wait in that socket's buffer and then in a ready list here.
 *
 * Limits enforced here: the connection cap (--max-conns: every connection
 * open on the server's account counts, whether its head is being read,
 * it waits for a worker or a worker serves it; beyond the cap a new
 * connection gets a busy ERROR at once), the head timeout (the shorter of
 * --head-timeout and --idle-timeout), the queue timeout (a complete
 * request that no worker has taken within --queue-timeout gets a busy
 * ERROR: the acceptor takes the oldest back from the channel when it is
 * overdue, which it can see with MSG_PEEK since the channel is FIFO), and
 * EMFILE, which answers the backlog with a busy ERROR through a spare
 * descriptor and pauses accepting for 100 ms instead of spinning. At the
 * end of a drain, whatever still waits gets a busy ERROR too: a client
 * is never closed on, or left waiting, without a reply. Signals (SIGTERM,
 * SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM and, in process mode, SIGCHLD)
 * arrive through a signalfd in the same loop. Workers count what they receive
 * in shared memory, which tells the acceptor how many handed-over connections
 * are still waiting. */
#include "fileserv.h"
#include "clock.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum { TAG_LISTENER = 1, TAG_SIGNALS, TAG_CHANNEL };

struct pending {
	struct pending *prev, *next;
	double deadline;
	int watched; /* registered with epoll */
	int stats;   /* a STATS request and nothing more: answered here */
	struct handoff h;
};

struct acceptor {
	struct server *srv;
	int epfd, sigfd, chan, workers_end; /* the channel's two ends */
	double chan_deadline;	/* when the oldest handed-over one is overdue */
	int chan_watched;	/* waiting for room in the channel */
	struct pending reading; /* heads being read, oldest first */
	struct pending ready;	/* complete heads the channel has no room for */
	size_t nreading, nready;
	uint64_t sent;
	double paused_until; /* accept() hit the descriptor limit */
	int spare; /* a descriptor kept free for refusing under EMFILE */
	int (*on_signal)(void *ctx, int signo, struct fs_status *st);
	struct fs_status *st; /* why run_loop() failed */
	void *ctx;
	double stop_at; /* stopping: the drain deadline */
};

static int take(int chan, struct handoff *h, int nonblocking);

static void list_init(struct pending *l)
{
	l->prev = l->next = l;
}

static void list_push(struct pending *l, struct pending *p)
{
	p->prev = l->prev;
	p->next = l;
	l->prev->next = p;
	l->prev = p;
}

static void list_remove(struct pending *p)
{
	p->prev->next = p->next;
	p->next->prev = p->prev;
}

/* Reading what the client already sent first makes the close a FIN, not
 * a reset that could destroy the reply before the client reads it. */
void acceptor_refuse(int fd, const char *message)
{
	char buf[4096];
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	char *reply = proto_reply_error(message);
	if (reply &&
	    send(fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		errno = 0;
	free(reply);
	shutdown(fd, SHUT_WR);
	close(fd);
}

static void drop(struct acceptor *a, struct pending *p, const char *why)
{
	list_remove(p);
	a->nreading--;
	if (why)
		acceptor_refuse(p->h.fd, why);
	else
		close(p->h.fd);
	free(p);
}

/* Connections open on the server's account: heads being read, complete
 * ones waiting here or in the channel, and those workers still serve. */
static uint64_t open_connections(const struct acceptor *a)
{
	uint64_t done =
	    __atomic_load_n(&a->srv->stats->completed, __ATOMIC_RELAXED);
	return a->nreading + a->nready + (a->sent - done);
}

/* A hand-off message: when it was queued, the peer's address, then the
 * head bytes. */
static int handoff_iov(struct handoff *h, struct iovec iov[4], size_t len)
{
	iov[0] = (struct iovec){&h->queued, sizeof(h->queued)};
	iov[1] = (struct iovec){&h->peer_len, sizeof(h->peer_len)};
	iov[2] = (struct iovec){&h->peer, sizeof(h->peer)};
	iov[3] = (struct iovec){h->head, len};
	return 4;
}

/* Sends one connection to the workers; 0, or -1 if the channel is full. */
static int hand_off(struct acceptor *a, struct pending *p)
{
	char control[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov[4];
	struct msghdr msg = {.msg_iov = iov,
			     .msg_iovlen = handoff_iov(&p->h, iov, p->h.len),
			     .msg_control = control,
			     .msg_controllen = sizeof(control)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p->h.fd, sizeof(int));
	if (sendmsg(a->chan, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -1;
	close(p->h.fd); /* the worker has its own copy now */
	a->sent++;
	return 0;
}

static void watch_channel(struct acceptor *a, int want_out)
{
	struct epoll_event ev = {.events = want_out ? EPOLLOUT : 0,
				 .data.u64 = TAG_CHANNEL};
	if (a->chan_watched != want_out &&
	    epoll_ctl(a->epfd, EPOLL_CTL_MOD, a->chan, &ev) == 0)
		a->chan_watched = want_out;
}

static void flush_ready(struct acceptor *a)
{
	while (a->nready > 0) {
		struct pending *p = a->ready.next;
		if (hand_off(a, p) < 0) {
			if (errno != EAGAIN)
				log_error("acceptor", "handing off: %s",
					  strerror(errno));
			watch_channel(a, errno == EAGAIN);
			return;
		}
		list_remove(p);
		a->nready--;
		free(p);
	}
	watch_channel(a, 0);
}

/* STATS is answered here, never queued for a worker: a monitor asking
 * while every worker is busy with long transfers would wait behind them,
 * and a figure meant as the start of a measurement (fileserv stress takes
 * one when its warm-up ends) would come seconds late, leaving out the
 * work done meanwhile. Only a request with nothing after it comes here
 * (the others go to a worker, which lingers for their extra bytes); its
 * reply is small and its socket fresh, so one non-blocking send holds it,
 * and nothing is read after it, so that no client can hold the acceptor. */
static void answer_stats(struct acceptor *a, struct pending *p)
{
	struct server *srv = a->srv;
	char *text = server_stats_reply(srv);
	size_t len = text ? strlen(text) : 0;
	ssize_t n =
	    text ? send(p->h.fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL) : -1;
	free(text);
	__atomic_fetch_add(&srv->stats->connections, 1, __ATOMIC_RELAXED);
	stats_count_request(srv->stats, CMD_STATS, n == (ssize_t)len);
	stats_count_bytes(srv->stats, p->h.len, n > 0 ? (uint64_t)n : 0, 0, 0);
	if (n != (ssize_t)len)
		log_error("acceptor", "answering STATS: %s",
			  n < 0 ? strerror(errno) : "reply cut short");
	close(p->h.fd);
	free(p);
}

static void head_complete(struct acceptor *a, struct pending *p)
{
	if (p->watched)
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->h.fd, NULL);
	list_remove(p);
	a->nreading--;
	if (p->stats) {
		answer_stats(a, p);
		return;
	}
	p->h.queued = clock_now();
	p->deadline = p->h.queued + a->srv->cfg.queue_timeout;
	list_push(&a->ready, p);
	a->nready++;
	flush_ready(a);
}

/* Whether a worker should take the connection now: its head is complete
 * or known to be invalid, and an UPLOAD has also sent its whole request
 * or a full buffer of data. A client that trickles an upload's body so
 * never holds a worker; it meets the head timeout here instead. */
static int ready_for_worker(struct pending *p)
{
	struct proto_request req;
	size_t consumed;
	int rc = proto_parse_head(p->h.head, p->h.len, &req, &consumed, NULL);
	p->stats = rc > 0 && req.cmd == CMD_STATS && consumed == p->h.len;
	if (rc <= 0 || req.cmd != CMD_UPLOAD)
		return rc != 0;
	return p->h.len == sizeof(p->h.head) ||
	       proto_find_terminator(p->h.head + consumed,
				     p->h.len - consumed) >= 0;
}

/* Reads what has arrived; returns 0 while the head is incomplete, or 1
 * once p was handed over or dropped (and freed). */
static int read_head(struct acceptor *a, struct pending *p)
{
	ssize_t n;
	while ((n = recv(p->h.fd, p->h.head + p->h.len,
			 sizeof(p->h.head) - p->h.len, MSG_DONTWAIT)) > 0) {
		p->h.len += (size_t)n;
		if (ready_for_worker(p)) {
			head_complete(a, p);
			return 1;
		}
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	drop(a, p, NULL); /* gone before a complete request */
	return 1;
}

/* Out of descriptors: answer what waits in the backlog with a busy
 * ERROR using the spare descriptor, then stop accepting for 100 ms, so
 * that the server neither spins nor leaves clients hanging. */
static void pause_accepting(struct acceptor *a)
{
	while (a->spare >= 0) {
		close(a->spare);
		int fd = accept4(a->srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			acceptor_refuse(fd, "server busy: out of descriptors, "
					    "try again later");
		a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
	}
	epoll_ctl(a->epfd, EPOLL_CTL_DEL, a->srv->listen_fd, NULL);
	a->paused_until = clock_now() + 0.1;
	log_error("acceptor", "out of descriptors: pausing accept for 100 ms");
}

static void resume_accepting(struct acceptor *a)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTENER};
	if (a->paused_until > 0 && clock_now() >= a->paused_until &&
	    epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->srv->listen_fd, &ev) == 0)
		a->paused_until = 0;
}

static void new_connection(struct acceptor *a, int fd,
			   const struct sockaddr_storage *peer,
			   socklen_t peer_len)
{
	const struct server_config *cfg = &a->srv->cfg;
	if (cfg->max_conns && open_connections(a) >= (uint64_t)cfg->max_conns) {
		acceptor_refuse(fd, "server busy: too many connections, try "
				    "again later");
		return;
	}
	struct pending *p = malloc(sizeof(*p));
	if (!p) {
		close(fd);
		return;
	}
	p->h.fd = fd;
	p->h.len = 0;
	p->h.peer = *peer;
	p->h.peer_len = peer_len;
	p->watched = 0;
	p->deadline = clock_now() + (cfg->head_timeout < cfg->idle_timeout
					 ? cfg->head_timeout
					 : cfg->idle_timeout);
	list_push(&a->reading, p);
	a->nreading++;
	if (read_head(a, p)) /* the request is often there already */
		return;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
	ev.data.ptr = p;
	p->watched = epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) == 0;
	if (!p->watched)
		drop(a, p, NULL);
}

static void accept_all(struct acceptor *a)
{
	for (;;) {
		struct sockaddr_storage peer = {0}; /* all of it is sent */
		socklen_t peer_len = sizeof(peer);
		int fd = accept4(a->srv->listen_fd, (struct sockaddr *)&peer,
				 &peer_len, SOCK_CLOEXEC);
		if (fd >= 0) {
			new_connection(a, fd, &peer, peer_len);
		} else if (errno == EMFILE || errno == ENFILE ||
			   errno == ENOBUFS || errno == ENOMEM) {
			pause_accepting(a);
			return;
		} else if (errno != EINTR && errno != ECONNABORTED) {
			return; /* EAGAIN: accepted them all */
		}
	}
}

static void expire_heads(struct acceptor *a, double now)
{
	while (a->nreading > 0 && a->reading.next->deadline <= now)
		drop(a, a->reading.next,
		     "timed out waiting for a complete request");
}

#define QUEUE_BUSY "server busy: no worker free, try again later"

/* When the oldest connection in the channel was queued: 1, 0 if the
 * channel is empty, -1 on error. It stays there (MSG_PEEK). */
static int channel_oldest(const struct acceptor *a, double *queued)
{
	ssize_t n = recv(a->workers_end, queued, sizeof(*queued),
			 MSG_PEEK | MSG_DONTWAIT);
	if (n == (ssize_t)sizeof(*queued))
		return 1;
	return n < 0 && errno == EAGAIN ? 0 : -1;
}

/* Takes overdue connections back from the channel and answers them busy.
 * A worker may take the one peeked at first: one received that is not
 * overdue goes back first in line here. */
static void expire_channel(struct acceptor *a, double now)
{
	double queued, timeout = a->srv->cfg.queue_timeout;
	struct stats_counters *stats = a->srv->stats;
	a->chan_deadline = 0;
	if (a->sent == __atomic_load_n(&stats->dispatched, __ATOMIC_RELAXED))
		return; /* the workers took all */
	while (channel_oldest(a, &queued) > 0) {
		if (queued + timeout > now) {
			a->chan_deadline = queued + timeout;
			return;
		}
		struct pending *p = malloc(sizeof(*p));
		int rc = p ? take(a->workers_end, &p->h, 1) : -1;
		if (rc == 0) {
			__atomic_fetch_add(&stats->dispatched, 1,
					   __ATOMIC_RELAXED);
			__atomic_fetch_add(&stats->completed, 1,
					   __ATOMIC_RELAXED);
		}
		if (rc == 0 && p->h.queued + timeout > now) {
			p->deadline = p->h.queued + timeout;
			list_push(a->ready.next, p); /* first in line */
			a->nready++;
			flush_ready(a);
			continue;
		}
		if (rc == 0)
			acceptor_refuse(p->h.fd, QUEUE_BUSY);
		free(p);
		if (rc == -1 || rc == -3)
			return;
	}
}

/* Answers busy what has waited --queue-timeout for a worker. */
static void expire_queued(struct acceptor *a, double now)
{
	while (a->nready > 0 && a->ready.next->deadline <= now) {
		struct pending *p = a->ready.next;
		list_remove(p);
		a->nready--;
		acceptor_refuse(p->h.fd, QUEUE_BUSY);
		free(p);
	}
	if (a->nready == 0)
		watch_channel(a, 0);
	expire_channel(a, now);
}

static double earliest(double a, double b)
{
	return a == 0 || (b != 0 && b < a) ? b : a;
}

static int wait_ms(const struct acceptor *a, double now)
{
	double next = a->nreading ? a->reading.next->deadline : 0;
	next = earliest(next, a->nready ? a->ready.next->deadline : 0);
	next = earliest(next, a->chan_deadline);
	if (a->stop_at > 0 && (next == 0 || a->stop_at < next))
		next = a->stop_at;
	if (a->paused_until > 0 && (next == 0 || a->paused_until < next))
		next = a->paused_until;
	if (next == 0)
		return -1;
	return next <= now ? 0 : (int)((next - now) * 1000) + 1;
}

/* Stops taking connections: the listener closes, so that new ones are
 * refused at once; heads already being read may still complete. */
static void stop_listening(struct acceptor *a)
{
	close(a->srv->listen_fd);
	a->srv->listen_fd = -1;
	a->stop_at = clock_now() + a->srv->cfg.drain_timeout;
}

/* SIGHUP reopens the log file (log rotation) and is passed on; SIGUSR1,
 * SIGUSR2 and SIGALRM are logged and otherwise ignored. */
static int other_signal(struct acceptor *a, int signo)
{
	if (signo != SIGHUP) {
		log_info("main", "%s: ignored", strsignal(signo));
		return 0;
	}
	if (log_reopen() < 0)
		log_error("main", "%s: reopening the log file: %s",
			  strsignal(signo), strerror(errno));
	else
		log_info("main", "%s: log file reopened", strsignal(signo));
	return a->on_signal && a->on_signal(a->ctx, signo, a->st) < 0 ? -1 : 0;
}

/* 1 to stop now, -1 on a fatal error, 0 to go on. */
static int take_signal(struct acceptor *a)
{
	struct signalfd_siginfo si;
	if (read(a->sigfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	int signo = (int)si.ssi_signo;
	if (signo == SIGCHLD)
		return a->on_signal && a->on_signal(a->ctx, signo, a->st) < 0
			   ? -1
			   : 0;
	if (signo != SIGTERM && signo != SIGINT)
		return other_signal(a, signo);
	if (a->stop_at > 0)
		return 1; /* a second signal */
	log_info("main", "%s: stopping", strsignal(signo));
	stop_listening(a);
	return 0;
}

/* Runs until a stop signal, and then until the heads that were being
 * read have been handed over (or the drain deadline). */
static int run_loop(struct acceptor *a)
{
	struct epoll_event ev[64];
	while (!a->stop_at ||
	       ((a->nreading || a->nready) && clock_now() < a->stop_at)) {
		int n = epoll_wait(a->epfd, ev, 64, wait_ms(a, clock_now()));
		if (n < 0 && errno != EINTR)
			return fs_fail(a->st, FS_ERR_LOCAL, "epoll_wait: %s",
				       strerror(errno));
		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;
			int rc = 0;
			if (tag == TAG_LISTENER)
				accept_all(a);
			else if (tag == TAG_SIGNALS)
				rc = take_signal(a);
			else if (tag == TAG_CHANNEL)
				flush_ready(a);
			else
				read_head(a, ev[i].data.ptr);
			if (rc)
				return rc > 0 ? 0 : -1;
		}
		expire_heads(a, clock_now());
		expire_queued(a, clock_now());
		if (!a->stop_at)
			resume_accepting(a);
	}
	return 0;
}

static void watch(int epfd, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};
	epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Closes what the acceptor holds: the listener first, so that new
 * connections are refused at once, then what the drain did not get to,
 * with a busy ERROR. */
static void shut(struct acceptor *a)
{
	if (a->srv->listen_fd >= 0)
		stop_listening(a);
	flush_ready(a);
	while (a->nreading > 0)
		drop(a, a->reading.next, SERVER_BUSY_STOPPING);
	while (a->nready > 0) {
		struct pending *p = a->ready.next;
		list_remove(p);
		a->nready--;
		acceptor_refuse(p->h.fd, SERVER_BUSY_STOPPING);
		free(p);
	}
	close(a->epfd);
}

int acceptor_run(struct server *srv, const int chan[2], const sigset_t *signals,
		 int (*on_signal)(void *ctx, int signo, struct fs_status *st),
		 void *ctx, struct fs_status *st)
{
	struct acceptor a = {.srv = srv,
			     .chan = chan[0],
			     .workers_end = chan[1],
			     .on_signal = on_signal,
			     .ctx = ctx,
			     .st = st};
	list_init(&a.reading);
	list_init(&a.ready);
	a.epfd = epoll_create1(EPOLL_CLOEXEC);
	a.sigfd = signalfd(-1, signals, SFD_CLOEXEC | SFD_NONBLOCK);
	a.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (a.epfd < 0 || a.sigfd < 0) {
		fs_fail(st, FS_ERR_LOCAL, "cannot start the acceptor: %s",
			strerror(errno));
		if (a.epfd >= 0)
			close(a.epfd);
		if (a.sigfd >= 0)
			close(a.sigfd);
		if (a.spare >= 0)
			close(a.spare);
		return -1;
	}
	fcntl(srv->listen_fd, F_SETFL,
	      fcntl(srv->listen_fd, F_GETFL) | O_NONBLOCK);
	watch(a.epfd, srv->listen_fd, EPOLLIN, TAG_LISTENER);
	watch(a.epfd, a.sigfd, EPOLLIN, TAG_SIGNALS);
	watch(a.epfd, a.chan, 0, TAG_CHANNEL);
	int rc = run_loop(&a);
	shut(&a);
	close(a.sigfd);
	close(a.spare);
	return rc;
}

/* acceptor_receive(), or without waiting: then -3 when none waits. */
static int take(int chan, struct handoff *h, int nonblocking)
{
	char control[CMSG_SPACE(sizeof(int))];
	struct iovec iov[4];
	struct msghdr msg = {.msg_iov = iov,
			     .msg_iovlen = handoff_iov(h, iov, sizeof(h->head)),
			     .msg_control = control,
			     .msg_controllen = sizeof(control)};
	ssize_t n = recvmsg(
	    chan, &msg, MSG_CMSG_CLOEXEC | (nonblocking ? MSG_DONTWAIT : 0));
	if (n < 0 && errno == EAGAIN)
		return -3;
	if (n <= 0)
		return n == 0 ? -1 : errno == EINTR ? -2 : -1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	h->fd = -1;
	if (cm && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&h->fd, CMSG_DATA(cm), sizeof(int));
	size_t fixed =
	    sizeof(h->queued) + sizeof(h->peer_len) + sizeof(h->peer);
	if (h->fd >= 0 && (size_t)n < fixed) {
		close(h->fd);
		h->fd = -1;
	}
	h->len = h->fd >= 0 ? (size_t)n - fixed : 0;
	return h->fd >= 0 ? 0 : -2;
}

int acceptor_receive(int chan, struct handoff *h)
{
	return take(chan, h, 0);
}

int acceptor_try_receive(int chan, struct handoff *h)
{
	return take(chan, h, 1);
}

void acceptor_refuse_waiting(int chan, const char *message)
{
	struct handoff *h = malloc(sizeof(*h));
	int rc;
	while (h && (rc = take(chan, h, 1)) != -1 && rc != -3)
		if (rc == 0)
			acceptor_refuse(h->fd, message);
	free(h);
}
