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
/* A LIST reply is streamed: this head, the names as JSON strings joined
 * by ",", then the tail. */
#define PROTO_LIST_HEAD "{\"status\": \"OK\", \"data\": ["
#define PROTO_LIST_TAIL "]}" PROTO_TERMINATOR
/* Writes name (NUL-terminated UTF-8) as a JSON string into out, which
 * has room for 6 * strlen(name) + 3 bytes; returns the length written. */
size_t proto_put_json_string(char *out, const char *name);
/* The part of a GET reply before the base64 text; heap-allocated. */
char *proto_reply_get_head(const char *name);
#define PROTO_GET_TAIL "\"}" PROTO_TERMINATOR

/* Reads the reply to a cmd request from c and checks that it has cmd's
 * shape: a status "OK" or "ERROR", no member twice, and with OK a GET's
 * data_file string, a LIST's array of names, a STATS object, or another
 * command's message. A GET's data_file is decoded into sink; a LIST's
 * names go to sink one write per name (NUL-terminated, at most
 * FS_NAME_MAX bytes); sink may be NULL. Every other member is returned in
 * *reply as a cJSON object, from at most 64 KiB of JSON text, so memory
 * stays bounded whatever the peer sends. count is the bytes (GET) or
 * names (LIST) given to the sink. The reply ends at its closing brace:
 * nothing after it is waited for. Returns 0 (an ERROR reply included) or
 * -1 with st set. */
int proto_read_reply(struct conn *c, enum proto_command cmd,
		     const struct fs_sink *sink, struct cJSON **reply,
		     uint64_t *count, struct fs_status *st);
/* Copies text[0..len) into out (outlen bytes with the NUL; 4 * len + 1
 * always suffices) so that a terminal shows every byte and nothing else
 * happens: backslash and control bytes as C escapes (\\, \n, \x1b), C1
 * controls and bidirectional or line-breaking format characters as
 * \uXXXX, bytes that are not UTF-8 as \xHH. Returns the length. */
size_t proto_escape_visible(const char *text, size_t len, char *out,
			    size_t outlen);

#endif
