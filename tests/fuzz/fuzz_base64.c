/* fuzz_base64.c: the streaming base64 codec, every backend.
 *
 * Input layout:
 *   byte 0       bits 0-3: k, the number of explicit chunk sizes;
 *                bits 4-7: the size of every later chunk, 1 << (0..15)
 *   bytes 1..k   explicit chunk sizes (0 = an update with nothing)
 *   the rest     the text to decode, and also the bytes to encode
 *
 * For each backend this CPU runs ("libb64", "scalar", "avx2",
 * "avx512"):
 *   - decoding the text in one update equals decoding it in the chunks
 *     above: the same accept/reject, and the same bytes when accepted;
 *   - accepted text re-encodes (one-shot and chunked) to its canonical
 *     form: the text minus spaces and tabs;
 *   - decode(encode(bytes)) == bytes, with the encoding chunked;
 *   - every update stays within its input and within B64_*_MAX bytes of
 *     output: both buffers end exactly at a PROT_NONE guard page, so even
 *     libb64's uninstrumented code faults on a read or write past them
 *     (ASan only sees instrumented code), and the region before them is
 *     ASan-poisoned;
 *   - b64_decode_span, chunked the same way and stepping over every byte
 *     it stops at, stops only at bytes outside base64 text and decodes
 *     as one update of the text without those bytes;
 * and all backends agree with the first one (libb64, the reference) on
 * accept/reject and on every output. */
#include "codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct split {
	const uint8_t *sizes;
	size_t k, step;
};

struct outcome {
	int ok;
	unsigned char *out; /* decoded bytes or encoded text */
	size_t len;
};

static void fail(const char *backend, const char *what)
{
	fprintf(stderr, "fuzz_base64 [%s]: %s\n", backend, what);
	abort();
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

/* Two regions (update input, update output), each GUARDED bytes followed
 * by a PROT_NONE page: guarded(i, n) returns n bytes ending at region i's
 * guard page. */
#define GUARDED (1u << 17) /* > B64_ENCODED_MAX(65536) */
static unsigned char *regions[2];

static unsigned char *guarded(int i, size_t n)
{
	if (!regions[i]) {
		long page = sysconf(_SC_PAGESIZE);
		void *p = mmap(NULL, GUARDED + page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED ||
		    mprotect((char *)p + GUARDED, page, PROT_NONE) < 0)
			abort();
		regions[i] = p;
	}
	if (n > GUARDED)
		abort();
	unsigned char *at = regions[i] + GUARDED - n;
	POISON(regions[i], GUARDED - n);
	UNPOISON(at, n);
	return at;
}

static size_t chunk_at(const struct split *sp, size_t i)
{
	return i < sp->k ? sp->sizes[i] : sp->step;
}

static int in_text(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=' ||
	       c == ' ' || c == '\t';
}

/* Decodes in[0..n) in chunks (sp NULL: one update), each through an
 * exact-size output buffer. With skipped NULL, one b64_decode_update per
 * chunk; else b64_decode_span, stepping over each byte it stops at (which
 * must be one that ends base64 text) as a reader steps over a quote or an
 * escape, the stopped-at bytes appended to skipped (*nskipped of them). */
static struct outcome decode_chunks(const char *in, size_t n,
				    const struct split *sp, char *skipped,
				    size_t *nskipped)
{
	struct outcome r = {1, xmalloc(B64_DECODED_MAX(n) + 3 * 16), 0};
	struct b64_decoder dec;
	b64_decoder_init(&dec);
	size_t pos = 0;
	if (skipped)
		*nskipped = 0;
	for (size_t i = 0; r.ok; i++) {
		size_t c = sp ? chunk_at(sp, i) : n;
		if (c > n - pos)
			c = n - pos;
		char *piece = (char *)guarded(0, c);
		memcpy(piece, in + pos, c);
		size_t at = 0;
		while (r.ok) {
			size_t max = B64_DECODED_MAX(c - at), used = c - at;
			unsigned char *out = guarded(1, max);
			ssize_t got = skipped
					  ? b64_decode_span(&dec, piece + at,
							    c - at, out, &used)
					  : b64_decode_update(&dec, piece + at,
							      c - at, out);
			if (got < 0) {
				r.ok = 0;
				break;
			}
			if ((size_t)got > max || used > c - at)
				fail(codec_name(), "decode went past its input "
						   "or its max");
			memcpy(r.out + r.len, out, (size_t)got);
			r.len += (size_t)got;
			at += used;
			if (at == c)
				break;
			if (in_text((unsigned char)piece[at]))
				fail(codec_name(), "span stopped inside text");
			skipped[(*nskipped)++] = piece[at++];
		}
		pos += c;
		if (pos == n && (!sp || i >= sp->k))
			break;
	}
	if (r.ok && b64_decode_final(&dec) < 0)
		r.ok = 0;
	return r;
}

static struct outcome decode(const char *in, size_t n, const struct split *sp)
{
	return decode_chunks(in, n, sp, NULL, NULL);
}

/* Encodes in[0..n) in chunks (sp NULL: one update). */
static struct outcome encode(const unsigned char *in, size_t n,
			     const struct split *sp)
{
	struct outcome r = {1, xmalloc(B64_ENCODED_MAX(n) + 4 * 16 + 4), 0};
	struct b64_encoder enc;
	b64_encoder_init(&enc);
	size_t pos = 0;
	for (size_t i = 0;; i++) {
		size_t c = sp ? chunk_at(sp, i) : n;
		if (c > n - pos)
			c = n - pos;
		unsigned char *piece = guarded(0, c);
		memcpy(piece, in + pos, c);
		size_t max = B64_ENCODED_MAX(c);
		char *out = (char *)guarded(1, max);
		size_t got = b64_encode_update(&enc, piece, c, out);
		if (got > max)
			fail(codec_name(), "encode wrote past its max");
		memcpy(r.out + r.len, out, got);
		r.len += got;
		pos += c;
		if (pos == n && (!sp || i >= sp->k))
			break;
	}
	char *tail = (char *)guarded(1, 4);
	size_t got = b64_encode_final(&enc, tail);
	if (got > 4)
		fail(codec_name(), "encode_final wrote more than 4");
	memcpy(r.out + r.len, tail, got);
	r.len += got;
	return r;
}

static int equal(const struct outcome *a, const struct outcome *b)
{
	return a->ok == b->ok &&
	       (!a->ok ||
		(a->len == b->len && memcmp(a->out, b->out, a->len) == 0));
}

struct results {
	struct outcome dec, enc;
};

static struct results run_backend(const char *name, const uint8_t *in, size_t n,
				  const struct split *sp)
{
	struct results res;
	res.dec = decode((const char *)in, n, NULL);
	struct outcome dec_split = decode((const char *)in, n, sp);
	if (!equal(&res.dec, &dec_split))
		fail(name, dec_split.ok != res.dec.ok
			       ? "chunked decode accepts differently"
			       : "chunked decode gives other bytes");
	free(dec_split.out);

	/* Span decoding, stepping over the bytes that end the text, is
	 * decoding the text without them. */
	char *skipped = xmalloc(n), *kept = xmalloc(n);
	size_t nskipped, nkept = 0;
	struct outcome spans =
	    decode_chunks((const char *)in, n, sp, skipped, &nskipped);
	for (size_t i = 0; i < n; i++)
		if (in_text(in[i]))
			kept[nkept++] = (char)in[i];
	struct outcome plain = decode(kept, nkept, NULL);
	if (spans.ok && nskipped != n - nkept)
		fail(name, "span did not stop at every byte outside text");
	if (!equal(&spans, &plain))
		fail(name, spans.ok != plain.ok
			       ? "span decode accepts differently"
			       : "span decode gives other bytes");
	free(spans.out);
	free(plain.out);
	free(skipped);
	free(kept);

	if (res.dec.ok) {
		/* Canonical form: the text minus spaces and tabs. */
		char *canon = xmalloc(n);
		size_t cn = 0;
		for (size_t i = 0; i < n; i++)
			if (in[i] != ' ' && in[i] != '\t')
				canon[cn++] = (char)in[i];
		struct outcome re = encode(res.dec.out, res.dec.len, NULL);
		struct outcome re_split = encode(res.dec.out, res.dec.len, sp);
		if (re.len != cn || memcmp(re.out, canon, cn) != 0)
			fail(name, "accepted text is not canonical");
		if (!equal(&re, &re_split))
			fail(name, "chunked encode differs");
		free(re.out);
		free(re_split.out);
		free(canon);
	}

	/* Round trip of the raw bytes. */
	res.enc = encode(in, n, NULL);
	struct outcome enc_split = encode(in, n, sp);
	if (!equal(&res.enc, &enc_split))
		fail(name, "chunked encode differs");
	if (res.enc.len != (n + 2) / 3 * 4)
		fail(name, "encoded length is not 4 * ceil(n / 3)");
	for (size_t i = 0; i < res.enc.len; i++)
		if (res.enc.out[i] == '\n' || res.enc.out[i] == '\r')
			fail(name, "line break in the encoding");
	struct outcome back =
	    decode((const char *)enc_split.out, enc_split.len, sp);
	if (!back.ok || back.len != n || memcmp(back.out, in, n) != 0)
		fail(name, "decode(encode(x)) != x");
	free(back.out);
	free(enc_split.out);
	return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"libb64", "scalar", "avx2",
					    "avx512"};
	if (size < 1)
		return 0;
	struct split sp = {data + 1, data[0] & 15,
			   (size_t)1 << ((data[0] >> 4) & 15)};
	if (size < 1 + sp.k)
		return 0;
	const uint8_t *in = data + 1 + sp.k;
	size_t n = size - 1 - sp.k;

	struct results ref = {{0}, {0}};
	int have_ref = 0;
	for (size_t b = 0; b < sizeof(names) / sizeof(names[0]); b++) {
		if (codec_select(names[b]) != 0)
			continue; /* this CPU cannot run it */
		struct results res = run_backend(names[b], in, n, &sp);
		if (!have_ref) {
			ref = res;
			have_ref = 1;
			continue;
		}
		if (!equal(&res.dec, &ref.dec))
			fail(names[b], res.dec.ok != ref.dec.ok
					   ? "backends disagree on accepting"
					   : "backends decode differently");
		if (!equal(&res.enc, &ref.enc))
			fail(names[b], "backends encode differently");
		free(res.dec.out);
		free(res.enc.out);
	}
	if (!have_ref)
		fail("-", "no backend could be selected");
	free(ref.dec.out);
	free(ref.enc.out);
	return 0;
}
