/* t_load.c: unit tests for the open model's schedule (arrival.c) and the
 * stress thresholds (threshold.c). Ends with "t_load: N passed, N failed";
 * exit status 1 if anything failed. */
#include <math.h>
#include <string.h>

#include "arrival.h"
#include "check.h"
#include "fileserv.h"
#include "stats.h"
#include "threshold.h"

static int near(double a, double b, double tol)
{
	return fabs(a - b) <= tol;
}

static void test_constant_rate(void)
{
	struct arrival_plan p = {.start_rate = 1000, .duration = 2};
	struct fs_status st;
	CHECK(arrival_check(&p, &st) == 0, "%s", st.message);
	struct arrival_clock c;
	arrival_clock_init(&c, &p);
	CHECK(arrival_clock_at(&c, 0) == 0, "first arrival at 0");
	CHECK(near(arrival_clock_at(&c, 1), 0.001, 1e-12), "1 ms apart");
	CHECK(near(arrival_clock_at(&c, 1999), 1.999, 1e-9), "last one");
	CHECK(arrival_clock_at(&c, 2000) == -1, "the end of the plan");
	CHECK(arrival_total(&p) == 2000 && arrival_length(&p) == 2, "total");
	p.duration = 0; /* no end */
	CHECK(near(arrival_clock_at(&c, 1000000), 1000, 1e-6), "no end");
}

static void test_stages(void)
{
	struct arrival_plan p = {0};
	struct fs_status st;
	CHECK(arrival_parse_stages("10s:100,30s:500,10s:0", &p, &st) == 0, "%s",
	      st.message);
	CHECK(p.nstages == 3 && p.stage[1].seconds == 30 &&
		  p.stage[1].rate == 500,
	      "parsed");
	CHECK(arrival_check(&p, &st) == 0, "%s", st.message);
	/* 0 -> 100 over 10 s: 500; 100 -> 500 over 30 s: 9000; 500 -> 0
	 * over 10 s: 2500 */
	CHECK(near(arrival_total(&p), 12000, 1e-9), "total %g",
	      arrival_total(&p));
	CHECK(arrival_length(&p) == 50, "length");
	CHECK(near(arrival_rate_at(&p, 5), 50, 1e-12) &&
		  near(arrival_rate_at(&p, 25), 300, 1e-12) &&
		  arrival_rate_at(&p, 60) == 0,
	      "rates on the ramps");
	/* on the first ramp N(t) = 5 t^2: the 125th arrival at t = 5 */
	CHECK(near(arrival_time_of(&p, 125), 5, 1e-9), "ramp inverse %g",
	      arrival_time_of(&p, 125));
	CHECK(near(arrival_time_of(&p, 500), 10, 1e-9), "stage boundary");
	CHECK(near(arrival_time_of(&p, 9500), 40, 1e-6), "second boundary");
	CHECK(arrival_time_of(&p, 12000.5) == -1, "past the end");
	/* every arrival time is non-decreasing and its count is right */
	double last = 0;
	int ordered = 1, exact = 1;
	for (int k = 0; k < 12000; k += 7) {
		double t = arrival_time_of(&p, k);
		ordered &= t >= last;
		last = t;
		double n = 0, r0 = 0, t0 = 0;
		for (int i = 0; i < p.nstages && t0 < t; i++) {
			double tau = fmin(t - t0, p.stage[i].seconds);
			n += r0 * tau + (p.stage[i].rate - r0) * tau * tau /
					    (2 * p.stage[i].seconds);
			t0 += p.stage[i].seconds;
			r0 = p.stage[i].rate;
		}
		exact &= near(n, k, 1e-6 * (k + 1));
	}
	CHECK(ordered && exact, "inverse of the cumulative count");
}

/* Client stages: 0 -> 2 clients over 1 s, 2 for 1 s, down to 0 in 1 s.
 * Worker k runs while the plan is at least k - 0.5. */
static void test_client_stages(void)
{
	struct arrival_plan p = {0};
	struct fs_status st;
	CHECK(arrival_parse_stages("1s:2,1s:2,1s:0", &p, &st) == 0, "%s",
	      st.message);
	CHECK(near(arrival_time_reaching(&p, 0.5, 0), 0.25, 1e-12),
	      "worker 1 joins a quarter into the ramp");
	CHECK(near(arrival_time_reaching(&p, 1.5, 0), 0.75, 1e-12),
	      "worker 2 at three quarters");
	CHECK(near(arrival_time_reaching(&p, 1.5, 1.5), 1.5, 1e-12),
	      "on the plateau: now");
	CHECK(near(arrival_time_reaching(&p, 0.5, 2.5), 2.5, 1e-12),
	      "ramping down, still above");
	CHECK(arrival_time_reaching(&p, 1.5, 2.9) == -1,
	      "below for the rest of the plan");
	CHECK(arrival_time_reaching(&p, 3, 0) == -1, "never that many");
	CHECK(arrival_time_reaching(&p, 0.5, 3) == -1, "after the end");
}

static void test_bad_stages(void)
{
	const char *bad[] = {"",      "10s",	 "10s:-1",     "0s:100",
			     "x:100", "10s:1e9", "10s:0,5s:0", "10s:abc"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct arrival_plan p = {0};
		struct fs_status st = {0};
		int rc = arrival_parse_stages(bad[i], &p, &st);
		if (rc == 0)
			rc = arrival_check(&p, &st);
		CHECK(rc < 0 && st.code == FS_ERR_USAGE && st.message[0],
		      "'%s' refused", bad[i]);
	}
	struct arrival_plan p = {.start_rate = 0};
	struct fs_status st;
	CHECK(arrival_check(&p, &st) < 0 && strstr(st.message, "above 0"),
	      "rate 0: %s", st.message);
	p.start_rate = NAN;
	CHECK(arrival_check(&p, &st) < 0, "NaN rate");
}

static void test_poisson(void)
{
	struct arrival_plan p = {.start_rate = 500, .poisson = 1, .seed = 42};
	struct arrival_clock a, b;
	arrival_clock_init(&a, &p);
	arrival_clock_init(&b, &p);
	int n = 100000;
	double last = 0, sum = 0, sum2 = 0;
	int ordered = 1, same = 1;
	for (int k = 0; k < n; k++) {
		double t = arrival_clock_at(&a, (uint64_t)k);
		ordered &= t > last;
		double gap = t - last;
		sum += gap;
		sum2 += gap * gap;
		last = t;
		if (k % 4 == 3) /* another process taking every 4th arrival */
			same &= arrival_clock_at(&b, (uint64_t)k) == t;
	}
	double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
	CHECK(ordered && same, "ordered, and the same schedule when skipping");
	CHECK(near(mean, 1.0 / 500, 0.02 / 500), "mean gap %g", mean);
	CHECK(near(sd / mean, 1, 0.02), "exponential gaps: cv %g", sd / mean);
	p.seed = 43;
	arrival_clock_init(&a, &p);
	CHECK(arrival_clock_at(&a, 10) != arrival_clock_at(&b, 10),
	      "another seed, another schedule");
}

static void test_threshold_parse(void)
{
	struct threshold t;
	struct fs_status st;
	CHECK(threshold_parse("p99<50ms", &t, &st) == 0 &&
		  t.metric == TH_LATENCY && t.quantile == 0.99 && t.below &&
		  !t.or_equal && near(t.limit, 0.05, 1e-12),
	      "p99<50ms");
	CHECK(threshold_parse("p99.9 <= 1.5s", &t, &st) == 0 &&
		  near(t.quantile, 0.999, 1e-12) && t.or_equal &&
		  t.limit == 1.5,
	      "p99.9 <= 1.5s");
	CHECK(threshold_parse("service_p50<800us", &t, &st) == 0 &&
		  t.metric == TH_SERVICE && near(t.limit, 800e-6, 1e-15),
	      "service time");
	CHECK(threshold_parse("failed<1%", &t, &st) == 0 &&
		  t.metric == TH_FAILED && near(t.limit, 0.01, 1e-15),
	      "failed<1%%");
	CHECK(threshold_parse("failed<=0.05", &t, &st) == 0 &&
		  near(t.limit, 0.05, 1e-15),
	      "failed as a ratio");
	CHECK(threshold_parse("throughput>500MB/s", &t, &st) == 0 &&
		  t.metric == TH_THROUGHPUT && !t.below && t.limit == 5e8,
	      "throughput");
	CHECK(threshold_parse("ops>1000/s", &t, &st) == 0 &&
		  t.metric == TH_OPS && t.limit == 1000,
	      "ops");
	CHECK(threshold_parse("rate>=990", &t, &st) == 0 &&
		  t.metric == TH_RATE && t.or_equal,
	      "rate");
	CHECK(threshold_parse("max<2s", &t, &st) == 0 && t.quantile == 1,
	      "max");
	CHECK(threshold_parse("mean<2s", &t, &st) == 0 && t.quantile == -1,
	      "mean");
	const char *bad[] = {"p99",
			     "p99<",
			     "p99<50",
			     "p101<1s",
			     "pxx<1s",
			     "lag<1s",
			     "failed<2",
			     "failed<x%",
			     "throughput>5MB",
			     "ops>-1",
			     "<5ms",
			     "p99<-5ms",
			     "service_failed<1%"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		st.message[0] = '\0';
		CHECK(threshold_parse(bad[i], &t, &st) < 0 &&
			  st.code == FS_ERR_USAGE && strstr(st.message, bad[i]),
		      "'%s' refused, named: %s", bad[i], st.message);
	}
}

static void test_threshold_eval(void)
{
	struct histogram *lat = xmalloc(sizeof(*lat)),
			 *svc = xmalloc(sizeof(*svc));
	hist_init(lat);
	hist_init(svc);
	for (int i = 1; i <= 100; i++) {
		hist_record(lat, (uint64_t)i * 1000000); /* 1..100 ms */
		hist_record(svc, 1000000);		 /* 1 ms */
	}
	struct threshold_figures f = {.latency = lat,
				      .service = svc,
				      .ok = 99,
				      .failed = 1,
				      .bytes = 500000000,
				      .seconds = 2,
				      .achieved_rate = -1};
	struct threshold t;
	struct fs_status st;
	threshold_parse("p99<50ms", &t, &st);
	double v = threshold_value(&t, &f);
	CHECK(near(v, 0.099, 0.001) && !threshold_passes(&t, v), "p99 %g", v);
	threshold_parse("service_p99<50ms", &t, &st);
	v = threshold_value(&t, &f);
	CHECK(near(v, 0.001, 1e-5) && threshold_passes(&t, v), "service p99 %g",
	      v);
	threshold_parse("failed<1%", &t, &st);
	v = threshold_value(&t, &f);
	CHECK(v == 0.01 && !threshold_passes(&t, v), "1%% is not below 1%%");
	threshold_parse("failed<=1%", &t, &st);
	CHECK(threshold_passes(&t, threshold_value(&t, &f)), "<= passes");
	threshold_parse("throughput>200MB/s", &t, &st);
	v = threshold_value(&t, &f);
	CHECK(v == 250e6 && threshold_passes(&t, v), "throughput %g", v);
	threshold_parse("ops>=49.5", &t, &st);
	CHECK(threshold_passes(&t, threshold_value(&t, &f)), "ops");
	threshold_parse("rate>1", &t, &st);
	v = threshold_value(&t, &f);
	CHECK(isnan(v) && !threshold_passes(&t, v),
	      "a rate threshold on a closed run does not pass");
	f.ok = f.failed = 0;
	hist_init(lat);
	threshold_parse("p50<1s", &t, &st);
	CHECK(!threshold_passes(&t, threshold_value(&t, &f)),
	      "no operation: nothing passes");
	free(lat);
	free(svc);
}

int main(void)
{
	RUN_TEST(test_constant_rate);
	RUN_TEST(test_stages);
	RUN_TEST(test_client_stages);
	RUN_TEST(test_bad_stages);
	RUN_TEST(test_poisson);
	RUN_TEST(test_threshold_parse);
	RUN_TEST(test_threshold_eval);
	return check_done("t_load");
}
