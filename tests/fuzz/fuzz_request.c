/* fuzz_request.c: request parsing and name validation.
 *
 * The input is one request head (one-shot proto_parse_head on an
 * exact-length heap copy), and also, as it is, a candidate name for
 * proto_check_name. Asserts:
 *   - proto_check_name accepts exactly what an independent model accepts:
 *     1-255 bytes, no '/', NUL, control character (< 0x20, 0x7f, U+0080
 *     to U+009F), bidirectional control (U+202A to U+202E, U+2066 to
 *     U+2069) or leading '.', and strictly valid UTF-8 (no overlong forms,
 *     surrogates or code points above U+10FFFF);
 *   - every name in an accepted GET/DELETE/UPLOAD head passes that model,
 *     and LIST/STATS carry no name;
 *   - proto_format_head(cmd, name) writes a head that parses back to the
 *     same command and name, consuming all of it; it returns -1 rather
 *     than a truncated head when the buffer is one byte too small. */
#include "fileserv.h"
#include "proto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_request: %s\n", what);
	abort();
}

/* Independent model of a valid storage name. */
static int model_name_ok(const unsigned char *s, size_t len)
{
	if (len < 1 || len > FS_NAME_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < len;) {
		unsigned c = s[i];
		if (c == '/' || c < 0x20 || c == 0x7f)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if (c >= 0xc2 && c <= 0xdf)
			n = 2, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			n = 3, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 4, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (len - i < n)
			return 0;
		for (size_t j = 1; j < n; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069))
			return 0;
		i += n;
	}
	return 1;
}

static int parse_copy(const void *data, size_t len, struct proto_request *req,
		      size_t *consumed)
{
	struct fs_status st;
	char *copy = malloc(len ? len : 1);
	if (!copy)
		abort();
	memcpy(copy, data, len);
	int rc = proto_parse_head(copy, len, req, consumed, &st);
	free(copy);
	if (rc == -1 && !memchr(st.message, '\0', sizeof(st.message)))
		fail("message not terminated");
	return rc;
}

static void check_format(enum proto_command cmd, const char *name)
{
	/* Worst case: every byte escaped, quotes, command, terminator. */
	char buf[2 * FS_NAME_MAX + 32];
	int n = proto_format_head(buf, sizeof(buf), cmd, name);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		fail("proto_format_head failed on a valid name");
	if (strlen(buf) != (size_t)n)
		fail("proto_format_head length differs from the string");

	struct proto_request again;
	size_t consumed = 0;
	int rc = parse_copy(buf, (size_t)n, &again, &consumed);
	if (rc != 1 || again.cmd != cmd)
		fail("formatted head does not parse back");
	if (consumed != (size_t)n)
		fail("formatted head not consumed exactly");
	if (cmd != CMD_LIST && cmd != CMD_STATS &&
	    (again.name_len != strlen(name) || strcmp(again.name, name) != 0))
		fail("formatted head parses back to another name");

	/* One byte short: -1, never a truncated head. */
	char *small = malloc((size_t)n);
	if (!small)
		abort();
	if (proto_format_head(small, (size_t)n, cmd, name) != -1)
		fail("proto_format_head fitted n bytes in n - 1");
	free(small);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The whole input as a name. */
	char *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	const char *why = proto_check_name(copy, size);
	free(copy);
	int model = model_name_ok(data, size);
	if ((why == NULL) != model) {
		fprintf(stderr, "proto_check_name: %s, model: %s\n",
			why ? why : "accepted", model ? "valid" : "invalid");
		fail("proto_check_name disagrees with the model");
	}
	if (!why && size <= FS_NAME_MAX) {
		char name[FS_NAME_MAX + 1];
		memcpy(name, data, size);
		name[size] = '\0';
		check_format(CMD_GET, name);
		check_format(CMD_DELETE, name);
		check_format(CMD_UPLOAD, name);
	}

	/* The whole input as a request. */
	struct proto_request req;
	size_t consumed = 0;
	int rc = parse_copy(data, size, &req, &consumed);
	if (rc != 1)
		return 0;
	if (consumed > size)
		fail("consumed past the input");
	switch (req.cmd) {
	case CMD_LIST:
	case CMD_STATS:
		if (req.name_len != 0 || req.name[0] != '\0')
			fail("LIST/STATS with a name");
		check_format(req.cmd, "");
		break;
	case CMD_GET:
	case CMD_DELETE:
	case CMD_UPLOAD:
		if (req.name_len > FS_NAME_MAX ||
		    strlen(req.name) != req.name_len)
			fail("bad name_len");
		if (!model_name_ok((const unsigned char *)req.name,
				   req.name_len))
			fail("accepted an invalid name");
		if (proto_check_name(req.name, req.name_len))
			fail("accepted a name proto_check_name refuses");
		check_format(req.cmd, req.name);
		break;
	default:
		fail("rc 1 without a valid command");
	}
	return 0;
}
