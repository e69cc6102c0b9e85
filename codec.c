/* codec.c: streaming base64 with run-time selectable backends.
 *
 * Owns the codec.h API: backend selection, the streaming state machines
 * and four backends ("libb64", "scalar", "avx2", "avx512").
 *
 * Design: the public functions are shared drivers that handle everything
 * stateful (partial groups, partial quanta, whitespace, padding, errors).
 * A backend only supplies stateless bulk kernels:
 *  - enc_bulk encodes whole 3-byte groups, enc_tail pads the last 1-2 bytes;
 *  - dec_bulk decodes the longest leading run of whole quanta made only of
 *    alphabet chars and returns how many chars it consumed; dec_quantum
 *    turns one quantum of sextets into 1-3 bytes.
 * The decode driver calls dec_bulk whenever it sits on a quantum boundary,
 * and feeds anything dec_bulk refused through dec_step(), the one strict
 * per-char state machine. Strictness is therefore identical across
 * backends by construction: no kernel ever sees whitespace or '='.
 */
#include "codec.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <b64/cdecode.h>
#include <b64/cencode.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_KERNELS 1
#define AVX2		  __attribute__((target("avx2")))
#define AVX512		  __attribute__((target("avx2,avx512f,avx512bw,avx512vbmi")))
#endif

struct backend {
	const char *name;
	int (*usable)(void);
	void (*enc_bulk)(const unsigned char *in, size_t n, char *out);
	void (*enc_tail)(const unsigned char *tail, unsigned n, char *out);
	size_t (*dec_bulk)(const unsigned char *in, size_t n,
			   unsigned char *out);
	void (*dec_quantum)(const unsigned char quad[4], unsigned nbytes,
			    unsigned char *out);
};

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Lookup tables, built by the preprocessor so they are constant data. */
#define ENC(v)                                                                 \
	((v) < 26    ? 'A' + (v)                                               \
	 : (v) < 52  ? 'a' - 26 + (v)                                          \
	 : (v) < 62  ? '0' - 52 + (v)                                          \
	 : (v) == 62 ? '+'                                                     \
		     : '/')
#define PAIR(h, l)  ENC(h), ENC(l)
#define COL4(h, l)  PAIR(h, l), PAIR(h, l + 1), PAIR(h, l + 2), PAIR(h, l + 3)
#define COL16(h, l) COL4(h, l), COL4(h, l + 4), COL4(h, l + 8), COL4(h, l + 12)
#define ROW(h)	    COL16(h, 0), COL16(h, 16), COL16(h, 32), COL16(h, 48)
#define ROW4(h)	    ROW(h), ROW(h + 1), ROW(h + 2), ROW(h + 3)
#define ROW16(h)    ROW4(h), ROW4(h + 4), ROW4(h + 8), ROW4(h + 12)

/* enc_pair[2 * v], enc_pair[2 * v + 1]: the two chars encoding 12 bits v. */
static const char enc_pair[2 * 4096] = {ROW16(0), ROW16(16), ROW16(32),
					ROW16(48)};

#define SEXTET(c)                                                              \
	((c) >= 'A' && (c) <= 'Z'   ? (c) - 'A'                                \
	 : (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26                           \
	 : (c) >= '0' && (c) <= '9' ? (c) - '0' + 52                           \
	 : (c) == '+'		    ? 62                                       \
	 : (c) == '/'		    ? 63                                       \
				    : -1)
#define DEC_BAD (1u << 24)
#define SHL(c, k)                                                              \
	(SEXTET(c) < 0 ? DEC_BAD : (uint32_t)SEXTET(c) << (18 - 6 * (k)))
#define SHL4(c, k)  SHL(c, k), SHL(c + 1, k), SHL(c + 2, k), SHL(c + 3, k)
#define SHL16(c, k) SHL4(c, k), SHL4(c + 4, k), SHL4(c + 8, k), SHL4(c + 12, k)
#define SHL64(c, k)                                                            \
	SHL16(c, k), SHL16(c + 16, k), SHL16(c + 32, k), SHL16(c + 48, k)
#define SHL256(k) SHL64(0, k), SHL64(64, k), SHL64(128, k), SHL64(192, k)

/* dec_shl[k][c]: the sextet of char c shifted to its place as char k of a
 * quantum, so a quantum's 24 bits are one OR away; DEC_BAD if c is not in
 * the alphabet. */
static const uint32_t dec_shl[4][256] = {
    {SHL256(0)}, {SHL256(1)}, {SHL256(2)}, {SHL256(3)}};

/* The 24 bits of the quantum at in, with DEC_BAD set if it is not plain
 * data. */
static uint32_t dec_quad(const unsigned char *in)
{
	return dec_shl[0][in[0]] | dec_shl[1][in[1]] | dec_shl[2][in[2]] |
	       dec_shl[3][in[3]];
}

/* ---- scalar backend ---- */

/* Writes the two chars encoding the low 12 bits of v. */
static void put_pair(char *out, uint64_t v)
{
	memcpy(out, enc_pair + 2 * (v & 0xfff), 2);
}

static void enc_group(const unsigned char *in, char *out)
{
	uint32_t v = (uint32_t)in[0] << 16 | in[1] << 8 | in[2];

	put_pair(out, v >> 12);
	put_pair(out + 2, v);
}

/* in[0..5] as a big-endian number; reads, but ignores, in[6..7]. */
static uint64_t load_be48(const unsigned char *in)
{
	uint64_t x;

	memcpy(&x, in, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	return x >> 16;
}

/* Writes the eight chars encoding the low 48 bits of x. Inlined by force:
 * gcc 12 calls it otherwise, and the encoder runs at two thirds speed. */
static inline __attribute__((always_inline)) void put_eight(char *out,
							    uint64_t x)
{
	put_pair(out, x >> 36);
	put_pair(out + 2, x >> 24);
	put_pair(out + 4, x >> 12);
	put_pair(out + 6, x);
}

static void scalar_enc_bulk(const unsigned char *in, size_t n, char *out)
{
	size_t i;

	/* 24 bytes -> 32 chars a step, every load before any store: the
	 * char stores may alias the input, so loads after them would wait
	 * (1.2x faster here than one 6-byte step at a time). */
	for (i = 0; n - i >= 26; i += 24, out += 32) {
		uint64_t a = load_be48(in + i), b = load_be48(in + i + 6),
			 c = load_be48(in + i + 12), d = load_be48(in + i + 18);

		put_eight(out, a);
		put_eight(out + 8, b);
		put_eight(out + 16, c);
		put_eight(out + 24, d);
	}
	for (; n - i >= 8; i += 6, out += 8)
		put_eight(out, load_be48(in + i));
	for (; i < n; i += 3, out += 4)
		enc_group(in + i, out);
}

static void scalar_enc_tail(const unsigned char *tail, unsigned n, char *out)
{
	unsigned char g[3] = {tail[0], n > 1 ? tail[1] : 0, 0};

	enc_group(g, out);
	if (n == 1)
		out[2] = '=';
	out[3] = '=';
}

static size_t scalar_dec_bulk(const unsigned char *in, size_t n,
			      unsigned char *out)
{
	size_t i;

	for (i = 0; n - i >= 4; i += 4, out += 3) {
		uint32_t v = dec_quad(in + i);

		if (v & DEC_BAD)
			break;
		out[0] = v >> 16;
		out[1] = v >> 8;
		out[2] = v;
	}
	return i;
}

static void scalar_dec_quantum(const unsigned char quad[4], unsigned nbytes,
			       unsigned char *out)
{
	uint32_t v =
	    (uint32_t)quad[0] << 18 | quad[1] << 12 | quad[2] << 6 | quad[3];
	unsigned char b[3] = {v >> 16, v >> 8, v};

	memcpy(out, b, nbytes);
}

/* ---- libb64 backend: the reference, so clarity over speed ---- */

/* Debian's libb64 1.2 breaks lines: base64_encode_block writes '\n' once
 * state.stepcount reaches 18 groups (72 chars), and base64_encode_blockend
 * always appends '\n'. So we hand it at most 17 whole groups per freshly
 * initialised state (the counter can never reach the limit, and no partial
 * group is lost since chunks are whole groups), and from blockend we copy
 * only the chars that complete the padded quantum, never its '\n'. */
#define LIBB64_ENC_CHUNK (17 * 3)
/* base64_decode_block takes an int length: chunk, keeping whole quanta. */
#define LIBB64_DEC_CHUNK ((size_t)1 << 20)

static void libb64_enc_bulk(const unsigned char *in, size_t n, char *out)
{
	base64_encodestate st;
	size_t k;

	for (; n; in += k, n -= k) {
		k = n < LIBB64_ENC_CHUNK ? n : LIBB64_ENC_CHUNK;
		base64_init_encodestate(&st);
		out += base64_encode_block((const char *)in, (int)k, out, &st);
	}
}

static void libb64_enc_tail(const unsigned char *tail, unsigned n, char *out)
{
	base64_encodestate st;
	char end[8];
	int k;

	base64_init_encodestate(&st);
	k = base64_encode_block((const char *)tail, (int)n, out, &st);
	base64_encode_blockend(end, &st);
	memcpy(out + k, end, 4 - k);
}

/* libb64 would silently skip anything outside the alphabet, so it is only
 * ever given runs of whole quanta that we have validated ourselves. */
static size_t plain_quanta(const unsigned char *in, size_t n)
{
	size_t i;

	for (i = 0; n - i >= 4; i += 4)
		if (dec_quad(in + i) & DEC_BAD)
			break;
	return i;
}

static size_t libb64_dec_bulk(const unsigned char *in, size_t n,
			      unsigned char *out)
{
	size_t len = plain_quanta(in, n), i, k;
	base64_decodestate st;
	char last[4];

	/* libb64 touches the byte after the last one it decodes: every
	 * quantum but the last goes straight to out, the last through a
	 * scratch buffer, so nothing past the output is ever accessed. */
	for (i = 0; i + 4 < len; i += k) {
		k = len - 4 - i < LIBB64_DEC_CHUNK ? len - 4 - i
						   : LIBB64_DEC_CHUNK;
		base64_init_decodestate(&st);
		out += base64_decode_block((const char *)in + i, (int)k,
					   (char *)out, &st);
	}
	if (len) {
		base64_init_decodestate(&st);
		base64_decode_block((const char *)in + len - 4, 4, last, &st);
		memcpy(out, last, 3);
	}
	return len;
}

static void libb64_dec_quantum(const unsigned char quad[4], unsigned nbytes,
			       unsigned char *out)
{
	base64_decodestate st;
	char chars[4], bytes[4];
	unsigned i;

	for (i = 0; i < 4; i++)
		chars[i] = alphabet[quad[i]];
	/* nbytes + 1 chars; libb64 also stores the pending partial byte,
	 * hence the scratch buffer. */
	base64_init_decodestate(&st);
	base64_decode_block(chars, (int)nbytes + 1, bytes, &st);
	memcpy(out, bytes, nbytes);
}

#ifdef HAVE_AVX2_KERNELS
/* ---- avx2 backend (Mula/Lemire): 24 bytes <-> 32 chars per step ---- */

static int avx2_usable(void)
{
	return __builtin_cpu_supports("avx2");
}

/* Per 128-bit lane, 12 input bytes -> 16 sextets, one per byte. */
AVX2 static __m256i avx2_enc_sextets(__m256i in)
{
	/* Each dword gets bytes (b1, b0, b2, b1) of its group, so that its
	 * two 16-bit halves are b0:b1 and b1:b2; the multiplies then shift
	 * each sextet into its own byte. */
	const __m256i shuf =
	    _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
			     1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
	__m256i v = _mm256_shuffle_epi8(in, shuf);
	__m256i s0s2 = _mm256_mulhi_epu16(
	    _mm256_and_si256(v, _mm256_set1_epi32(0x0fc0fc00)),
	    _mm256_set1_epi32(0x04000040));
	__m256i s1s3 = _mm256_mullo_epi16(
	    _mm256_and_si256(v, _mm256_set1_epi32(0x003f03f0)),
	    _mm256_set1_epi32(0x01000010));

	return _mm256_or_si256(s0s2, s1s3);
}

/* Sextet -> ASCII by adding a per-range offset. The range is squeezed to a
 * pshufb index: 0..25 -> 13, 26..51 -> 0, 52..61 -> 1..10, 62 -> 11,
 * 63 -> 12. */
AVX2 static __m256i avx2_enc_ascii(__m256i idx)
{
	const __m256i offset = _mm256_setr_epi8(
	    'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
	    '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62,
	    '/' - 63, 'A', 0, 0, 'a' - 26, '0' - 52, '0' - 52, '0' - 52,
	    '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
	    '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
	__m256i r = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));
	__m256i lt26 = _mm256_cmpgt_epi8(_mm256_set1_epi8(26), idx);

	r = _mm256_or_si256(r, _mm256_and_si256(lt26, _mm256_set1_epi8(13)));
	return _mm256_add_epi8(idx, _mm256_shuffle_epi8(offset, r));
}

AVX2 static void avx2_enc_bulk(const unsigned char *in, size_t n, char *out)
{
	size_t i;

	/* Each step loads in[i .. i + 27] (two overlapping 16-byte loads,
	 * lanes start 12 bytes apart) and consumes 24. */
	for (i = 0; n - i >= 28; i += 24, out += 32) {
		__m256i v = _mm256_inserti128_si256(
		    _mm256_castsi128_si256(
			_mm_loadu_si128((const void *)(in + i))),
		    _mm_loadu_si128((const void *)(in + i + 12)), 1);

		_mm256_storeu_si256((void *)out,
				    avx2_enc_ascii(avx2_enc_sextets(v)));
	}
	scalar_enc_bulk(in + i, n - i, out);
}

/* Classifies 32 chars by nibbles: lut_hi[hi] has one bit per high-nibble
 * class, lut_lo[lo] sets that bit for each low nibble the class rejects:
 * 0x01 row 2 ('+' 0x2b, '/' 0x2f only), 0x02 row 3 (digits 0-9), 0x04 rows
 * 4 and 6 (no 0x40, 0x60), 0x08 rows 5 and 7 (nothing above 0x5a, 0x7a),
 * 0x10 every other row, including bytes >= 0x80. Returns the sextets, and
 * *bad non-zero if any char is outside the alphabet. */
AVX2 static __m256i avx2_dec_sextets(__m256i in, int *bad)
{
	const __m256i lut_lo = _mm256_setr_epi8(
	    0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13,
	    0x1a, 0x1b, 0x1b, 0x1b, 0x1a, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11,
	    0x11, 0x11, 0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b, 0x1b, 0x1a);
	const __m256i lut_hi = _mm256_setr_epi8(
	    0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10,
	    0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08,
	    0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
	/* Offset to add per high nibble; '/' is moved to index 1. */
	const __m256i lut_off = _mm256_setr_epi8(
	    0, 63 - '/', 62 - '+', 52 - '0', -'A', -'A', 26 - 'a', 26 - 'a', 0,
	    0, 0, 0, 0, 0, 0, 0, 0, 63 - '/', 62 - '+', 52 - '0', -'A', -'A',
	    26 - 'a', 26 - 'a', 0, 0, 0, 0, 0, 0, 0, 0);
	const __m256i nib = _mm256_set1_epi8(0x0f);
	__m256i hi = _mm256_and_si256(_mm256_srli_epi32(in, 4), nib);
	__m256i lo = _mm256_and_si256(in, nib);
	__m256i slash = _mm256_cmpeq_epi8(in, _mm256_set1_epi8('/'));

	*bad = !_mm256_testz_si256(_mm256_shuffle_epi8(lut_lo, lo),
				   _mm256_shuffle_epi8(lut_hi, hi));
	return _mm256_add_epi8(
	    in, _mm256_shuffle_epi8(lut_off, _mm256_add_epi8(hi, slash)));
}

/* 32 sextets -> 24 bytes, stored exactly (no write past them). */
AVX2 static void avx2_dec_pack(__m256i s, unsigned char *out)
{
	/* a*64+b per 16 bits, then ab*4096+cd per 32 bits: 3 bytes per dword,
	 * little endian, reversed into stream order and packed together. */
	const __m256i shuf = _mm256_setr_epi8(
	    2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6,
	    5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
	__m256i v = _mm256_maddubs_epi16(s, _mm256_set1_epi32(0x01400140));

	v = _mm256_madd_epi16(v, _mm256_set1_epi32(0x00011000));
	v = _mm256_shuffle_epi8(v, shuf);
	v = _mm256_permutevar8x32_epi32(
	    v, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7));
	_mm_storeu_si128((void *)out, _mm256_castsi256_si128(v));
	_mm_storel_epi64((void *)(out + 16), _mm256_extracti128_si256(v, 1));
}

/* A block holding any non-alphabet char is left to the scalar kernel, which
 * stops at the first quantum it cannot take. */
AVX2 static size_t avx2_dec_bulk(const unsigned char *in, size_t n,
				 unsigned char *out)
{
	size_t i, rest;
	int bad;

	for (i = 0; n - i >= 32; i += 32, out += 24) {
		__m256i s = avx2_dec_sextets(
		    _mm256_loadu_si256((const void *)(in + i)), &bad);

		if (bad)
			break;
		avx2_dec_pack(s, out);
	}
	rest = n - i < 32 ? n - i : 32;
	return i + scalar_dec_bulk(in + i, rest, out);
}

/* ---- avx512 backend (AVX-512 VBMI, Mula/Lemire): 48 <-> 64 per step ----
 * Byte permutes across the whole register replace the AVX2 kernels'
 * in-lane shuffles and range arithmetic: one vpermb gathers the input
 * groups, one vpmultishiftqb cuts out the sextets, one vpermb maps them
 * to the alphabet; decoding maps chars through a 128-entry vpermi2b
 * table. */

static int avx512_usable(void)
{
	return __builtin_cpu_supports("avx512f") &&
	       __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vbmi");
}

AVX512 static void avx512_enc_bulk(const unsigned char *in, size_t n, char *out)
{
	/* Dword k of the gathered vector holds bytes (b1, b0, b2, b1) of
	 * group k; multishift then takes, per output byte, the 8 bits at
	 * offsets 10, 4, 22, 16 of each dword (the sextet is the low 6). */
	const __m512i gather = _mm512_set_epi8(
	    46, 47, 45, 46, 43, 44, 42, 43, 40, 41, 39, 40, 37, 38, 36, 37, 34,
	    35, 33, 34, 31, 32, 30, 31, 28, 29, 27, 28, 25, 26, 24, 25, 22, 23,
	    21, 22, 19, 20, 18, 19, 16, 17, 15, 16, 13, 14, 12, 13, 10, 11, 9,
	    10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1);
	const __m512i shifts = _mm512_set1_epi64(0x3036242a1016040aLL);
	const __m512i ascii = _mm512_loadu_si512((const void *)alphabet);
	size_t i;

	/* Each step loads in[i .. i + 63] and consumes 48. */
	for (i = 0; n - i >= 64; i += 48, out += 64) {
		__m512i v = _mm512_loadu_si512((const void *)(in + i));

		v = _mm512_permutexvar_epi8(gather, v);
		v = _mm512_multishift_epi64_epi8(shifts, v);
		_mm512_storeu_si512((void *)out,
				    _mm512_permutexvar_epi8(v, ascii));
	}
	avx2_enc_bulk(in + i, n - i, out);
}

/* dec_lut[c] for c < 128: the sextet of c, or 0x80 if c is not in the
 * alphabet (chars >= 128 are caught by their own high bit). */
#define LUT(c)	 (SEXTET(c) < 0 ? 0x80 : SEXTET(c))
#define LUT4(c)	 LUT(c), LUT(c + 1), LUT(c + 2), LUT(c + 3)
#define LUT16(c) LUT4(c), LUT4(c + 4), LUT4(c + 8), LUT4(c + 12)
static const unsigned char dec_lut[128] = {LUT16(0),  LUT16(16), LUT16(32),
					   LUT16(48), LUT16(64), LUT16(80),
					   LUT16(96), LUT16(112)};

/* A block holding any non-alphabet char is left to the AVX2 kernel. */
AVX512 static size_t avx512_dec_bulk(const unsigned char *in, size_t n,
				     unsigned char *out)
{
	const __m512i lo = _mm512_loadu_si512((const void *)dec_lut);
	const __m512i hi = _mm512_loadu_si512((const void *)(dec_lut + 64));
	/* After the multiply-adds, dword k holds the 24 bits of quantum k,
	 * its first byte highest: take bytes 2, 1, 0 of each. */
	const __m512i pack = _mm512_set_epi8(
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 61, 62, 56, 57,
	    58, 52, 53, 54, 48, 49, 50, 44, 45, 46, 40, 41, 42, 36, 37, 38, 32,
	    33, 34, 28, 29, 30, 24, 25, 26, 20, 21, 22, 16, 17, 18, 12, 13, 14,
	    8, 9, 10, 4, 5, 6, 0, 1, 2);
	size_t i;

	for (i = 0; n - i >= 64; i += 64, out += 48) {
		__m512i c = _mm512_loadu_si512((const void *)(in + i));
		__m512i s = _mm512_permutex2var_epi8(lo, c, hi);

		if (_mm512_movepi8_mask(_mm512_or_si512(c, s)))
			break;
		s = _mm512_maddubs_epi16(s, _mm512_set1_epi32(0x01400140));
		s = _mm512_madd_epi16(s, _mm512_set1_epi32(0x00011000));
		_mm512_mask_storeu_epi8(out, (__mmask64)0xffffffffffffULL,
					_mm512_permutexvar_epi8(pack, s));
	}
	return i + avx2_dec_bulk(in + i, n - i, out);
}
#endif

/* ---- backend selection ---- */

static const struct backend backends[] = {
    {"libb64", NULL, libb64_enc_bulk, libb64_enc_tail, libb64_dec_bulk,
     libb64_dec_quantum},
    {"scalar", NULL, scalar_enc_bulk, scalar_enc_tail, scalar_dec_bulk,
     scalar_dec_quantum},
#ifdef HAVE_AVX2_KERNELS
    {"avx2", avx2_usable, avx2_enc_bulk, scalar_enc_tail, avx2_dec_bulk,
     scalar_dec_quantum},
    {"avx512", avx512_usable, avx512_enc_bulk, scalar_enc_tail, avx512_dec_bulk,
     scalar_dec_quantum},
#endif
};

#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

static const struct backend *active;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static int try_select(const char *name)
{
	size_t i;

	for (i = 0; i < NBACKENDS; i++) {
		const struct backend *be = &backends[i];

		if (strcmp(name, be->name) == 0) {
			if (be->usable && !be->usable())
				return -1;
			active = be;
			return 0;
		}
	}
	return -1;
}

int codec_select(const char *name)
{
	if (strcmp(name, "auto") == 0)
		return try_select("avx512") == 0 || try_select("avx2") == 0
			   ? 0
			   : try_select("scalar");
	return try_select(name);
}

/* First use without codec_select: FILESERV_CODEC, else (or if it names
 * nothing this CPU runs) "auto". */
static void select_default(void)
{
	const char *env = getenv("FILESERV_CODEC");

	if (active)
		return;
	if (!env || codec_select(env) != 0)
		codec_select("auto");
}

static const struct backend *backend(void)
{
	pthread_once(&default_once, select_default);
	return active;
}

const char *codec_name(void)
{
	return backend()->name;
}

/* ---- streaming drivers ---- */

void b64_encoder_init(struct b64_encoder *enc)
{
	memset(enc, 0, sizeof(*enc));
}

size_t b64_encode_update(struct b64_encoder *enc, const void *in, size_t n,
			 char *out)
{
	const struct backend *be = backend();
	const unsigned char *p = in;
	size_t whole, written = 0;

	if (enc->ntail + n < 3) {
		while (n--)
			enc->tail[enc->ntail++] = *p++;
		return 0;
	}
	if (enc->ntail) {
		unsigned char group[3];
		size_t take = 3 - enc->ntail;

		memcpy(group, enc->tail, enc->ntail);
		memcpy(group + enc->ntail, p, take);
		be->enc_bulk(group, 3, out);
		p += take;
		n -= take;
		written = 4;
	}
	whole = n - n % 3;
	be->enc_bulk(p, whole, out + written);
	enc->ntail = n - whole;
	memcpy(enc->tail, p + whole, enc->ntail);
	return written + whole / 3 * 4;
}

size_t b64_encode_final(struct b64_encoder *enc, char *out)
{
	if (!enc->ntail)
		return 0;
	backend()->enc_tail(enc->tail, enc->ntail, out);
	enc->ntail = 0;
	return 4;
}

void b64_decoder_init(struct b64_decoder *dec)
{
	memset(dec, 0, sizeof(*dec));
}

/* The strict state machine, one char at a time. Returns the number of
 * bytes (1-3) in the quantum this char completed, 0 if it completed none,
 * -1 if the stream is invalid. */
static int dec_step(struct b64_decoder *dec, unsigned char c)
{
	uint32_t v = dec_shl[3][c];
	int nbytes;

	if (c == ' ' || c == '\t')
		return 0;
	if (dec->ended)
		return -1;
	if (c == '=') {
		if (dec->nquad < 2)
			return -1;
		dec->npad++;
		v = 0;
	} else if (v & DEC_BAD || dec->npad) {
		return -1;
	}
	dec->quad[dec->nquad++] = v;
	if (dec->nquad < 4)
		return 0;
	dec->nquad = 0;
	if (!dec->npad)
		return 3;
	/* Bits below the last byte must be zero, so that the input is the
	 * one and only encoding of its bytes. */
	if (dec->npad == 2 ? dec->quad[1] & 0x0f : dec->quad[2] & 0x03)
		return -1;
	nbytes = 3 - dec->npad;
	dec->npad = 0;
	dec->ended = 1;
	return nbytes;
}

/* Whether c ends the base64 text rather than being part of it (valid or
 * not): neither in the alphabet, nor '=', nor a space or tab. */
static int ends_text(unsigned char c)
{
	return dec_shl[3][c] & DEC_BAD && c != '=' && c != ' ' && c != '\t';
}

/* The two entry points' loop: the backend's bulk decoder over whole
 * quanta, the strict state machine for the rest; with stop, up to the
 * first byte that ends the text (left unread). */
static ssize_t decode(struct b64_decoder *dec, const unsigned char *p, size_t n,
		      unsigned char *o, int stop, size_t *used)
{
	const struct backend *be = backend();
	unsigned char *start = o;
	size_t i = 0, k;
	int nbytes;

	if (dec->failed)
		return -1;
	while (i < n) {
		if (!dec->nquad && !dec->ended) {
			k = be->dec_bulk(p + i, n - i, o);
			i += k;
			o += k / 4 * 3;
			if (i == n)
				break;
		}
		if (stop && ends_text(p[i]))
			break;
		nbytes = dec_step(dec, p[i++]);
		if (nbytes < 0) {
			dec->failed = 1;
			return -1;
		}
		if (nbytes) {
			be->dec_quantum(dec->quad, nbytes, o);
			o += nbytes;
		}
	}
	*used = i;
	return o - start;
}

ssize_t b64_decode_update(struct b64_decoder *dec, const char *in, size_t n,
			  void *out)
{
	size_t used;
	return decode(dec, (const unsigned char *)in, n, out, 0, &used);
}

ssize_t b64_decode_span(struct b64_decoder *dec, const char *in, size_t n,
			void *out, size_t *used)
{
	*used = 0;
	return decode(dec, (const unsigned char *)in, n, out, 1, used);
}

int b64_decode_final(struct b64_decoder *dec)
{
	return dec->failed || dec->nquad ? -1 : 0;
}
