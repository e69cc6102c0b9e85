/* conn.h: a connection with a read buffer, full-length writes, and the
 * sink a download's bytes go to (implemented in proto.c). Errors are
 * reported through errno, as the system calls they wrap do. */
#ifndef FILESERV_CONN_H
#define FILESERV_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conn {
	int fd;
	char *buf;
	size_t cap, start, end; /* unread bytes are buf[start..end) */
	uint64_t bytes_in, bytes_out;
	/* Called after every read or write that moved bytes; -1 (errno set)
	 * aborts the transfer. The server's minimum-rate check. */
	int (*check)(struct conn *c);
	/* When set, reads and writes do not block, and this is called when
	 * one would (POLLIN or POLLOUT): 0 once the socket is ready, -1
	 * (errno set) gives up. The client's -t. A socket that is ready
	 * costs no poll. */
	int (*wait)(struct conn *c, short events);
	/* Optional: room for B64_DECODED_MAX(cap) + 8 bytes that the reply
	 * reader decodes a data_file into, lent by the owner (the stress
	 * engine's threads share one among their clients); NULL: the reader
	 * allocates its own. */
	char *scratch;
};

int conn_init(struct conn *c, int fd, size_t cap);
/* Sets SO_RCVTIMEO and SO_SNDTIMEO: the idle timeout of a socket. */
void conn_set_timeouts(int fd, double seconds);
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

#endif
