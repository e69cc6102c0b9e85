/* fileserv.h: what every module shares: the version, the protocol's
 * limits and the error vocabulary (enum fs_error, struct fs_status).
 *
 * Each layer has its own header: units.h, clock.h, log.h, proto.h (wire
 * format), conn.h (a connection with a read buffer), storage.h, stats.h
 * (counters and histograms), usage.h (CPU and memory of the server's
 * processes), affinity.h (CPU lists and pinning), server.h (server, acceptor,
 * worker pool), spawn.h (a server as a child process), client.h, stress.h,
 * event.h (the stress engine's event loops), fiber.h (coroutines),
 * segment.h and result.h (one instance of a distributed run, its result
 * file), testdata.h, codec.h, bench.h (what bench measures against), cmdline.h
 * and commands.h (the command line), and
 * lua/lfileserv.h, lua/lstress.h and lua/json.h (the Lua glue).
 *
 * Library code returns -1 or NULL and describes the failure in a struct
 * fs_status; only main() exits. A child of fork() that must not return
 * into its parent's code ends with _exit(), which runs none of the
 * parent's atexit handlers and flushes none of its stdio buffers. */
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
	FS_ERR_WORKER,	 /* a stress worker died or could not start */
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

#endif
