/* client.h: the one client API, used by the CLI, the stress engine and the
 * Lua bindings alike (client.c). */
#ifndef FILESERV_CLIENT_H
#define FILESERV_CLIENT_H

#include "fileserv.h"
#include "conn.h"
#include "proto.h"

#include <stdint.h>

struct cJSON;

#define CLIENT_MIN_RATE 1000 /* bytes a second */

struct fs_client {
	char host[256];
	char port[16];
	/* -t: an exchange fails when this many seconds pass without a byte
	 * moving, or a window this long moves under CLIENT_MIN_RATE. */
	double timeout;
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
/* Lists the server's files: each name goes to names as it arrives (see
 * proto_read_reply). client_request(CMD_LIST) drops them. */
int client_list(const struct fs_client *c, const struct fs_sink *names,
		struct fs_result *res, struct fs_status *st);
/* Opens path, which must be a regular file, as the source of an upload
 * (a device or a FIFO would stream without end, a directory not at all);
 * returns the descriptor and sets *size, or -1 with st set. */
int client_open_source(const char *path, uint64_t *size, struct fs_status *st);
/* Uploads size bytes from fd as name. progress may be NULL. */
int client_put(const struct fs_client *c, const char *name, int fd,
	       uint64_t size, fs_progress_fn progress, void *progress_ctx,
	       struct fs_result *res, struct fs_status *st);
void client_result_free(struct fs_result *res);
/* A reply proto_read_reply accepted: 0 if its status is OK, else -1
 * with FS_ERR_SERVER and the server's message, escaped for a terminal. */
int client_check_reply(const struct cJSON *reply, struct fs_status *st);
/* A sink that drops the bytes (a download counted, not kept). */
int client_discard(void *ctx, const void *buf, size_t len);

/* Downloads name into path through a temporary file beside it that takes
 * path's name only once the download is complete: path names the old
 * version or the whole new one, never a part (see put_in_place). */
int client_get_file(const struct fs_client *c, const char *name,
		    const char *path, int overwrite, fs_progress_fn progress,
		    void *progress_ctx, struct fs_result *res,
		    struct fs_status *st);

#endif
