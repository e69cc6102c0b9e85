/* fuzz_frame.c: the incremental request framer (proto_parse_head as
 * server.c's read_head drives it: parse what has arrived, read more while
 * it answers 0).
 *
 * Input layout (curl-fuzzer's idea: the leading bytes choose the chunk
 * boundaries):
 *   byte 0       bits 0-2: k, the number of explicit chunk sizes;
 *                bits 3-6: the size of every later chunk, 1 << (0..15)
 *                capped at 8192
 *   bytes 1..k   explicit chunk sizes (0 = parse again with nothing new)
 *   the rest     the bytes as they arrive on the connection
 *
 * Every parse runs on an exact-length heap copy of what has arrived, so a
 * read past the given length is an ASan report. Asserts:
 *   - once a prefix is answered (1 or -1), a one-shot parse of the whole
 *     input gives the same answer: rc, cmd, and for rc 1 name, name_len
 *     and consumed (the framer's answer never depends on how the bytes
 *     were split);
 *   - an unanswered prefix (rc 0) is shorter than FS_HEAD_MAX: a head
 *     longer than that without completion is -1;
 *   - rc 1 has consumed <= len, a NUL-terminated name of name_len bytes;
 *   - an invalid head sets st: FS_ERR_PROTOCOL and a NUL-terminated
 *     message. */
#include "fileserv.h"
#include "proto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct result {
	int rc;
	struct proto_request req;
	size_t consumed;
	struct fs_status st;
};

static void fail(const char *what, const uint8_t *data, size_t len)
{
	fprintf(stderr, "fuzz_frame: %s (len %zu)\n", what, len);
	(void)data;
	abort();
}

/* One parse of data[0..len) from an exact-size heap copy. */
static void parse(const uint8_t *data, size_t len, struct result *r)
{
	char *copy = malloc(len ? len : 1);
	if (!copy)
		abort();
	memcpy(copy, data, len);
	memset(r, 0xa5, sizeof(*r));
	r->consumed = (size_t)-1;
	memset(&r->st, 0x5a, sizeof(r->st));
	r->rc = proto_parse_head(copy, len, &r->req, &r->consumed, &r->st);
	free(copy);
	if (r->rc < -1 || r->rc > 1)
		fail("rc out of range", data, len);
	if (r->rc == 1) {
		if (r->consumed > len || r->consumed == 0)
			fail("consumed out of range", data, len);
		if (r->req.cmd <= CMD_INVALID || r->req.cmd >= CMD_COUNT)
			fail("rc 1 without a command", data, len);
		if (r->req.name_len > FS_NAME_MAX ||
		    r->req.name[r->req.name_len] != '\0' ||
		    strlen(r->req.name) != r->req.name_len)
			fail("bad name / name_len", data, len);
	}
	if (r->rc == -1 &&
	    (r->st.code != FS_ERR_PROTOCOL ||
	     !memchr(r->st.message, '\0', sizeof(r->st.message))))
		fail("st not set", data, len);
	if (r->rc == 0 && len >= FS_HEAD_MAX)
		fail("no answer after FS_HEAD_MAX bytes", data, len);
}

static int same(const struct result *a, const struct result *b)
{
	if (a->rc != b->rc || a->req.cmd != b->req.cmd)
		return 0;
	if (a->rc != 1)
		return 1;
	return a->consumed == b->consumed &&
	       a->req.name_len == b->req.name_len &&
	       memcmp(a->req.name, b->req.name, a->req.name_len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t k = data[0] & 7, step = (size_t)1 << ((data[0] >> 3) & 15);
	if (step > 8192)
		step = 8192;
	if (size < 1 + k)
		return 0;
	const uint8_t *sizes = data + 1, *in = data + 1 + k;
	size_t n = size - 1 - k;

	struct result inc, whole;
	size_t have = 0, i = 0;
	inc.rc = 0;
	for (;;) {
		size_t chunk = i < k ? sizes[i] : step;
		i++;
		have = have + chunk < n ? have + chunk : n;
		parse(in, have, &inc);
		if (inc.rc != 0 || have == n)
			break;
	}
	parse(in, n, &whole);
	if (inc.rc == 0) {
		/* Every byte arrived without an answer. */
		if (whole.rc != 0 || have != n)
			fail("unanswered split, answered whole", in, n);
		return 0;
	}
	if (!same(&inc, &whole)) {
		fprintf(stderr,
			"split at %zu: rc %d cmd %d consumed %zu name_len %zu "
			"'%s'\nwhole %zu: rc %d cmd %d consumed %zu name_len "
			"%zu '%s'\n",
			have, inc.rc, inc.req.cmd, inc.consumed,
			inc.req.name_len, inc.rc == -1 ? inc.st.message : "", n,
			whole.rc, whole.req.cmd, whole.consumed,
			whole.req.name_len,
			whole.rc == -1 ? whole.st.message : "");
		fail("split parse differs from the one-shot parse", in, n);
	}
	return 0;
}
