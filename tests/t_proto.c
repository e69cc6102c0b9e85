/* t_proto.c: unit tests for proto.c: request heads, names, head
 * formatting, the terminator search, reply envelopes and the streamed
 * reply reader (fed through a socketpair by a writer thread).
 *
 * Every parse runs on an exact-length heap copy of its input, so reading
 * past the end is caught by ASan and never hidden by a NUL terminator.
 * Prints each failure with file:line, one TEST line per test function and
 * ends with "t_proto: N passed, N failed (N checks)" (tests/check.h); exit
 * status 1 if anything failed. */
#include "fileserv.h"
#include "conn.h"
#include "proto.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

/* asprintf that exits on failure. */
static char *xasprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *out;
	va_start(ap, fmt);
	int n = vasprintf(&out, fmt, ap);
	va_end(ap);
	if (n < 0) {
		perror("asprintf");
		exit(2);
	}
	return out;
}

/* Printable rendering of s[0..n) for messages (static buffer). */
static const char *show(const char *s, size_t n)
{
	static char out[200];
	size_t o = 0;
	for (size_t i = 0; i < n && o < sizeof(out) - 8; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, 8, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

/* ---- proto_parse_head ---- */

struct parsed {
	int rc;
	struct proto_request req;
	size_t consumed;
	struct fs_status st;
};

/* Parses an exact-length copy of s[0..n). */
static struct parsed parse_n(const char *s, size_t n)
{
	struct parsed p;
	char *copy = xmalloc(n);
	memcpy(copy, s, n);
	memset(&p, 0, sizeof(p));
	p.consumed = (size_t)-1;
	p.rc = proto_parse_head(copy, n, &p.req, &p.consumed, &p.st);
	free(copy);
	return p;
}

static struct parsed parse(const char *s)
{
	return parse_n(s, strlen(s));
}

/* A complete, valid request: cmd, name, where the head ends. Also every
 * shorter prefix must ask for more bytes. */
static void expect_ok_n(int line, const char *s, size_t n,
			enum proto_command cmd, const char *name,
			size_t name_len, size_t consumed)
{
	struct parsed p = parse_n(s, n);
	CHECK(p.rc == 1, "line %d: '%s' gave %d (%s)", line, show(s, n), p.rc,
	      p.st.message);
	if (p.rc != 1)
		return;
	CHECK(p.req.cmd == cmd, "line %d: '%s': cmd %d", line, show(s, n),
	      p.req.cmd);
	CHECK(p.consumed == consumed, "line %d: '%s': consumed %zu, want %zu",
	      line, show(s, n), p.consumed, consumed);
	if (name) {
		CHECK(p.req.name_len == name_len &&
			  memcmp(p.req.name, name, name_len) == 0 &&
			  p.req.name[name_len] == '\0',
		      "line %d: '%s': name '%s'", line, show(s, n),
		      show(p.req.name, p.req.name_len));
	}
	for (size_t k = 0; k < consumed; k++) {
		struct parsed q = parse_n(s, k);
		CHECK(q.rc == 0, "line %d: prefix %zu of '%s' gave %d (%s)",
		      line, k, show(s, n), q.rc, q.st.message);
	}
}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

#define OK(s, cmd, name, consumed)                                             \
	expect_ok_n(__LINE__, s, strlen(s), cmd, name, slen(name), consumed)

/* An invalid request; its message must mention `want` if it is not NULL. */
static void expect_bad_n(int line, const char *s, size_t n, const char *want)
{
	struct parsed p = parse_n(s, n);
	CHECK(p.rc == -1, "line %d: '%s' gave %d, want -1", line, show(s, n),
	      p.rc);
	CHECK(p.st.message[0] != '\0', "line %d: '%s': no reason", line,
	      show(s, n));
	if (want)
		CHECK(strstr(p.st.message, want) != NULL,
		      "line %d: '%s': reason '%s' lacks '%s'", line, show(s, n),
		      p.st.message, want);
}

#define BAD(s, want) expect_bad_n(__LINE__, s, strlen(s), want)

static void test_parse_commands(void)
{
	OK("LIST\r\n\r\n", CMD_LIST, NULL, 8);
	OK("STATS\r\n\r\n", CMD_STATS, NULL, 9);
	OK("GET a.pdf\r\n\r\n", CMD_GET, "a.pdf", 13);
	OK("DELETE b.jpg\r\n\r\n", CMD_DELETE, "b.jpg", 16);
	OK("UPLOAD c.txt QUJD\r\n\r\n", CMD_UPLOAD, "c.txt", 13);
	/* case-insensitive command words */
	OK("list\r\n\r\n", CMD_LIST, NULL, 8);
	OK("LiSt\r\n\r\n", CMD_LIST, NULL, 8);
	OK("stats\r\n\r\n", CMD_STATS, NULL, 9);
	OK("gEt x\r\n\r\n", CMD_GET, "x", 9);
	OK("get x\r\n\r\n", CMD_GET, "x", 9);
	OK("Delete x\r\n\r\n", CMD_DELETE, "x", 12);
	OK("upload x QUJD\r\n\r\n", CMD_UPLOAD, "x", 9);
	/* the name is case-preserving */
	OK("GET MixedCase\r\n\r\n", CMD_GET, "MixedCase", 17);
	/* UTF-8 names */
	OK("GET \xc3\xa9t\xc3\xa9.txt\r\n\r\n", CMD_GET,
	   "\xc3\xa9t\xc3\xa9.txt", 17);
	/* bytes after the terminator are not part of the head */
	OK("LIST\r\n\r\nGET x\r\n\r\n", CMD_LIST, NULL, 8);
	OK("GET a\r\n\r\nGET b c\r\n\r\n", CMD_GET, "a", 9);

	for (int c = 0; c <= CMD_COUNT; c++) {
		const char *n = proto_command_name(c);
		CHECK(n && *n, "command name %d", c);
	}
	CHECK(strcmp(proto_command_name(CMD_GET), "GET") == 0, "GET name");
	CHECK(strcmp(proto_command_name(CMD_UPLOAD), "UPLOAD") == 0, "UPLOAD");
	CHECK(strcmp(proto_command_name(CMD_COUNT + 5), "INVALID") == 0,
	      "out of range");
}

static void test_parse_quoted(void)
{
	OK("GET \"my file.pdf\"\r\n\r\n", CMD_GET, "my file.pdf", 21);
	OK("GET \"a\\\"b\"\r\n\r\n", CMD_GET, "a\"b", 14);
	OK("GET \"a\\\\b\"\r\n\r\n", CMD_GET, "a\\b", 14);
	OK("GET \"\\\\\\\"\"\r\n\r\n", CMD_GET, "\\\"", 14);
	OK("DELETE \"x y z\"\r\n\r\n", CMD_DELETE, "x y z", 18);
	OK("UPLOAD \"a b\" QUJD\r\n\r\n", CMD_UPLOAD, "a b", 13);
	OK("UPLOAD \"a\\\"\" \r\n\r\n", CMD_UPLOAD, "a\"", 13);
	OK("GET \"plain\"\r\n\r\n", CMD_GET, "plain", 15);
	/* an unquoted name may hold a quote after its first byte */
	OK("GET a\"b\r\n\r\n", CMD_GET, "a\"b", 11);
	BAD("GET \"a\\nb\"\r\n\r\n", "escape");
	BAD("GET \"abc\r\n\r\n", "unterminated");
	BAD("GET \"abc\\\"\r\n\r\n", NULL);
	BAD("GET \"\"\r\n\r\n", "empty");
	BAD("GET \"a\"b\r\n\r\n", NULL);
	BAD("GET \"a\" b\r\n\r\n", "too many");
	BAD("GET \".x\"\r\n\r\n", "'.'");
	BAD("GET \"a/b\"\r\n\r\n", "/");
	BAD("UPLOAD \"a b\"QUJD\r\n\r\n", NULL);
}

static void test_parse_bad(void)
{
	struct parsed p;
	BAD("\r\n\r\n", "empty");
	BAD("FOO x\r\n\r\n", "FOO");
	BAD("FOO\r\n\r\n", "FOO");
	BAD("GETS x\r\n\r\n", "unknown");
	BAD("LISTX\r\n\r\n", "unknown");
	BAD(" LIST\r\n\r\n", NULL);
	BAD("GET\r\n\r\n", "missing");
	BAD("DELETE\r\n\r\n", "missing");
	BAD("UPLOAD\r\n\r\n", "missing");
	BAD("UPLOAD x\r\n\r\n", "missing file data");
	BAD("GET \r\n\r\n", "empty");
	BAD("GET  a\r\n\r\n", NULL);
	BAD("GET a b\r\n\r\n", "too many");
	BAD("DELETE a b\r\n\r\n", "too many");
	BAD("LIST x\r\n\r\n", "too many");
	BAD("STATS x\r\n\r\n", "too many");
	BAD("GET ../../etc/passwd\r\n\r\n", NULL);
	BAD("GET /etc/passwd\r\n\r\n", NULL);
	BAD("GET ..\r\n\r\n", NULL);
	BAD("GET .\r\n\r\n", NULL);
	BAD("GET .hidden\r\n\r\n", NULL);
	BAD("GET a/b\r\n\r\n", NULL);
	BAD("GET a\x01z\r\n\r\n", "control");
	BAD("GET \xff\xfe\r\n\r\n", "UTF-8");
	BAD("UPLOAD ../x QUJD\r\n\r\n", NULL);
	BAD("GET .fileserv-tmp-1-1\r\n\r\n", NULL);
	expect_bad_n(__LINE__, "GET a\0b\r\n\r\n", 11, NULL);
	expect_bad_n(__LINE__, "UPLOAD a\0b QUJD\r\n\r\n", 20, NULL);

	/* the command is known even when the request is not */
	p = parse("GET\r\n\r\n");
	CHECK(p.rc == -1 && p.req.cmd == CMD_GET, "cmd of bad GET: %d",
	      p.req.cmd);
	p = parse("GET a b\r\n\r\n");
	CHECK(p.rc == -1 && p.req.cmd == CMD_GET, "cmd of GET a b: %d",
	      p.req.cmd);
	p = parse("UPLOAD x\r\n\r\n");
	CHECK(p.rc == -1 && p.req.cmd == CMD_UPLOAD, "cmd of UPLOAD x: %d",
	      p.req.cmd);
	p = parse("FOO\r\n\r\n");
	CHECK(p.rc == -1 && p.req.cmd == CMD_INVALID, "cmd of FOO: %d",
	      p.req.cmd);
	/* the reason is printable ASCII even for binary junk */
	p = parse("\x01\x02\xff\xfe x\r\n\r\n");
	CHECK(p.rc == -1, "binary command: %d", p.rc);
	for (const char *e = p.st.message; *e; e++)
		CHECK(*e >= 0x20 && *e < 0x7f, "raw byte 0x%02x in '%s'",
		      (unsigned char)*e,
		      show(p.st.message, strlen(p.st.message)));
}

static void test_parse_names_255(void)
{
	char req[600], name[300];
	memset(name, 'n', 255);
	name[255] = '\0';
	snprintf(req, sizeof(req), "GET %s\r\n\r\n", name);
	expect_ok_n(__LINE__, req, strlen(req), CMD_GET, name, 255,
		    strlen(req));
	snprintf(req, sizeof(req), "GET \"%s\"\r\n\r\n", name);
	expect_ok_n(__LINE__, req, strlen(req), CMD_GET, name, 255,
		    strlen(req));
	snprintf(req, sizeof(req), "UPLOAD %s QUJD\r\n\r\n", name);
	expect_ok_n(__LINE__, req, strlen(req), CMD_UPLOAD, name, 255,
		    7 + 255 + 1);
	memset(name, 'n', 256);
	name[256] = '\0';
	snprintf(req, sizeof(req), "GET %s\r\n\r\n", name);
	BAD(req, "255");
	snprintf(req, sizeof(req), "GET \"%s\"\r\n\r\n", name);
	BAD(req, "255");
	snprintf(req, sizeof(req), "UPLOAD %s QUJD\r\n\r\n", name);
	BAD(req, "255");
	/* 255 bytes after unescaping, 256 before */
	char *q = req + sprintf(req, "GET \"");
	for (int i = 0; i < 127; i++)
		q += sprintf(q, "\\\"\\\\");
	q += sprintf(q, "z\"\r\n\r\n");
	struct parsed p = parse(req);
	CHECK(p.rc == 1 && p.req.name_len == 255 && p.req.name[0] == '"' &&
		  p.req.name[1] == '\\' && p.req.name[254] == 'z',
	      "escaped 255-byte name: %d %zu", p.rc, p.req.name_len);
	sprintf(q - 6, "zz\"\r\n\r\n");
	BAD(req, "255");
}

static void test_parse_head_cap(void)
{
	char *big = xmalloc(FS_HEAD_MAX + 8192);
	struct parsed p;

	memset(big, 'A', FS_HEAD_MAX + 8192);
	p = parse_n(big, FS_HEAD_MAX - 1);
	CHECK(p.rc == 0, "%d bytes of a word: %d", FS_HEAD_MAX - 1, p.rc);
	p = parse_n(big, FS_HEAD_MAX);
	CHECK(p.rc == -1, "%d bytes without terminator: %d", FS_HEAD_MAX, p.rc);
	p = parse_n(big, FS_HEAD_MAX + 8192);
	CHECK(p.rc == -1, "8 KiB over the cap: %d", p.rc);

	/* a long name without a terminator: never complete, refused at cap */
	memcpy(big, "GET ", 4);
	for (size_t n = 5; n < FS_HEAD_MAX + 100; n += 97) {
		p = parse_n(big, n);
		CHECK(p.rc != 1, "GET + %zu bytes gave 1", n - 4);
		if (n >= FS_HEAD_MAX)
			CHECK(p.rc == -1, "GET head of %zu bytes: %d", n, p.rc);
	}
	p = parse_n(big, FS_HEAD_MAX + 1000);
	CHECK(p.rc == -1, "GET with 5 KB name: %d", p.rc);

	/* the cap counts the head only, never the upload data after it */
	memcpy(big, "UPLOAD x ", 9);
	p = parse_n(big, FS_HEAD_MAX + 8192);
	CHECK(p.rc == 1 && p.consumed == 9 && p.req.cmd == CMD_UPLOAD,
	      "UPLOAD head before 12 KiB of data: %d %zu (%s)", p.rc,
	      p.consumed, p.st.message);
	memcpy(big + FS_HEAD_MAX + 8192 - 4, "\r\n\r\n", 4);
	p = parse_n(big, FS_HEAD_MAX + 8192);
	CHECK(p.rc == 1 && p.consumed == 9,
	      "UPLOAD head, terminator at 12 KiB: %d %zu (%s)", p.rc,
	      p.consumed, p.st.message);
	free(big);
}

static void test_parse_prefixes(void)
{
	/* UPLOAD: consumed points at the data, even when it is empty */
	const char *u = "UPLOAD x QUJD\r\n\r\n";
	struct parsed p = parse(u);
	CHECK(p.rc == 1 && p.consumed == 9 && u[p.consumed] == 'Q',
	      "UPLOAD consumed %zu", p.consumed);
	OK("UPLOAD x \r\n\r\n", CMD_UPLOAD, "x", 9);
	OK("UPLOAD \"q \\\\ r\" AAAA\r\n\r\n", CMD_UPLOAD, "q \\ r", 16);
	/* past the head, longer UPLOAD prefixes keep consumed */
	for (size_t k = 9; k <= strlen(u); k++) {
		p = parse_n(u, k);
		CHECK(p.rc == 1 && p.consumed == 9, "UPLOAD prefix %zu: %d %zu",
		      k, p.rc, p.consumed);
	}
	/* the terminator split at every point, and near misses */
	OK("LIST\r\n\r\n", CMD_LIST, NULL, 8);
	p = parse("LIST\r\n\r");
	CHECK(p.rc == 0, "LIST\\r\\n\\r: %d", p.rc);
	p = parse("LIST\n\n");
	CHECK(p.rc == 0, "LIST\\n\\n is not a terminator: %d", p.rc);
	p = parse("LIST\r\n\n");
	CHECK(p.rc == 0, "LIST\\r\\n\\n is not a terminator: %d", p.rc);
	p = parse("LIST\r\r\r\r");
	CHECK(p.rc == 0, "LIST\\r\\r\\r\\r is not a terminator: %d", p.rc);
	p = parse("");
	CHECK(p.rc == 0, "empty buffer: %d", p.rc);
	BAD("GET x\r\r\n\r\n", "control");
}

/* ---- proto_check_name ---- */

static void check_name(int line, const char *s, size_t n, int valid)
{
	const char *why = proto_check_name(s, n);
	CHECK((why == NULL) == valid, "line %d: name '%s': %s", line,
	      show(s, n), why ? why : "accepted");
}

#define NAME_OK(s)  check_name(__LINE__, s, sizeof(s) - 1, 1)
#define NAME_BAD(s) check_name(__LINE__, s, sizeof(s) - 1, 0)

static void test_check_name(void)
{
	char buf[300];
	NAME_BAD("");
	NAME_BAD(".");
	NAME_BAD("..");
	NAME_BAD(".x");
	NAME_BAD(".fileserv-tmp-1");
	NAME_BAD("/");
	NAME_BAD("a/b");
	NAME_BAD("../etc/passwd");
	NAME_BAD("/etc/passwd");
	NAME_BAD("a/");
	NAME_BAD("a\0b");
	NAME_BAD("\0");
	NAME_BAD("a\x01");
	NAME_BAD("a\nb");
	NAME_BAD("a\rb");
	NAME_BAD("a\tb");
	NAME_BAD("\x1f");
	NAME_BAD("a\x7f");
	NAME_BAD("\xff");
	NAME_BAD("a\x80");
	NAME_BAD("\xc3");	      /* truncated */
	NAME_BAD("\xc3(");	      /* bad continuation */
	NAME_BAD("\xc0\xaf");	      /* overlong '/' */
	NAME_BAD("\xe0\x80\xaf");     /* overlong */
	NAME_BAD("\xed\xa0\x80");     /* surrogate */
	NAME_BAD("\xf4\x90\x80\x80"); /* above U+10FFFF */
	NAME_BAD("\xf8\x88\x80\x80\x80");
	NAME_BAD("a\xc2\x80");		 /* U+0080: C1 control */
	NAME_BAD("\xc2\x9b[2J");	 /* U+009B: CSI */
	NAME_BAD("a\xc2\x9f");		 /* U+009F */
	NAME_BAD("\xe2\x80\xaetxt.exe"); /* U+202E: right-to-left override */
	NAME_BAD("a\xe2\x80\xaa");	 /* U+202A */
	NAME_BAD("a\xe2\x81\xa6");	 /* U+2066: isolate */
	NAME_BAD("a\xe2\x81\xa9");	 /* U+2069 */
	NAME_OK("\xc2\xa0");		 /* U+00A0: no-break space */
	NAME_OK("a\xe2\x80\xa9");	 /* U+2029, next to the overrides */
	NAME_OK("a\xe2\x80\xaf");	 /* U+202F */
	NAME_OK("a\xe2\x81\xaa");	 /* U+206A */
	NAME_OK("a");
	NAME_OK("a.b");
	NAME_OK("a..");
	NAME_OK("my file.pdf");
	NAME_OK("a\"b");
	NAME_OK("a\\b");
	NAME_OK("~");
	NAME_OK("-rf");
	NAME_OK("\xc3\xa9");		     /* é */
	NAME_OK("\xe6\x97\xa5\xe6\x9c\xac"); /* 日本 */
	NAME_OK("\xf0\x9f\x98\x80");	     /* emoji */
	NAME_OK("\xf4\x8f\xbf\xbf");	     /* U+10FFFF */
	memset(buf, 'x', sizeof(buf));
	check_name(__LINE__, buf, 255, 1);
	check_name(__LINE__, buf, 256, 0);
	check_name(__LINE__, buf, 300, 0);
	/* 255 bytes of 2-byte characters plus one: 254 OK, 256 not */
	for (int i = 0; i < 128; i++)
		memcpy(buf + 2 * i, "\xc3\xa9", 2);
	check_name(__LINE__, buf, 254, 1);
	check_name(__LINE__, buf, 256, 0);
	check_name(__LINE__, buf, 255, 0); /* ends inside a character */
	/* only the length given counts */
	check_name(__LINE__, "abc/def", 3, 1);
	check_name(__LINE__, "ab\0", 2, 1);
}

/* ---- proto_format_head ---- */

static void roundtrip(int line, const char *name)
{
	char buf[FS_HEAD_MAX + 16];
	enum proto_command cmds[] = {CMD_GET, CMD_DELETE, CMD_UPLOAD};
	for (int i = 0; i < 3; i++) {
		int n = proto_format_head(buf, FS_HEAD_MAX, cmds[i], name);
		CHECK(n > 0 && (size_t)n == strlen(buf), "line %d: format %s",
		      line, show(name, strlen(name)));
		if (n <= 0)
			continue;
		if (cmds[i] == CMD_UPLOAD) {
			CHECK(buf[n - 1] == ' ', "line %d: UPLOAD head '%s'",
			      line, show(buf, n));
			memcpy(buf + n, "QUJD\r\n\r\n", 9);
		}
		struct parsed p = parse(buf);
		CHECK(p.rc == 1 && p.req.cmd == cmds[i] &&
			  p.req.name_len == strlen(name) &&
			  strcmp(p.req.name, name) == 0 &&
			  p.consumed == (size_t)n,
		      "line %d: '%s' parsed %d cmd %d name '%s' consumed %zu",
		      line, show(buf, strlen(buf)), p.rc, p.req.cmd,
		      show(p.req.name, p.req.name_len), p.consumed);
	}
}

static void test_format_head(void)
{
	char buf[64], name[300];
	int n;

	n = proto_format_head(buf, sizeof(buf), CMD_LIST, "");
	CHECK(n == 8 && strcmp(buf, "LIST\r\n\r\n") == 0, "LIST: %d", n);
	n = proto_format_head(buf, sizeof(buf), CMD_STATS, "");
	CHECK(n == 9 && strcmp(buf, "STATS\r\n\r\n") == 0, "STATS: %d", n);
	n = proto_format_head(buf, sizeof(buf), CMD_GET, "a.pdf");
	CHECK(n == 13 && strcmp(buf, "GET a.pdf\r\n\r\n") == 0,
	      "plain names stay unquoted (as the original sends): '%s'",
	      show(buf, strlen(buf)));
	n = proto_format_head(buf, sizeof(buf), CMD_UPLOAD, "x");
	CHECK(n == 9 && strcmp(buf, "UPLOAD x ") == 0, "UPLOAD: '%s'",
	      show(buf, strlen(buf)));
	n = proto_format_head(buf, sizeof(buf), CMD_GET, "a b");
	CHECK(n > 0 && strcmp(buf, "GET \"a b\"\r\n\r\n") == 0, "'%s'",
	      show(buf, strlen(buf)));
	/* too small a buffer: -1, never an overflow */
	n = proto_format_head(buf, 14, CMD_GET, "a.pdf");
	CHECK(n == 13, "exact fit: %d", n);
	for (size_t len = 1; len < 14; len++) {
		memset(buf, 'Z', sizeof(buf));
		n = proto_format_head(buf, len, CMD_GET, "a.pdf");
		CHECK(n == -1, "len %zu: %d", len, n);
		CHECK(buf[len] == 'Z', "len %zu: wrote past the buffer", len);
	}
	memset(buf, 'Z', sizeof(buf));
	n = proto_format_head(buf, 8, CMD_GET, "a b c d e f g");
	CHECK(n == -1 && buf[8] == 'Z', "quoted name, small buffer: %d", n);

	roundtrip(__LINE__, "a");
	roundtrip(__LINE__, "a b");
	roundtrip(__LINE__, " ");
	roundtrip(__LINE__, " lead");
	roundtrip(__LINE__, "trail ");
	roundtrip(__LINE__, "a\"b");
	roundtrip(__LINE__, "\"");
	roundtrip(__LINE__, "\"start");
	roundtrip(__LINE__, "end\"");
	roundtrip(__LINE__, "a\\b");
	roundtrip(__LINE__, "\\");
	roundtrip(__LINE__, "\\\"");
	roundtrip(__LINE__, "\"\\ \" \\");
	roundtrip(__LINE__, "it's");
	roundtrip(__LINE__, "\xc3\xa9t\xc3\xa9 d\xe2\x80\x99hiver.txt");
	memset(name, '"', 255);
	name[255] = '\0';
	roundtrip(__LINE__, name);
	for (int i = 0; i < 255; i++)
		name[i] = " \\\"x"[i % 4];
	roundtrip(__LINE__, name);
}

/* ---- proto_find_terminator ---- */

static void test_find_terminator(void)
{
	char buf[64];
	for (size_t len = 0; len <= 40; len++) {
		memset(buf, 'a', sizeof(buf));
		CHECK(proto_find_terminator(buf, len) == -1, "none in %zu",
		      len);
		for (size_t at = 0; at + 4 <= len; at++) {
			memset(buf, 'a', sizeof(buf));
			/* decoys before it */
			if (at >= 3)
				memcpy(buf + at - 3, "\r\n\r", 3);
			memcpy(buf + at, "\r\n\r\n", 4);
			CHECK(proto_find_terminator(buf, len) == (ssize_t)at,
			      "at %zu of %zu", at, len);
		}
		/* a partial terminator at the end is not one */
		for (size_t part = 1; part <= 3 && part <= len; part++) {
			memset(buf, 'a', sizeof(buf));
			memcpy(buf + len - part, "\r\n\r", part);
			CHECK(proto_find_terminator(buf, len) == -1,
			      "partial %zu at end of %zu", part, len);
		}
	}
	CHECK(proto_find_terminator("\r\r\n\r\n", 5) == 1, "after \\r");
	CHECK(proto_find_terminator("\r\n\r\r\n\r\n", 7) == 3, "overlap");
	CHECK(proto_find_terminator("\n\r\n\r\n", 5) == 1, "after \\n");
	CHECK(proto_find_terminator("\r\n\n\r\n", 5) == -1, "no");
	CHECK(proto_find_terminator("\r\n\r\nX\r\n\r\n", 9) == 0, "first");
	CHECK(proto_find_terminator("\r\n\r\n", 3) == -1, "length counts");
	CHECK(proto_find_terminator("a\0\r\n\r\n", 6) == 2, "after NUL");
	/* a long buffer with many lone \r */
	size_t n = 1 << 20;
	char *big = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = i % 3 == 0 ? '\r' : 'Q';
	CHECK(proto_find_terminator(big, n) == -1, "lone CRs");
	memcpy(big + n - 4, "\r\n\r\n", 4);
	CHECK(proto_find_terminator(big, n) == (ssize_t)(n - 4), "at end");
	free(big);
}

/* ---- reply envelopes ---- */

/* Checks one envelope and returns its parsed JSON (caller frees). */
static cJSON *check_envelope(int line, const char *text)
{
	CHECK(text != NULL, "line %d: NULL envelope", line);
	if (!text)
		return NULL;
	size_t n = strlen(text);
	CHECK(n >= 4 && memcmp(text + n - 4, "\r\n\r\n", 4) == 0,
	      "line %d: envelope does not end with the terminator: '%s'", line,
	      show(text, n));
	ssize_t t = proto_find_terminator(text, n);
	CHECK(t == (ssize_t)n - 4, "line %d: terminator at %zd of %zu", line, t,
	      n);
	for (size_t i = 0; i + 4 < n; i++)
		CHECK((unsigned char)text[i] >= 0x20,
		      "line %d: raw control byte 0x%02x at %zu", line,
		      (unsigned char)text[i], i);
	cJSON *j = cJSON_ParseWithLength(text, n - 4);
	CHECK(cJSON_IsObject(j), "line %d: not a JSON object: '%s'", line,
	      show(text, n));
	return j;
}

static void envelope_case(int line, int error, const char *message)
{
	char *text =
	    error ? proto_reply_error(message) : proto_reply_text(message);
	cJSON *j = check_envelope(line, text);
	cJSON *status = cJSON_GetObjectItemCaseSensitive(j, "status");
	cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
	CHECK(cJSON_IsString(status) &&
		  strcmp(status->valuestring, error ? "ERROR" : "OK") == 0,
	      "line %d: status", line);
	CHECK(cJSON_IsString(data) && strcmp(data->valuestring, message) == 0,
	      "line %d: data '%s'", line,
	      cJSON_IsString(data)
		  ? show(data->valuestring, strlen(data->valuestring))
		  : "(none)");
	CHECK(cJSON_GetArraySize(j) == 2, "line %d: %d members", line,
	      cJSON_GetArraySize(j));
	cJSON_Delete(j);
	free(text);
}

static void test_envelopes(void)
{
	const char *messages[] = {
	    "no such file",
	    "",
	    "quote \" and backslash \\ and slash /",
	    "\"\\\"\\",
	    "line\nbreak",
	    "crlf\r\n\r\nin the middle\r\n\r\n",
	    "tab\tbell\x07 esc\x1b del\x7f nul-free \x01\x1f",
	    "\xc3\xa9t\xc3\xa9 \xe2\x80\x99 \xf0\x9f\x98\x80",
	    "}{\"status\": \"OK\"}",
	};
	for (size_t i = 0; i < sizeof(messages) / sizeof(*messages); i++) {
		envelope_case(__LINE__, 1, messages[i]);
		envelope_case(__LINE__, 0, messages[i]);
	}
	/* Python json.dumps spacing, as the original */
	char *e = proto_reply_error("x");
	CHECK(e && strcmp(e,
			  "{\"status\": \"ERROR\", \"data\": \"x\"}\r\n\r\n") ==
		       0,
	      "'%s'", e ? show(e, strlen(e)) : "NULL");
	free(e);

	/* data replies: a list of names */
	cJSON *list = cJSON_CreateArray();
	cJSON_AddItemToArray(list, cJSON_CreateString("a.pdf"));
	cJSON_AddItemToArray(list, cJSON_CreateString("we\"ird\\ \n"));
	char *text = proto_reply_data(list);
	cJSON *j = check_envelope(__LINE__, text);
	cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
	CHECK(cJSON_GetArraySize(data) == 2 &&
		  strcmp(cJSON_GetArrayItem(data, 1)->valuestring,
			 "we\"ird\\ \n") == 0,
	      "list data");
	cJSON_Delete(j);
	free(text);

	/* GET head + base64 + tail is one valid reply */
	const char *names[] = {"a", "my \"file\"\\x", "\xc3\xa9"};
	for (size_t i = 0; i < 3; i++) {
		char *head = proto_reply_get_head(names[i]);
		CHECK(head != NULL, "get head");
		if (!head)
			continue;
		size_t hl = strlen(head), tl = strlen(PROTO_GET_TAIL);
		CHECK(tl == 6 && memcmp(PROTO_GET_TAIL, "\"}\r\n\r\n", 6) == 0,
		      "tail");
		char *full = xmalloc(hl + 4 + tl + 1);
		sprintf(full, "%sQUJD%s", head, PROTO_GET_TAIL);
		j = check_envelope(__LINE__, full);
		cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "data_namafile");
		cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "data_file");
		cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "status");
		CHECK(cJSON_IsString(n) &&
			  strcmp(n->valuestring, names[i]) == 0,
		      "data_namafile of '%s'", names[i]);
		CHECK(cJSON_IsString(f) && strcmp(f->valuestring, "QUJD") == 0,
		      "data_file");
		CHECK(cJSON_IsString(s) && strcmp(s->valuestring, "OK") == 0,
		      "status");
		cJSON_Delete(j);
		free(full);
		free(head);
	}
}

/* ---- proto_read_reply over a socketpair ---- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Independent base64 encoder; returns a NUL-terminated heap string. */
static char *b64(const unsigned char *in, size_t n)
{
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		*o++ = b64chars[v >> 18 & 63];
		*o++ = b64chars[v >> 12 & 63];
		*o++ = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64chars[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

struct writer {
	int fd;
	const char *data;
	size_t len, chunk;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	for (size_t off = 0; off < w->len;) {
		size_t n = w->len - off < w->chunk ? w->len - off : w->chunk;
		ssize_t k = send(w->fd, w->data + off, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			break; /* the reader gave up */
		off += (size_t)k;
		if (w->chunk < 64)
			sched_yield();
	}
	close(w->fd);
	return NULL;
}

struct membuf {
	unsigned char *data;
	size_t len, cap;
};

static int membuf_write(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;
	if (m->len + len > m->cap) {
		size_t cap = (m->len + len) * 2 + 64;
		unsigned char *p = realloc(m->data, cap);
		if (!p)
			return -1;
		m->data = p;
		m->cap = cap;
	}
	memcpy(m->data + m->len, buf, len);
	m->len += len;
	return 0;
}

struct readres {
	int rc;
	struct fs_status st;
	cJSON *reply;
	uint64_t file_bytes;
	struct membuf sink;
};

/* Sends text[0..len) from a thread in pieces of `chunk` and reads one
 * reply with a connection buffer of `cap` bytes. */
static struct readres read_reply_to(enum proto_command cmd, const char *text,
				    size_t len, size_t cap, size_t chunk)
{
	struct readres r;
	memset(&r, 0, sizeof(r));
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		exit(2);
	}
	struct writer w = {sv[1], text, len, chunk};
	pthread_t tid;
	pthread_create(&tid, NULL, writer_main, &w);
	struct conn c;
	conn_init(&c, sv[0], cap);
	struct fs_sink sink = {membuf_write, &r.sink};
	r.rc = proto_read_reply(&c, cmd, &sink, &r.reply, &r.file_bytes, &r.st);
	conn_free(&c);
	close(sv[0]);
	pthread_join(tid, NULL);
	return r;
}

static struct readres read_reply(const char *text, size_t len, size_t cap,
				 size_t chunk)
{
	return read_reply_to(CMD_GET, text, len, cap, chunk);
}

static void readres_free(struct readres *r)
{
	cJSON_Delete(r->reply);
	free(r->sink.data);
}

static const char *str_member(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Replaces every `from` char in s by the string `to`; heap result. */
static char *replace_char(const char *s, char from, const char *to)
{
	size_t n = 0, tl = strlen(to);
	for (const char *p = s; *p; p++)
		n += *p == from ? tl : 1;
	char *out = xmalloc(n + 1), *o = out;
	for (const char *p = s; *p; p++) {
		if (*p == from) {
			memcpy(o, to, tl);
			o += tl;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

enum layout { PYTHON, FILE_FIRST, SPACEY, COMPACT, SLASHES, UESC, NLAYOUTS };

static char *make_reply(enum layout l, const char *enc)
{
	char *text = NULL, *e = NULL;
	switch (l) {
	case PYTHON:
		text = xasprintf(
		    "{\"status\": \"OK\", \"data_namafile\": \"f.bin\", "
		    "\"data_file\": \"%s\"}\r\n\r\n",
		    enc);
		break;
	case FILE_FIRST:
		text = xasprintf("{\"data_file\": \"%s\", \"data_namafile\": "
				 "\"f.bin\", \"status\": \"OK\"}\r\n\r\n",
				 enc);
		break;
	case SPACEY:
		text = xasprintf(
		    " \r\n\t{ \n\"data_namafile\"\t:\r\n\"f.bin\"  ,\n\n "
		    "\"status\"  :  \"OK\"\t, \"data_file\"\n:\t\"%s\"\n"
		    "\t }\n \r\n\r\n",
		    enc);
		break;
	case COMPACT:
		text = xasprintf(
		    "{\"status\":\"OK\",\"extra\":{\"a\":[1,{\"b\":\"}\"}]"
		    ",\"c\":null},\"data_file\":\"%s\",\"n\":-1.5e3,"
		    "\"data_namafile\":\"f.bin\"}\r\n\r\n",
		    enc);
		break;
	case SLASHES:
		e = replace_char(enc, '/', "\\/");
		text = xasprintf(
		    "{\"status\": \"OK\", \"data_namafile\": \"f.bin\", "
		    "\"data_file\": \"%s\"}\r\n\r\n",
		    e);
		break;
	case UESC: {
		char *e1 = replace_char(enc, 'A', "\\u0041");
		char *e2 = replace_char(e1, '+', "\\u002b");
		e = replace_char(e2, 'z', "\\u007A");
		free(e1);
		free(e2);
		text = xasprintf(
		    "{\"status\": \"OK\", \"data_namafile\": \"f.bin\", "
		    "\"data\\u005ffile\": \"%s\"}\r\n\r\n",
		    e);
		break;
	}
	default:
		break;
	}
	free(e);
	return text;
}

static const char *layout_names[NLAYOUTS] = {
    "python", "file-first", "spacey", "compact", "slashes", "\\u-escapes"};

static void test_read_reply_sizes(int long_run)
{
	static const size_t sizes[] = {
	    0,	    1,	    2,	    3,	     4,	      5,       6,
	    7,	    8,	    9,	    10,	     11,      12,      13,
	    31,	    32,	    33,	    47,	     48,      49,      100,
	    255,    256,    257,    1000,    4095,    4096,    4097,
	    65535,  65536,  65537,  196607,  196608,  196609,  262143,
	    262144, 262145, 786433, 1000003, 5000000, 20000001};
	size_t nsizes = sizeof(sizes) / sizeof(*sizes) - (long_run ? 0 : 1);
	static const size_t caps[] = {1, 2, 3, 5, 7, 16, 4096, 256 * 1024};
	unsigned char *data = xmalloc(sizes[nsizes - 1]);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < sizes[nsizes - 1]; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		data[i] = (unsigned char)x;
	}
	for (size_t s = 0; s < nsizes; s++) {
		size_t size = sizes[s];
		char *enc = b64(data, size);
		for (int l = 0; l < NLAYOUTS; l++) {
			char *text = make_reply(l, enc);
			size_t tl = strlen(text);
			for (size_t c = 0; c < sizeof(caps) / sizeof(*caps);
			     c++) {
				size_t cap = caps[c];
				/* tiny buffers cost a syscall per byte */
				if (cap < 4096 && size > 5000)
					continue;
				size_t chunk = cap < 16 ? 1 + c * 3 : 65536;
				struct readres r =
				    read_reply(text, tl, cap, chunk);
				int same =
				    r.sink.len == size &&
				    (size == 0 ||
				     memcmp(r.sink.data, data, size) == 0);
				CHECK(r.rc == 0 && same && r.file_bytes == size,
				      "size %zu, %s, cap %zu: rc %d (%s) got "
				      "%zu bytes, file_bytes %llu, %s",
				      size, layout_names[l], cap, r.rc,
				      r.st.message, r.sink.len,
				      (unsigned long long)r.file_bytes,
				      same ? "same" : "DIFFERENT");
				const char *st = str_member(r.reply, "status");
				const char *nm =
				    str_member(r.reply, "data_namafile");
				CHECK(r.rc != 0 ||
					  (st && strcmp(st, "OK") == 0 && nm &&
					   strcmp(nm, "f.bin") == 0 &&
					   !cJSON_GetObjectItem(r.reply,
								"data_file")),
				      "size %zu, %s, cap %zu: members", size,
				      layout_names[l], cap);
				readres_free(&r);
			}
			free(text);
		}
		free(enc);
	}
	free(data);
}

/* A reply that must fail with `code`. */
static void read_fails(int line, const char *text, enum fs_error code)
{
	static const size_t caps[] = {1, 3, 4096};
	for (size_t c = 0; c < 3; c++) {
		struct readres r = read_reply(text, strlen(text), caps[c], 2);
		CHECK(r.rc == -1 && r.st.code == code,
		      "line %d: '%s' cap %zu: rc %d code %s (%s), want %s",
		      line, show(text, strlen(text)), caps[c], r.rc,
		      fs_error_name(r.st.code), r.st.message,
		      fs_error_name(code));
		CHECK(r.rc == 0 || r.reply == NULL, "line %d: reply on failure",
		      line);
		readres_free(&r);
	}
}

#define REPLY(file)                                                            \
	"{\"status\": \"OK\", \"data_namafile\": \"f\", \"data_file\": "       \
	"\"" file "\"}\r\n\r\n"

static void test_read_reply_errors(void)
{
	/* invalid base64 in data_file */
	read_fails(__LINE__, REPLY("QUJ*"), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("QU JD*"), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("===="), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("A==="), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("QUJ"), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("QUJDR"), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("QQ==QUJD"), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("QUJD\\n"), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("QUJD\\u00e9"), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("QUJD\\x"), FS_ERR_PROTOCOL);
	read_fails(__LINE__, REPLY("QUJD\\u00zz"), FS_ERR_PROTOCOL);
	/* malformed JSON */
	read_fails(__LINE__, "[1, 2]\r\n\r\n", FS_ERR_PROTOCOL);
	read_fails(__LINE__, "HTTP/1.0 200 OK\r\n\r\n", FS_ERR_PROTOCOL);
	read_fails(__LINE__, "{\"status\" \"OK\"}\r\n\r\n", FS_ERR_PROTOCOL);
	read_fails(__LINE__, "{\"status\": \"OK\" \"data\": 1}\r\n\r\n",
		   FS_ERR_PROTOCOL);
	read_fails(__LINE__, "{status: \"OK\"}\r\n\r\n", FS_ERR_PROTOCOL);
	/* early close, at many points */
	const char *full = REPLY("QUJDREVG");
	for (size_t k = 0; k < strlen(full) - 5; k++) {
		char *cut = strndup(full, k);
		read_fails(__LINE__, cut, FS_ERR_RESET);
		free(cut);
	}
	const char *list = "{\"status\": \"OK\", \"data\": [\"a\", \"b\"]}";
	for (size_t k = 0; k < strlen(list); k++) {
		char *cut = strndup(list, k);
		read_fails(__LINE__, cut, FS_ERR_RESET);
		free(cut);
	}

	/* an ERROR reply reads fine: the caller checks status */
	struct readres r = read_reply(
	    "{\"status\": \"ERROR\", \"data\": \"no such file\"}\r\n\r\n", 46,
	    7, 3);
	CHECK(r.rc == 0 && str_member(r.reply, "status") &&
		  strcmp(str_member(r.reply, "status"), "ERROR") == 0 &&
		  strcmp(str_member(r.reply, "data"), "no such file") == 0,
	      "ERROR reply: rc %d (%s)", r.rc, r.st.message);
	readres_free(&r);
	/* garbage that has arrived with the closing brace */
	const char *g = REPLY("QUJD") "x";
	r = read_reply(g, strlen(g), 4096, 4096);
	CHECK(r.rc == -1 && r.st.code == FS_ERR_PROTOCOL, "garbage: rc %d",
	      r.rc);
	readres_free(&r);
	/* a LIST reply with escapes in names streams them to the sink, and
	 * the close without a terminator after the object is accepted */
	const char *lt = "{\"status\": \"OK\", \"data\": [\"a\\\"b\", "
			 "\"c\\\\d\", \"\\u00e9\", \"x\\r\\n\\r\\ny\"]}";
	const char want[] = "a\"bc\\d\xc3\xa9x\r\n\r\ny";
	for (int term = 0; term < 2; term++) {
		char *t = xasprintf("%s%s", lt, term ? "\r\n\r\n" : "");
		r = read_reply_to(CMD_LIST, t, strlen(t), 5, 4);
		CHECK(r.rc == 0 && r.file_bytes == 4 &&
			  r.sink.len == sizeof(want) - 1 &&
			  memcmp(r.sink.data, want, r.sink.len) == 0 &&
			  !cJSON_GetObjectItem(r.reply, "data"),
		      "LIST reply (terminator %d): rc %d (%s)", term, r.rc,
		      r.st.message);
		readres_free(&r);
		free(t);
	}
	/* a STATS-like nested object */
	const char *st = "{\"status\": \"OK\", \"data\": {\"requests\": 3, "
			 "\"commands\": {\"GET\": {\"failed\": 1}}}}\r\n\r\n";
	r = read_reply_to(CMD_STATS, st, strlen(st), 3, 5);
	cJSON *d = cJSON_GetObjectItem(r.reply, "data");
	CHECK(r.rc == 0 && cJSON_GetObjectItem(d, "requests") &&
		  cJSON_GetObjectItem(d, "requests")->valuedouble == 3,
	      "nested reply: rc %d (%s)", r.rc, r.st.message);
	readres_free(&r);
}

/* A reply to cmd that must fail with `code`, whatever its pieces. */
static void shape_fails(int line, enum proto_command cmd, const char *text,
			enum fs_error code)
{
	static const size_t caps[] = {3, 4096};
	for (size_t c = 0; c < 2; c++) {
		struct readres r = read_reply_to(cmd, text, strlen(text),
						 caps[c], c ? 4096 : 2);
		CHECK(r.rc == -1 && r.st.code == code && r.reply == NULL,
		      "line %d: %s '%s' cap %zu: rc %d code %s (%s), want %s",
		      line, proto_command_name(cmd), show(text, strlen(text)),
		      caps[c], r.rc, fs_error_name(r.st.code), r.st.message,
		      fs_error_name(code));
		readres_free(&r);
	}
}

#define OK_REPLY(members) "{\"status\": \"OK\", " members "}\r\n\r\n"

static void test_read_reply_shapes(void)
{
	const enum fs_error P = FS_ERR_PROTOCOL;
	shape_fails(__LINE__, CMD_GET, OK_REPLY("\"data_namafile\": \"f\""), P);
	shape_fails(__LINE__, CMD_GET, OK_REPLY("\"data_file\": null"), P);
	shape_fails(__LINE__, CMD_GET, OK_REPLY("\"data_file\": 12"), P);
	shape_fails(
	    __LINE__, CMD_GET,
	    OK_REPLY("\"data_file\": \"QUJD\", \"data_file\": \"QUJD\""), P);
	shape_fails(__LINE__, CMD_GET,
		    "{\"status\": \"ERROR\", \"data_file\": \"QUJD\"}", P);
	shape_fails(__LINE__, CMD_GET,
		    "{\"status\": \"MAYBE\", \"data_file\": \"QUJD\"}", P);
	shape_fails(__LINE__, CMD_GET,
		    "{\"status\": \"OK\", \"status\": \"OK\", \"data_file\": "
		    "\"QUJD\"}",
		    P);
	shape_fails(__LINE__, CMD_GET, "{\"data_file\": \"QUJD\"}", P);
	shape_fails(__LINE__, CMD_LIST, OK_REPLY("\"data\": {\"a\": 1}"), P);
	shape_fails(__LINE__, CMD_LIST, OK_REPLY("\"data\": \"a\""), P);
	shape_fails(__LINE__, CMD_LIST, OK_REPLY("\"x\": []"), P);
	shape_fails(__LINE__, CMD_LIST, OK_REPLY("\"data\": [1]"), P);
	shape_fails(__LINE__, CMD_LIST, OK_REPLY("\"data\": [\"a\", null]"), P);
	shape_fails(__LINE__, CMD_LIST, OK_REPLY("\"data\": [\"\"]"), P);
	shape_fails(__LINE__, CMD_LIST, OK_REPLY("\"data\": [\"\\udc00\"]"), P);
	shape_fails(__LINE__, CMD_LIST, OK_REPLY("\"data\": [\"a\" \"b\"]"), P);
	shape_fails(__LINE__, CMD_LIST,
		    OK_REPLY("\"data\": [\"a\"], \"data\": [\"b\"]"), P);
	shape_fails(__LINE__, CMD_STATS, OK_REPLY("\"data\": \"x\""), P);
	shape_fails(__LINE__, CMD_STATS, OK_REPLY("\"data\": [1]"), P);
	shape_fails(__LINE__, CMD_DELETE, OK_REPLY("\"data\": 1"), P);
	shape_fails(__LINE__, CMD_UPLOAD, "{\"status\": \"OK\"}", P);
	/* an ERROR reply carries its message only */
	const char *busy = "{\"status\": \"ERROR\", \"data\": \"busy\"}";
	struct readres r = read_reply_to(CMD_LIST, busy, strlen(busy), 64, 64);
	CHECK(r.rc == 0 && r.file_bytes == 0, "LIST ERROR: rc %d (%s)", r.rc,
	      r.st.message);
	readres_free(&r);
	/* nothing reaches the sink before a data_file that is not a string */
	const char *arr = OK_REPLY("\"data_file\": [\"QUJD\"]");
	r = read_reply_to(CMD_GET, arr, strlen(arr), 4096, 4096);
	CHECK(r.rc == -1 && r.sink.len == 0, "data_file array: rc %d, %zu",
	      r.rc, r.sink.len);
	readres_free(&r);
}

/* A text of n members "kN": N, one JSON object. */
static char *many_members(enum proto_command cmd, size_t n)
{
	size_t cap = 64 + n * 24, len = 0;
	char *t = xmalloc(cap);
	len += (size_t)snprintf(t, cap, "{\"status\": \"OK\"%s",
				cmd == CMD_GET ? ", \"data_file\": \"\"" : "");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(t + len, cap - len, ", \"k%zu\": %zu",
					i, i);
	snprintf(t + len, cap - len, "}\r\n\r\n");
	return t;
}

static void test_read_reply_bounds(void)
{
	/* 64 KiB of members outside the streamed parts, not more */
	char *small = many_members(CMD_GET, 1000);
	struct readres r = read_reply(small, strlen(small), 4096, 4096);
	CHECK(r.rc == 0 && cJSON_GetArraySize(r.reply) == 1001,
	      "1000 members: rc %d (%s)", r.rc, r.st.message);
	readres_free(&r);
	char *big = many_members(CMD_GET, 10000);
	shape_fails(__LINE__, CMD_GET, big, FS_ERR_PROTOCOL);
	r = read_reply(big, strlen(big), 4096, 4096);
	CHECK(strstr(r.st.message, "too large") != NULL, "message: %s",
	      r.st.message);
	readres_free(&r);
	free(small);
	free(big);
	char *pad = xmalloc(70000);
	memset(pad, 'a', 69999);
	pad[69999] = '\0';
	char *one =
	    xasprintf(OK_REPLY("\"data_file\": \"\", \"x\": \"%s\""), pad);
	shape_fails(__LINE__, CMD_GET, one, FS_ERR_PROTOCOL);
	free(one);
	/* a listing far larger than that streams: 40,000 names of 255 bytes
	 * (10 MB), then names at the edges of validity */
	size_t n = 40000, cap = n * 260 + 200, len = 0;
	char *list = xmalloc(cap);
	len += (size_t)snprintf(list, cap, "{\"status\": \"OK\", \"data\": [");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(list + len, cap - len, "%s\"%0255zu\"",
					i ? ", " : "", i);
	snprintf(list + len, cap - len, "]}\r\n\r\n");
	r = read_reply_to(CMD_LIST, list, strlen(list), 256 * 1024, 65536);
	CHECK(r.rc == 0 && r.file_bytes == n && r.sink.len == n * 255,
	      "40000 names: rc %d (%s), %llu names, %zu bytes", r.rc,
	      r.st.message, (unsigned long long)r.file_bytes, r.sink.len);
	readres_free(&r);
	free(list);
	char *longest = xasprintf(OK_REPLY("\"data\": [\"%.255s\"]"), pad);
	r = read_reply_to(CMD_LIST, longest, strlen(longest), 7, 5);
	CHECK(r.rc == 0 && r.sink.len == 255, "255-byte name: rc %d (%s)", r.rc,
	      r.st.message);
	readres_free(&r);
	char *too_long = xasprintf(OK_REPLY("\"data\": [\"%.256s\"]"), pad);
	shape_fails(__LINE__, CMD_LIST, too_long, FS_ERR_PROTOCOL);
	const char *odd =
	    OK_REPLY("\"data\": [\"a\\u0000b\", \"\\ud83d\\ude00\"]");
	r = read_reply_to(CMD_LIST, odd, strlen(odd), 3, 2);
	CHECK(r.rc == 0 && r.sink.len == 7 &&
		  memcmp(r.sink.data, "a\0b\xf0\x9f\x98\x80", 7) == 0,
	      "NUL and surrogate pair: rc %d (%s)", r.rc, r.st.message);
	readres_free(&r);
	free(longest);
	free(too_long);
	free(pad);
}

static void escapes(int line, const char *in, size_t len, const char *want)
{
	char out[4 * 64 + 1];
	size_t n = proto_escape_visible(in, len, out, sizeof(out));
	CHECK(n == strlen(want) && strcmp(out, want) == 0,
	      "line %d: '%s' shown as '%s', want '%s'", line, show(in, len),
	      out, want);
}

#define ESCAPES(in, want) escapes(__LINE__, in, sizeof(in) - 1, want)

static void test_escape_visible(void)
{
	ESCAPES("plain name.txt", "plain name.txt");
	ESCAPES("caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac");
	ESCAPES("a\nb\r\t\a\b\v\f", "a\\nb\\r\\t\\a\\b\\v\\f");
	ESCAPES("\x1b[31mred", "\\x1b[31mred");
	ESCAPES("back\\slash", "back\\\\slash");
	ESCAPES("nul\0x\x7f", "nul\\x00x\\x7f");
	ESCAPES("c1 \xc2\x9b"
		"2J \xc2\x85",
		"c1 \\u009b2J \\u0085");
	ESCAPES("bidi \xe2\x80\xae"
		"txt.exe \xe2\x81\xa6",
		"bidi \\u202etxt.exe "
		"\\u2066");
	ESCAPES("ls \xe2\x80\xa8 ps \xe2\x80\xa9", "ls \\u2028 ps \\u2029");
	ESCAPES("bad \xff\xc3 \xed\xa0\x80", "bad \\xff\\xc3 \\xed\\xa0\\x80");
	ESCAPES("emoji \xf0\x9f\x98\x80", "emoji \xf0\x9f\x98\x80");
	/* the worst case fits 4 * len + 1, and a short buffer cuts whole
	 * escapes */
	char worst[4 * 3 + 1], cut[6];
	CHECK(proto_escape_visible("\xff\x01\x1b", 3, worst, sizeof(worst)) ==
		  12,
	      "worst case: %s", worst);
	CHECK(proto_escape_visible("a\x1b\x1b", 3, cut, sizeof(cut)) == 5 &&
		  strcmp(cut, "a\\x1b") == 0,
	      "cut: %s", cut);
}

static int failing_write(void *ctx, const void *buf, size_t len)
{
	(void)ctx, (void)buf, (void)len;
	errno = ENOSPC;
	return -1;
}

static void test_read_reply_sink_failure(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		exit(2);
	const char *ok = REPLY("QUJD");
	struct writer w = {sv[1], ok, strlen(ok), 1000};
	pthread_t tid;
	pthread_create(&tid, NULL, writer_main, &w);
	struct conn c;
	conn_init(&c, sv[0], 4096);
	struct fs_sink sink = {failing_write, NULL};
	struct fs_status st = {0};
	cJSON *reply = NULL;
	int rc = proto_read_reply(&c, CMD_GET, &sink, &reply, NULL, &st);
	CHECK(rc == -1 && st.code == FS_ERR_LOCAL, "failing sink: %d %s", rc,
	      fs_error_name(st.code));
	cJSON_Delete(reply);
	conn_free(&c);
	close(sv[0]);
	pthread_join(tid, NULL);
}

int main(int argc, char **argv)
{
	const char *env = getenv("FILESERV_TEST_LONG");
	int long_run =
	    (argc > 1 && strcmp(argv[1], "--long") == 0) || (env && *env);
	alarm(long_run ? 600 : 120); /* never hang the suite */
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN_TEST(test_parse_commands);
	RUN_TEST(test_parse_quoted);
	RUN_TEST(test_parse_bad);
	RUN_TEST(test_parse_names_255);
	RUN_TEST(test_parse_head_cap);
	RUN_TEST(test_parse_prefixes);
	RUN_TEST(test_check_name);
	RUN_TEST(test_format_head);
	RUN_TEST(test_find_terminator);
	RUN_TEST(test_envelopes);
	RUN_TEST(test_read_reply_sizes, long_run);
	RUN_TEST(test_read_reply_errors);
	RUN_TEST(test_read_reply_shapes);
	RUN_TEST(test_read_reply_bounds);
	RUN_TEST(test_escape_visible);
	RUN_TEST(test_read_reply_sink_failure);
	return check_done("t_proto");
}
