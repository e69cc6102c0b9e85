/* fuzz_reply.c: the client's reply reader (proto_read_reply) on whatever
 * a server might send, and the escaping of a peer's text for a terminal
 * (proto_escape_visible).
 *
 * Input layout:
 *   byte 0       the command whose reply is read: LIST .. STATS
 *   byte 1       the connection buffer: 1 << (bits 0-3) bytes, at most
 *                32 KiB (small buffers move every boundary)
 *   the rest     the reply bytes, then end of file
 *
 * Asserts:
 *   - rc is 0 or -1; with 0 *reply is an object whose status is "OK" or
 *     "ERROR", with -1 it is NULL and st holds a class and a
 *     NUL-terminated message;
 *   - a GET sink gets exactly the bytes the reader counts; a LIST sink
 *     gets names of 1 to FS_NAME_MAX bytes, NUL-terminated;
 *   - the members kept come from at most 64 KiB of text (the cJSON
 *     printout of the reply is not larger than that, give or take the
 *     escapes cJSON adds);
 *   - the escaped form of every name and of the whole input fits
 *     4 * len + 1 and holds no control byte, no C1 control and no
 *     bidirectional override, so a terminal shows it as text. */
#include "fileserv.h"
#include "conn.h"
#include "proto.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_reply: %s\n", what);
	abort();
}

/* Every byte of s[0..n) shows as text on a terminal. */
static void check_visible(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f)
			fail("a control byte in escaped text");
		if (u[i] == 0xc2 && i + 1 < n && u[i + 1] >= 0x80 &&
		    u[i + 1] <= 0x9f)
			fail("a C1 control in escaped text");
		if (u[i] == 0xe2 && i + 2 < n && u[i + 1] == 0x80 &&
		    u[i + 2] >= 0xaa && u[i + 2] <= 0xae)
			fail("a bidirectional override in escaped text");
	}
	if (strlen(s) != n)
		fail("escaped text with a NUL");
}

static void escape_and_check(const char *text, size_t len)
{
	size_t cap = 4 * len + 1;
	char *out = malloc(cap);
	if (!out)
		abort();
	size_t n = proto_escape_visible(text, len, out, cap);
	if (n >= cap)
		fail("escape overflow");
	check_visible(out, n);
	free(out);
}

struct sink_state {
	enum proto_command cmd;
	uint64_t bytes, names;
};

static int sink_write(void *ctx, const void *buf, size_t len)
{
	struct sink_state *s = ctx;
	if (s->cmd == CMD_LIST) {
		if (len == 0 || len > FS_NAME_MAX || ((const char *)buf)[len])
			fail("a bad name from the listing");
		escape_and_check(buf, len);
		s->names++;
	}
	s->bytes += len;
	return 0;
}

static void check_result(int rc, cJSON *reply, const struct fs_status *st,
			 const struct sink_state *s, uint64_t count)
{
	if (rc == -1) {
		if (reply || st->code == FS_OK ||
		    !memchr(st->message, '\0', sizeof(st->message)))
			fail("a failure without its status");
		return;
	}
	if (rc != 0 || !cJSON_IsObject(reply))
		fail("rc 0 without an object");
	const char *status = cJSON_GetStringValue(
	    cJSON_GetObjectItemCaseSensitive(reply, "status"));
	if (!status || (strcmp(status, "OK") && strcmp(status, "ERROR")))
		fail("a reply accepted without OK or ERROR");
	if (count != (s->cmd == CMD_LIST ? s->names : s->bytes))
		fail("count differs from what reached the sink");
	char *text = cJSON_PrintUnformatted(reply);
	if (text && strlen(text) > 6 * (64u << 10))
		fail("more than the budget kept");
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 65536)
		return 0;
	escape_and_check((const char *)data, size);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	int sndbuf = 1 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (write_all(sv[1], data + 2, size - 2) < 0)
		abort();
	close(sv[1]);
	struct sink_state s = {.cmd = CMD_LIST + data[0] % (CMD_STATS)};
	size_t cap = (size_t)1 << (data[1] & 15);
	struct conn c;
	if (conn_init(&c, sv[0], cap > 32768 ? 32768 : cap) < 0)
		abort();
	struct fs_sink sink = {sink_write, &s};
	struct fs_status st = {0};
	cJSON *reply = NULL;
	uint64_t count = 0;
	int rc = proto_read_reply(&c, s.cmd, &sink, &reply, &count, &st);
	check_result(rc, reply, &st, &s, count);
	cJSON_Delete(reply);
	conn_free(&c);
	close(sv[0]);
	return 0;
}
