/* t_segment.c: unit tests for a distributed run's segments (segment.c):
 * --segment and the launchers' variables, the refusals that name the bad
 * variable, the exact split of clients and arrivals, --start-at's times
 * and --out-json's names. Ends with "t_segment: N passed, N failed"; exit
 * status 1 if anything failed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fileserv.h"
#include "result.h"
#include "segment.h"
#include "units.h"

static const char *const variables[] = {
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_RANK",
    "PMI_SIZE",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "JOB_COMPLETION_INDEX",
    "FILESERV_SEGMENTS",
    NULL,
};

static void clear_environment(void)
{
	for (int i = 0; variables[i]; i++)
		unsetenv(variables[i]);
}

/* Resolves with the environment as set; 0 or -1 (st set). */
static int resolve(const char *option, const char *total, struct segment *s,
		   struct fs_status *st)
{
	memset(st, 0, sizeof(*st));
	return segment_resolve(option, total, s, st);
}

static void test_option(void)
{
	struct segment s;
	struct fs_status st;
	clear_environment();
	CHECK(resolve(NULL, NULL, &s, &st) == 0 && s.index == 0 &&
		  s.count == 1 && strcmp(s.source, "none") == 0,
	      "no segment: the whole run");
	CHECK(resolve("2/3", NULL, &s, &st) == 0 && s.index == 2 &&
		  s.count == 3 && strcmp(s.source, "option") == 0,
	      "%s", st.message);
	CHECK(resolve("0/1", "1", &s, &st) == 0, "%s", st.message);
	/* the option wins over a launcher (a batch script outside srun) */
	setenv("SLURM_PROCID", "0", 1);
	setenv("SLURM_NTASKS", "4", 1);
	CHECK(resolve("0/1", NULL, &s, &st) == 0 && s.count == 1 &&
		  strcmp(s.source, "option") == 0,
	      "%s", st.message);
	clear_environment();
}

/* The refusal of one value; its message holds `word`. */
static void refused(const char *option, const char *total, const char *word)
{
	struct segment s;
	struct fs_status st;
	int rc = resolve(option, total, &s, &st);
	CHECK(rc == -1 && st.code == FS_ERR_USAGE &&
		  strstr(st.message, word) != NULL,
	      "%s / %s: '%s' should name %s", option ? option : "-",
	      total ? total : "-", st.message, word);
}

static void test_bad_option(void)
{
	clear_environment();
	refused("3/3", NULL, "segment 3 of 3");
	refused("0/0", NULL, "--segment count='0'");
	refused("1", NULL, "INDEX/COUNT");
	refused("a/2", NULL, "--segment index='a'");
	refused("-1/2", NULL, "'-1'");
	refused("1/2x", NULL, "'2x'");
	refused(" 1/2", NULL, "' 1'");
	refused("1/200000", NULL, "'200000'");
	refused("1/99999999999999999999", NULL, "99999999999999999999");
	refused("1/2", "3", "disagrees with --segments 3");
	refused(NULL, "x", "--segments='x'");
	refused(NULL, "4", "--segments 4 without an index");
}

static void test_launchers(void)
{
	struct segment s;
	struct fs_status st;
	static const char *const pairs[][3] = {
	    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI"},
	    {"PMI_RANK", "PMI_SIZE", "PMI"},
	    {"SLURM_PROCID", "SLURM_NTASKS", "SLURM"},
	};
	for (int i = 0; i < 3; i++) {
		clear_environment();
		setenv(pairs[i][0], "3", 1);
		setenv(pairs[i][1], "5", 1);
		CHECK(resolve(NULL, NULL, &s, &st) == 0 && s.index == 3 &&
			  s.count == 5 && strcmp(s.source, pairs[i][2]) == 0,
		      "%s: %s", pairs[i][2], st.message);
		CHECK(resolve(NULL, "5", &s, &st) == 0, "agreeing --segments");
		refused(NULL, "4", "disagrees with --segments 4");
		setenv("FILESERV_SEGMENTS", "6", 1);
		refused(NULL, NULL, "disagrees with FILESERV_SEGMENTS 6");
		unsetenv("FILESERV_SEGMENTS");
		setenv(pairs[i][0], "5", 1);
		refused(NULL, NULL, pairs[i][0]);
		setenv(pairs[i][0], "x1", 1);
		refused(NULL, NULL, "='x1'");
		setenv(pairs[i][1], "0", 1);
		setenv(pairs[i][0], "0", 1);
		refused(NULL, NULL, "='0'");
		unsetenv(pairs[i][1]);
		refused(NULL, NULL, "is not");
		unsetenv(pairs[i][0]);
		setenv(pairs[i][1], "4", 1);
		refused(NULL, NULL, pairs[i][0]);
	}
	/* Open MPI under Slurm: the launcher that started the process wins */
	clear_environment();
	setenv("SLURM_PROCID", "0", 1);
	setenv("SLURM_NTASKS", "1", 1);
	setenv("OMPI_COMM_WORLD_RANK", "1", 1);
	setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
	CHECK(resolve(NULL, NULL, &s, &st) == 0 && s.index == 1 &&
		  strcmp(s.source, "OMPI") == 0,
	      "%s", st.message);
	clear_environment();
}

static void test_indexed_job(void)
{
	struct segment s;
	struct fs_status st;
	clear_environment();
	setenv("JOB_COMPLETION_INDEX", "2", 1);
	refused(NULL, NULL, "--segments N or FILESERV_SEGMENTS");
	CHECK(resolve(NULL, "3", &s, &st) == 0 && s.index == 2 &&
		  s.count == 3 && strcmp(s.source, "K8S") == 0,
	      "%s", st.message);
	setenv("FILESERV_SEGMENTS", "4", 1);
	CHECK(resolve(NULL, NULL, &s, &st) == 0 && s.count == 4, "%s",
	      st.message);
	refused(NULL, "2", "segment 2 of 2");
	setenv("FILESERV_SEGMENTS", "", 1);
	refused(NULL, NULL, "FILESERV_SEGMENTS=''");
	clear_environment();
}

/* For every total and count, the blocks tile 0..total-1 in order and
 * differ in size by at most one, the larger ones first. */
static void test_share(void)
{
	int tiled = 1, even = 1;
	for (long total = 0; total <= 40; total++)
		for (int n = 1; n <= 9; n++) {
			long next = 0, prev = total;
			for (int i = 0; i < n; i++) {
				struct segment s = {i, n, "option", ""};
				long first, count;
				segment_share(&s, total, &first, &count);
				tiled &= first == next;
				even &= count <= prev && count >= total / n &&
					count <= total / n + 1;
				next = first + count;
				prev = count;
			}
			tiled &= next == total;
		}
	CHECK(tiled, "the blocks tile the clients");
	CHECK(even, "the remainder goes to the first instances");
	struct segment s = {1, 3, "option", ""};
	long first, count;
	segment_share(&s, 10, &first, &count);
	CHECK(first == 4 && count == 3, "10 clients, 1/3: %ld+%ld", first,
	      count);
	s.index = 0;
	segment_share(&s, 10, &first, &count);
	CHECK(first == 0 && count == 4, "10 clients, 0/3: %ld+%ld", first,
	      count);
	s = (struct segment){3, 4, "option", ""};
	segment_share(&s, 2, &first, &count);
	CHECK(count == 0 && first == 2, "2 clients, 3/4: none");
}

/* The instances' arrivals interleave: together each index once. */
static void test_arrivals(void)
{
	enum { N = 7, M = 1000 };
	static unsigned char seen[M];
	int once = 1;
	for (int i = 0; i < N; i++) {
		struct segment s = {i, N, "option", ""};
		for (uint64_t k = 0;; k++) {
			uint64_t g = segment_arrival(&s, k);
			if (g >= M)
				break;
			once &= g % N == (uint64_t)i;
			seen[g]++;
		}
	}
	for (int k = 0; k < M; k++)
		once &= seen[k] == 1;
	CHECK(once, "every arrival in exactly one instance");
	struct segment whole = {0, 1, "none", ""};
	CHECK(segment_arrival(&whole, 41) == 41, "a whole run keeps its order");
}

/* --start-at's syntax: epoch seconds or ISO 8601 with a zone. */
static void test_start_time(void)
{
	static const struct {
		const char *text;
		double want;
	} good[] = {
	    {"1796032800", 1796032800},
	    {"1796032800.25", 1796032800.25},
	    {"2026-11-30T10:00:00Z", 1796032800},
	    {"2026-11-30T10:00:00.5Z", 1796032800.5},
	    {"2026-11-30T12:30:00+02:30", 1796032800},
	    {"2026-11-30T08:00:00-02:00", 1796032800},
	};
	static const char *const bad[] = {
	    "",
	    ".5",
	    "12.",
	    "1e9",
	    "-5",
	    "2026-11-30T10:00:00",
	    "2026-11-30 10:00:00Z",
	    "2026-13-01T00:00:00Z",
	    "2026-02-30T00:00:00Z",
	    "2026-11-30T24:00:00Z",
	    "2026-11-30T10:00:00Zjunk",
	    "2026-11-30T10:00:00+2",
	    "2026-1-30T10:00:00Z",
	};
	struct fs_status st;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		double t = 0;
		CHECK(units_parse_time(good[i].text, &t, &st) == 0 &&
			  fabs(t - good[i].want) < 1e-6,
		      "%s: %.6f (%s)", good[i].text, t, st.message);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		double t = 0;
		CHECK(units_parse_time(bad[i], &t, &st) == -1 &&
			  st.code == FS_ERR_USAGE &&
			  strstr(st.message, bad[i]) != NULL,
		      "'%s' accepted as %.6f", bad[i], t);
	}
}

/* --out-json's names: %r, %n and %% expanded, anything else refused. */
static void test_result_path(void)
{
	struct segment s = {2, 13, "option", ""};
	struct fs_status st;
	char out[32];
	CHECK(result_path("r-%r-of-%n.json", &s, out, sizeof(out), &st) == 0 &&
		  strcmp(out, "r-2-of-13.json") == 0,
	      "%s", out);
	CHECK(result_path("100%%-%r", &s, out, sizeof(out), &st) == 0 &&
		  strcmp(out, "100%-2") == 0,
	      "%s", out);
	CHECK(result_path("plain.json", &s, out, sizeof(out), &st) == 0 &&
		  strcmp(out, "plain.json") == 0,
	      "%s", out);
	CHECK(result_path("r-%x", &s, out, sizeof(out), &st) == -1 &&
		  strstr(st.message, "'%x'"),
	      "%s", st.message);
	CHECK(result_path("r-%", &s, out, sizeof(out), &st) == -1, "a lone %%");
	CHECK(result_path("012345678901234567890123456789%r", &s, out,
			  sizeof(out), &st) == 0,
	      "31 bytes fit");
	CHECK(result_path("012345678901234567890123456789%n", &s, out,
			  sizeof(out), &st) == -1 &&
		  strstr(st.message, "too long"),
	      "32 do not");
}

int main(void)
{
	RUN_TEST(test_option);
	RUN_TEST(test_bad_option);
	RUN_TEST(test_launchers);
	RUN_TEST(test_indexed_job);
	RUN_TEST(test_share);
	RUN_TEST(test_arrivals);
	RUN_TEST(test_start_time);
	RUN_TEST(test_result_path);
	return check_done("t_segment");
}
