/* t_codec.c: tests for codec.c (streaming base64, all backends).
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -I. -o /tmp/t_codec tests/t_codec.c \
 *            codec.c /usr/lib/x86_64-linux-gnu/libb64.a
 *
 * libb64 is the oracle for encoding; decoding is checked against a tiny
 * independent model of the strictness rules. Every update call writes into
 * a scratch buffer exactly B64_*_MAX long followed by guard bytes, so any
 * write past the documented bound is caught. */
#include "codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static const char *const backends[] = {"libb64", "scalar", "avx2", "avx512"};
#define NELEM(a)  (sizeof(a) / sizeof((a)[0]))
#define NBACKENDS ((int)NELEM(backends))

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#define GUARD	   32
#define GUARD_BYTE 0xa5
#define MAX_CUTS   64

static void fill_random(unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)rnd();
}

/* Selects backend b; returns 0 (and says so once) if this CPU lacks it. */
static int use(int b)
{
	static int told[NBACKENDS];

	if (codec_select(backends[b]) != 0) {
		if (!told[b]++)
			printf("note: backend %s not available, skipped\n",
			       backends[b]);
		return 0;
	}
	static char tag[32];
	snprintf(tag, sizeof(tag), "[%s] ", backends[b]);
	check_tag = tag;
	return 1;
}

static int guard_intact(const unsigned char *p)
{
	size_t i;

	for (i = 0; i < GUARD; i++)
		if (p[i] != GUARD_BYTE)
			return 0;
	return 1;
}

/* Encodes in[0..n) fed in pieces ending at cuts[0..ncuts) (ascending, any
 * may repeat) and then at n; returns the total length written to out. */
static size_t encode_cuts(const void *in, size_t n, const size_t *cuts,
			  size_t ncuts, char *out)
{
	struct b64_encoder enc;
	size_t pos = 0, len = 0, i, end, m, k, cap;
	unsigned char *scratch, fin[4 + GUARD];

	b64_encoder_init(&enc);
	for (i = 0; i <= ncuts; i++, pos = end) {
		end = i < ncuts ? cuts[i] : n;
		m = end - pos;
		cap = B64_ENCODED_MAX(m);
		scratch = xmalloc(cap + GUARD);
		memset(scratch, GUARD_BYTE, cap + GUARD);
		k = b64_encode_update(&enc, (const char *)in + pos, m,
				      (char *)scratch);
		CHECK(k <= cap && guard_intact(scratch + cap),
		      "encode update of %zu wrote past its bound", m);
		memcpy(out + len, scratch, k);
		len += k;
		free(scratch);
	}
	memset(fin, GUARD_BYTE, sizeof(fin));
	k = b64_encode_final(&enc, (char *)fin);
	CHECK(k <= 4 && guard_intact(fin + 4), "encode final wrote %zu", k);
	memcpy(out + len, fin, k);
	return len + k;
}

static size_t encode(const void *in, size_t n, char *out)
{
	return encode_cuts(in, n, NULL, 0, out);
}

/* Decodes like encode_cuts; returns the length, or -1 if rejected. */
static ssize_t decode_cuts(const char *in, size_t n, const size_t *cuts,
			   size_t ncuts, unsigned char *out)
{
	struct b64_decoder dec;
	size_t pos = 0, len = 0, i, end, m, cap;
	unsigned char *scratch;
	ssize_t k = 0;

	b64_decoder_init(&dec);
	for (i = 0; i <= ncuts && k >= 0; i++, pos = end) {
		end = i < ncuts ? cuts[i] : n;
		m = end - pos;
		cap = B64_DECODED_MAX(m);
		scratch = xmalloc(cap + GUARD);
		memset(scratch, GUARD_BYTE, cap + GUARD);
		k = b64_decode_update(&dec, in + pos, m, scratch);
		CHECK(k <= (ssize_t)cap && guard_intact(scratch + cap),
		      "decode update of %zu wrote past its bound", m);
		if (k > 0)
			memcpy(out + len, scratch, k);
		len += k > 0 ? k : 0;
		free(scratch);
	}
	if (k < 0 || b64_decode_final(&dec) != 0)
		return -1;
	return len;
}

static ssize_t decode(const char *in, size_t n, unsigned char *out)
{
	return decode_cuts(in, n, NULL, 0, out);
}

static ssize_t decode_str(const char *s, unsigned char *out)
{
	return decode(s, strlen(s), out);
}

static int sextet(char c)
{
	const char *p = memchr(alphabet, c, 64);

	return p ? (int)(p - alphabet) : -1;
}

/* Independent statement of the decoding rules: is s[0..n) acceptable? */
static int model_valid(const char *s, size_t n)
{
	char *t = xmalloc(n);
	size_t len = 0, i, pad = 0;
	int ok = 1;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			t[len++] = s[i];
	while (pad < len && t[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		ok &= sextet(t[i]) >= 0;
	ok &= len % 4 == 0 && pad <= 2;
	if (ok && pad == 2)
		ok = !(sextet(t[len - 3]) & 0x0f);
	if (ok && pad == 1)
		ok = !(sextet(t[len - 2]) & 0x03);
	free(t);
	return ok;
}

static void test_selection(void)
{
	const char *want_auto = __builtin_cpu_supports("avx512vbmi") &&
					__builtin_cpu_supports("avx512bw")
				    ? "avx512"
				: __builtin_cpu_supports("avx2") ? "avx2"
								 : "scalar";

	/* Nothing has used the codec yet: the environment decides. */
	setenv("FILESERV_CODEC", "libb64", 1);
	CHECK(strcmp(codec_name(), "libb64") == 0, "env ignored: %s",
	      codec_name());
	CHECK(codec_select("nonesuch") == -1, "unknown name accepted");
	CHECK(strcmp(codec_name(), "libb64") == 0, "failed select changed %s",
	      codec_name());
	CHECK((codec_select("avx2") == 0) == !!__builtin_cpu_supports("avx2"),
	      "avx2 availability misjudged");
	CHECK((codec_select("avx512") == 0) ==
		  (__builtin_cpu_supports("avx512vbmi") &&
		   __builtin_cpu_supports("avx512bw")),
	      "avx512 availability misjudged");
	CHECK(codec_select("auto") == 0, "auto failed");
	CHECK(strcmp(codec_name(), want_auto) == 0, "auto chose %s",
	      codec_name());
}

static void test_vectors(void)
{
	static const char *const v[][2] = {{"", ""},
					   {"f", "Zg=="},
					   {"fo", "Zm8="},
					   {"foo", "Zm9v"},
					   {"foob", "Zm9vYg=="},
					   {"fooba", "Zm9vYmE="},
					   {"foobar", "Zm9vYmFy"}};
	char enc[16];
	unsigned char dec[16];
	size_t i, k;
	int b;

	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		for (i = 0; i < NELEM(v); i++) {
			k = encode(v[i][0], strlen(v[i][0]), enc);
			CHECK(k == strlen(v[i][1]) && !memcmp(enc, v[i][1], k),
			      "encode \"%s\" gave \"%.*s\"", v[i][0], (int)k,
			      enc);
			CHECK(decode_str(v[i][1], dec) ==
				      (ssize_t)strlen(v[i][0]) &&
				  !memcmp(dec, v[i][0], strlen(v[i][0])),
			      "decode \"%s\"", v[i][1]);
		}
	}
}

/* One-shot round trip of n random bytes through every backend; the
 * encoding must match libb64's byte for byte. */
static void roundtrip(size_t n)
{
	unsigned char *data = xmalloc(n), *back = xmalloc(n + 3);
	char *oracle = xmalloc(B64_ENCODED_MAX(n)),
	     *enc = xmalloc(B64_ENCODED_MAX(n));
	size_t olen = 0, k;
	ssize_t d;
	int b;

	fill_random(data, n);
	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		k = encode(data, n, b == 0 ? oracle : enc);
		if (b == 0) {
			olen = k;
			CHECK(k == (n + 2) / 3 * 4, "n=%zu: %zu chars", n, k);
		} else {
			CHECK(k == olen && !memcmp(enc, oracle, k),
			      "n=%zu: encoding differs from libb64", n);
		}
		d = decode(oracle, olen, back);
		CHECK(d == (ssize_t)n && !memcmp(back, data, n),
		      "n=%zu: round trip failed (%zd)", n, d);
	}
	free(data);
	free(back);
	free(oracle);
	free(enc);
}

static void test_roundtrip(void)
{
	static const size_t big[] = {
	    301,   1000,  4095,	   4096,	  4097,	   65535,
	    65536, 65537, 1 << 20, (1 << 20) + 1, 3 << 20, (3 << 20) + 2};
	size_t n, i;

	for (n = 0; n <= 300; n++)
		roundtrip(n);
	for (i = 0; i < NELEM(big); i++)
		roundtrip(big[i]);
	for (i = 0; i < 40; i++)
		roundtrip(rnd() % (3 << 20));
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Up to MAX_CUTS random cut points in [0, n], ascending, repeats allowed
 * (empty pieces). Returns how many. */
static size_t random_cuts(size_t n, size_t *cuts)
{
	size_t i, k = rnd() % (MAX_CUTS + 1);

	for (i = 0; i < k; i++)
		cuts[i] = rnd() % (n + 1);
	qsort(cuts, k, sizeof(*cuts), cmp_size);
	return k;
}

/* Encoding data[0..n) split at every point, and at random sets of points,
 * must give the one-shot result. */
static void encode_splits(const unsigned char *data, size_t n, int every)
{
	char *ref = xmalloc(B64_ENCODED_MAX(n)),
	     *got = xmalloc(B64_ENCODED_MAX(n));
	size_t rlen = encode(data, n, ref), k, cuts[MAX_CUTS], ncuts, t;

	for (k = 0; every && k <= n; k++)
		CHECK(encode_cuts(data, n, &k, 1, got) == rlen &&
			  !memcmp(got, ref, rlen),
		      "encode n=%zu split at %zu", n, k);
	for (t = 0; t < 20; t++) {
		ncuts = random_cuts(n, cuts);
		CHECK(encode_cuts(data, n, cuts, ncuts, got) == rlen &&
			  !memcmp(got, ref, rlen),
		      "encode n=%zu split %zu ways", n, ncuts + 1);
	}
	free(ref);
	free(got);
}

/* Same for decoding s[0..n), valid or not: the outcome must not depend on
 * where the input is split. */
static void decode_splits(const char *s, size_t n, int every)
{
	unsigned char *ref = xmalloc(n), *got = xmalloc(n);
	ssize_t rlen = decode(s, n, ref), glen;
	size_t k, cuts[MAX_CUTS], ncuts, t;

	for (k = 0; every && k <= n; k++) {
		glen = decode_cuts(s, n, &k, 1, got);
		CHECK(glen == rlen && (rlen < 0 || !memcmp(got, ref, rlen)),
		      "decode n=%zu split at %zu: %zd vs %zd", n, k, glen,
		      rlen);
	}
	for (t = 0; t < 20; t++) {
		ncuts = random_cuts(n, cuts);
		glen = decode_cuts(s, n, cuts, ncuts, got);
		CHECK(glen == rlen && (rlen < 0 || !memcmp(got, ref, rlen)),
		      "decode n=%zu split %zu ways: %zd vs %zd", n, ncuts + 1,
		      glen, rlen);
	}
	free(ref);
	free(got);
}

/* Sprinkles about n / every spaces and tabs into s[0..n); returns the new
 * length (out must hold 2 * n). */
static size_t add_blanks(const char *s, size_t n, size_t every, char *out)
{
	size_t i, len = 0;

	for (i = 0; i < n; i++) {
		if (rnd() % every == 0)
			out[len++] = rnd() & 1 ? ' ' : '\t';
		out[len++] = s[i];
	}
	return len;
}

static void test_splits(void)
{
	static const char *const odd[] = {
	    "Zm9v YmE=", " Zg = = \t", "Zm9vYg=", "Zm9vYmFy====",
	    "Zm=9",	 "Zh==",       "  "};
	unsigned char data[4096];
	char enc[B64_ENCODED_MAX(sizeof(data))], spaced[2 * sizeof(enc)];
	size_t n, len, i;
	int b;

	fill_random(data, sizeof(data));
	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		for (n = 0; n <= 64; n++) {
			encode_splits(data, n, 1);
			len = encode(data, n, enc);
			decode_splits(enc, len, 1);
			len = add_blanks(enc, len, 5, spaced);
			decode_splits(spaced, len, 1);
		}
		for (n = 65; n <= sizeof(data); n += 1 + n / 4) {
			encode_splits(data, n, 0);
			len = encode(data, n, enc);
			decode_splits(enc, len, 0);
			len = add_blanks(enc, len, 40, spaced);
			decode_splits(spaced, len, 0);
		}
		for (i = 0; i < NELEM(odd); i++)
			decode_splits(odd[i], strlen(odd[i]), 1);
	}
}

/* Inputs every backend must reject. */
static const struct {
	const char *s;
	size_t n;
} bad_inputs[] = {
#define S(lit) lit, sizeof(lit) - 1
    {S("====")},     {S("A===")},      {S("=AAA")},    {S("AB=C")},
    {S("A")},	     {S("AB")},	       {S("ABC")},     {S("AB=")},
    {S("ABCD=")},    {S("ABCD==")},    {S("AB==C")},   {S("AB== C")},
    {S("AB==AB==")}, {S("ABC=ABCD")},  {S("AB====")},  {S("Zh==")},
    {S("Zm9=")},     {S("AB\r\nCD")},  {S("ABCD\n")},  {S("ABCD\r")},
    {S("AB\0D")},    {S("AB\200D")},   {S("ABC\xff")}, {S("AB-_")},
    {S("AB.D")},     {S("\vABCD")},    {S("AB\fD")},   {S("A B C")},
    {S("Zg==Zm9v")}, {S("Zm8= Zm9v")},
#undef S
};

static void test_invalid(void)
{
	unsigned char out[16];
	size_t i;
	int b;

	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		for (i = 0; i < NELEM(bad_inputs); i++) {
			CHECK(decode(bad_inputs[i].s, bad_inputs[i].n, out) ==
				  -1,
			      "accepted bad input #%zu", i);
			CHECK(!model_valid(bad_inputs[i].s, bad_inputs[i].n),
			      "model accepts bad input #%zu", i);
		}
	}
}

/* The len chars at enc with byte c inserted before position p, into out
 * (len + 1 chars). */
static void insert_at(const char *enc, size_t len, size_t p, int c, char *out)
{
	memcpy(out, enc, p);
	out[p] = (char)c;
	memcpy(out + p + 1, enc + p, len - p);
}

/* Every byte that is neither alphabet, '=', space nor tab must fail
 * wherever it sits in a long valid input (inside vector blocks or not);
 * spaces and tabs anywhere must be skipped. */
static void test_bytes_everywhere(void)
{
	unsigned char data[96], back[128];
	char enc[128], tmp[129];
	size_t len, p;
	int b, c;

	fill_random(data, sizeof(data));
	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		len = encode(data, sizeof(data), enc);
		for (p = 0; p < len; p++) {
			for (c = 0; c < 256; c++) {
				int blank = c == ' ' || c == '\t';

				if (sextet((char)c) >= 0 || c == '=')
					continue;
				memcpy(tmp, enc, len);
				tmp[p] = (char)c;
				CHECK(decode(tmp, len, back) == -1,
				      "byte 0x%02x at %zu accepted", c, p);
				if (!blank)
					continue;
				insert_at(enc, len, p, c, tmp);
				CHECK(decode(tmp, len + 1, back) ==
					      sizeof(data) &&
					  !memcmp(back, data, sizeof(data)),
				      "blank 0x%02x at %zu not skipped", c, p);
			}
		}
	}
}

/* b64_decode_span stops before the first byte that ends the text, at any
 * place (inside vector blocks or not, mid-quantum or not), having decoded
 * everything before it; going on after that byte decodes the rest. After
 * padding, a stop is fine and more alphabet is invalid. */
static void test_span(void)
{
	unsigned char data[96], back[160];
	char enc[128], tmp[129];
	size_t len, p, used, used2;
	int b, c;

	fill_random(data, sizeof(data));
	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		len = encode(data, sizeof(data), enc);
		for (p = 0; p <= len; p++) {
			for (c = 0; c < 256; c++) {
				struct b64_decoder dec;
				ssize_t k, k2;

				if (sextet((char)c) >= 0 || c == '=' ||
				    c == ' ' || c == '\t')
					continue;
				insert_at(enc, len, p, c, tmp);
				b64_decoder_init(&dec);
				k = b64_decode_span(&dec, tmp, len + 1, back,
						    &used);
				CHECK(k == (ssize_t)(p / 4 * 3) && used == p &&
					  !memcmp(back, data, (size_t)k),
				      "stop 0x%02x at %zu: %zd bytes, used %zu",
				      c, p, k, used);
				k2 = b64_decode_span(&dec, tmp + p + 1, len - p,
						     back + k, &used2);
				CHECK(k2 >= 0 && used2 == len - p &&
					  k + k2 == (ssize_t)sizeof(data) &&
					  !memcmp(back, data, sizeof(data)) &&
					  b64_decode_final(&dec) == 0,
				      "after stop 0x%02x at %zu: %zd bytes", c,
				      p, k2);
			}
		}
		struct b64_decoder dec;
		b64_decoder_init(&dec);
		CHECK(b64_decode_span(&dec, "QQ==\"}", 6, back, &used) == 1 &&
			  used == 4 && back[0] == 'A' &&
			  b64_decode_final(&dec) == 0,
		      "padding then a quote: used %zu", used);
		b64_decoder_init(&dec);
		CHECK(b64_decode_span(&dec, "QQ==QQ==", 8, back, &used) == -1,
		      "alphabet after padding accepted");
		b64_decoder_init(&dec);
		CHECK(b64_decode_span(&dec, "QU\r\n", 4, back, &used) == 0 &&
			  used == 2 && b64_decode_final(&dec) == -1,
		      "a quantum cut by a stop: used %zu", used);
	}
}

static size_t strip_blanks(const char *s, size_t n, char *out)
{
	size_t i, len = 0;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			out[len++] = s[i];
	return len;
}

/* Short random strings over a few telling chars: every backend must agree
 * with the model, with each other, and an accepted input must re-encode to
 * itself minus blanks. */
static void fuzz_one(const char *s, size_t n)
{
	unsigned char out[NBACKENDS][16];
	ssize_t len[NBACKENDS];
	char re[32], clean[32];
	size_t k;
	int b, valid = model_valid(s, n);

	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		len[b] = decode(s, n, out[b]);
		CHECK((len[b] >= 0) == valid, "\"%.*s\": got %zd, model %d",
		      (int)n, s, len[b], valid);
		CHECK(len[b] == len[0] &&
			  (len[0] < 0 || !memcmp(out[b], out[0], len[0])),
		      "\"%.*s\": differs from libb64", (int)n, s);
		if (len[b] < 0)
			continue;
		k = encode(out[b], len[b], re);
		CHECK(k == strip_blanks(s, n, clean) && !memcmp(re, clean, k),
		      "\"%.*s\": re-encodes as \"%.*s\"", (int)n, s, (int)k,
		      re);
	}
}

static void test_fuzz(void)
{
	static const char chars[] = "AQgwBE+/09==  \t\n.";
	char s[16];
	size_t n, i;
	int t;

	for (t = 0; t < 200000; t++) {
		n = rnd() % sizeof(s);
		for (i = 0; i < n; i++)
			s[i] = chars[rnd() % (sizeof(chars) - 1)];
		fuzz_one(s, n);
	}
}

/* A failed decoder stays failed, whatever follows; empty streams are
 * fine both ways. */
static void test_sticky_failure(void)
{
	struct b64_encoder enc;
	struct b64_decoder dec;
	unsigned char out[16];
	int b;

	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		b64_decoder_init(&dec);
		CHECK(b64_decode_update(&dec, "Zm9v", 4, out) == 3,
		      "good start");
		CHECK(b64_decode_update(&dec, "Z!", 2, out) == -1, "bad char");
		CHECK(b64_decode_update(&dec, "m9v", 3, out) == -1,
		      "recovered");
		CHECK(b64_decode_final(&dec) == -1, "final after failure");
		b64_decoder_init(&dec);
		CHECK(b64_decode_update(&dec, NULL, 0, out) == 0,
		      "empty update");
		CHECK(b64_decode_final(&dec) == 0, "empty stream rejected");
		b64_encoder_init(&enc);
		CHECK(b64_encode_update(&enc, NULL, 0, (char *)out) == 0 &&
			  b64_encode_final(&enc, (char *)out) == 0,
		      "empty encode");
	}
}

/* Big inputs with scattered blanks, fed in random pieces, so the vector
 * path keeps falling back and resuming at odd offsets. */
static void test_big_blanks(void)
{
	size_t n = (1 << 20) + 7, len, slen, cuts[MAX_CUTS], ncuts;
	unsigned char *data = xmalloc(n), *back = xmalloc(n + 3);
	char *enc = xmalloc(B64_ENCODED_MAX(n));
	char *spaced = xmalloc(2 * B64_ENCODED_MAX(n));
	ssize_t d;
	int b, t;

	fill_random(data, n);
	for (b = 0; b < NBACKENDS; b++) {
		if (!use(b))
			continue;
		len = encode(data, n, enc);
		for (t = 0; t < 4; t++) {
			slen = add_blanks(enc, len, t ? 1000 : 7, spaced);
			ncuts = random_cuts(slen, cuts);
			d = decode_cuts(spaced, slen, cuts, ncuts, back);
			CHECK(d == (ssize_t)n && !memcmp(back, data, n),
			      "big input with blanks: %zd", d);
		}
	}
	free(data);
	free(back);
	free(enc);
	free(spaced);
}

int main(void)
{
	RUN_TEST(test_selection);
	RUN_TEST(test_vectors);
	RUN_TEST(test_roundtrip);
	RUN_TEST(test_splits);
	RUN_TEST(test_invalid);
	RUN_TEST(test_bytes_everywhere);
	RUN_TEST(test_span);
	RUN_TEST(test_fuzz);
	RUN_TEST(test_sticky_failure);
	RUN_TEST(test_big_blanks);
	return check_done("t_codec");
}
