/* client.c: the one client API, used by the CLI subcommands, the stress
 * engine and the Lua bindings alike. One request per connection, as the
 * protocol demands. An upload streams the file through the encoder into
 * the socket; a download streams the reply's data_file through the decoder
 * into a caller's sink, and a listing's names one by one, so memory never
 * depends on what the server sends. -t bounds every wait through a pace:
 * no byte for that long, or a window that long under CLIENT_MIN_RATE,
 * fails the exchange. Every failure comes back as an error class and a
 * message naming the server. */
#include "fileserv.h"
#include "client.h"
#include "clock.h"
#include "codec.h"
#include "conn.h"
#include "proto.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLIENT_BUF	       (256 * 1024)
#define CLIENT_TIMEOUT_DEFAULT 300.0

/* Splits "host", "host:port" or "[v6]:port". */
static int split_server(const char *text, struct fs_client *c,
			struct fs_status *st)
{
	const char *colon = strrchr(text, ':');
	size_t hostlen = strlen(text);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close)
			return fs_fail(st, FS_ERR_USAGE, "invalid server '%s'",
				       text);
		text++;
		hostlen = (size_t)(close - text);
		colon = close[1] == ':' ? close + 1 : NULL;
	} else if (colon && strchr(text, ':') != colon) {
		colon = NULL; /* a bare IPv6 address */
	} else if (colon) {
		hostlen = (size_t)(colon - text);
	}
	if (hostlen == 0 || hostlen >= sizeof(c->host))
		return fs_fail(st, FS_ERR_USAGE, "invalid server '%s'", text);
	memcpy(c->host, text, hostlen);
	c->host[hostlen] = '\0';
	if (colon)
		snprintf(c->port, sizeof(c->port), "%s", colon + 1);
	return 0;
}

int client_init(struct fs_client *c, const char *server, const char *port,
		struct fs_status *st)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->host, sizeof(c->host), "127.0.0.1");
	snprintf(c->port, sizeof(c->port), "%d", FS_DEFAULT_PORT);
	c->timeout = CLIENT_TIMEOUT_DEFAULT;
	const char *env = getenv("FILESERV_SERVER");
	if (!server && env && *env)
		server = env;
	if (server && split_server(server, c, st) < 0)
		return -1;
	if (port)
		snprintf(c->port, sizeof(c->port), "%s", port);
	long n;
	if (units_parse_long(c->port, 1, 65535, "port", &n, st) < 0)
		return -1;
	return 0;
}

/* Connected socket, or -1 with st set. The send timeout bounds connect. */
static int client_connect(const struct fs_client *c, struct fs_status *st)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM},
			*res, *ai;
	int rc = getaddrinfo(c->host, c->port, &hints, &res);
	if (rc)
		return fs_fail(st, FS_ERR_NETWORK, "%s:%s: %s", c->host,
			       c->port, gai_strerror(rc));
	int fd = -1, err = 0;
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		conn_set_timeouts(fd, c->timeout);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			err = errno == EINPROGRESS ? ETIMEDOUT : errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return fs_fail(st, fs_error_from_errno(err),
			       "%s:%s: cannot connect: %s", c->host, c->port,
			       strerror(err));
	return fd;
}

/* Streams size bytes of fd, encoded, after the head; then the terminator. */
static int send_upload(struct conn *conn, const char *head, int fd,
		       uint64_t size, fs_progress_fn progress, void *ctx,
		       uint64_t *sent, struct fs_status *st)
{
	size_t headlen = strlen(head);
	char *in = malloc(FS_IO_CHUNK);
	char *out = malloc(headlen + B64_ENCODED_MAX(FS_IO_CHUNK) + 8);
	int rc = in && out ? 0 : fs_fail(st, FS_ERR_LOCAL, "out of memory");
	struct b64_encoder enc;
	b64_encoder_init(&enc);
	size_t pending = headlen;
	if (out)
		memcpy(out, head, headlen);
	while (rc == 0) {
		ssize_t n = read(fd, in, FS_IO_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fs_fail(st, FS_ERR_LOCAL, "reading the file: %s",
				     strerror(errno));
			break;
		}
		pending +=
		    n ? b64_encode_update(&enc, in, (size_t)n, out + pending)
		      : b64_encode_final(&enc, out + pending);
		if (n == 0) {
			memcpy(out + pending, PROTO_TERMINATOR, 4);
			pending += 4;
		}
		if (conn_write(conn, out, pending) < 0) {
			rc = fs_fail(st, fs_error_from_errno(errno),
				     "sending: %s", strerror(errno));
			break;
		}
		pending = 0;
		*sent += (uint64_t)n;
		if (progress)
			progress(ctx, *sent, size);
		if (n == 0)
			break;
	}
	free(in);
	free(out);
	return rc;
}

int client_check_reply(const cJSON *reply, struct fs_status *st)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(reply, "status");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(reply, "data");
	if (strcmp(status->valuestring, "OK") == 0)
		return 0;
	const char *text =
	    cJSON_IsString(data) ? data->valuestring : "server answered ERROR";
	char shown[sizeof(st->message)];
	proto_escape_visible(text, strlen(text), shown, sizeof(shown));
	return fs_fail(st, FS_ERR_SERVER, "%s", shown);
}

/* The connection of one exchange, with its -t pace. */
struct paced {
	struct conn conn;
	double timeout;
	double last;	     /* when a byte last moved */
	double window_start; /* the current rate window */
	double resumed;	     /* when the last wait returned */
	uint64_t last_moved, window_moved;
	const char *why; /* set when the pace gave up */
};

/* Rolls the rate window over once it is timeout seconds old; -1 if it
 * moved under CLIENT_MIN_RATE. */
static int pace_window(struct paced *p, double now, uint64_t moved)
{
	if (now - p->window_start < p->timeout)
		return 0;
	if ((double)(moved - p->window_moved) < CLIENT_MIN_RATE * p->timeout) {
		p->why = "under 1 kB/s";
		return -1;
	}
	p->window_start = now;
	p->window_moved = moved;
	return 0;
}

/* The conn's wait: polls until the socket is ready, up to whichever
 * comes first of the idle limit and the end of the rate window. Time the
 * client spent elsewhere (a sink or a local file slower than timeout)
 * does not count against the server: the pace starts over. */
static int pace_wait(struct conn *c, short events)
{
	struct paced *p = (struct paced *)c;
	double start = clock_now();
	if (start - p->resumed > p->timeout) {
		p->last = p->window_start = start;
		p->window_moved = c->bytes_in + c->bytes_out;
	}
	for (;;) {
		double now = clock_now();
		uint64_t moved = c->bytes_in + c->bytes_out;
		if (moved != p->last_moved) {
			p->last = now;
			p->last_moved = moved;
		}
		if (pace_window(p, now, moved) < 0)
			break;
		double idle_end = p->last + p->timeout;
		double until = p->window_start + p->timeout;
		if (idle_end < until)
			until = idle_end;
		double ms = (until - now) * 1000;
		ms = ms > 1e9 ? 1e9 : ms > 0 ? ms + 1 : 0;
		struct pollfd pfd = {.fd = c->fd, .events = events};
		int n = poll(&pfd, 1, (int)ms);
		if (n > 0) {
			p->resumed = clock_now();
			return 0;
		}
		if (n < 0 && errno != EINTR)
			return -1;
		if (n == 0 && clock_now() >= idle_end) {
			p->why = "no progress";
			break;
		}
	}
	errno = ETIMEDOUT;
	return -1;
}

static int paced_init(struct paced *p, int fd, double timeout)
{
	memset(p, 0, sizeof(*p));
	if (conn_init(&p->conn, fd, CLIENT_BUF) < 0)
		return -1;
	p->conn.wait = pace_wait;
	p->timeout = timeout;
	p->last = p->window_start = p->resumed = clock_now();
	return 0;
}

struct exchange {
	enum proto_command cmd;
	const char *name;
	int fd; /* upload source */
	uint64_t size;
	fs_progress_fn progress;
	void *progress_ctx;
	const struct fs_sink *sink; /* GET's bytes, LIST's names */
};

static int exchange_run(const struct exchange *x, struct conn *conn,
			struct fs_result *res, struct fs_status *st)
{
	char head[FS_HEAD_MAX];
	if (proto_format_head(head, sizeof(head), x->cmd,
			      x->name ? x->name : "") < 0)
		return fs_fail(st, FS_ERR_USAGE, "name too long");
	int sent = x->cmd == CMD_UPLOAD
		       ? send_upload(conn, head, x->fd, x->size, x->progress,
				     x->progress_ctx, &res->bytes, st)
		       : conn_write(conn, head, strlen(head));
	if (sent < 0 && x->cmd != CMD_UPLOAD)
		fs_fail(st, fs_error_from_errno(errno), "sending: %s",
			strerror(errno));
	/* Even when sending failed, the server may have said why: what has
	 * arrived is read, within what is left of the pace. */
	struct fs_status read_st;
	uint64_t got = 0;
	if (proto_read_reply(conn, x->cmd, x->sink, &res->reply, &got,
			     sent < 0 ? &read_st : st) < 0)
		return -1;
	if (x->cmd == CMD_GET)
		res->bytes = got;
	if (client_check_reply(res->reply, st) < 0)
		return -1;
	return sent;
}

static int exchange(const struct fs_client *c, const struct exchange *x,
		    struct fs_result *res, struct fs_status *st)
{
	memset(res, 0, sizeof(*res));
	double t0 = clock_now();
	int fd = client_connect(c, st);
	if (fd < 0)
		return -1;
	struct paced p;
	int rc = paced_init(&p, fd, c->timeout) < 0
		     ? fs_fail(st, FS_ERR_LOCAL, "out of memory")
		     : exchange_run(x, &p.conn, res, st);
	if (rc < 0 && p.why && st->code != FS_ERR_SERVER)
		fs_fail(st, FS_ERR_TIMEOUT, "%s:%s: timed out (%s for %g s)",
			c->host, c->port, p.why, c->timeout);
	conn_free(&p.conn);
	close(fd);
	res->seconds = clock_now() - t0;
	return rc;
}

int client_request(const struct fs_client *c, enum proto_command cmd,
		   const char *name, struct fs_result *res,
		   struct fs_status *st)
{
	struct exchange x = {.cmd = cmd, .name = name};
	return exchange(c, &x, res, st);
}

int client_get(const struct fs_client *c, const char *name,
	       const struct fs_sink *sink, struct fs_result *res,
	       struct fs_status *st)
{
	struct exchange x = {.cmd = CMD_GET, .name = name, .sink = sink};
	return exchange(c, &x, res, st);
}

int client_list(const struct fs_client *c, const struct fs_sink *names,
		struct fs_result *res, struct fs_status *st)
{
	struct exchange x = {.cmd = CMD_LIST, .sink = names};
	return exchange(c, &x, res, st);
}

int client_open_source(const char *path, uint64_t *size, struct fs_status *st)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", path, strerror(e));
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return fs_fail(st, FS_ERR_LOCAL,
			       "%s: not a regular file (a %s)", path,
			       S_ISDIR(sb.st_mode)    ? "directory"
			       : S_ISCHR(sb.st_mode)  ? "character device"
			       : S_ISBLK(sb.st_mode)  ? "block device"
			       : S_ISFIFO(sb.st_mode) ? "FIFO"
						      : "socket");
	}
	fcntl(fd, F_SETFL, 0);
	*size = (uint64_t)sb.st_size;
	return fd;
}

int client_put(const struct fs_client *c, const char *name, int fd,
	       uint64_t size, fs_progress_fn progress, void *progress_ctx,
	       struct fs_result *res, struct fs_status *st)
{
	struct exchange x = {.cmd = CMD_UPLOAD,
			     .name = name,
			     .fd = fd,
			     .size = size,
			     .progress = progress,
			     .progress_ctx = progress_ctx};
	return exchange(c, &x, res, st);
}

void client_result_free(struct fs_result *res)
{
	cJSON_Delete(res->reply);
	res->reply = NULL;
}

/* ---- downloading into a file ---- */

struct file_sink {
	int fd;
	uint64_t bytes;
	fs_progress_fn progress;
	void *progress_ctx;
};

static int file_sink_write(void *ctx, const void *buf, size_t len)
{
	struct file_sink *s = ctx;
	if (write_all(s->fd, buf, len) < 0)
		return -1;
	s->bytes += len;
	if (s->progress)
		s->progress(s->progress_ctx, s->bytes, 0);
	return 0;
}

static int get_to_fd(const struct fs_client *c, const char *name, int fd,
		     fs_progress_fn progress, void *progress_ctx,
		     struct fs_result *res, struct fs_status *st)
{
	struct file_sink fs = {fd, 0, progress, progress_ctx};
	struct fs_sink sink = {file_sink_write, &fs};
	return client_get(c, name, &sink, res, st);
}

/* Renames the complete download tmp to path; 0, or -1 (errno set) with
 * tmp left for the caller. Over an existing regular file (overwrite) the
 * two names are swapped and the old version, now at tmp, unlinked: a
 * rename over a file makes ext4 (auto_da_alloc) write the new data back
 * inside the rename, a third of a 10 MB get's time, while an exchange
 * does not. Either way path always names one whole version, old or new;
 * a crash between the swap and the unlink leaves the old version at tmp. */
static int put_in_place(const char *tmp, const char *path, int overwrite)
{
	struct stat sb;
	if (!overwrite)
		return renameat2(AT_FDCWD, tmp, AT_FDCWD, path,
				 RENAME_NOREPLACE);
	if (lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) < 0)
		return rename(tmp, path);
	unlink(tmp); /* the old version: path is already the new one */
	return 0;
}

int client_get_file(const struct fs_client *c, const char *name,
		    const char *path, int overwrite, fs_progress_fn progress,
		    void *progress_ctx, struct fs_result *res,
		    struct fs_status *st)
{
	if (strcmp(path, "-") == 0)
		return get_to_fd(c, name, STDOUT_FILENO, progress, progress_ctx,
				 res, st);
	memset(res, 0, sizeof(*res));
	if (!overwrite && access(path, F_OK) == 0)
		return fs_fail(st, FS_ERR_LOCAL,
			       "%s exists (use -f to overwrite)", path);
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.fileserv-XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) /* the user's path: the temporary name means nothing */
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", path,
			       strerror(errno));
	int rc = get_to_fd(c, name, fd, progress, progress_ctx, res, st);
	fchmod(fd, 0644);
	if (close(fd) < 0 && rc == 0)
		rc = fs_fail(st, FS_ERR_LOCAL, "%s: %s", path, strerror(errno));
	if (rc == 0 && put_in_place(tmp, path, overwrite) < 0)
		rc = fs_fail(st, FS_ERR_LOCAL, "%s: %s", path, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int client_discard(void *ctx, const void *buf, size_t len)
{
	(void)ctx, (void)buf, (void)len;
	return 0;
}
