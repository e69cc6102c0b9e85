/* tests/check.h: the one assertion of the C unit programs. CHECK counts a
 * pass, or prints the failure (file, line, check_tag, the condition and a
 * message) and goes on. main runs each test function with RUN_TEST(fn,
 * args...), which prints "TEST PASSED FAILED fn" (the function's checks),
 * and returns check_done("t_name"), which prints "t_name: N passed, N
 * failed (N checks)" counting test functions: the lines tests/run.py
 * reads. */
#ifndef FILESERV_TESTS_CHECK_H
#define FILESERV_TESTS_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long check_passed, check_failed; /* checks, this test */
static unsigned long check_tests_passed, check_tests_failed, check_total;
static const char *check_tag = ""; /* what is under test, e.g. "[avx2] " */

#define CHECK(cond, fmt, ...)                                                  \
	do {                                                                   \
		if (cond) {                                                    \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			printf("FAIL %s:%d: %s%s: " fmt "\n", __FILE__,        \
			       __LINE__, check_tag, #cond, ##__VA_ARGS__);     \
		}                                                              \
	} while (0)

/* xorshift64: reproducible pseudo-random numbers; a program may reseed. */
static uint64_t check_rng = 0x9e3779b97f4a7c15ull;

static inline uint64_t rnd(void)
{
	check_rng ^= check_rng << 13;
	check_rng ^= check_rng >> 7;
	check_rng ^= check_rng << 17;
	return check_rng;
}

/* malloc that ends the program on failure (and never returns NULL). */
static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		perror("malloc");
		exit(2);
	}
	return p;
}

/* Runs one test function: its checks are counted apart and reported. */
#define RUN_TEST(fn, ...)                                                      \
	do {                                                                   \
		check_passed = check_failed = 0;                               \
		fn(__VA_ARGS__);                                               \
		check_report(#fn);                                             \
	} while (0)

static inline void check_report(const char *fn)
{
	printf("TEST %lu %lu %s\n", check_passed, check_failed, fn);
	check_total += check_passed + check_failed;
	if (check_failed)
		check_tests_failed++;
	else
		check_tests_passed++;
}

/* Prints the summary line; the exit status: 1 if anything failed. */
static inline int check_done(const char *name)
{
	printf("%s: %lu passed, %lu failed (%lu checks)\n", name,
	       check_tests_passed, check_tests_failed, check_total);
	return check_tests_failed != 0;
}

#endif
