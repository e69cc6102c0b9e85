/* event.c: the event engine (event.h).
 *
 * DESIGN. A thread of the stress engine's thread pool drives its share of
 * the clients. Each client is a fiber (fiber.c) running the same loop as
 * a worker thread would: the next operation, its exchange, the count.
 * Where a worker would block (connect, a send or receive that would
 * block, the open model's wait for an arrival) the fiber yields to this
 * thread's epoll loop, which resumes it when its socket is ready (edge
 * triggered, one registration per connection), when its -t deadline
 * passes (checked every EVENT_SCAN_S), or when an arrival is due.
 *
 * The exchange is the client API's (client.c): the same request heads,
 * the same reply reader (proto_read_reply) over a conn whose wait hook
 * yields, the same checks and error messages, so that an operation fails
 * the same way in every engine. What makes a client cheap is that no
 * buffer is its own: the reply reader only waits for bytes when it has
 * consumed all it had, and an upload is encoded again from the mapped
 * source at any offset (base64 restarts at every third byte), so the
 * receive buffer, the decoded bytes and the upload's encoded chunk are
 * the thread's, lent to whichever fiber runs. A client keeps its fiber's
 * touched stack pages, its socket and this struct: a few KB.
 *
 * The server's address is resolved once per thread, and the reference
 * file (an upload's source, a download's expected bytes) is mapped once
 * per thread. */
#include "fileserv.h"
#include "client.h"
#include "clock.h"
#include "codec.h"
#include "conn.h"
#include "event.h"
#include "fiber.h"
#include "proto.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EVENT_BUF	 (256 * 1024) /* a thread's receive buffer */
#define EVENT_SEND_CHUNK (64 * 1024)  /* upload bytes encoded per send */
#define EVENT_SCAN_S	 0.05 /* how often deadlines and stops are seen */
#define EVENT_BATCH	 256  /* epoll events taken per wait */
/* A fiber's stack: reserved, touched only as deep as calls go (a few KB);
 * room for the reply reader's JSON parser at its nesting limit. The
 * sanitizers' frames are larger. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EVENT_STACK (1024 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EVENT_STACK (1024 * 1024)
#endif
#endif
#ifndef EVENT_STACK
#define EVENT_STACK (256 * 1024)
#endif

struct client {
	struct conn conn; /* first: the conn's wait hook finds its client */
	struct event_loop *loop;
	struct fiber *fiber;
	uint32_t gen;	/* of the current socket, in its epoll events */
	unsigned ready; /* EPOLLIN/EPOLLOUT seen since the last would-block */
	/* ready for good: EPOLLIN once the peer has shut its side (reads
	 * return what is left, then the end), both once the socket failed */
	unsigned ended;
	unsigned want;	 /* what the parked fiber waits for; 0 not parked */
	double deadline; /* when a parked fiber is woken anyway */
	int sleeping;	 /* until its deadline: a client stage's turn */
	int number;	 /* 1 to the run's clients */
	unsigned parks, seen_parks; /* times it parked; as of its last op */
	/* the last attempt the wait hook let through */
	unsigned last_bit;
	uint64_t last_in, last_out;
	size_t asked;
	/* the exchange's -t pace, as client.c keeps it */
	double last, window_start;
	uint64_t last_moved, window_moved;
	const char *why;
	/* a download's verification */
	uint64_t offset;
	int mismatch;
	/* the open model: the arrival this client was given */
	int assigned;
	double due;
	struct client *next; /* in the free or the runnable list */
	/* what it moved while measured, for the per-client throughput */
	double busy;
	uint64_t bytes;
};

struct event_loop {
	const struct stress_config *cfg;
	const struct event_hooks *hooks;
	int epfd, nclients, running;
	struct client *clients;
	struct addrinfo *addrs; /* the server, resolved once */
	int gai_error;
	char *in;  /* the receive buffer and an upload's encoded chunk */
	char *out; /* decoded data_file bytes */
	const unsigned char *ref; /* the reference file, mapped */
	uint64_t ref_size;
	int verify;
	char head[FS_HEAD_MAX];
	int head_len; /* -1: the name does not fit a request head */
	uint64_t b64_len;
	double end, warm;
	/* the open model */
	struct client *free;	 /* clients waiting for an arrival */
	struct client *runnable; /* clients letting the others run */
	int plan_over, have_next;
	double next_due;
	long next_index;
};

int event_threads(const struct stress_config *cfg)
{
	long n = cfg->threads;
	if (n <= 0)
		n = cfg->pinned ? CPU_COUNT(&cfg->cpus)
				: sysconf(_SC_NPROCESSORS_ONLN);
	if (n > cfg->clients)
		n = cfg->clients;
	return n < 1 ? 1 : (int)n;
}

/* ---- waiting, from inside a client's fiber ---- */

/* Yields until the socket is ready for `bits` or the deadline passes;
 * 0 ready, -1 the deadline passed first. */
static int client_park(struct client *c, unsigned bits, double deadline)
{
	c->want = bits;
	c->deadline = deadline;
	c->parks++;
	fiber_yield(c->fiber);
	c->want = 0;
	return c->ready & bits ? 0 : -1;
}

/* Waits for the socket within the exchange's pace, as client.c's
 * pace_wait: no byte moved for the timeout, or a window of it under
 * CLIENT_MIN_RATE, gives up with ETIMEDOUT and c->why. */
static int client_pace(struct client *c, unsigned bits)
{
	double timeout = c->loop->cfg->server.timeout;
	for (;;) {
		double now = clock_now();
		uint64_t moved = c->conn.bytes_in + c->conn.bytes_out;
		if (moved != c->last_moved) {
			c->last = now;
			c->last_moved = moved;
		}
		if (now - c->window_start >= timeout) {
			if ((double)(moved - c->window_moved) <
			    CLIENT_MIN_RATE * timeout) {
				c->why = "under 1 kB/s";
				break;
			}
			c->window_start = now;
			c->window_moved = moved;
		}
		double idle_end = c->last + timeout;
		double until = c->window_start + timeout;
		if (client_park(c, bits, until < idle_end ? until : idle_end) ==
		    0)
			return 0;
		if (clock_now() >= idle_end) {
			c->why = "no progress";
			break;
		}
	}
	errno = ETIMEDOUT;
	return -1;
}

/* Whether the attempt the hook last let through would have blocked: a
 * receive that did not fill what it asked for drained the socket (edge
 * triggering reports the next arrival), a send that moved nothing. */
static int client_blocked(const struct client *c, unsigned bit)
{
	if (bit == EPOLLIN)
		return c->conn.bytes_in - c->last_in < c->asked;
	return c->conn.bytes_out == c->last_out;
}

/* The conn's wait hook: lets the read or write go ahead while the
 * socket may be ready, else parks the fiber. The receive buffer is the
 * thread's: the reply reader waits only once it has consumed it. */
static int client_wait(struct conn *conn, short events)
{
	struct client *c = (struct client *)conn;
	unsigned bit = events & POLLIN ? EPOLLIN : EPOLLOUT;
	if (bit == EPOLLIN && conn->start != conn->end) {
		errno = ENOBUFS;
		return -1;
	}
	if (bit == c->last_bit && client_blocked(c, bit) && !(c->ended & bit))
		c->ready &= ~bit;
	if (!(c->ready & bit) && client_pace(c, bit) < 0)
		return -1;
	c->last_bit = bit;
	c->last_in = conn->bytes_in;
	c->last_out = conn->bytes_out;
	c->asked = conn->cap - conn->end;
	return 0;
}

/* ---- one exchange ---- */

static uint64_t client_index(const struct client *c)
{
	return (uint64_t)(c - c->loop->clients);
}

/* Waits for a connect in progress on fd to end: 0 connected, else the
 * errno it failed with (ETIMEDOUT after the timeout). */
static int client_connected(struct client *c, int fd)
{
	double deadline = clock_now() + c->loop->cfg->server.timeout;
	int so = 0;
	socklen_t len = sizeof(so);
	while (!(c->ready & EPOLLOUT))
		if (client_park(c, EPOLLOUT, deadline) < 0)
			return ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len) < 0)
		return errno;
	return so;
}

/* Connects to one address: the socket, or -1 with *err set. The
 * connection may take the timeout, as client.c's connect may. */
static int client_try(struct client *c, const struct addrinfo *ai, int *err)
{
	struct event_loop *l = c->loop;
	int fd = socket(ai->ai_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	c->gen++;
	c->ready = 0;
	c->ended = 0;
	int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	struct epoll_event ev = {.events =
				     EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				 .data.u64 = client_index(c) << 32 | c->gen};
	if ((rc < 0 && errno != EINPROGRESS) ||
	    epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	int so = rc < 0 ? client_connected(c, fd) : 0;
	if (so) {
		*err = so;
		close(fd);
		return -1;
	}
	return fd;
}

/* A connected socket, or -1 with st set as client.c's connect sets it. */
static int client_connect(struct client *c, struct fs_status *st)
{
	const struct event_loop *l = c->loop;
	const struct fs_client *s = &l->cfg->server;
	if (!l->addrs)
		return fs_fail(st, FS_ERR_NETWORK, "%s:%s: %s", s->host,
			       s->port, gai_strerror(l->gai_error));
	int err = 0;
	for (const struct addrinfo *ai = l->addrs; ai; ai = ai->ai_next) {
		int fd = client_try(c, ai, &err);
		if (fd >= 0)
			return fd;
	}
	return fs_fail(st, fs_error_from_errno(err),
		       "%s:%s: cannot connect: %s", s->host, s->port,
		       strerror(err));
}

/* The upload's request from byte pos on (head, base64 of the source,
 * terminator) into out, at most cap bytes; returns how many. */
static size_t upload_fill(const struct event_loop *l, uint64_t pos, char *out,
			  size_t cap)
{
	size_t n = 0, head = (size_t)l->head_len;
	if (pos < head) {
		n = head - pos < cap ? head - (size_t)pos : cap;
		memcpy(out, l->head + pos, n);
		pos += n;
	}
	uint64_t at = pos - head; /* in the base64 text */
	if (at < l->b64_len && cap - n > 32) {
		uint64_t from = at / 4 * 3;
		size_t skip = (size_t)(at % 4);
		uint64_t len = (uint64_t)(cap - n - 16) / 4 * 3;
		if (len > l->ref_size - from)
			len = l->ref_size - from;
		struct b64_encoder enc;
		b64_encoder_init(&enc);
		size_t k = b64_encode_update(&enc, l->ref + from, len, out + n);
		if (from + len == l->ref_size)
			k += b64_encode_final(&enc, out + n + k);
		memmove(out + n, out + n + skip, k - skip);
		n += k - skip;
		at += k - skip;
	}
	if (at >= l->b64_len && at < l->b64_len + 4) {
		size_t done = (size_t)(at - l->b64_len), t = 4 - done;
		t = t < cap - n ? t : cap - n;
		memcpy(out + n, &PROTO_TERMINATOR[done], t);
		n += t;
	}
	return n;
}

/* Sends the upload request; 0, or -1 with st set as client.c does. */
static int upload_send(struct client *c, struct fs_status *st)
{
	struct event_loop *l = c->loop;
	uint64_t total = (uint64_t)l->head_len + l->b64_len + 4, pos = 0;
	while (pos < total) {
		size_t n = upload_fill(l, pos, l->in, EVENT_SEND_CHUNK);
		ssize_t k =
		    send(c->conn.fd, l->in, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			pos += (uint64_t)k;
			c->conn.bytes_out += (uint64_t)k;
			if ((size_t)k == n)
				continue;
		} else if (k < 0 && errno == EINTR) {
			continue;
		} else if (k < 0 && errno != EAGAIN) {
			break;
		}
		if (!(c->ended & EPOLLOUT)) /* the socket's buffer is full */
			c->ready &= ~EPOLLOUT;
		if (client_pace(c, EPOLLOUT) < 0)
			break;
	}
	if (pos == total)
		return 0;
	return fs_fail(st, fs_error_from_errno(errno), "sending: %s",
		       strerror(errno));
}

/* The request: an upload's whole, or the head event_open formatted for
 * the run's command; 0 or -1 with st set. */
static int client_send(struct client *c, enum proto_command cmd,
		       struct fs_status *st)
{
	const struct event_loop *l = c->loop;
	if (cmd == CMD_UPLOAD)
		return upload_send(c, st);
	if (conn_write(&c->conn, l->head, (size_t)l->head_len) == 0)
		return 0;
	return fs_fail(st, fs_error_from_errno(errno), "sending: %s",
		       strerror(errno));
}

/* The conn of an exchange on fd, over the thread's buffers. */
static void client_begin(struct client *c, int fd)
{
	c->conn = (struct conn){.fd = fd,
				.buf = c->loop->in,
				.cap = EVENT_BUF,
				.wait = client_wait,
				.scratch = c->loop->out};
	c->last = c->window_start = clock_now();
	c->last_moved = c->window_moved = 0;
	c->why = NULL;
	c->last_bit = 0;
}

/* One request and its reply, as client.c's exchange: a reply that
 * arrives after a failed send still counts (the server may say why). */
static int client_exchange(struct client *c, enum proto_command cmd,
			   const struct fs_sink *sink, uint64_t *count,
			   struct fs_status *st)
{
	const struct fs_client *s = &c->loop->cfg->server;
	if (c->loop->head_len < 0)
		return fs_fail(st, FS_ERR_USAGE, "name too long");
	int fd = client_connect(c, st);
	if (fd < 0)
		return -1;
	client_begin(c, fd);
	int sent = client_send(c, cmd, st);
	struct fs_status read_st;
	cJSON *reply = NULL;
	int rc = proto_read_reply(&c->conn, cmd, sink, &reply, count,
				  sent < 0 ? &read_st : st);
	if (rc == 0)
		rc = client_check_reply(reply, st) < 0 ? -1 : sent;
	cJSON_Delete(reply);
	if (rc < 0 && c->why && st->code != FS_ERR_SERVER)
		fs_fail(st, FS_ERR_TIMEOUT, "%s:%s: timed out (%s for %g s)",
			s->host, s->port, c->why, s->timeout);
	close(fd);
	return rc;
}

/* Compares downloaded bytes with the reference at the same offset. */
static int verify_write(void *ctx, const void *data, size_t len)
{
	struct client *c = ctx;
	const struct event_loop *l = c->loop;
	if (!l->verify)
		return 0;
	if (c->offset + len > l->ref_size ||
	    memcmp(l->ref + c->offset, data, len) != 0) {
		c->mismatch = 1;
		errno = EIO;
		return -1;
	}
	c->offset += len;
	return 0;
}

/* One operation, as stress.c's worker runs it; 0 or -1 with st set. */
static int client_step(struct client *c, uint64_t *bytes, uint64_t *verified,
		       struct fs_status *st)
{
	const struct event_loop *l = c->loop;
	const struct stress_config *cfg = l->cfg;
	uint64_t count = 0;
	if (cfg->op == STRESS_LIST)
		return client_exchange(c, CMD_LIST, NULL, &count, st);
	if (cfg->op == STRESS_UPLOAD) {
		*bytes = l->ref_size;
		return client_exchange(c, CMD_UPLOAD, NULL, &count, st);
	}
	struct fs_sink sink = {verify_write, c};
	c->offset = 0;
	c->mismatch = 0;
	int rc = client_exchange(c, CMD_GET, &sink, bytes, st);
	if (rc == 0 && l->verify && l->ref_size != *bytes)
		c->mismatch = 1;
	if (c->mismatch)
		return fs_fail(st, FS_ERR_MISMATCH,
			       "%s: downloaded bytes differ from %s", cfg->name,
			       cfg->file);
	if (rc == 0 && l->verify)
		*verified = *bytes;
	return rc;
}

/* Client stages: waits for this client's turn; 0 when the stages have
 * none left for it or the run stopped. */
static int client_turn(struct client *c)
{
	const struct event_hooks *h = c->loop->hooks;
	double at = h->turn(h->ctx, c->number);
	if (at < 0)
		return 0;
	if (at > clock_now()) {
		c->sleeping = 1;
		c->deadline = at;
		fiber_yield(c->fiber);
		c->sleeping = 0;
	}
	return !h->stopped(h->ctx);
}

/* Whether the client has another operation, and when it is due: in the
 * closed loop at once, until its iterations or the end; in the open
 * model when the loop gives it an arrival. A closed-loop operation that
 * never waited (a connection refused at once, no descriptor left) lets
 * the loop and the other clients run before the next. */
static int client_next(struct client *c, long i, double *due)
{
	struct event_loop *l = c->loop;
	if (!l->cfg->plan) {
		if (i > 0 && c->parks == c->seen_parks) {
			c->next = l->runnable;
			l->runnable = c;
			fiber_yield(c->fiber);
		}
		c->seen_parks = c->parks;
		double now = clock_now();
		if (l->end ? now >= l->end : i >= l->cfg->iterations)
			return 0;
		if (l->hooks->stopped(l->hooks->ctx) ||
		    (l->hooks->turn && !client_turn(c)))
			return 0;
		*due = clock_now();
		return 1;
	}
	c->assigned = 0;
	c->next = l->free;
	l->free = c;
	fiber_yield(c->fiber);
	*due = c->due;
	return c->assigned;
}

static void client_main(void *arg)
{
	struct client *c = arg;
	struct event_loop *l = c->loop;
	const struct event_hooks *h = l->hooks;
	struct fs_status st = {0};
	double due;
	for (long i = 0; client_next(c, i, &due); i++) {
		double t0 = clock_now();
		if (h->begin(h->ctx, due, t0) < 0)
			continue;
		uint64_t bytes = 0, verified = 0;
		int rc = client_step(c, &bytes, &verified, &st);
		double t1 = clock_now();
		h->end(h->ctx, rc, &st, bytes, verified, due, t0, t1);
		if (t1 >= l->warm) {
			c->busy += t1 - due;
			c->bytes += rc == 0 ? bytes : 0;
		}
	}
	l->running--;
}

/* ---- the loop ---- */

/* The open model: free clients take the arrivals that are due, in
 * order; once the plan is over (or the run stopped) they end. */
static void loop_arrivals(struct event_loop *l)
{
	const struct event_hooks *h = l->hooks;
	while (l->free && !l->plan_over) {
		if (h->stopped(h->ctx)) {
			l->plan_over = 1;
		} else if (!l->have_next) {
			l->next_due = h->take(h->ctx, &l->next_index);
			l->have_next = l->next_due >= 0;
			l->plan_over = !l->have_next;
		} else if (l->next_due <= clock_now()) {
			struct client *c = l->free;
			l->free = c->next;
			c->assigned = 1;
			c->due = l->next_due;
			l->have_next = 0;
			fiber_resume(c->fiber);
		} else {
			return;
		}
	}
	while (l->plan_over && l->free) {
		struct client *c = l->free;
		l->free = c->next;
		fiber_resume(c->fiber);
	}
}

/* Waits up to `seconds` for socket events (to the nanosecond where the
 * kernel has epoll_pwait2, for the open model's arrivals). */
static int loop_wait(struct event_loop *l, struct epoll_event *ev, int max,
		     double seconds)
{
	static int no_pwait2;
	if (seconds < 0)
		seconds = 0;
	if (!__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
		struct timespec ts = {
		    (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
		int n = epoll_pwait2(l->epfd, ev, max, &ts, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		__atomic_store_n(&no_pwait2, 1, __ATOMIC_RELAXED);
	}
	return epoll_wait(l->epfd, ev, max, (int)ceil(seconds * 1e3));
}

static void loop_event(struct event_loop *l, const struct epoll_event *e)
{
	struct client *c = &l->clients[e->data.u64 >> 32];
	if ((uint32_t)e->data.u64 != c->gen)
		return; /* an earlier socket's */
	if (e->events & EPOLLRDHUP)
		c->ended |= EPOLLIN;
	if (e->events & (EPOLLERR | EPOLLHUP))
		c->ended |= EPOLLIN | EPOLLOUT;
	c->ready |= c->ended | (e->events & (EPOLLIN | EPOLLOUT));
	if (c->want & c->ready)
		fiber_resume(c->fiber);
}

/* Resumes the clients that let the others run. */
static void loop_runnable(struct event_loop *l)
{
	struct client *c = l->runnable;
	l->runnable = NULL;
	while (c) {
		struct client *next = c->next;
		fiber_resume(c->fiber);
		c = next;
	}
}

/* Wakes the clients whose deadline has passed, and the sleeping ones
 * once the run is stopped. */
static void loop_scan(struct event_loop *l, double now)
{
	int stopped = l->hooks->stopped(l->hooks->ctx);
	for (int i = 0; i < l->nclients; i++) {
		struct client *c = &l->clients[i];
		if ((c->want || c->sleeping) &&
		    (now >= c->deadline || (c->sleeping && stopped)))
			fiber_resume(c->fiber);
	}
}

double event_drive(struct event_loop *l, const struct event_hooks *hooks,
		   double end, double warm)
{
	struct epoll_event ev[EVENT_BATCH];
	l->hooks = hooks;
	l->end = end;
	l->warm = warm;
	l->running = l->nclients;
	for (int i = 0; i < l->nclients; i++)
		fiber_resume(l->clients[i].fiber);
	double next_scan = clock_now() + EVENT_SCAN_S;
	while (l->running > 0) {
		if (l->cfg->plan)
			loop_arrivals(l);
		if (l->running == 0)
			break;
		double until = l->runnable ? 0 : next_scan;
		if (l->have_next && l->free && l->next_due < until)
			until = l->next_due;
		int n = loop_wait(l, ev, EVENT_BATCH, until - clock_now());
		for (int i = 0; i < n; i++)
			loop_event(l, &ev[i]);
		loop_runnable(l);
		double now = clock_now();
		if (now >= next_scan) {
			loop_scan(l, now);
			next_scan = now + EVENT_SCAN_S;
		}
	}
	double rates = 0;
	for (int i = 0; i < l->nclients; i++)
		if (l->clients[i].busy > 0)
			rates +=
			    (double)l->clients[i].bytes / l->clients[i].busy;
	return rates;
}

/* ---- setting up ---- */

/* Maps the reference file (when there is one and it is not empty). */
static int loop_map(struct event_loop *l, int ref_fd, struct fs_status *st)
{
	struct stat sb;
	l->verify = ref_fd >= 0 && l->cfg->op == STRESS_DOWNLOAD;
	if (ref_fd < 0)
		return 0;
	if (fstat(ref_fd, &sb) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", l->cfg->file,
			       strerror(errno));
	l->ref_size = (uint64_t)sb.st_size;
	l->b64_len = (l->ref_size + 2) / 3 * 4;
	if (l->ref_size == 0)
		return 0;
	void *p = mmap(NULL, l->ref_size, PROT_READ, MAP_SHARED, ref_fd, 0);
	if (p == MAP_FAILED)
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", l->cfg->file,
			       strerror(errno));
	l->ref = p;
	return 0;
}

static int loop_clients(struct event_loop *l, int first, int n,
			struct fs_status *st)
{
	l->clients = calloc((size_t)n, sizeof(*l->clients));
	if (!l->clients)
		return fs_fail(st, FS_ERR_LOCAL, "out of memory");
	for (; l->nclients < n; l->nclients++) {
		struct client *c = &l->clients[l->nclients];
		c->loop = l;
		c->number = first + l->nclients + 1;
		c->fiber = fiber_create(EVENT_STACK, client_main, c);
		if (!c->fiber)
			return fs_fail(st, FS_ERR_LOCAL,
				       "client %d of %d: cannot make its "
				       "stack: %s",
				       l->nclients + 1, n, strerror(errno));
	}
	return 0;
}

struct event_loop *event_open(const struct stress_config *cfg, int first,
			      int clients, int ref_fd, struct fs_status *st)
{
	struct event_loop *l = calloc(1, sizeof(*l));
	if (!l) {
		fs_fail(st, FS_ERR_LOCAL, "out of memory");
		return NULL;
	}
	l->cfg = cfg;
	l->in = malloc(EVENT_BUF);
	l->out = malloc(B64_DECODED_MAX(EVENT_BUF) + 8);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	l->gai_error =
	    getaddrinfo(cfg->server.host, cfg->server.port, &hints, &l->addrs);
	if (l->gai_error)
		l->addrs = NULL;
	enum proto_command cmd = cfg->op == STRESS_UPLOAD ? CMD_UPLOAD
				 : cfg->op == STRESS_LIST ? CMD_LIST
							  : CMD_GET;
	l->head_len = proto_format_head(l->head, sizeof(l->head), cmd,
					cfg->name ? cfg->name : "");
	int rc = !l->in || !l->out ? fs_fail(st, FS_ERR_LOCAL, "out of memory")
		 : l->epfd < 0
		     ? fs_fail(st, FS_ERR_LOCAL, "epoll: %s", strerror(errno))
		     : loop_map(l, ref_fd, st);
	if (rc == 0 && loop_clients(l, first, clients, st) == 0)
		return l;
	event_close(l);
	return NULL;
}

void event_close(struct event_loop *l)
{
	if (!l)
		return;
	for (int i = 0; i < l->nclients; i++)
		fiber_free(l->clients[i].fiber);
	free(l->clients);
	if (l->ref)
		munmap((void *)l->ref, l->ref_size);
	if (l->addrs)
		freeaddrinfo(l->addrs);
	if (l->epfd >= 0)
		close(l->epfd);
	free(l->in);
	free(l->out);
	free(l);
}
