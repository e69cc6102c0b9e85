/* segment.c: which share of a distributed stress run this process runs
 * (segment.h).
 *
 * fileserv does not talk to its launcher: it reads the rank and size the
 * launcher put in its environment, checks them strictly (digits only,
 * both of a pair, index below count, counts that agree), and leaves the
 * rest to arithmetic: clients are split into contiguous blocks, arrivals
 * of the open model are interleaved, so that the instances together run
 * exactly what one process would. */
#include "segment.h"

#include <stdlib.h>
#include <string.h>

/* A launcher's pair of variables, in the order they are looked for. */
struct launcher {
	const char *source, *rank, *size, *variables;
};

static const struct launcher launchers[] = {
    {"OMPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
     "OMPI_COMM_WORLD_RANK/SIZE"},
    {"PMI", "PMI_RANK", "PMI_SIZE", "PMI_RANK/PMI_SIZE"},
    {"SLURM", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_PROCID/SLURM_NTASKS"},
    /* a Kubernetes Indexed Job: the count comes from `total` */
    {"K8S", "JOB_COMPLETION_INDEX", NULL, "JOB_COMPLETION_INDEX"},
};

/* A decimal number of digits only in [min, SEGMENT_COUNT_MAX]; the
 * message names `what` and the text. */
static int parse_count(const char *what, const char *text, long min, long *out,
		       struct fs_status *st)
{
	long v = 0;
	const char *p = text;
	for (; *p >= '0' && *p <= '9' && v <= SEGMENT_COUNT_MAX; p++)
		v = v * 10 + (*p - '0');
	if (p == text || *p || v < min || v > SEGMENT_COUNT_MAX)
		return fs_fail(st, FS_ERR_USAGE,
			       "%s='%s': want a whole number from %ld to %d",
			       what, text, min, SEGMENT_COUNT_MAX);
	*out = v;
	return 0;
}

/* index and count into s, checked: index below count. */
static int segment_set(struct segment *s, long index, long count,
		       const char *what, struct fs_status *st)
{
	if (index >= count)
		return fs_fail(st, FS_ERR_USAGE,
			       "%s: segment %ld of %ld does not exist (the "
			       "index counts from 0 to %ld)",
			       what, index, count, count - 1);
	s->index = (int)index;
	s->count = (int)count;
	return 0;
}

/* --segment I/N. */
static int segment_option(const char *text, struct segment *s,
			  struct fs_status *st)
{
	char buf[64];
	long index, count;
	const char *slash = strchr(text, '/');
	if (!slash || (size_t)(slash - text) >= sizeof(buf))
		return fs_fail(st, FS_ERR_USAGE,
			       "--segment '%s': want INDEX/COUNT, e.g. 0/4",
			       text);
	memcpy(buf, text, (size_t)(slash - text));
	buf[slash - text] = '\0';
	if (parse_count("--segment index", buf, 0, &index, st) < 0 ||
	    parse_count("--segment count", slash + 1, 1, &count, st) < 0)
		return -1;
	s->source = "option";
	s->variables = "";
	return segment_set(s, index, count, "--segment", st);
}

/* A launcher's variables, when either is set: 1 (s filled), 0 when
 * neither is, -1 with st set. */
static int segment_launcher(const struct launcher *l, long total,
			    const char *total_name, struct segment *s,
			    struct fs_status *st)
{
	const char *rank = getenv(l->rank);
	const char *size = l->size ? getenv(l->size) : NULL;
	long index, count = total;
	if (!rank && !size)
		return 0;
	if (!rank || (l->size && !size))
		return fs_fail(st, FS_ERR_USAGE,
			       "%s=%s is set but %s is not: the launcher's "
			       "environment is incomplete",
			       rank ? l->rank : l->size, rank ? rank : size,
			       rank ? l->size : l->rank);
	if (parse_count(l->rank, rank, 0, &index, st) < 0 ||
	    (size && parse_count(l->size, size, 1, &count, st) < 0))
		return -1;
	if (!size && total == 0)
		return fs_fail(st, FS_ERR_USAGE,
			       "%s=%s gives this instance's index but not the "
			       "count: give --segments N or FILESERV_SEGMENTS",
			       l->rank, rank);
	if (size && total && total != count)
		return fs_fail(st, FS_ERR_USAGE, "%s=%s disagrees with %s %ld",
			       l->size, size, total_name, total);
	s->source = l->source;
	s->variables = l->variables;
	return segment_set(s, index, count, l->rank, st) < 0 ? -1 : 1;
}

int segment_resolve(const char *option, const char *total, struct segment *s,
		    struct fs_status *st)
{
	long count = 0;
	const char *total_name = "--segments";
	*s = (struct segment){0, 1, "none", ""};
	if (!total && (total = getenv("FILESERV_SEGMENTS")))
		total_name = "FILESERV_SEGMENTS";
	if (total && parse_count(total_name, total, 1, &count, st) < 0)
		return -1;
	if (option) {
		if (segment_option(option, s, st) < 0)
			return -1;
		if (count && count != s->count)
			return fs_fail(st, FS_ERR_USAGE,
				       "--segment %s disagrees with %s %ld",
				       option, total_name, count);
		return 0;
	}
	for (size_t i = 0; i < sizeof(launchers) / sizeof(*launchers); i++) {
		int found =
		    segment_launcher(&launchers[i], count, total_name, s, st);
		if (found != 0)
			return found < 0 ? -1 : 0;
	}
	if (count)
		return fs_fail(st, FS_ERR_USAGE,
			       "%s %ld without an index: give --segment I/N or "
			       "run under a launcher (mpirun, srun, an "
			       "Indexed Job)",
			       total_name, count);
	return 0;
}

void segment_share(const struct segment *s, long total, long *first,
		   long *count)
{
	long n = s->count > 0 ? s->count : 1, i = s->index;
	long base = total / n, extra = total % n;
	*count = base + (i < extra);
	*first = i * base + (i < extra ? i : extra);
}

uint64_t segment_arrival(const struct segment *s, uint64_t local)
{
	uint64_t n = s->count > 0 ? (uint64_t)s->count : 1;
	return local * n + (uint64_t)s->index;
}
