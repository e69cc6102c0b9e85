/* fileserv.h: the interfaces between fileserv's modules.
 *
 * proto.c   wire format: request heads, names, JSON envelopes, the streamed
 *           reply reader, the connection buffer
 * storage.c the confined storage directory: open, list, delete, atomic
 *           uploads (temporary file, fsync, rename, directory fsync)
 * server.c  one connection: read the request, run the command, reply
 * acceptor.c the event loop that reads request heads and hands
 *           connections to workers
 * pool.c    the single, thread and process worker models and signals
 * stats.c   whole-server counters (shared memory) and latency histograms
 * usage.c   the server's CPU seconds and memory, over all its processes
 *           (usage.h)
 * client.c  the one client API used by the CLI, the stress engine and Lua
 * cli.c     the client subcommands and their progress display
 * log.c     log lines in the original's format
 * units.c   numbers with unit suffixes ("10MB", "30s"), range-checked
 *
 * Library code returns -1 or NULL and describes the failure in a struct
 * fs_status; only main() exits. */
#ifndef FILESERV_H
#define FILESERV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FILESERV_VERSION "0.1.0"
#define FS_DEFAULT_PORT	 5666
#define FS_NAME_MAX	 255
#define FS_HEAD_MAX	 4096	      /* request bytes before upload data */
#define FS_IO_CHUNK	 (192 * 1024) /* file bytes per transfer step */
#define FS_TMP_PREFIX	 ".fileserv-tmp-"

/* ---- errors: one vocabulary ---- */

enum fs_error {
	FS_OK = 0,
	FS_ERR_USAGE,	 /* bad arguments */
	FS_ERR_SERVER,	 /* the server answered ERROR */
	FS_ERR_REFUSED,	 /* connection refused */
	FS_ERR_RESET,	 /* connection reset or closed early */
	FS_ERR_TIMEOUT,	 /* no progress within the timeout */
	FS_ERR_PROTOCOL, /* the peer broke the protocol */
	FS_ERR_NETWORK,	 /* other socket failure, name resolution */
	FS_ERR_LOCAL,	 /* local file I/O */
	FS_ERR_MISMATCH, /* downloaded bytes differ from the expected ones */
	FS_ERR_SCRIPT,	 /* a scenario raised an error */
	FS_ERR_COUNT
};

struct fs_status {
	enum fs_error code;
	char message[512];
};

/* Short class name of an error ("refused", "timeout", ...). */
const char *fs_error_name(enum fs_error code);
/* Records code and a printf-style message in st (if st is not NULL);
 * returns -1 so that callers can `return fs_fail(...)`. */
int fs_fail(struct fs_status *st, enum fs_error code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps an errno from a socket call to the error vocabulary. */
enum fs_error fs_error_from_errno(int err);
/* Process exit status for an error: 0 ok, 1 server ERROR, 2 usage, 3 I/O. */
int fs_exit_code(enum fs_error code);

/* ---- units.c ---- */

/* Parses "10MB", "1.5GiB", "4096" into bytes (kB = 1000, KiB = 1024).
 * Returns 0, or -1 with a message naming the value. */
int units_parse_size(const char *text, uint64_t *out, struct fs_status *st);
/* Parses "30s", "500ms", "2m", "1.5" (seconds) into seconds. */
int units_parse_seconds(const char *text, double *out, struct fs_status *st);
/* Parses a decimal integer in [min, max]; the message names `what`. */
int units_parse_long(const char *text, long min, long max, const char *what,
		     long *out, struct fs_status *st);
/* Formats bytes as "12.3 MB" into buf. */
const char *units_format_bytes(double bytes, char *buf, size_t len);
/* Monotonic clock in seconds. */
double units_now(void);

/* ---- log.c ---- */

/* Also writes to path (appending) when it is not NULL; quiet silences
 * stderr. Returns 0 or -1 (errno set). */
int log_open(const char *path, int quiet);
/* The log file's descriptor, or -1. */
int log_file_fd(void);
/* Whether log lines go anywhere (not --quiet without a log file). */
int log_enabled(void);
void log_info(const char *worker, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_error(const char *worker, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- proto.c: requests ---- */

enum proto_command {
	CMD_INVALID = 0,
	CMD_LIST,
	CMD_GET,
	CMD_UPLOAD,
	CMD_DELETE,
	CMD_STATS,
	CMD_COUNT
};

struct proto_request {
	enum proto_command cmd;
	char name[FS_NAME_MAX + 1];
	size_t name_len;
};

/* Parses the head of a request in buf[0..len).
 * Returns 1 when the head is complete: *consumed is where it ends (for
 * UPLOAD, where the base64 data starts; otherwise past the terminator).
 * Returns 0 when more bytes are needed, -1 on an invalid request with the
 * reason in err (req->cmd is set if the command word was understood). */
int proto_parse_head(const char *buf, size_t len, struct proto_request *req,
		     size_t *consumed, char *err, size_t errlen);
/* NULL if name[0..len) is a valid storage name, else the reason. */
const char *proto_check_name(const char *name, size_t len);
const char *proto_command_name(enum proto_command cmd);
/* Writes the request head for cmd and name into buf, quoting the name
 * when it needs it; returns its length or -1 if it does not fit. */
int proto_format_head(char *buf, size_t len, enum proto_command cmd,
		      const char *name);

/* Offset of "\r\n\r\n" in buf[0..len), or -1. */
ssize_t proto_find_terminator(const char *buf, size_t len);

/* ---- proto.c: replies ---- */

#define PROTO_TERMINATOR "\r\n\r\n"

/* Heap-allocated reply envelopes, terminator included; NULL on ENOMEM. */
char *proto_reply_error(const char *message);
char *proto_reply_text(const char *message);
/* Takes ownership of data (a cJSON item). */
struct cJSON;
char *proto_reply_data(struct cJSON *data);
/* The part of a GET reply before the base64 text; heap-allocated. */
char *proto_reply_get_head(const char *name);
#define PROTO_GET_TAIL "\"}" PROTO_TERMINATOR

/* ---- proto.c: a connection with a read buffer ---- */

struct conn {
	int fd;
	char *buf;
	size_t cap, start, end; /* unread bytes are buf[start..end) */
	uint64_t bytes_in, bytes_out;
	/* Called after every read or write that moved bytes; -1 (errno set)
	 * aborts the transfer. The server's minimum-rate check. */
	int (*check)(struct conn *c);
};

int conn_init(struct conn *c, int fd, size_t cap);
void conn_free(struct conn *c);
/* Reads more into the buffer (compacting it first). Returns bytes read,
 * 0 at EOF, -1 on error (errno set; EAGAIN means the timeout expired). */
ssize_t conn_fill(struct conn *c);
/* Writes all of buf; returns 0 or -1 (errno set). Never raises SIGPIPE. */
int conn_write(struct conn *c, const void *buf, size_t len);
/* Writes all of buf to a file, going on after EINTR; 0 or -1 (errno). */
int write_all(int fd, const void *buf, size_t len);

/* A destination for the bytes of a downloaded file. */
struct fs_sink {
	int (*write)(void *ctx, const void *buf, size_t len); /* 0 or -1 */
	void *ctx;
};

/* Reads one reply from c. The value of "data_file" is streamed, decoded,
 * into sink (which may be NULL for replies without it); every other
 * member is returned in *reply as a cJSON object. file_bytes counts what
 * went into the sink. Returns 0 or -1 with st set. */
int proto_read_reply(struct conn *c, const struct fs_sink *sink,
		     struct cJSON **reply, uint64_t *file_bytes,
		     struct fs_status *st);

/* ---- stats.c ---- */

struct stats_counters {
	uint64_t requests[CMD_COUNT];
	uint64_t succeeded[CMD_COUNT];
	uint64_t failed[CMD_COUNT];
	uint64_t bytes_in, bytes_out, connections;
	uint64_t dispatched; /* connections workers took from the acceptor */
};

/* Counters in memory shared with forked children; NULL on failure. */
struct stats_counters *stats_shared_create(void);
/* Counts a request as succeeded or failed. A request is counted just
 * before its reply's last write, so that a client that has the reply also
 * sees it in STATS; stats_recount() moves it if that write then fails. */
void stats_count_request(struct stats_counters *s, enum proto_command cmd,
			 int ok);
void stats_recount(struct stats_counters *s, enum proto_command cmd, int ok);
void stats_count_bytes(struct stats_counters *s, uint64_t in, uint64_t out);
/* STATS reply data: counters plus mode, workers and uptime. */
struct cJSON *stats_to_json(const struct stats_counters *s, const char *mode,
			    int workers, double uptime);

/* Log-linear latency histogram: mergeable, percentiles from buckets.
 * Values below 2^HIST_SUB_BITS ns are exact; each power of two above, up
 * to 2^HIST_MAX_BITS ns (about 2.4 hours), is split into 2^HIST_SUB_BITS
 * buckets (a value is kept within 0.4%, every quantile within 0.8%); the
 * last bucket holds larger values, reported as the maximum. 37 KB. */
#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 43
#define HIST_BUCKETS                                                           \
	(((HIST_MAX_BITS - HIST_SUB_BITS + 1) << HIST_SUB_BITS) + 1)
struct histogram {
	uint64_t count[HIST_BUCKETS];
	uint64_t n, min_ns, max_ns;
	double sum_ns;
};
void hist_init(struct histogram *h);
void hist_record(struct histogram *h, uint64_t ns);
void hist_merge(struct histogram *into, const struct histogram *from);
/* Value (ns) at quantile q in [0,1]; 0 for an empty histogram. */
uint64_t hist_quantile(const struct histogram *h, double q);

/* ---- storage.c ---- */

struct storage {
	int dirfd;
	int sync; /* fsync uploads and the directory */
};

/* Opens (creating if missing) the storage directory and removes stale
 * temporary files. Returns 0 or -1 with st set. */
int storage_open(struct storage *s, const char *path, int sync,
		 struct fs_status *st);
void storage_close(struct storage *s);
/* Removes named temporary files: all of them (pid 0), or those a dead
 * process left. */
void storage_sweep(struct storage *s, pid_t pid);
/* Opens a regular file for reading and sets *size; -1 with a message in
 * err. */
int storage_open_file(struct storage *s, const char *name, uint64_t *size,
		      char *err, size_t errlen);
/* Sorted names of the regular files; NULL with a message in err. */
struct cJSON *storage_list(struct storage *s, char *err, size_t errlen);
int storage_delete(struct storage *s, const char *name, char *err,
		   size_t errlen);

/* An upload in progress: invisible until committed. */
struct upload {
	struct storage *storage;
	int fd;
	char tmpname[64]; /* named temporary, when O_TMPFILE is unsupported */
	uint64_t bytes;
	int replaced_fd; /* the version a commit replaced, until released */
};
int storage_upload_begin(struct storage *s, struct upload *u, char *err,
			 size_t errlen);
int storage_upload_write(struct upload *u, const void *buf, size_t len,
			 char *err, size_t errlen);
/* Makes the upload visible as name, durably when sync is on. The version
 * it replaces stays open, so that freeing its pages waits for
 * storage_upload_release(), after the reply. */
int storage_upload_commit(struct upload *u, const char *name, char *err,
			  size_t errlen);
void storage_upload_release(struct upload *u);
/* Discards an upload that was not committed. Safe to call twice. */
void storage_upload_abort(struct upload *u);

/* ---- server.c ---- */

struct server_config {
	const char *mode; /* "single", "thread", "process" */
	int workers;
	const char *host;
	int port;
	const char *storage;
	const char *log_file;
	int quiet;
	int sync;
	double idle_timeout; /* seconds between reads or writes */
	double head_timeout; /* seconds for a complete request head */
	double min_rate;     /* bytes/s over each idle_timeout window; 0 off */
	int max_conns;	     /* open connections; 0 = no limit */
	double drain_timeout;
	uint64_t max_upload; /* decoded bytes; 0 = unlimited */
	int ready_fd;	     /* write "PORT\n" here once listening, or -1 */
	const char *user;    /* run as this user once listening, or NULL */
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

#include <sys/socket.h>

/* A connection as the acceptor hands it to a worker: the descriptor, the
 * peer's address as accept() gave it, and the head bytes read so far. */
struct handoff {
	int fd;
	socklen_t peer_len;
	struct sockaddr_storage peer;
	size_t len;
	char head[FS_HEAD_MAX];
};

/* Serves h's connection and closes it; worker names the worker in log
 * lines. The socket's timeouts are the caller's business (accepted ones
 * inherit the listener's). */
void server_handle(struct server *srv, const char *worker,
		   const struct handoff *h);

/* Starts `fileserv serve ARGS... --ready-fd N` as a child process of this
 * executable and waits until it listens (args is NULL-terminated). The
 * child gets SIGTERM if this process dies. Returns its pid and sets *port,
 * or returns -1 with st set. */
pid_t server_spawn(const char *const *args, int *port, struct fs_status *st);
/* Stops a spawned server: SIGTERM, then SIGKILL after grace seconds. */
void server_reap(pid_t pid, double grace);

/* ---- acceptor.c ---- */

#include <signal.h>

/* Runs the acceptor on srv's listener until SIGTERM or SIGINT (taken from
 * signals through a signalfd; they must be blocked), handing connections
 * over chan. SIGCHLD, if in signals, calls on_child, whose -1 is fatal.
 * Closes the listener before returning 0, or -1 on a fatal error. */
int acceptor_run(struct server *srv, int chan, const sigset_t *signals,
		 int (*on_child)(void *ctx), void *ctx);
/* A worker's next connection, into h: 0, or -1 once the acceptor has
 * closed, -2 if interrupted. */
int acceptor_receive(int chan, struct handoff *h);

/* ---- pool.c ---- */

/* Runs the server in its configured mode until SIGTERM/SIGINT; returns
 * the process exit status. */
int pool_run(struct server *srv);

/* ---- client.c ---- */

struct fs_client {
	char host[256];
	char port[16];
	double timeout; /* seconds without progress before giving up */
};

typedef void (*fs_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct fs_result {
	uint64_t bytes; /* file bytes moved */
	double seconds;
	struct cJSON *reply; /* the reply's members, minus data_file */
};

/* Fills c from "host", "host:port" or NULL (then FILESERV_SERVER or the
 * defaults). Returns 0 or -1 with st set. */
int client_init(struct fs_client *c, const char *server, const char *port,
		struct fs_status *st);
/* Each returns 0, or -1 with st set (FS_ERR_SERVER carries the server's
 * message). res->reply must be freed with client_result_free. */
int client_request(const struct fs_client *c, enum proto_command cmd,
		   const char *name, struct fs_result *res,
		   struct fs_status *st);
int client_get(const struct fs_client *c, const char *name,
	       const struct fs_sink *sink, struct fs_result *res,
	       struct fs_status *st);
/* Uploads size bytes from fd as name. progress may be NULL. */
int client_put(const struct fs_client *c, const char *name, int fd,
	       uint64_t size, fs_progress_fn progress, void *progress_ctx,
	       struct fs_result *res, struct fs_status *st);
void client_result_free(struct fs_result *res);
/* Sets SO_RCVTIMEO and SO_SNDTIMEO: the idle timeout of a socket. */
void client_set_timeouts(int fd, double seconds);
/* A sink that drops the bytes (a download counted, not kept). */
int client_discard(void *ctx, const void *buf, size_t len);

/* Downloads name into path through a temporary file beside it that is
 * renamed over path only once the download is complete. */
int client_get_file(const struct fs_client *c, const char *name,
		    const char *path, int overwrite, fs_progress_fn progress,
		    void *progress_ctx, struct fs_result *res,
		    struct fs_status *st);

/* ---- stress.c: concurrent client workers ---- */

enum stress_op { STRESS_UPLOAD, STRESS_DOWNLOAD, STRESS_LIST, STRESS_SCRIPT };

/* What one client worker did; merged by the parent after join/waitpid. */
struct stress_tally {
	uint64_t ok, failed, bytes, verified;
	uint64_t errors[FS_ERR_COUNT];
	double busy; /* seconds spent in operations: the client's duration */
	double start, end; /* monotonic clock at release and at the end */
	struct histogram latency;
	char first_error[200];
};

/* A scripted scenario: the engine calls these in each worker, in the
 * worker's own thread or process. */
struct stress_hooks {
	void *(*start)(void *ctx, int worker, struct fs_status *st);
	/* One iteration; 0 ok, -1 failed with st set. */
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
	int processes;	 /* fork workers instead of starting threads */
	long iterations; /* per client; ignored when duration > 0 */
	double duration;
	int verify;
	const struct stress_hooks *hooks; /* for STRESS_SCRIPT */
};

struct stress_result {
	struct stress_tally total;
	double wall;	    /* seconds from release to last worker done */
	double client_time; /* mean of each client's own duration */
	double client_rate; /* mean of each client's bytes / duration */
	int server_stats;   /* server deltas below are valid */
	uint64_t server_succeeded, server_failed;
};

/* The counters of the worker running on this thread, or NULL: operations
 * made by a scenario add their bytes here. */
extern __thread struct stress_tally *stress_current;

/* Runs the workload; 0, or -1 with st set if it could not start. */
int stress_run(const struct stress_config *cfg, struct stress_result *res,
	       struct fs_status *st);
const char *stress_op_name(enum stress_op op);
/* Writes size deterministic pseudo-random bytes (a function of seed) to
 * path; 0 or -1 with errno set. */
int stress_make_file(const char *path, uint64_t size, uint64_t seed);
/* The summary as JSON: the one representation the CLI prints and the Lua
 * binding converts. */
struct cJSON *stress_to_json(const struct stress_config *cfg,
			     const struct stress_result *res);
int stress_op_parse(const char *text, enum stress_op *op);

/* ---- subcommands (each returns the process exit status) ---- */

int cli_main(const char *cmd, int argc, char **argv);
int stress_main(int argc, char **argv);
int script_main(int argc, char **argv);
int compare_main(int argc, char **argv);
int bench_main(int argc, char **argv);
int serve_main(int argc, char **argv);

#endif
