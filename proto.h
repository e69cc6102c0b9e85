/* proto.h: the wire format (proto.c): request heads, storage names, JSON
 * reply envelopes and the streamed reply reader. */
#ifndef FILESERV_PROTO_H
#define FILESERV_PROTO_H

#include "fileserv.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cJSON;
struct conn;
struct fs_sink;

/* ---- requests ---- */

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
 * Returns 0 when more bytes are needed, -1 on an invalid request with st
 * set to FS_ERR_PROTOCOL and the reason (req->cmd is set if the command
 * word was understood). */
int proto_parse_head(const char *buf, size_t len, struct proto_request *req,
		     size_t *consumed, struct fs_status *st);
/* NULL if name[0..len) is a valid storage name, else the reason. */
const char *proto_check_name(const char *name, size_t len);
const char *proto_command_name(enum proto_command cmd);
/* Writes the request head for cmd and name into buf, quoting the name
 * when it needs it; returns its length or -1 if it does not fit. */
int proto_format_head(char *buf, size_t len, enum proto_command cmd,
		      const char *name);

/* Offset of "\r\n\r\n" in buf[0..len), or -1. */
ssize_t proto_find_terminator(const char *buf, size_t len);

/* ---- replies ---- */

#define PROTO_TERMINATOR "\r\n\r\n"

/* Heap-allocated reply envelopes, terminator included; NULL on ENOMEM. */
char *proto_reply_error(const char *message);
char *proto_reply_text(const char *message);
/* Takes ownership of data (a cJSON item). */
char *proto_reply_data(struct cJSON *data);
/* The part of a GET reply before the base64 text; heap-allocated. */
char *proto_reply_get_head(const char *name);
#define PROTO_GET_TAIL "\"}" PROTO_TERMINATOR

/* Reads one reply from c. The value of "data_file" is streamed, decoded,
 * into sink (which may be NULL for replies without it); every other
 * member is returned in *reply as a cJSON object. file_bytes counts what
 * went into the sink. Returns 0 or -1 with st set. */
int proto_read_reply(struct conn *c, const struct fs_sink *sink,
		     struct cJSON **reply, uint64_t *file_bytes,
		     struct fs_status *st);

#endif
