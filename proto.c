/* proto.c: the wire format of docs/protocol.md.
 *
 * Requests are parsed incrementally from a connection buffer: the head
 * (command word and name) is capped at FS_HEAD_MAX bytes, and an UPLOAD's
 * base64 data that follows it is never part of the head, so the server can
 * stream it. Replies are small cJSON envelopes, except a GET's data_file,
 * which both sides stream: the server writes the envelope around an
 * encoded stream, and proto_read_reply() decodes the value of data_file
 * straight into a sink, a LIST's names go to a sink one by one, and every
 * other member goes through cJSON within a fixed budget, so a reply costs
 * bounded memory whatever the peer sends; the reader then checks that the
 * reply has its command's shape. It is hand-written because no JSON
 * library in Debian streams a single string value of unbounded length.
 * proto_escape_visible() shows a peer's text on a terminal safely. */
#include "fileserv.h"
#include "codec.h"
#include "conn.h"
#include "proto.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const command_names[CMD_COUNT] = {
    [CMD_INVALID] = "INVALID", [CMD_LIST] = "LIST",	[CMD_GET] = "GET",
    [CMD_UPLOAD] = "UPLOAD",   [CMD_DELETE] = "DELETE", [CMD_STATS] = "STATS",
};

const char *proto_command_name(enum proto_command cmd)
{
	return cmd < CMD_COUNT ? command_names[cmd] : "INVALID";
}

/* memchr is vectorised in glibc, so this runs at memory speed over a
 * head, however much data came with it. */
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

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if invalid; its
 * code point goes to *cp. */
static size_t utf8_sequence(const unsigned char *s, size_t len, unsigned *cp)
{
	size_t n;
	unsigned min;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, min = 0x80, *cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, min = 0x800, *cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, min = 0x10000, *cp = s[0] & 0x07;
	else
		return 0;
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return n;
}

/* C0 and C1 control characters and DEL: a terminal acts on them. */
static int is_control(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Bidirectional embeddings, overrides and isolates (U+202A..U+202E,
 * U+2066..U+2069): they reorder how the rest of a line is displayed, so
 * "txt.exe" can be made to look like "exe.txt". */
static int is_bidi_control(unsigned cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
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
		unsigned cp;
		size_t n = utf8_sequence(s + i, len - i, &cp);
		if (n == 0)
			return "invalid name: not valid UTF-8";
		if (is_control(cp))
			return "invalid name: contains a control character";
		if (is_bidi_control(cp))
			return "invalid name: contains a bidirectional "
			       "control character";
		i += n;
	}
	return NULL;
}

/* C1 controls, and the format characters that reorder or break the line
 * they are printed on (bidirectional marks, embeddings, overrides and
 * isolates; line and paragraph separators). */
static int invisible_char(unsigned cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c || cp == 0x200e ||
	       cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/* The escape of one code point or invalid byte into piece; its length. */
static size_t escape_one(unsigned cp, int valid, char *piece, size_t len)
{
	static const char c_escapes[] = "\aa\bb\tt\nn\vv\ff\rr\\\\";
	if (!valid)
		return (size_t)snprintf(piece, len, "\\x%02x", cp);
	const char *e =
	    cp && (cp < 0x20 || cp == '\\') ? strchr(c_escapes, (int)cp) : NULL;
	if (e)
		return (size_t)snprintf(piece, len, "\\%c", e[1]);
	if (cp < 0x20 || cp == 0x7f)
		return (size_t)snprintf(piece, len, "\\x%02x", cp);
	if (invisible_char(cp))
		return (size_t)snprintf(piece, len, "\\u%04x", cp);
	return 0;
}

size_t proto_escape_visible(const char *text, size_t len, char *out,
			    size_t outlen)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		char piece[8];
		unsigned cp = s[i];
		size_t k = utf8_sequence(s + i, len - i, &cp);
		size_t w =
		    escape_one(k ? cp : s[i], k > 0, piece, sizeof(piece));
		if (k == 0)
			k = 1;
		if (w == 0) {
			memcpy(piece, s + i, k);
			w = k;
		}
		if (n + w >= outlen)
			break;
		memcpy(out + n, piece, w);
		n += w;
		i += k;
	}
	if (outlen)
		out[n] = '\0';
	return n;
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

size_t proto_put_json_string(char *out, const char *name)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	out[n++] = '"';
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p == '"' || *p == '\\') {
			out[n++] = '\\';
			out[n++] = (char)*p;
		} else if (*p < 0x20) {
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[*p >> 4];
			out[n + 5] = hex[*p & 15];
			n += 6;
		} else {
			out[n++] = (char)*p;
		}
	}
	out[n++] = '"';
	return n;
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

void conn_set_timeouts(int fd, double seconds)
{
	struct timeval tv = {(time_t)seconds,
			     (suseconds_t)((seconds - (time_t)seconds) * 1e6)};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

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
	while ((n = recv(c->fd, c->buf + c->end, c->cap - c->end,
			 c->wait ? MSG_DONTWAIT : 0)) < 0) {
		if (c->wait && errno == EAGAIN && c->wait(c, POLLIN) == 0)
			continue; /* waited only when nothing had come */
		if (errno != EINTR)
			return -1;
	}
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
		ssize_t n = send(c->fd, p, len,
				 MSG_NOSIGNAL | (c->wait ? MSG_DONTWAIT : 0));
		if (n < 0 && c->wait && errno == EAGAIN) {
			if (c->wait(c, POLLOUT) < 0)
				return -1;
			continue;
		}
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

/* JSON text the reader takes outside the streamed parts (data_file's
 * value, a listing's names): every member, whitespace included. What it
 * keeps as cJSON is parsed from that text, so a reply costs a few MB at
 * most, whatever the peer sends. */
#define REPLY_TEXT_MAX (64u << 10)
/* One listed name as JSON text (each byte escaped as \uXXXX), and the
 * whitespace and comma after it. */
#define REPLY_NAME_TEXT_MAX (FS_NAME_MAX * 6 + 2 + 64)

struct text {
	char *data;
	size_t len, cap;
};

struct reader {
	struct conn *c;
	struct fs_status *st;
	enum proto_command cmd;
	const struct fs_sink *sink;
	size_t budget;	   /* bytes still allowed by the current limit */
	const char *limit; /* what exceeding it means */
	struct text text;  /* the member or name being captured */
	struct b64_decoder dec;
	char *out;	/* decoded data_file bytes */
	uint64_t count; /* bytes (GET) or names (LIST) given to the sink */
	int has_file, has_list;
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

/* Consumes the peeked byte, charged to the current limit. */
static int reader_take(struct reader *r)
{
	if (r->budget == 0)
		return fs_fail(r->st, FS_ERR_PROTOCOL, "%s", r->limit);
	r->budget--;
	r->c->start++;
	return 0;
}

static int reader_skip_ws(struct reader *r)
{
	int ch;
	while ((ch = reader_peek(r)) == ' ' || ch == '\t' || ch == '\r' ||
	       ch == '\n')
		if (reader_take(r) < 0)
			return -1;
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
	return reader_take(r);
}

static int text_put(struct text *t, char ch)
{
	if (t->len + 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		char *p = realloc(t->data, cap);
		if (!p)
			return -1;
		t->data = p;
		t->cap = cap;
	}
	t->data[t->len++] = ch;
	t->data[t->len] = '\0';
	return 0;
}

/* Captures the raw JSON text of one value (string, number, literal,
 * object or array) into r->text; its bytes count against the limit. */
static int reader_capture(struct reader *r)
{
	struct text *t = &r->text;
	int depth = 0, in_string = 0, escaped = 0, ch;
	t->len = 0;
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
		if (reader_take(r) < 0)
			return -1;
		if (text_put(t, (char)ch) < 0)
			return fs_fail(r->st, FS_ERR_LOCAL, "out of memory");
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

/* The byte a one-letter JSON escape stands for, or -1. */
static int json_simple_escape(int ch)
{
	static const char map[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
	for (const char *p = map; *p; p += 2)
		if (*p == ch)
			return (unsigned char)p[1];
	return -1;
}

/* The value of 4 hex digits at s, or -1. */
static long json_hex4(const char *s)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int ch = (unsigned char)s[i];
		if (!isxdigit(ch))
			return -1;
		v = v * 16 + (isdigit(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10);
	}
	return v;
}

static size_t utf8_encode(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The code point of the \u escape (with its low surrogate) at *p, which
 * it moves past; -1 if invalid. */
static long json_unicode_escape(const char **p, const char *end)
{
	long cp = end - *p >= 6 ? json_hex4(*p + 2) : -1;
	*p += 6;
	if (cp >= 0xdc00 && cp < 0xe000)
		return -1;
	if (cp < 0xd800 || cp >= 0xdc00)
		return cp;
	const char *q = *p;
	long low =
	    end - q >= 6 && q[0] == '\\' && q[1] == 'u' ? json_hex4(q + 2) : -1;
	if (low < 0xdc00 || low >= 0xe000)
		return -1;
	*p += 6;
	return 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
}

/* Decodes the JSON string s[0..len) (quotes included) into out, cap bytes
 * with the NUL; returns its length, -1 if it is not a JSON string, -2 if
 * it does not fit. NUL bytes (\u0000) are kept. */
static ssize_t json_unquote(const char *s, size_t len, char *out, size_t cap)
{
	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return -1;
	const char *p = s + 1, *end = s + len - 1;
	size_t n = 0;
	while (p < end) {
		char piece[4];
		size_t k = 1;
		long v;
		if ((unsigned char)*p < 0x20)
			return -1;
		if (*p != '\\') {
			piece[0] = *p++;
		} else if (end - p >= 2 &&
			   (v = json_simple_escape(p[1])) >= 0) {
			piece[0] = (char)v;
			p += 2;
		} else if (end - p >= 2 && p[1] == 'u' &&
			   (v = json_unicode_escape(&p, end)) >= 0) {
			k = utf8_encode((unsigned)v, piece);
		} else {
			return -1;
		}
		if (n + k >= cap)
			return -2;
		memcpy(out + n, piece, k);
		n += k;
	}
	out[n] = '\0';
	return (ssize_t)n;
}

/* Decodes the escape after a backslash inside data_file into *out. */
static int reader_escape(struct reader *r, char *out)
{
	int ch = reader_peek(r);
	if (ch < 0)
		return -1;
	r->c->start++;
	int v = json_simple_escape(ch);
	if (v >= 0) {
		*out = (char)v;
		return 0;
	}
	char hex[4];
	for (int i = 0; ch == 'u' && i < 4; i++) {
		int d = reader_peek(r);
		if (d < 0)
			return -1;
		r->c->start++;
		hex[i] = (char)d;
	}
	long cp = ch == 'u' ? json_hex4(hex) : -1;
	if (cp < 0)
		return fs_fail(r->st, FS_ERR_PROTOCOL, "bad escape in reply");
	*out = cp < 0x80 ? (char)cp : '!'; /* non-ASCII is never base64 */
	return 0;
}

/* Hands got decoded bytes (in r->out) to the sink. */
static int stream_write(struct reader *r, ssize_t got)
{
	if (got < 0)
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "data_file is not valid base64");
	if (got > 0 && r->sink && r->sink->write(r->sink->ctx, r->out, got))
		return fs_fail(r->st, FS_ERR_LOCAL, "writing the file: %s",
			       strerror(errno));
	r->count += (uint64_t)got;
	return 0;
}

/* Streams the string value of data_file (opening quote consumed). The
 * decoder stops where the base64 text does, so each buffer is read once:
 * at a quote (the end), a backslash (an escape, decoded alone) or any
 * other byte, which cannot be base64. */
static int reader_stream(struct reader *r)
{
	struct conn *c = r->c;
	for (;;) {
		if (reader_peek(r) < 0)
			return -1;
		const char *p = c->buf + c->start;
		size_t n = c->end - c->start, used;
		if (stream_write(
			r, b64_decode_span(&r->dec, p, n, r->out, &used)) < 0)
			return -1;
		c->start += used;
		if (used == n)
			continue;
		c->start++;
		if (p[used] == '\\') {
			char ch;
			if (reader_escape(r, &ch) < 0 ||
			    stream_write(r, b64_decode_update(&r->dec, &ch, 1,
							      r->out)) < 0)
				return -1;
		} else if (p[used] == '"') {
			if (b64_decode_final(&r->dec) < 0)
				return fs_fail(r->st, FS_ERR_PROTOCOL,
					       "data_file is truncated base64");
			return 0;
		} else {
			return stream_write(r, -1);
		}
	}
}

/* The length of a name without escapes that has fully arrived in the
 * buffer (quotes included), or 0: the common case, taken without
 * capturing byte by byte. */
static size_t reader_plain_name(const struct reader *r)
{
	const unsigned char *p = (const unsigned char *)r->c->buf + r->c->start;
	size_t avail = r->c->end - r->c->start;
	if (avail > FS_NAME_MAX + 2)
		avail = FS_NAME_MAX + 2;
	if (avail < 2 || p[0] != '"')
		return 0;
	for (size_t i = 1; i < avail; i++) {
		if (p[i] == '"')
			return i + 1;
		if (p[i] == '\\' || p[i] < 0x20)
			return 0;
	}
	return 0;
}

/* One name of a listing, and the separator after it: 1 at the end of the
 * list, 0 if more follow. The name goes to the sink, NUL-terminated. */
static int reader_name(struct reader *r)
{
	char name[FS_NAME_MAX + 1];
	r->budget = REPLY_NAME_TEXT_MAX;
	if (reader_skip_ws(r) < 0)
		return -1;
	size_t plain = reader_plain_name(r);
	ssize_t n;
	if (plain) {
		n = (ssize_t)plain - 2;
		memcpy(name, r->c->buf + r->c->start + 1, (size_t)n);
		name[n] = '\0';
		r->c->start += plain;
	} else if (reader_capture(r) < 0) {
		return -1;
	} else {
		n = json_unquote(r->text.data, r->text.len, name, sizeof(name));
	}
	if (n == -2)
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed LIST reply: a name longer than %d "
			       "bytes",
			       FS_NAME_MAX);
	if (n <= 0)
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed LIST reply: a name that is not a "
			       "non-empty string");
	if (r->sink && r->sink->write(r->sink->ctx, name, (size_t)n) < 0)
		return fs_fail(r->st, FS_ERR_LOCAL, "listing: %s",
			       strerror(errno));
	r->count++;
	int ch = reader_skip_ws(r);
	if (ch < 0 || reader_take(r) < 0)
		return -1;
	if (ch != ',' && ch != ']')
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed LIST reply: expected ',' or ']'");
	return ch == ']';
}

/* Streams a listing's names (its '[' consumed) to the sink, one call per
 * name: the reader holds one name at a time, however long the list. */
static int reader_names(struct reader *r)
{
	size_t budget = r->budget;
	const char *limit = r->limit;
	int rc = reader_skip_ws(r);
	if (rc == ']') {
		rc = reader_take(r);
	} else if (rc >= 0) {
		r->limit = "malformed LIST reply: a name too long";
		while ((rc = reader_name(r)) == 0)
			;
	}
	r->budget = budget;
	r->limit = limit;
	return rc < 0 ? -1 : 0;
}

/* A member name, parsed into *key (to be deleted by the caller). */
static int reader_key(struct reader *r, cJSON **key)
{
	if (reader_capture(r) < 0)
		return -1;
	*key = cJSON_ParseWithLength(r->text.data, r->text.len);
	if (cJSON_IsString(*key))
		return 0;
	return fs_fail(r->st, FS_ERR_PROTOCOL,
		       "malformed reply: bad member name");
}

static int reader_seen(const struct reader *r, const cJSON *obj,
		       const char *key)
{
	if (strcmp(key, "data_file") == 0 && r->has_file)
		return 1;
	if (strcmp(key, "data") == 0 && r->has_list)
		return 1;
	return cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

/* A member's value: data_file (GET) and data (LIST) stream; any other is
 * parsed into obj. */
static int reader_value(struct reader *r, cJSON *obj, const char *key)
{
	char shown[40];
	int ch = reader_skip_ws(r);
	if (ch < 0)
		return -1;
	excerpt(key, strlen(key), shown, sizeof(shown));
	if (reader_seen(r, obj, key))
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed reply: '%s' twice", shown);
	if (r->cmd == CMD_GET && strcmp(key, "data_file") == 0) {
		if (ch != '"')
			return fs_fail(r->st, FS_ERR_PROTOCOL,
				       "malformed GET reply: data_file is not "
				       "a string");
		r->c->start++;
		r->has_file = 1;
		return reader_stream(r);
	}
	if (r->cmd == CMD_LIST && strcmp(key, "data") == 0 && ch == '[') {
		r->c->start++;
		r->has_list = 1;
		return reader_names(r);
	}
	if (reader_capture(r) < 0)
		return -1;
	cJSON *value = cJSON_ParseWithLength(r->text.data, r->text.len);
	if (!value)
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed reply: bad value of '%s'", shown);
	cJSON_AddItemToObject(obj, key, value);
	return 0;
}

static int reader_member(struct reader *r, cJSON *obj)
{
	cJSON *key = NULL;
	int rc = reader_key(r, &key) < 0 || reader_expect(r, ':') < 0
		     ? -1
		     : reader_value(r, obj, key->valuestring);
	cJSON_Delete(key);
	return rc;
}

/* After the closing brace the reply is complete: what has already arrived
 * may only be whitespace (the terminator). Nothing more is waited for, so
 * a peer that never ends its reply cannot hold the client. */
static int reader_finish(struct reader *r)
{
	for (; r->c->start < r->c->end; r->c->start++)
		if (!isspace((unsigned char)r->c->buf[r->c->start]))
			return fs_fail(r->st, FS_ERR_PROTOCOL,
				       "garbage after the reply");
	return 0;
}

static int reader_object(struct reader *r, cJSON *obj)
{
	if (reader_expect(r, '{') < 0)
		return -1;
	int ch = reader_skip_ws(r);
	if (ch == '}')
		return reader_take(r) < 0 ? -1 : reader_finish(r);
	for (;;) {
		if (reader_member(r, obj) < 0)
			return -1;
		ch = reader_skip_ws(r);
		if (ch < 0 || reader_take(r) < 0)
			return -1;
		if (ch == '}')
			return reader_finish(r);
		if (ch != ',')
			return fs_fail(r->st, FS_ERR_PROTOCOL,
				       "malformed reply: expected ',' or '}'");
	}
}

/* What an OK reply to cmd lacks, or NULL if it has its command's shape. */
static const char *reply_lacks(const struct reader *r, const cJSON *data)
{
	switch (r->cmd) {
	case CMD_GET:
		return r->has_file ? NULL : "no data_file";
	case CMD_LIST:
		return r->has_list ? NULL : "no list of names";
	case CMD_STATS:
		return cJSON_IsObject(data) ? NULL : "no object of counters";
	default:
		return cJSON_IsString(data) ? NULL : "no message";
	}
}

/* A reply has a status, "OK" or "ERROR"; an OK one has the data of its
 * command, an ERROR one nothing streamed. */
static int reader_check_shape(const struct reader *r, const cJSON *obj)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(obj, "status");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(obj, "data");
	const char *cmd = proto_command_name(r->cmd);
	if (!cJSON_IsString(status))
		return fs_fail(r->st, FS_ERR_PROTOCOL,
			       "malformed %s reply: no status", cmd);
	const char *why = NULL;
	if (strcmp(status->valuestring, "OK") == 0)
		why = reply_lacks(r, data);
	else if (strcmp(status->valuestring, "ERROR") != 0)
		why = "a status neither OK nor ERROR";
	else if (r->has_file || r->has_list)
		why = "an ERROR with data";
	if (!why)
		return 0;
	return fs_fail(r->st, FS_ERR_PROTOCOL, "malformed %s reply: %s", cmd,
		       why);
}

int proto_read_reply(struct conn *c, enum proto_command cmd,
		     const struct fs_sink *sink, cJSON **reply, uint64_t *count,
		     struct fs_status *st)
{
	struct reader r = {.c = c,
			   .st = st,
			   .cmd = cmd,
			   .sink = sink,
			   .budget = REPLY_TEXT_MAX,
			   .limit = "reply too large: over 64 KiB outside "
				    "data_file and the listing"};
	b64_decoder_init(&r.dec);
	r.out = c->scratch ? c->scratch : malloc(B64_DECODED_MAX(c->cap) + 8);
	cJSON *obj = cJSON_CreateObject();
	int rc = -1;
	if (!r.out || !obj)
		fs_fail(st, FS_ERR_LOCAL, "out of memory");
	else if (reader_object(&r, obj) == 0)
		rc = reader_check_shape(&r, obj);
	if (r.out != c->scratch)
		free(r.out);
	free(r.text.data);
	if (rc < 0) {
		cJSON_Delete(obj);
		obj = NULL;
	}
	*reply = obj;
	if (count)
		*count = r.count;
	return rc;
}
