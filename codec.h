/* codec.h: streaming base64 (RFC 4648 standard alphabet, '=' padded, no
 * line breaks ever), with interchangeable backends: Debian's libb64 (the
 * reference), a portable scalar path, an AVX2 path and an AVX-512 VBMI
 * path.
 *
 * Both directions are streaming: state is carried across calls, so input
 * may be split at any byte. Decoding is strict: spaces and tabs are skipped,
 * every other byte outside the alphabet, misplaced or missing padding and
 * non-zero trailing bits fail the stream. */
#ifndef FILESERV_CODEC_H
#define FILESERV_CODEC_H

#include <stddef.h>
#include <sys/types.h>

/* Upper bounds for the output of one update call on n input bytes. */
#define B64_ENCODED_MAX(n) (((n) + 2) / 3 * 4 + 4)
#define B64_DECODED_MAX(n) ((n) / 4 * 3 + 3)

struct b64_encoder {
	unsigned char tail[2]; /* input bytes not yet forming a group of 3 */
	unsigned ntail;
};

struct b64_decoder {
	unsigned char quad[4]; /* sextets of an incomplete quantum */
	unsigned nquad;
	unsigned npad; /* '=' seen in the current quantum */
	int ended;     /* a padded quantum closed the stream */
	int failed;
};

/* Selects the backend for the whole process: "auto" (fastest this CPU
 * runs: avx512, else avx2, else scalar), "libb64", "scalar", "avx2" or
 * "avx512". Returns 0, or -1 if the name is
 * unknown or the CPU cannot run it. Call before starting threads. */
int codec_select(const char *name);
/* Name of the backend in use. */
const char *codec_name(void);

void b64_encoder_init(struct b64_encoder *enc);
/* Encodes n bytes; writes at most B64_ENCODED_MAX(n) chars to out and
 * returns how many it wrote. */
size_t b64_encode_update(struct b64_encoder *enc, const void *in, size_t n,
			 char *out);
/* Flushes the last partial group with padding; returns chars written (0-4). */
size_t b64_encode_final(struct b64_encoder *enc, char *out);

void b64_decoder_init(struct b64_decoder *dec);
/* Decodes n chars; writes at most B64_DECODED_MAX(n) bytes to out and
 * returns how many, or -1 on invalid input (the decoder stays failed). */
ssize_t b64_decode_update(struct b64_decoder *dec, const char *in, size_t n,
			  void *out);
/* Decodes the base64 text at the start of in (alphabet, '=', spaces and
 * tabs) up to the first other byte, which it leaves unread, so that a
 * caller finds the text's end in the same pass: *used is how many chars
 * it took (n if no byte ended it). Returns the bytes written to out (at
 * most B64_DECODED_MAX(*used)), or -1 on invalid input, as above. */
ssize_t b64_decode_span(struct b64_decoder *dec, const char *in, size_t n,
			void *out, size_t *used);
/* Returns 0 if the stream ended on a complete quantum, -1 otherwise. */
int b64_decode_final(struct b64_decoder *dec);

#endif
