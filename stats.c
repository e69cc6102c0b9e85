/* stats.c: what the server and the stress engine count.
 *
 * Server counters live in one MAP_SHARED page created before any worker
 * starts, so forked workers and threads update the same figures with
 * relaxed atomic adds: STATS is a whole-server answer in every mode.
 *
 * Latency histograms are log-linear (HdrHistogram's idea): values below
 * 2^HIST_SUB_BITS ns get a bucket each, and every power of two above, up
 * to 2^HIST_MAX_BITS ns, is split into 2^HIST_SUB_BITS buckets, so any
 * value in that range is kept within 1% and two histograms merge by
 * adding counts; larger values share one last bucket, and a quantile that
 * falls there is the exact maximum. Each stress worker fills its
 * own; the parent merges them, and percentiles come only from the merge. */
#include "proto.h"
#include "stats.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct stats_counters *stats_shared_create(void)
{
	void *p =
	    mmap(NULL, sizeof(struct stats_counters), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

void stats_count_request(struct stats_counters *s, enum proto_command cmd,
			 int ok)
{
	add(&s->requests[cmd], 1);
	add(ok ? &s->succeeded[cmd] : &s->failed[cmd], 1);
}

void stats_recount(struct stats_counters *s, enum proto_command cmd, int ok)
{
	add(ok ? &s->succeeded[cmd] : &s->failed[cmd], 1);
	add(ok ? &s->failed[cmd] : &s->succeeded[cmd], (uint64_t)-1);
}

void stats_count_bytes(struct stats_counters *s, uint64_t wire_in,
		       uint64_t wire_out, uint64_t file_in, uint64_t file_out)
{
	add(&s->wire_in, wire_in);
	add(&s->wire_out, wire_out);
	add(&s->file_in, file_in);
	add(&s->file_out, file_out);
}

/* Totals leave STATS itself out, so that polling the server does not
 * change the figures it reports. */
cJSON *stats_to_json(const struct stats_counters *s, const char *mode,
		     int workers, double uptime)
{
	cJSON *data = cJSON_CreateObject();
	cJSON *by = cJSON_CreateObject();
	uint64_t req = 0, ok = 0, bad = 0;
	for (int i = 0; i < CMD_COUNT; i++) {
		cJSON *c = cJSON_AddObjectToObject(by, proto_command_name(i));
		cJSON_AddNumberToObject(c, "requests", get(&s->requests[i]));
		cJSON_AddNumberToObject(c, "succeeded", get(&s->succeeded[i]));
		cJSON_AddNumberToObject(c, "failed", get(&s->failed[i]));
		if (i == CMD_STATS)
			continue;
		req += get(&s->requests[i]);
		ok += get(&s->succeeded[i]);
		bad += get(&s->failed[i]);
	}
	cJSON_AddStringToObject(data, "mode", mode);
	cJSON_AddNumberToObject(data, "workers", workers);
	cJSON_AddNumberToObject(data, "uptime_s", uptime);
	cJSON_AddNumberToObject(data, "connections", get(&s->connections));
	cJSON_AddNumberToObject(data, "requests", req);
	cJSON_AddNumberToObject(data, "succeeded", ok);
	cJSON_AddNumberToObject(data, "failed", bad);
	cJSON_AddNumberToObject(data, "file_bytes_in", get(&s->file_in));
	cJSON_AddNumberToObject(data, "file_bytes_out", get(&s->file_out));
	cJSON_AddNumberToObject(data, "wire_bytes_in", get(&s->wire_in));
	cJSON_AddNumberToObject(data, "wire_bytes_out", get(&s->wire_out));
	cJSON_AddItemToObject(data, "commands", by);
	return data;
}

/* ---- histograms ---- */

#define SUB (1u << HIST_SUB_BITS)

#define OVERFLOW (HIST_BUCKETS - 1)

static unsigned hist_index(uint64_t v)
{
	if (v < SUB)
		return (unsigned)v;
	if (v >> HIST_MAX_BITS)
		return OVERFLOW;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - HIST_SUB_BITS;
	return (shift + 1) * SUB + (unsigned)((v >> shift) - SUB);
}

/* Midpoint of bucket i. */
static uint64_t hist_value(unsigned i)
{
	if (i < SUB)
		return i;
	unsigned shift = i / SUB - 1;
	uint64_t low = (uint64_t)(SUB + i % SUB) << shift;
	return low + ((1ull << shift) >> 1);
}

void hist_init(struct histogram *h)
{
	memset(h, 0, sizeof(*h));
	h->min_ns = UINT64_MAX;
}

void hist_record(struct histogram *h, uint64_t ns)
{
	/* relaxed atomic adds: a stress run's interval monitor reads the
	 * counts while the worker records (sum, min and max it never reads) */
	__atomic_fetch_add(&h->count[hist_index(ns)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->n, 1, __ATOMIC_RELAXED);
	h->sum_ns += (double)ns;
	if (ns < h->min_ns)
		h->min_ns = ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void hist_merge(struct histogram *into, const struct histogram *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->count[i] += from->count[i];
	into->n += from->n;
	into->sum_ns += from->sum_ns;
	if (from->min_ns < into->min_ns)
		into->min_ns = from->min_ns;
	if (from->max_ns > into->max_ns)
		into->max_ns = from->max_ns;
}

uint64_t hist_quantile(const struct histogram *h, double q)
{
	if (h->n == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)(h->n - 1)) + 1, seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= rank) {
			if (i == OVERFLOW)
				return h->max_ns;
			uint64_t v = hist_value(i);
			return v < h->min_ns   ? h->min_ns
			       : v > h->max_ns ? h->max_ns
					       : v;
		}
	}
	return h->max_ns;
}

cJSON *hist_to_json(const struct histogram *h)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "sub_bits", HIST_SUB_BITS);
	cJSON_AddNumberToObject(o, "max_bits", HIST_MAX_BITS);
	cJSON_AddStringToObject(o, "unit", "ns");
	cJSON_AddNumberToObject(o, "n", (double)h->n);
	cJSON *counts = cJSON_AddObjectToObject(o, "counts");
	for (int b = 0; b < HIST_BUCKETS; b++)
		if (h->count[b]) {
			char key[16];
			snprintf(key, sizeof(key), "%d", b);
			cJSON_AddNumberToObject(counts, key,
						(double)h->count[b]);
		}
	return o;
}

/* A whole number below 2^53 (exact in a double) in *out; 0 or -1. */
static int json_count(const cJSON *item, uint64_t *out)
{
	if (!cJSON_IsNumber(item))
		return -1;
	double v = item->valuedouble;
	if (!(v >= 0 && v < 9007199254740992.0) || v != (double)(uint64_t)v)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

int hist_add_json(struct histogram *h, const cJSON *j, struct fs_status *st)
{
	const cJSON *sub = cJSON_GetObjectItem(j, "sub_bits");
	const cJSON *max = cJSON_GetObjectItem(j, "max_bits");
	const char *unit = cJSON_GetStringValue(cJSON_GetObjectItem(j, "unit"));
	if (!cJSON_IsNumber(sub) || !cJSON_IsNumber(max) || !unit)
		return fs_fail(st, FS_ERR_PROTOCOL,
			       "histogram without sub_bits, max_bits or unit");
	if (sub->valuedouble != HIST_SUB_BITS ||
	    max->valuedouble != HIST_MAX_BITS || strcmp(unit, "ns") != 0)
		return fs_fail(st, FS_ERR_PROTOCOL,
			       "histogram layout sub_bits %g, max_bits %g, "
			       "unit %s; this fileserv's is sub_bits %d, "
			       "max_bits %d, unit ns",
			       sub->valuedouble, max->valuedouble, unit,
			       HIST_SUB_BITS, HIST_MAX_BITS);
	uint64_t n, total = 0;
	if (json_count(cJSON_GetObjectItem(j, "n"), &n) < 0)
		return fs_fail(st, FS_ERR_PROTOCOL, "histogram without n");
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "counts"))
	{
		char *end;
		unsigned long b = strtoul(c->string, &end, 10);
		uint64_t count;
		if (end == c->string || *end || b >= HIST_BUCKETS ||
		    json_count(c, &count) < 0)
			return fs_fail(st, FS_ERR_PROTOCOL,
				       "histogram bucket \"%s\": not an index "
				       "below %d with a whole count",
				       c->string, HIST_BUCKETS);
		h->count[b] += count;
		total += count;
	}
	if (total != n)
		return fs_fail(
		    st, FS_ERR_PROTOCOL,
		    "histogram counts add up to %llu, not its n %llu",
		    (unsigned long long)total, (unsigned long long)n);
	h->n += n;
	return 0;
}
