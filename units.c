/* units.c: numbers as users type them ("10MB", "1.5GiB", "30s", "500ms"),
 * parsed with bounds and a message that names the bad value. */
#include "units.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct unit {
	const char *suffix;
	double factor;
};

static const struct unit size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1e3},
    {"kb", 1e3},
    {"m", 1e6},
    {"mb", 1e6},
    {"g", 1e9},
    {"gb", 1e9},
    {"t", 1e12},
    {"tb", 1e12},
    {"kib", 1024.0},
    {"mib", 1048576.0},
    {"gib", 1073741824.0},
    {"tib", 1099511627776.0},
    {NULL, 0},
};

static const struct unit time_units[] = {
    {"", 1},   {"s", 1},    {"ms", 1e-3}, {"us", 1e-6},
    {"m", 60}, {"h", 3600}, {NULL, 0},
};

/* Parses a non-negative decimal with a suffix from units. */
static int parse_scaled(const char *text, const struct unit *units, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (end == text || errno || !isfinite(v) || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	for (const struct unit *u = units; u->suffix; u++)
		if (strcasecmp(end, u->suffix) == 0) {
			*out = v * u->factor;
			return 0;
		}
	return -1;
}

int units_parse_size(const char *text, uint64_t *out, struct fs_status *st)
{
	double v;
	if (parse_scaled(text, size_units, &v) < 0 || v > 9e18)
		return fs_fail(st, FS_ERR_USAGE,
			       "invalid size '%s' (examples: 4096, 10MB, 1GiB)",
			       text);
	*out = (uint64_t)llround(v);
	return 0;
}

int units_parse_seconds(const char *text, double *out, struct fs_status *st)
{
	double v;
	if (parse_scaled(text, time_units, &v) < 0 || v > 1e9)
		return fs_fail(
		    st, FS_ERR_USAGE,
		    "invalid duration '%s' (examples: 30s, 500ms, 2m)", text);
	*out = v;
	return 0;
}

/* Digits, then an optional fraction: a fraction's value added to *v;
 * returns where the number ends, or NULL without digits. */
static const char *parse_fraction(const char *p, double *v)
{
	if (*p != '.')
		return p;
	double scale = 0.1;
	const char *start = ++p;
	for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
		*v += (*p - '0') * scale;
	return p > start ? p : NULL;
}

/* ISO 8601: 2026-11-30T10:00:00[.fff](Z|+HH:MM|-HH:MM); -1 if not. */
static int parse_iso8601(const char *text, double *out)
{
	struct tm tm = {0};
	int n = 0, zh = 0, zm = 0, sign = 0;
	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n != 19)
		return -1;
	double fraction = 0;
	const char *p = parse_fraction(text + n, &fraction);
	if (!p)
		return -1;
	if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (sscanf(p + 1, "%2d:%2d%n", &zh, &zm, &n) != 2 || n != 5 ||
		    zh > 23 || zm > 59)
			return -1;
		p += 1 + n;
	} else if (*p++ != 'Z') {
		return -1;
	}
	if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	int mday = tm.tm_mday;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != mday) /* 2026-02-30 */
		return -1;
	*out = (double)t + fraction - sign * (zh * 3600 + zm * 60);
	return 0;
}

int units_parse_time(const char *text, double *out, struct fs_status *st)
{
	size_t digits = strspn(text, "0123456789");
	double v = 0;
	const char *end = NULL;
	if (digits > 0 && digits <= 15 &&
	    (text[digits] == '.' || text[digits] == '\0')) {
		for (size_t i = 0; i < digits; i++)
			v = v * 10 + (text[i] - '0');
		end = parse_fraction(text + digits, &v);
	}
	if (end && *end == '\0') {
		*out = v;
		return 0;
	}
	if (parse_iso8601(text, out) == 0)
		return 0;
	return fs_fail(st, FS_ERR_USAGE,
		       "invalid time '%s' (epoch seconds such as "
		       "1796032800.5, or ISO 8601 UTC such as "
		       "2026-11-30T10:00:00Z)",
		       text);
}

int units_parse_timeout(const char *text, double *out, struct fs_status *st)
{
	if (units_parse_seconds(text, out, st) < 0)
		return -1;
	if (*out <= 0)
		return fs_fail(st, FS_ERR_USAGE,
			       "invalid timeout '%s' (must be more than 0)",
			       text);
	return 0;
}

int units_parse_long(const char *text, long min, long max, const char *what,
		     long *out, struct fs_status *st)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (end == text || *end || errno || v < min || v > max)
		return fs_fail(st, FS_ERR_USAGE,
			       "invalid %s '%s' (expected %ld to %ld)", what,
			       text, min, max);
	*out = v;
	return 0;
}

const char *units_format_bytes(double bytes, char *buf, size_t len)
{
	static const char *const names[] = {"B", "kB", "MB", "GB", "TB"};
	int i = 0;
	while (bytes >= 1000 && i < 4) {
		bytes /= 1000;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", bytes, names[i]);
	return buf;
}

const char *units_format_seconds(double seconds, char *buf, size_t len)
{
	long s = (long)seconds;
	if (seconds < 60)
		snprintf(buf, len, "%.1f s", seconds);
	else if (s < 3600)
		snprintf(buf, len, "%ld min %02ld s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%ld h %02ld min", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%ld d %02ld h", s / 86400,
			 s % 86400 / 3600);
	return buf;
}
