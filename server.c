/* server.c: the listening socket and the life of one connection: read the
 * request head (capped), run the command against storage, write the reply,
 * count it, log it, close. Transfers stream through fixed-size buffers:
 * GET encodes file chunks straight into the socket, UPLOAD decodes socket
 * chunks straight into a temporary file. Which worker runs a connection is
 * pool.c's business; server_handle() is the one place a connection enters. */
#include "fileserv.h"
#include "affinity.h"
#include "clock.h"
#include "codec.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "storage.h"
#include "usage.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_BUF	(256 * 1024)
#define LINGER_MAX	2.0	   /* seconds spent draining a refused upload */
#define CLOSE_DRAIN_MAX (1u << 20) /* bytes dropped after a reply */
#define HEAD_READ_MAX	(64 * 1024) /* bytes read of an invalid request */

/* The listening socket. Accepted sockets inherit its timeouts (one call
 * here, not two per connection), so they are set before listen(): a
 * connection completed before them would have none. */
static int listen_on(const char *host, int port, double timeout,
		     struct fs_status *st)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
			*res;
	char service[16];
	snprintf(service, sizeof(service), "%d", port);
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc)
		return fs_fail(st, FS_ERR_USAGE, "listen address %s: %s", host,
			       gai_strerror(rc));
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd >= 0)
		conn_set_timeouts(fd, timeout);
	if (fd >= 0 &&
	    (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	     bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	     listen(fd, 4096) < 0)) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return fs_fail(st, FS_ERR_NETWORK, "listening on %s:%d: %s",
			       host, port, strerror(errno));
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Drops root for good: the groups, then the group, then the user, as
 * privilege-separated daemons do; what was opened as root (the
 * listener, the storage, the log) stays open. */
static int become_user(const char *user, int storage_fd, struct fs_status *st)
{
	struct passwd *pw = getpwnam(user);
	if (!pw)
		return fs_fail(st, FS_ERR_USAGE, "--user %s: no such user",
			       user);
	if (geteuid() != 0)
		return fs_fail(st, FS_ERR_USAGE,
			       "--user %s: only a server started as root can "
			       "change its user",
			       user);
	int deathsig = 0; /* cleared by a change of credentials */
	prctl(PR_GET_PDEATHSIG, &deathsig);
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "--user %s: %s", user,
			       strerror(errno));
	if (pw->pw_uid != 0 && setuid(0) == 0)
		return fs_fail(st, FS_ERR_LOCAL,
			       "--user %s: root could be regained", user);
	if (deathsig)
		prctl(PR_SET_PDEATHSIG, deathsig);
	if (faccessat(storage_fd, ".", W_OK | X_OK, AT_EACCESS) < 0)
		return fs_fail(st, FS_ERR_USAGE,
			       "--user %s: the storage directory is not "
			       "writable by that user",
			       user);
	return 0;
}

int server_open(struct server *srv, const struct server_config *cfg,
		struct fs_status *st)
{
	memset(srv, 0, sizeof(*srv));
	srv->cfg = *cfg;
	srv->listen_fd = -1;
	if (storage_open(&srv->storage, cfg->storage, cfg->sync, st) < 0)
		return -1;
	srv->stats = stats_shared_create();
	srv->usage =
	    usage_create(strcmp(cfg->mode, "process") == 0 ? cfg->workers : 0);
	srv->worker = -1;
	if (!srv->stats || !srv->usage)
		return fs_fail(st, FS_ERR_LOCAL, "shared counters: %s",
			       strerror(errno));
	srv->listen_fd = listen_on(cfg->host, cfg->port, cfg->idle_timeout, st);
	if (srv->listen_fd < 0)
		return -1;
	if (cfg->user && become_user(cfg->user, srv->storage.dirfd, st) < 0)
		return -1;
	srv->port = bound_port(srv->listen_fd);
	srv->started = clock_now();
	return 0;
}

void server_close(struct server *srv)
{
	if (srv->abandoned)
		return; /* threads still use it: exiting will close it all */
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	srv->listen_fd = -1;
	storage_close(&srv->storage);
}

/* ---- one request ---- */

struct request {
	struct server *srv;
	struct conn conn;
	struct proto_request req;
	const char *worker;
	uint64_t file_bytes;
	struct fs_status st; /* error reply text, or what went wrong */
	int counted;	     /* 1 as succeeded, -1 as failed, 0 not yet */
	double started;	     /* when a worker took the connection */
	double pace_start;   /* the current --min-rate window */
	uint64_t pace_bytes;
	int too_slow, too_long;
	int stalled;  /* the client stopped sending or went away */
	int cut;      /* the reply was cut off: close with a reset */
	int lingered; /* linger_drain() has read what the client sent */
};

/* The connection's check: fails the transfer (ETIMEDOUT) when it moved
 * less than --min-rate over the last window, one idle timeout long, or
 * has lasted longer than --transfer-timeout. This cuts a client that
 * trickles a body, or reads a reply, just fast enough to dodge the idle
 * timeout, and bounds how long any client can hold a worker. */
static int check_pace(struct conn *c)
{
	struct request *r =
	    (struct request *)((char *)c - offsetof(struct request, conn));
	const struct server_config *cfg = &r->srv->cfg;
	double now = clock_now(), span = now - r->pace_start;
	if (cfg->transfer_timeout > 0 &&
	    now - r->started > cfg->transfer_timeout) {
		r->too_long = 1;
		errno = ETIMEDOUT;
		return -1;
	}
	if (cfg->min_rate <= 0 || span < cfg->idle_timeout)
		return 0;
	uint64_t moved = c->bytes_in + c->bytes_out;
	int slow = (double)(moved - r->pace_bytes) < cfg->min_rate * span;
	r->pace_start = now;
	r->pace_bytes = moved;
	if (!slow)
		return 0;
	r->too_slow = 1;
	errno = ETIMEDOUT;
	return -1;
}

/* Why a transfer stopped, for the log and the reply. */
static const char *io_error(const struct request *r, ssize_t n)
{
	if (r->too_slow)
		return "transfer too slow (under --min-rate)";
	if (r->too_long)
		return "transfer took longer than --transfer-timeout";
	if (n == 0)
		return "client closed the connection";
	return errno == EAGAIN ? "timed out" : strerror(errno);
}

/* Records the outcome in STATS (once; later calls correct it). */
static void settle(struct request *r, int ok)
{
	struct stats_counters *s = r->srv->stats;
	if (r->counted == 0)
		stats_count_request(s, r->req.cmd, ok);
	else if ((r->counted > 0) != ok)
		stats_recount(s, r->req.cmd, ok);
	r->counted = ok ? 1 : -1;
}

/* Writes the final reply; ok says whether the request succeeded. */
static int reply(struct request *r, char *text, int ok)
{
	settle(r, ok && text);
	int rc = text ? conn_write(&r->conn, text, strlen(text)) : -1;
	free(text);
	return ok ? rc : -1;
}

static int reply_error(struct request *r)
{
	return reply(r, proto_reply_error(r->st.message), 0);
}

/* A reply cut off midway cannot be completed: close with a reset, so
 * that the client learns at once instead of after reading whatever is
 * still queued in the socket buffers. */
static void reset_on_close(struct request *r)
{
	struct linger lg = {1, 0};
	setsockopt(r->conn.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	r->cut = 1;
}

/* Ends a connection whose reply is written without letting a reset
 * destroy the reply: closing a socket with unread bytes (a client that
 * sent more than its request), or one that receives bytes after the
 * close, makes the kernel send RST and drop what the client has not yet
 * acknowledged. So the write side is shut first (FIN after the reply),
 * then whatever the client sends is read and dropped until it closes or
 * has acknowledged the whole reply, within LINGER_MAX seconds and max
 * bytes. Only for a client that sent more than its request (see
 * sent_more): waiting for the others to read and close held the worker
 * for as long as their scheduling took. */
static void finish_connection(struct conn *c, uint64_t max)
{
	shutdown(c->fd, SHUT_WR);
	double until = clock_now() + LINGER_MAX;
	uint64_t drained = 0;
	for (;;) {
		ssize_t n = -1;
		while (
		    drained < max &&
		    (n = recv(c->fd, c->buf,
			      max - drained < c->cap ? max - drained : c->cap,
			      MSG_DONTWAIT)) > 0)
			drained += (uint64_t)n;
		int unacked = 0;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break; /* the client closed, or is gone */
		if (ioctl(c->fd, SIOCOUTQ, &unacked) < 0 || unacked == 0)
			break; /* the client has the whole reply */
		if (drained >= max || clock_now() >= until)
			break;
		struct pollfd p = {c->fd, POLLIN, 0};
		poll(&p, 1, 5);
	}
	c->bytes_in += drained;
}

/* Whether the client sent bytes beyond its request: still in the buffer,
 * or waiting in the socket. A client that did not closes cleanly at once,
 * as nginx's lingering_close decides: it sends nothing more but its FIN,
 * so nothing can reach the closed socket and reset the reply. */
static int sent_more(struct conn *c)
{
	char byte;
	return c->start < c->end ||
	       recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Reads until the head is complete; 1 ok, 0 the client went away, -1 an
 * invalid head (message set). */
static int read_head(struct request *r)
{
	struct conn *c = &r->conn;
	size_t consumed;
	for (;;) {
		int rc = proto_parse_head(c->buf + c->start, c->end - c->start,
					  &r->req, &consumed, &r->st);
		if (rc > 0) {
			c->start += consumed;
			return 1;
		}
		if (rc < 0)
			return -1;
		ssize_t n = conn_fill(c);
		if (n <= 0) {
			snprintf(r->st.message, sizeof(r->st.message),
				 "no complete request: %s", io_error(r, n));
			return 0;
		}
	}
}

/* Reads the next chunk of the file; sets *eof at its end: at a read of 0,
 * or at a short read once the size it had when opened has been read, so
 * that a small file's reply goes out in one send after one read. */
static ssize_t read_chunk(int fd, char *buf, size_t cap, uint64_t *left,
			  int *eof)
{
	ssize_t n;
	while ((n = read(fd, buf, cap)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -1;
	*left -= (uint64_t)n < *left ? (uint64_t)n : *left;
	*eof = n == 0 || ((size_t)n < cap && *left == 0);
	return n;
}

static int handle_get(struct request *r)
{
	uint64_t left;
	int fd =
	    storage_open_file(&r->srv->storage, r->req.name, &left, &r->st);
	if (fd < 0)
		return reply_error(r);
	char *head = proto_reply_get_head(r->req.name);
	size_t headlen = head ? strlen(head) : 0;
	char *in = malloc(FS_IO_CHUNK);
	size_t tail = sizeof(PROTO_GET_TAIL) - 1;
	char *out = malloc(headlen + B64_ENCODED_MAX(FS_IO_CHUNK) + 4 + tail);
	int rc = -1, eof = 0;
	if (head && in && out) {
		struct b64_encoder enc;
		b64_encoder_init(&enc);
		memcpy(out, head, headlen);
		size_t pending = headlen;
		while (!eof) {
			ssize_t n =
			    read_chunk(fd, in, FS_IO_CHUNK, &left, &eof);
			if (n < 0) {
				snprintf(r->st.message, sizeof(r->st.message),
					 "reading %s: %s", r->req.name,
					 strerror(errno));
				break;
			}
			pending += b64_encode_update(&enc, in, (size_t)n,
						     out + pending);
			if (eof) {
				pending +=
				    b64_encode_final(&enc, out + pending);
				memcpy(out + pending, PROTO_GET_TAIL, tail);
				pending += tail;
				settle(r, 1);
			}
			if (conn_write(&r->conn, out, pending) < 0) {
				snprintf(r->st.message, sizeof(r->st.message),
					 "sending: %s", io_error(r, -1));
				reset_on_close(r);
				break;
			}
			pending = 0;
			r->file_bytes += (uint64_t)n;
			rc = eof ? 0 : -1;
		}
	}
	free(head);
	free(in);
	free(out);
	close(fd);
	return rc;
}

/* After an ERROR reply to a client that is still sending: stop writing,
 * then read and drop what keeps coming (up to max bytes, LINGER_MAX
 * seconds, or a 200 ms pause), so that the client reads the reply instead
 * of a connection reset. */
static void linger_drain(struct conn *c, uint64_t max)
{
	shutdown(c->fd, SHUT_WR);
	struct timeval tv = {0, 200000};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	double until = clock_now() + LINGER_MAX;
	uint64_t drained = 0;
	ssize_t n = 1;
	while (n > 0 && drained < max && clock_now() < until) {
		size_t want = max - drained < c->cap ? max - drained : c->cap;
		n = recv(c->fd, c->buf, want, 0);
		drained += n > 0 ? (uint64_t)n : 0;
	}
	c->bytes_in += drained;
	c->start = c->end = 0;
}

/* A failed upload: nothing stored; linger unless the client is gone. */
static int upload_fail(struct request *r, struct upload *u)
{
	storage_upload_abort(u);
	reply_error(r);
	r->lingered = !r->stalled;
	if (r->lingered)
		linger_drain(&r->conn, UINT64_MAX);
	return -1;
}

/* Decodes the base64 text at in (up to n chars) into the upload; *used
 * says how far the text went. */
static int upload_feed(struct request *r, struct upload *u,
		       struct b64_decoder *dec, char *out, const char *in,
		       size_t n, size_t *used)
{
	ssize_t got = b64_decode_span(dec, in, n, out, used);
	if (got < 0) {
		snprintf(r->st.message, sizeof(r->st.message),
			 "invalid base64 in the data of %s", r->req.name);
		return -1;
	}
	uint64_t max = r->srv->cfg.max_upload;
	if (max && u->bytes + (uint64_t)got > max) {
		snprintf(r->st.message, sizeof(r->st.message),
			 "file too large: the limit is %llu bytes",
			 (unsigned long long)max);
		return -1;
	}
	return storage_upload_write(u, out, (size_t)got, &r->st);
}

/* Streams the data up to the terminator into u; 0 or -1 (message set).
 * The decoder stops where the base64 text does, so the data is read once:
 * what stops it must be the terminator (or the start of one that has not
 * all arrived), else the data is not base64. */
static int upload_body(struct request *r, struct upload *u, char *out)
{
	struct conn *c = &r->conn;
	struct b64_decoder dec;
	b64_decoder_init(&dec);
	for (;;) {
		const char *p = c->buf + c->start;
		size_t n = c->end - c->start, used;
		if (upload_feed(r, u, &dec, out, p, n, &used) < 0)
			return -1;
		c->start += used;
		size_t rest = n - used, term = sizeof(PROTO_TERMINATOR) - 1;
		if (rest && memcmp(p + used, PROTO_TERMINATOR,
				   rest < term ? rest : term) != 0) {
			snprintf(r->st.message, sizeof(r->st.message),
				 "invalid base64 in the data of %s",
				 r->req.name);
			return -1;
		}
		if (rest >= term) {
			c->start += term;
			break;
		}
		ssize_t got = conn_fill(c);
		if (got <= 0) {
			r->stalled = 1;
			snprintf(r->st.message, sizeof(r->st.message),
				 "upload of %s cut off: %s", r->req.name,
				 io_error(r, got));
			return -1;
		}
	}
	if (b64_decode_final(&dec) < 0) {
		snprintf(r->st.message, sizeof(r->st.message),
			 "invalid base64 in the data of %s: truncated",
			 r->req.name);
		return -1;
	}
	return 0;
}

static int handle_upload(struct request *r)
{
	struct upload u;
	if (storage_upload_begin(&r->srv->storage, &u, &r->st) < 0)
		return upload_fail(r, &u);
	char *out = malloc(B64_DECODED_MAX(CONN_BUF) + 8);
	int rc = out ? upload_body(r, &u, out) : -1;
	free(out);
	r->file_bytes = u.bytes;
	if (rc < 0)
		return upload_fail(r, &u);
	if (storage_upload_commit(&u, r->req.name, &r->st) < 0) {
		rc = reply_error(r);
	} else {
		snprintf(r->st.message, sizeof(r->st.message),
			 "file %s uploaded (%llu bytes)", r->req.name,
			 (unsigned long long)u.bytes);
		rc = reply(r, proto_reply_text(r->st.message), 1);
	}
	storage_upload_release(&u); /* after the reply: see there */
	return rc;
}

#define LIST_FLUSH (64 * 1024) /* reply bytes gathered before a send */

/* Streams the listing: the reply's memory is one buffer, whatever the
 * directory holds. A listing that fails once its first bytes are sent
 * cannot become an ERROR reply: the connection is reset instead. */
static int handle_list(struct request *r)
{
	struct storage_listing *l = storage_list_open(&r->srv->storage, &r->st);
	if (!l)
		return reply_error(r);
	char *out = malloc(LIST_FLUSH + 6 * FS_NAME_MAX + 16);
	size_t n = 0;
	const char *name;
	int rc = out ? 0 : -1, more = 1;
	if (out) {
		memcpy(out, PROTO_LIST_HEAD, sizeof(PROTO_LIST_HEAD) - 1);
		n = sizeof(PROTO_LIST_HEAD) - 1;
	}
	for (int first = 1; rc == 0 && more; first = 0) {
		more = storage_list_next(l, &name, &r->st);
		if (more > 0) {
			if (!first)
				out[n++] = ',';
			n += proto_put_json_string(out + n, name);
		} else if (more == 0) {
			memcpy(out + n, PROTO_LIST_TAIL,
			       sizeof(PROTO_LIST_TAIL) - 1);
			n += sizeof(PROTO_LIST_TAIL) - 1;
			settle(r, 1);
		}
		rc = more < 0 ? -1 : 0;
		if (rc == 0 && (n >= LIST_FLUSH || !more)) {
			rc = conn_write(&r->conn, out, n);
			if (rc < 0)
				fs_fail(&r->st, FS_ERR_NETWORK, "sending: %s",
					io_error(r, -1));
			n = 0;
		}
	}
	if (rc < 0)
		reset_on_close(r);
	free(out);
	storage_list_close(l);
	return rc;
}

static int handle_delete(struct request *r)
{
	if (storage_delete(&r->srv->storage, r->req.name, &r->st) < 0)
		return reply_error(r);
	snprintf(r->st.message, sizeof(r->st.message), "file %s deleted",
		 r->req.name);
	return reply(r, proto_reply_text(r->st.message), 1);
}

char *server_stats_reply(struct server *srv)
{
	struct usage_totals used;
	usage_publish(srv->usage, srv->worker);
	usage_measure(srv->usage, &used);
	cJSON *data = stats_to_json(srv->stats, srv->cfg.mode, srv->cfg.workers,
				    clock_now() - srv->started);
	usage_to_json(&used, data);
	char cpus[256];
	cJSON_AddStringToObject(data, "cpus",
				affinity_current(cpus, sizeof(cpus)));
	return proto_reply_data(data);
}

static int handle_stats(struct request *r)
{
	return reply(r, server_stats_reply(r->srv), 1);
}

static int dispatch(struct request *r)
{
	switch (r->req.cmd) {
	case CMD_LIST:
		return handle_list(r);
	case CMD_GET:
		return handle_get(r);
	case CMD_UPLOAD:
		return handle_upload(r);
	case CMD_DELETE:
		return handle_delete(r);
	case CMD_STATS:
		return handle_stats(r);
	default:
		return reply_error(r);
	}
}

/* Replies ERROR to an invalid head; when no terminator came, the client
 * is probably still sending, so linger for it to read the reply. */
static void refuse_head(struct request *r)
{
	struct conn *c = &r->conn;
	reply_error(r);
	/* at most 64 KiB read in all for a request that never was one */
	if (proto_find_terminator(c->buf + c->start, c->end - c->start) < 0 &&
	    c->bytes_in < HEAD_READ_MAX) {
		linger_drain(c, HEAD_READ_MAX - c->bytes_in);
		r->lingered = 1;
	}
}

static void peer_name(const struct handoff *h, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
	if (log_enabled())
		getnameinfo((const struct sockaddr *)&h->peer, h->peer_len,
			    host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(buf, len, "%s:%s", host, port);
}

static void log_request(struct request *r, int ok, double seconds)
{
	const char *name = r->req.name[0] ? r->req.name : "-";
	if (r->req.name_len > FS_NAME_MAX ||
	    proto_check_name(name, strlen(name)))
		name = "(invalid name)";
	log_info(r->worker, "%s %s: %s, %llu file bytes, %.3f s%s%s",
		 proto_command_name(r->req.cmd), name, ok ? "OK" : "ERROR",
		 (unsigned long long)r->file_bytes, seconds, ok ? "" : " - ",
		 ok ? "" : r->st.message);
}

void server_handle(struct server *srv, const char *worker,
		   const struct handoff *h)
{
	struct request r = {.srv = srv, .worker = worker};
	char peer[80];
	int fd = h->fd;
	peer_name(h, peer, sizeof(peer));
	__atomic_fetch_add(&srv->stats->connections, 1, __ATOMIC_RELAXED);
	log_info(worker, "connection from %s", peer);
	double t0 = clock_now();
	r.started = r.pace_start = t0;
	if (conn_init(&r.conn, fd, CONN_BUF) == 0) {
		memcpy(r.conn.buf, h->head, h->len);
		r.conn.end = h->len;
		r.conn.bytes_in = h->len;
		r.conn.check = check_pace;
		int head = read_head(&r);
		int ok = 0;
		if (head > 0)
			ok = dispatch(&r) == 0;
		else if (head < 0)
			refuse_head(&r);
		if (head != 0) {
			settle(&r, ok);
			log_request(&r, ok, clock_now() - t0);
		} else {
			log_info(worker, "%s: %s", peer, r.st.message);
		}
		/* what a request that never was one may still have read */
		uint64_t head_left = r.conn.bytes_in < HEAD_READ_MAX
					 ? HEAD_READ_MAX - r.conn.bytes_in
					 : 0;
		if (!r.cut && !r.lingered && (head <= 0 || sent_more(&r.conn)))
			finish_connection(&r.conn, head > 0 ? CLOSE_DRAIN_MAX
							    : head_left);
	}
	int up = r.req.cmd == CMD_UPLOAD;
	stats_count_bytes(srv->stats, r.conn.bytes_in, r.conn.bytes_out,
			  up ? r.file_bytes : 0, up ? 0 : r.file_bytes);
	conn_free(&r.conn);
	close(fd);
	log_info(worker, "connection from %s closed", peer);
}
