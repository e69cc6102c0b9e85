/* units.h: numbers with unit suffixes ("10MB", "30s"), range-checked, and
 * their display (units.c). */
#ifndef FILESERV_UNITS_H
#define FILESERV_UNITS_H

#include "fileserv.h"

#include <stddef.h>
#include <stdint.h>

/* Parses "10MB", "1.5GiB", "4096" into bytes (kB = 1000, KiB = 1024).
 * Returns 0, or -1 with a message naming the value. */
int units_parse_size(const char *text, uint64_t *out, struct fs_status *st);
/* Parses "30s", "500ms", "2m", "1.5" (seconds) into seconds. */
int units_parse_seconds(const char *text, double *out, struct fs_status *st);
/* The same, for a timeout: more than 0. */
int units_parse_timeout(const char *text, double *out, struct fs_status *st);
/* Parses an absolute time into seconds since 1970 (UTC): epoch seconds
 * with an optional fraction ("1796032800.25"), or ISO 8601 with a
 * zone, "2026-11-30T10:00:00Z" (also ".250" fractions and +HH:MM). */
int units_parse_time(const char *text, double *out, struct fs_status *st);
/* Parses a decimal integer in [min, max]; the message names `what`. */
int units_parse_long(const char *text, long min, long max, const char *what,
		     long *out, struct fs_status *st);
/* Formats bytes as "12.3 MB" into buf. */
const char *units_format_bytes(double bytes, char *buf, size_t len);
/* Formats seconds as "42.5 s", "3 min 02 s", "5 h 07 min" or
 * "2 d 05 h" into buf. */
const char *units_format_seconds(double seconds, char *buf, size_t len);

#endif
