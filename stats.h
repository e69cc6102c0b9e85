/* stats.h: whole-server counters in shared memory, and the log-linear
 * latency histograms workers keep and the parent merges (stats.c). */
#ifndef FILESERV_STATS_H
#define FILESERV_STATS_H

#include "proto.h"

#include <stdint.h>

struct cJSON;

struct stats_counters {
	uint64_t requests[CMD_COUNT];
	uint64_t succeeded[CMD_COUNT];
	uint64_t failed[CMD_COUNT];
	uint64_t wire_in,
	    wire_out; /* bytes on the socket: heads, JSON, base64 */
	uint64_t file_in, file_out; /* file bytes uploaded and downloaded */
	uint64_t connections;
	uint64_t dispatched; /* connections taken from the acceptor's channel */
	uint64_t completed;  /* of those, connections closed since */
};

/* Counters in memory shared with forked children; NULL on failure. */
struct stats_counters *stats_shared_create(void);
/* Counts a request as succeeded or failed. A request is counted just
 * before its reply's last write, so that a client that has the reply also
 * sees it in STATS; stats_recount() moves it if that write then fails. */
void stats_count_request(struct stats_counters *s, enum proto_command cmd,
			 int ok);
void stats_recount(struct stats_counters *s, enum proto_command cmd, int ok);
/* Adds one connection's bytes: on the wire, and of files (decoded). */
void stats_count_bytes(struct stats_counters *s, uint64_t wire_in,
		       uint64_t wire_out, uint64_t file_in, uint64_t file_out);
/* STATS reply data: counters plus mode, workers and uptime. */
struct cJSON *stats_to_json(const struct stats_counters *s, const char *mode,
			    int workers, double uptime);

/* Log-linear latency histogram: mergeable, percentiles from buckets.
 * Values below 2^HIST_SUB_BITS ns are exact; each power of two above, up
 * to 2^HIST_MAX_BITS ns (about 2.4 hours), is split into 2^HIST_SUB_BITS
 * buckets (a value is kept within 0.4%, every quantile within 0.8%); the
 * last bucket holds larger values, reported as the maximum. 37 KB. */
#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 43
#define HIST_BUCKETS                                                           \
	(((HIST_MAX_BITS - HIST_SUB_BITS + 1) << HIST_SUB_BITS) + 1)
struct histogram {
	uint64_t count[HIST_BUCKETS];
	uint64_t n, min_ns, max_ns;
	double sum_ns;
};
void hist_init(struct histogram *h);
/* Records one value. The counts (count[] and n) are added atomically, so
 * that another thread may read them with atomic loads meanwhile. */
void hist_record(struct histogram *h, uint64_t ns);
void hist_merge(struct histogram *into, const struct histogram *from);
/* Value (ns) at quantile q in [0,1]; 0 for an empty histogram. */
uint64_t hist_quantile(const struct histogram *h, double q);
/* The buckets as JSON, enough to merge exactly elsewhere: {"sub_bits",
 * "max_bits", "unit": "ns", "n", "counts": {"INDEX": COUNT, ...}} with the
 * non-empty buckets only. */
struct cJSON *hist_to_json(const struct histogram *h);
/* Adds the buckets of j (hist_to_json's form) to h's counts and n; min,
 * max and sum are not in j and stay as they are. 0, or -1 with st set
 * when j's layout is not this build's, a bucket index or count is not a
 * whole number in range, or the counts do not add up to j's n (h may
 * then hold part of j). */
int hist_add_json(struct histogram *h, const struct cJSON *j,
		  struct fs_status *st);

#endif
