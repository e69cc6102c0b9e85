/* proto.c: the wire format of docs/protocol.md.
 *
 * Requests are parsed incrementally from a connection buffer: the head
 * (command word and name) is capped at FS_HEAD_MAX bytes, and an UPLOAD's
 * base64 data that follows it is never part of the head, so the server can
 * stream it. Replies are small cJSON envelopes, except a GET's data_file,
 * which both sides stream: the server writes the envelope around an
 * encoded stream, and proto_read_reply() decodes the value of data_file
 * straight into a sink while every other member goes through cJSON. The
 * reply reader is hand-written because no JSON library in Debian streams a
 * single string value of unbounded length. */
#include "fileserv.h"
#include "codec.h"
#include "conn.h"
#include "proto.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const command_names[CMD_COUNT] = {
    [CMD_INVALID] = "INVALID", [CMD_LIST] = "LIST",	[CMD_GET] = "GET",
    [CMD_UPLOAD] = "UPLOAD",   [CMD_DELETE] = "DELETE", [CMD_STATS] = "STATS",
};

const char *proto_command_name(enum proto_command cmd)
{
	return cmd < CMD_COUNT ? command_names[cmd] : "INVALID";
}

/* memchr is vectorised in glibc and base64 never contains '\r', so this
 * runs at memory speed over upload data. */
ssize_t proto_find_terminator(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	while ((p = memchr(p, '\r', (size_t)(end - p)))) {
		if (end - p < 4)
			return -1;
		if (memcmp(p, PROTO_TERMINATOR, 4) == 0)
			return p - buf;
		p++;
	}
	return -1;
}

static enum proto_command command_lookup(const char *word, size_t len)
{
	for (int i = CMD_LIST; i < CMD_COUNT; i++)
		if (strlen(command_names[i]) == len &&
		    strncasecmp(word, command_names[i], len) == 0)
			return i;
	return CMD_INVALID;
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
	size_t n;
	unsigned min, cp;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, min = 0x80, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, min = 0x800, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, min = 0x10000, cp = s[0] & 0x07;
	else
		return 0;
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

const char *proto_check_name(const char *name, size_t len)
{
	const unsigned char *s = (const unsigned char *)name;
	if (len == 0)
		return "invalid name: empty";
	if (len > FS_NAME_MAX)
		return "invalid name: longer than 255 bytes";
	if (s[0] == '.')
		return "invalid name: starts with '.'";
	for (size_t i = 0; i < len;) {
		if (s[i] == '/')
			return "invalid name: contains '/'";
		if (s[i] < 0x20 || s[i] == 0x7f)
			return "invalid name: contains a control byte";
		size_t n = utf8_sequence(s + i, len - i);
		if (n == 0)
			return "invalid name: not valid UTF-8";
		i += n;
	}
	return NULL;
}

/* Copies a printable, ASCII-only excerpt of word into out for messages. */
static void excerpt(const char *word, size_t len, char *out, size_t outlen)
{
	size_t n = len < outlen - 1 ? len : outlen - 1;
	if (n > 32)
		n = 32;
	for (size_t i = 0; i < n; i++)
		out[i] = isprint((unsigned char)word[i]) ? word[i] : '?';
	out[n] = '\0';
}

/* Result of scanning a name token: 1 done, 0 need more, -1 invalid. */
static int scan_quoted(const char *s, size_t len, int line_ends,
		       struct proto_request *req, size_t *used,
		       const char **why)
{
	size_t n = 0;
	for (size_t i = 1; i < len; i++) {
		char ch = s[i];
		if (ch == '"') {
			*used = i + 1;
			req->name_len = n;
			if (n <= FS_NAME_MAX)
				req->name[n] = '\0';
			return 1;
		}
		if (ch == '\\') {
			if (++i == len)
				break;
			ch = s[i];
			if (ch != '"' && ch != '\\') {
				*why = "bad escape in quoted name";
				return -1;
			}
		}
		if (n <= FS_NAME_MAX)
			req->name[n] = ch;
		n++;
	}
	if (line_ends) {
		*why = "unterminated quoted name";
		return -1;
	}
	return 0;
}

static int scan_name(const char *s, size_t len, int line_ends,
		     struct proto_request *req, size_t *used, const char **why)
{
	if (len > 0 && s[0] == '"')
		return scan_quoted(s, len, line_ends, req, used, why);
	const char *sp = memchr(s, ' ', len);
	if (!sp && !line_ends)
		return 0;
	size_t n = sp ? (size_t)(sp - s) : len;
	*used = n;
	req->name_len = n;
	if (n <= FS_NAME_MAX) {
		memcpy(req->name, s, n);
		req->name[n] = '\0';
	}
	return 1;
}

/* Parses what follows the command word of GET, DELETE and UPLOAD. */
static int parse_name_part(const char *buf, size_t pos, size_t end,
			   ssize_t term, struct proto_request *req,
			   size_t *consumed, const char **why)
{
	if (pos == end) {
		*why = "missing file name";
		return term < 0 ? 0 : -1;
	}
	size_t used = 0;
	int r =
	    scan_name(buf + pos + 1, end - pos - 1, term >= 0, req, &used, why);
	if (r <= 0)
		return r;
	size_t after = pos + 1 + used;
	const char *bad = proto_check_name(req->name, req->name_len);
	if (bad) {
		*why = bad;
		return -1;
	}
	if (req->cmd == CMD_UPLOAD) {
		if (after < end && buf[after] == ' ') {
			*consumed = after + 1;
			return 1;
		}
		*why = after == end ? "missing file data" : "bad parameters";
		return after == end && term < 0 ? 0 : -1;
	}
	if (term < 0)
		return 0;
	if (after != end) {
		*why = "too many parameters";
		return -1;
	}
	*consumed = (size_t)term + 4;
	return 1;
}

int proto_parse_head(const char *buf, size_t len, struct proto_request *req,
		     size_t *consumed, struct fs_status *st)
{
	memset(req, 0, sizeof(*req));
	ssize_t term = proto_find_terminator(buf, len);
	size_t end = term >= 0 ? (size_t)term : len;
	const char *sp = memchr(buf, ' ', end);
	size_t wlen = sp ? (size_t)(sp - buf) : end;
	const char *why = "request head too long";
	int r = 0;

	if (sp || term >= 0) {
		req->cmd = command_lookup(buf, wlen);
		if (req->cmd == CMD_INVALID) {
			char word[40];
			excerpt(buf, wlen, word, sizeof(word));
			if (wlen == 0)
				return fs_fail(st, FS_ERR_PROTOCOL,
					       "empty request");
			return fs_fail(st, FS_ERR_PROTOCOL,
				       "unknown command '%s'", word);
		}
		if (req->cmd == CMD_LIST || req->cmd == CMD_STATS) {
			why = "too many parameters";
			r = term < 0 ? 0 : wlen == end ? 1 : -1;
			if (r == 1)
				*consumed = (size_t)term + 4;
		} else {
			r = parse_name_part(buf, wlen, end, term, req, consumed,
					    &why);
		}
	}
	if (r == 0 && len < FS_HEAD_MAX)
		return 0;
	if (r == 1)
		return 1;
	if (r == 0)
		why = "request head too long";
	return fs_fail(st, FS_ERR_PROTOCOL, "%s", why);
}

static int name_needs_quotes(const char *name)
{
	return name[0] == '"' || strpbrk(name, " \\\"") != NULL;
}

int proto_format_head(char *buf, size_t len, enum proto_command cmd,
		      const char *name)
{
	const char *word = proto_command_name(cmd);
	size_t n = (size_t)snprintf(buf, len, "%s", word);
	if (cmd == CMD_GET || cmd == CMD_DELETE || cmd == CMD_UPLOAD) {
		int quote = name_needs_quotes(name);
		if (n < len)
			buf[n++] = ' ';
		if (quote && n < len)
			buf[n++] = '"';
		for (const char *p = name; *p; p++) {
			if (quote && (*p == '"' || *p == '\\') && n < len)
				buf[n++] = '\\';
			if (n < len)
				buf[n++] = *p;
		}
		if (quote && n < len)
			buf[n++] = '"';
	}
	const char *tail = cmd == CMD_UPLOAD ? " " : PROTO_TERMINATOR;
	n += (size_t)snprintf(buf + (n < len ? n : len), n < len ? len - n : 0,
			      "%s", tail);
	return n < len ? (int)n : -1;
}

/* ---- replies ---- */

/* JSON text of a string value, heap-allocated. */
static char *json_string(const char *text)
{
	cJSON *item = cJSON_CreateString(text);
	char *out = item ? cJSON_PrintUnformatted(item) : NULL;
	cJSON_Delete(item);
	return out;
}

/* Python json.dumps spacing: {"status": "OK", "data": ...}. */
static char *envelope(const char *status, cJSON *data)
{
	char *value = data ? cJSON_PrintUnformatted(data) : NULL;
	cJSON_Delete(data);
	if (!value)
		return NULL;
	char *out = NULL;
	if (asprintf(&out, "{\"status\": \"%s\", \"data\": %s}%s", status,
		     value, PROTO_TERMINATOR) < 0)
		out = NULL;
	free(value);
	return out;
}

char *proto_reply_error(const char *message)
{
	return envelope("ERROR", cJSON_CreateString(message));
}

char *proto_reply_text(const char *message)
{
	return envelope("OK", cJSON_CreateString(message));
}

char *proto_reply_data(cJSON *data)
{
	return envelope("OK", data);
}

char *proto_reply_get_head(const char *name)
{
	char *quoted = json_string(name);
	char *out = NULL;
	if (quoted && asprintf(&out,
			       "{\"status\": \"OK\", \"data_namafile\": %s, "
			       "\"data_file\": \"",
			       quoted) < 0)
		out = NULL;
	free(quoted);
	return out;
}

/* ---- connection buffer ---- */

int conn_init(struct conn *c, int fd, size_t cap)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->cap = cap;
	c->buf = malloc(cap);
	return c->buf ? 0 : -1;
}

void conn_free(struct conn *c)
{
	free(c->buf);
	c->buf = NULL;
}

ssize_t conn_fill(struct conn *c)
{
	if (c->start == c->end) {
		c->start = c->end = 0;
	} else if (c->end == c->cap && c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->end == c->cap) {
		errno = ENOBUFS;
		return -1;
	}
	ssize_t n;
	do
		n = recv(c->fd, c->buf + c->end, c->cap - c->end, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		c->end += (size_t)n;
		c->bytes_in += (uint64_t)n;
		if (c->check && c->check(c) < 0)
			return -1;
	}
	return n;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int conn_write(struct conn *c, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
		c->bytes_out += (uint64_t)n;
		if (c->check && c->check(c) < 0)
			return -1;
	}
	return 0;
}

/* ---- streamed reply reader ---- */

#define REPLY_VALUE_MAX (64u << 20) /* any member but data_file */

struct reader {
	struct conn *c;
	struct fs_status *st;
};

static int reader_fail_io(struct reader *r, ssize_t n)
{
	if (n == 0)
		return fs_fail(r->st, FS_ERR_RESET,
			       "connection closed before the reply ended");
	return fs_fail(r->st, fs_error_from_errno(errno),
		       "reading the reply: %s", strerror(errno));
}

/* Next byte without consuming it, or -1 with r->st set. */
static int reader_peek(struct reader *r)
{
	if (r->c->start == r->c->end) {
		ssize_t n = conn_fill(r->c);
		if (n <= 0)
			return reader_fail_io(r, n);
	}
	return (unsigned char)r->c->buf[r->c->start];
}

static int reader_next(struct reader *r)
{
	int ch = reader_peek(r);
	if (ch >= 0)
		r->c->start++;
	return ch;
}

static int reader_skip_ws(struct reader *r)
{
	int ch;
	while ((ch = reader_peek(r)) == ' ' || ch == '\t' || ch == '\r' ||
	       ch == '\n')
		r->c->start++;
	return ch;
}

static int reader_expect(struct reader *r, int want)
{
	int ch = reader_skip_ws(r);
	if (ch < 0)
		return -1;
	if (ch != want)
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed reply: expected '%c', got 0x%02x",
			       want, ch);
	r->c->start++;
	return 0;
}

struct text {
	char *data;
	size_t len, cap;
};

static int text_put(struct text *t, char ch)
{
	if (t->len + 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		char *p = cap <= REPLY_VALUE_MAX ? realloc(t->data, cap) : NULL;
		if (!p)
			return -1;
		t->data = p;
		t->cap = cap;
	}
	t->data[t->len++] = ch;
	t->data[t->len] = '\0';
	return 0;
}

/* Appends the raw JSON text of one value (string, number, literal,
 * object or array) to t. */
static int reader_capture(struct reader *r, struct text *t)
{
	int depth = 0, in_string = 0, escaped = 0, ch;
	if (reader_skip_ws(r) < 0)
		return -1;
	for (;;) {
		ch = reader_peek(r);
		if (ch < 0)
			return -1;
		if (!in_string && depth == 0 && t->len > 0 &&
		    (ch == ',' || ch == '}' || ch == ']' ||
		     (t->data[0] != '"' && isspace(ch))))
			return 0;
		r->c->start++;
		if (text_put(t, (char)ch) < 0)
			return fs_fail(r->st, FS_ERR_PROTOCOL,
				       "reply member too large");
		if (in_string) {
			if (escaped)
				escaped = 0;
			else if (ch == '\\')
				escaped = 1;
			else if (ch == '"')
				in_string = 0;
		} else if (ch == '"') {
			in_string = 1;
		} else if (ch == '{' || ch == '[') {
			depth++;
		} else if (ch == '}' || ch == ']') {
			depth--;
		}
		if (!in_string && depth == 0 && t->data[0] == '"' && t->len > 1)
			return 0;
		if (!in_string && depth == 0 && (ch == '}' || ch == ']'))
			return 0;
	}
}

/* Decodes the escape after a backslash inside data_file into *out. */
static int reader_escape(struct reader *r, char *out)
{
	int ch = reader_next(r);
	const char *simple = "\"\"\\\\//b\bf\fn\nr\rt\t";
	for (const char *p = simple; ch >= 0 && *p; p += 2)
		if (*p == ch) {
			*out = p[1];
			return 0;
		}
	if (ch != 'u')
		return ch < 0 ? -1
			      : fs_fail(r->st, FS_ERR_PROTOCOL,
					"bad escape in reply");
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		ch = reader_next(r);
		if (ch < 0 || !isxdigit(ch))
			return ch < 0 ? -1
				      : fs_fail(r->st, FS_ERR_PROTOCOL,
						"bad \\u escape in reply");
		v = v * 16 +
		    (unsigned)(isdigit(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10);
	}
	*out = v < 0x80 ? (char)v : '!'; /* non-ASCII is never base64 */
	return 0;
}

struct stream {
	struct b64_decoder dec;
	char *out;
	const struct fs_sink *sink;
	uint64_t bytes;
};

static int stream_feed(struct reader *r, struct stream *s, const char *in,
		       size_t n)
{
	ssize_t got = b64_decode_update(&s->dec, in, n, s->out);
	if (got < 0)
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "data_file is not valid base64");
	if (got > 0 && s->sink && s->sink->write(s->sink->ctx, s->out, got))
		return fs_fail(r->st, FS_ERR_LOCAL, "writing the file: %s",
			       strerror(errno));
	s->bytes += (uint64_t)got;
	return 0;
}

/* Streams the string value of data_file (opening quote consumed). */
static int reader_stream(struct reader *r, struct stream *s)
{
	struct conn *c = r->c;
	for (;;) {
		if (reader_peek(r) < 0)
			return -1;
		char *p = c->buf + c->start;
		size_t n = c->end - c->start;
		char *q = memchr(p, '"', n);
		char *b = memchr(p, '\\', q ? (size_t)(q - p) : n);
		size_t span = b ? (size_t)(b - p) : q ? (size_t)(q - p) : n;
		if (stream_feed(r, s, p, span) < 0)
			return -1;
		c->start += span;
		if (b) {
			char ch;
			c->start++;
			if (reader_escape(r, &ch) < 0 ||
			    stream_feed(r, s, &ch, 1) < 0)
				return -1;
		} else if (q) {
			c->start++;
			if (b64_decode_final(&s->dec) < 0)
				return fs_fail(r->st, FS_ERR_PROTOCOL,
					       "data_file is truncated base64");
			return 0;
		}
	}
}

static int reader_key(struct reader *r, char *key, size_t keylen)
{
	struct text t = {0};
	int rc = reader_capture(r, &t);
	cJSON *k = rc == 0 ? cJSON_Parse(t.data) : NULL;
	free(t.data);
	if (rc < 0)
		return -1;
	if (!cJSON_IsString(k)) {
		cJSON_Delete(k);
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed reply: bad member name");
	}
	snprintf(key, keylen, "%s", k->valuestring);
	cJSON_Delete(k);
	return 0;
}

static int reader_member(struct reader *r, struct stream *s, cJSON *obj)
{
	char key[64];
	if (reader_key(r, key, sizeof(key)) < 0 || reader_expect(r, ':') < 0)
		return -1;
	int ch = reader_skip_ws(r);
	if (ch < 0)
		return -1;
	if (strcmp(key, "data_file") == 0 && ch == '"') {
		r->c->start++;
		return reader_stream(r, s);
	}
	struct text t = {0};
	int rc = reader_capture(r, &t);
	cJSON *value = rc == 0 ? cJSON_ParseWithLength(t.data, t.len) : NULL;
	free(t.data);
	if (rc < 0)
		return -1;
	if (!value)
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed reply: bad value of '%s'", key);
	cJSON_AddItemToObject(obj, key, value);
	return 0;
}

/* After the closing brace: whitespace up to the terminator (or EOF). */
static int reader_finish(struct reader *r)
{
	unsigned last = 0;
	for (;;) {
		if (r->c->start == r->c->end) {
			ssize_t n = conn_fill(r->c);
			if (n == 0)
				return 0;
			if (n < 0)
				return reader_fail_io(r, n);
		}
		int ch = (unsigned char)r->c->buf[r->c->start++];
		if (!isspace(ch))
			return fs_fail(r->st, FS_ERR_PROTOCOL,
				       "garbage after the reply");
		last = last << 8 | (unsigned)ch;
		if (last == 0x0d0a0d0a)
			return 0;
	}
}

static int reader_object(struct reader *r, struct stream *s, cJSON *obj)
{
	if (reader_expect(r, '{') < 0)
		return -1;
	int ch = reader_skip_ws(r);
	if (ch == '}') {
		r->c->start++;
		return reader_finish(r);
	}
	for (;;) {
		if (reader_member(r, s, obj) < 0)
			return -1;
		ch = reader_skip_ws(r);
		if (ch < 0)
			return -1;
		r->c->start++;
		if (ch == '}')
			return reader_finish(r);
		if (ch != ',')
			return fs_fail(r->st, FS_ERR_PROTOCOL,
				       "malformed reply: expected ',' or '}'");
	}
}

int proto_read_reply(struct conn *c, const struct fs_sink *sink, cJSON **reply,
		     uint64_t *file_bytes, struct fs_status *st)
{
	struct reader r = {c, st};
	struct stream s = {.sink = sink};
	b64_decoder_init(&s.dec);
	s.out = malloc(B64_DECODED_MAX(c->cap) + 8);
	cJSON *obj = cJSON_CreateObject();
	int rc = -1;
	if (!s.out || !obj)
		fs_fail(st, FS_ERR_LOCAL, "out of memory");
	else
		rc = reader_object(&r, &s, obj);
	free(s.out);
	if (rc < 0) {
		cJSON_Delete(obj);
		obj = NULL;
	}
	*reply = obj;
	if (file_bytes)
		*file_bytes = s.bytes;
	return rc;
}
