/* t_stats.c: unit tests for the latency histogram (stats.c) and the unit
 * parsers (units.c).
 *
 * Histogram quantiles are compared with the exact order statistic of the
 * same samples (sorted array, the element at index floor(q * (n - 1))):
 * log-linear buckets with 128 sub-buckets per power of two must land
 * within 1% from 1 microsecond to over an hour. Ends with "t_stats: N
 * passed, N failed (N checks)" (tests/check.h); exit status 1 if anything
 * failed. */
#include "fileserv.h"
#include "clock.h"
#include "stats.h"
#include "units.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

#define TOLERANCE 0.01

static double uniform01(void)
{
	return (double)(rnd() >> 11) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static struct histogram *hist_new(void)
{
	struct histogram *h = malloc(sizeof(*h));
	if (!h) {
		perror("malloc");
		exit(2);
	}
	hist_init(h);
	return h;
}

static int close_to(uint64_t got, uint64_t want)
{
	double diff = fabs((double)got - (double)want);
	return diff <= TOLERANCE * (double)want || diff <= 1.0;
}

static const double quantiles[] = {0,	0.01, 0.1,  0.25,  0.5,	   0.75,
				   0.9, 0.95, 0.99, 0.999, 0.9999, 1};
#define NQ (sizeof(quantiles) / sizeof(*quantiles))

/* Records v[0..n) and compares every quantile with the exact one. */
static void check_distribution(const char *what, uint64_t *v, size_t n)
{
	struct histogram *h = hist_new();
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		hist_record(h, v[i]);
		sum += (double)v[i];
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	CHECK(h->n == n, "%s: n %llu", what, (unsigned long long)h->n);
	CHECK(h->min_ns == v[0] && h->max_ns == v[n - 1],
	      "%s: min %llu max %llu, want %llu %llu", what,
	      (unsigned long long)h->min_ns, (unsigned long long)h->max_ns,
	      (unsigned long long)v[0], (unsigned long long)v[n - 1]);
	CHECK(fabs(h->sum_ns - sum) <= 1e-9 * sum, "%s: sum", what);
	uint64_t last = 0;
	for (size_t i = 0; i < NQ; i++) {
		double q = quantiles[i];
		uint64_t want = v[(size_t)(q * (double)(n - 1))];
		uint64_t got = hist_quantile(h, q);
		CHECK(close_to(got, want), "%s: q%g = %llu, exact %llu", what,
		      q, (unsigned long long)got, (unsigned long long)want);
		CHECK(got >= last, "%s: q%g = %llu below the previous %llu",
		      what, q, (unsigned long long)got,
		      (unsigned long long)last);
		CHECK(got >= h->min_ns && got <= h->max_ns,
		      "%s: q%g = %llu outside [min, max]", what, q,
		      (unsigned long long)got);
		last = got;
	}
	free(h);
}

static void test_distributions(void)
{
	size_t n = 200000;
	uint64_t *v = malloc(n * sizeof(*v));
	if (!v)
		exit(2);

	for (size_t i = 0; i < n; i++) /* uniform 1 us .. 100 ms */
		v[i] = 1000 + rnd() % 100000000;
	check_distribution("uniform", v, n);
	for (size_t i = 0; i < n; i++) /* exponential, mean 2 ms */
		v[i] = (uint64_t)(-log(1 - uniform01()) * 2e6) + 1;
	check_distribution("exponential", v, n);
	for (size_t i = 0; i < n; i++) /* log-uniform 1 ns .. ~1100 s */
		v[i] = (uint64_t)exp(uniform01() * log(1.1e12)) + 1;
	check_distribution("log-uniform", v, n);
	for (size_t i = 0; i < n; i++) /* bimodal: cache hits and misses */
		v[i] = i % 10 ? 50000 + rnd() % 1000 : 80000000 + rnd() % 4000;
	check_distribution("bimodal", v, n);
	for (size_t i = 0; i < 1000; i++) /* small values are exact */
		v[i] = rnd() % 40;
	check_distribution("small", v, 1000);
	for (size_t i = 0; i < 1000; i++) /* 1 to 2 hours */
		v[i] = 3600000000000ull + rnd() % 3600000000000ull;
	check_distribution("hours", v, 1000);
	v[0] = 123456789;
	check_distribution("one sample", v, 1);
	for (size_t i = 0; i < 100; i++)
		v[i] = 777;
	check_distribution("constant", v, 100);
	free(v);

	/* every value round-trips within the bucket precision */
	for (uint64_t x = 1; x < (1ull << HIST_MAX_BITS); x = x * 3 / 2 + 1) {
		struct histogram *h = hist_new();
		hist_record(h, x);
		hist_record(h, x + x / 100);
		uint64_t got = hist_quantile(h, 0);
		CHECK(close_to(got, x), "value %llu comes back as %llu",
		      (unsigned long long)x, (unsigned long long)got);
		free(h);
	}
}

static void test_empty_and_edges(void)
{
	struct histogram *h = hist_new();
	CHECK(h->n == 0, "empty n");
	for (size_t i = 0; i < NQ; i++)
		CHECK(hist_quantile(h, quantiles[i]) == 0, "empty q%g = %llu",
		      quantiles[i],
		      (unsigned long long)hist_quantile(h, quantiles[i]));
	hist_record(h, 0);
	CHECK(h->n == 1 && h->min_ns == 0 && h->max_ns == 0 &&
		  hist_quantile(h, 0.5) == 0,
	      "a zero sample");
	hist_record(h, UINT64_MAX);
	CHECK(h->max_ns == UINT64_MAX && hist_quantile(h, 1) == UINT64_MAX,
	      "beyond the range, the maximum: q1 = %llu",
	      (unsigned long long)hist_quantile(h, 1));
	CHECK(hist_quantile(h, 0) == 0, "q0 with a zero sample");
	free(h);

	/* two values: the median is the lower one, q1 the upper one */
	h = hist_new();
	hist_record(h, 1000);
	hist_record(h, 5000000);
	CHECK(close_to(hist_quantile(h, 0.5), 1000), "median of two = %llu",
	      (unsigned long long)hist_quantile(h, 0.5));
	CHECK(close_to(hist_quantile(h, 1), 5000000), "max of two = %llu",
	      (unsigned long long)hist_quantile(h, 1));
	free(h);
}

static void test_merge(void)
{
	struct histogram *all = hist_new(), *a = hist_new(), *b = hist_new();
	struct histogram *empty = hist_new(), *e2 = hist_new();
	for (int i = 0; i < 100000; i++) {
		uint64_t x = (uint64_t)exp(uniform01() * log(1e10)) + 1;
		hist_record(all, x);
		hist_record(i % 3 ? a : b, x); /* uneven halves */
	}
	hist_merge(a, b);
	CHECK(a->n == all->n, "merged n %llu vs %llu", (unsigned long long)a->n,
	      (unsigned long long)all->n);
	CHECK(memcmp(a->count, all->count, sizeof(all->count)) == 0,
	      "merged buckets differ");
	CHECK(a->min_ns == all->min_ns && a->max_ns == all->max_ns,
	      "merged min/max");
	CHECK(fabs(a->sum_ns - all->sum_ns) <= 1e-9 * all->sum_ns,
	      "merged sum");
	for (size_t i = 0; i < NQ; i++)
		CHECK(hist_quantile(a, quantiles[i]) ==
			  hist_quantile(all, quantiles[i]),
		      "merged q%g", quantiles[i]);

	/* empty into full changes nothing; full into empty copies it */
	uint64_t q50 = hist_quantile(all, 0.5);
	hist_merge(all, empty);
	CHECK(all->n == a->n && all->min_ns == a->min_ns &&
		  hist_quantile(all, 0.5) == q50,
	      "merging an empty histogram");
	hist_merge(empty, all);
	CHECK(empty->n == all->n && empty->min_ns == all->min_ns &&
		  empty->max_ns == all->max_ns &&
		  hist_quantile(empty, 0.5) == q50,
	      "merging into an empty histogram: min %llu",
	      (unsigned long long)empty->min_ns);
	struct histogram *e3 = hist_new();
	hist_merge(e2, e3);
	CHECK(e2->n == 0 && hist_quantile(e2, 0.5) == 0, "empty + empty");
	free(e3);
	free(all);
	free(a);
	free(b);
	free(empty);
	free(e2);
}

/* ---- units ---- */

static void size_ok(int line, const char *text, uint64_t want)
{
	struct fs_status st = {0};
	uint64_t got = 12345;
	int rc = units_parse_size(text, &got, &st);
	CHECK(rc == 0 && got == want, "line %d: size '%s': rc %d, %llu (%s)",
	      line, text, rc, (unsigned long long)got, st.message);
}

static void size_bad(int line, const char *text)
{
	struct fs_status st = {0};
	uint64_t got = 12345;
	int rc = units_parse_size(text, &got, &st);
	CHECK(rc == -1 && st.code == FS_ERR_USAGE && strstr(st.message, text),
	      "line %d: size '%s': rc %d, %llu, message '%s'", line, text, rc,
	      (unsigned long long)got, st.message);
}

static void seconds_ok(int line, const char *text, double want)
{
	struct fs_status st = {0};
	double got = -1;
	int rc = units_parse_seconds(text, &got, &st);
	CHECK(rc == 0 && fabs(got - want) <= 1e-9 * (want + 1),
	      "line %d: seconds '%s': rc %d, %g (%s)", line, text, rc, got,
	      st.message);
}

static void seconds_bad(int line, const char *text)
{
	struct fs_status st = {0};
	double got = -1;
	int rc = units_parse_seconds(text, &got, &st);
	CHECK(rc == -1 && st.code == FS_ERR_USAGE && strstr(st.message, text),
	      "line %d: seconds '%s': rc %d, %g, message '%s'", line, text, rc,
	      got, st.message);
}

static void long_case(int line, const char *text, long min, long max, int ok,
		      long want)
{
	struct fs_status st = {0};
	long got = -12345;
	int rc = units_parse_long(text, min, max, "worker count", &got, &st);
	if (ok)
		CHECK(rc == 0 && got == want,
		      "line %d: long '%s' in [%ld, %ld]: rc %d, %ld (%s)", line,
		      text, min, max, rc, got, st.message);
	else
		CHECK(rc == -1 && st.code == FS_ERR_USAGE &&
			  strstr(st.message, "worker count") &&
			  strstr(st.message, text),
		      "line %d: long '%s' in [%ld, %ld]: rc %d, %ld, '%s'",
		      line, text, min, max, rc, got, st.message);
}

#define SIZE_OK(t, v)	      size_ok(__LINE__, t, v)
#define SIZE_BAD(t)	      size_bad(__LINE__, t)
#define SECONDS_OK(t, v)      seconds_ok(__LINE__, t, v)
#define SECONDS_BAD(t)	      seconds_bad(__LINE__, t)
#define LONG_OK(t, lo, hi, v) long_case(__LINE__, t, lo, hi, 1, v)
#define LONG_BAD(t, lo, hi)   long_case(__LINE__, t, lo, hi, 0, 0)

static void test_units(void)
{
	SIZE_OK("0", 0);
	SIZE_OK("4096", 4096);
	SIZE_OK("1b", 1);
	SIZE_OK("1B", 1);
	SIZE_OK("10MB", 10000000);
	SIZE_OK("10mb", 10000000);
	SIZE_OK("10M", 10000000);
	SIZE_OK("10 MB", 10000000);
	SIZE_OK("1kB", 1000);
	SIZE_OK("1k", 1000);
	SIZE_OK("1KiB", 1024);
	SIZE_OK("8MiB", 8388608);
	SIZE_OK("1.5GiB", 1610612736);
	SIZE_OK("1.5GB", 1500000000);
	SIZE_OK("2TB", 2000000000000ull);
	SIZE_OK("1TiB", 1099511627776ull);
	SIZE_OK("0.5KiB", 512);
	SIZE_BAD("");
	SIZE_BAD("MB");
	SIZE_BAD("abc");
	SIZE_BAD("-1");
	SIZE_BAD("-1MB");
	SIZE_BAD("10XB");
	SIZE_BAD("10 M B");
	SIZE_BAD("10MBs");
	SIZE_BAD("10MB ");
	SIZE_BAD("1e30");
	SIZE_BAD("10000000TB"); /* 1e19 */
	SIZE_BAD("nan");
	SIZE_BAD("inf");
	SIZE_BAD("10s");

	SECONDS_OK("30s", 30);
	SECONDS_OK("30", 30);
	SECONDS_OK("1.5", 1.5);
	SECONDS_OK("500ms", 0.5);
	SECONDS_OK("250us", 0.00025);
	SECONDS_OK("2m", 120);
	SECONDS_OK("1h", 3600);
	SECONDS_OK("0", 0);
	SECONDS_OK("2S", 2);
	SECONDS_OK("0.1s", 0.1);
	SECONDS_BAD("");
	SECONDS_BAD("s");
	SECONDS_BAD("-1s");
	SECONDS_BAD("10x");
	SECONDS_BAD("1d");
	SECONDS_BAD("5 sec");
	SECONDS_BAD("nan");
	SECONDS_BAD("inf");
	SECONDS_BAD("1e10");
	SECONDS_BAD("10MB");

	LONG_OK("5", 1, 10, 5);
	LONG_OK("1", 1, 10, 1);
	LONG_OK("10", 1, 10, 10);
	LONG_OK("0", 0, 65535, 0);
	LONG_OK("65535", 0, 65535, 65535);
	LONG_OK("-3", -5, 5, -3);
	LONG_OK("1024", 1, 1024, 1024);
	LONG_BAD("0", 1, 10);
	LONG_BAD("11", 1, 10);
	LONG_BAD("1025", 1, 1024);
	LONG_BAD("65536", 0, 65535);
	LONG_BAD("-1", 0, 65535);
	LONG_BAD("", 1, 10);
	LONG_BAD("x", 1, 10);
	LONG_BAD("5x", 1, 10);
	LONG_BAD("5 ", 1, 10);
	LONG_BAD("1.5", 1, 10);
	LONG_BAD("1e3", 1, 10000);
	LONG_BAD("99999999999999999999", 0, 100);
	LONG_BAD("-99999999999999999999", -100, 100);

	char buf[32];
	CHECK(strcmp(units_format_bytes(0, buf, sizeof(buf)), "0 B") == 0,
	      "'%s'", buf);
	CHECK(strcmp(units_format_bytes(999, buf, sizeof(buf)), "999 B") == 0,
	      "'%s'", buf);
	CHECK(strcmp(units_format_bytes(1500, buf, sizeof(buf)), "1.5 kB") == 0,
	      "'%s'", buf);
	CHECK(strcmp(units_format_bytes(12.3e6, buf, sizeof(buf)), "12.3 MB") ==
		  0,
	      "'%s'", buf);
	double t0 = clock_now();
	usleep(20000);
	double dt = clock_now() - t0;
	CHECK(dt >= 0.019 && dt < 2, "clock_now advanced %g s", dt);
}

int main(void)
{
	alarm(120); /* never hang the suite */
	setvbuf(stdout, NULL, _IOLBF, 0);
	check_rng = 0x2545f4914f6cdd1dull; /* the seed its tolerances met */
	RUN_TEST(test_distributions);
	RUN_TEST(test_empty_and_edges);
	RUN_TEST(test_merge);
	RUN_TEST(test_units);
	return check_done("t_stats");
}
