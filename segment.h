/* segment.h: one instance's share of a stress run spread over several
 * (segment.c): which segment I of N this process is, from --segment I/N
 * or a launcher's environment (Open MPI, MPICH/Hydra, Slurm, a Kubernetes
 * Indexed Job), and the exact split of clients and arrivals. */
#ifndef FILESERV_SEGMENT_H
#define FILESERV_SEGMENT_H

#include "fileserv.h"

#include <stdint.h>

#define SEGMENT_COUNT_MAX 100000

struct segment {
	int index, count; /* this instance is index (0-based) of count */
	/* where they came from: "option", "OMPI", "PMI", "SLURM", "K8S", or
	 * "none" (a whole run: 0 of 1); static strings */
	const char *source;
	const char *variables; /* the variables read, or "" (static) */
};

/* The segment of this process: `option` (--segment "I/N") when given,
 * else the first launcher whose variables are set (OMPI_COMM_WORLD_RANK
 * and _SIZE, PMI_RANK and PMI_SIZE, SLURM_PROCID and SLURM_NTASKS,
 * JOB_COMPLETION_INDEX), else the whole run. `total` (--segments N, else
 * the variable FILESERV_SEGMENTS; NULL when neither) gives the count a
 * Kubernetes index lacks and must agree with any other count. Returns 0,
 * or -1 with a message naming the option or variable and its value. */
int segment_resolve(const char *option, const char *total, struct segment *s,
		    struct fs_status *st);

/* This instance's block of `total` items numbered from 0 (clients): the
 * first and how many, the remainder going one each to the first
 * instances, so that the blocks of 0..count-1 tile 0..total-1. */
void segment_share(const struct segment *s, long total, long *first,
		   long *count);

/* The global index of this instance's `local`-th arrival of a shared
 * schedule: the instances interleave (arrival k is instance k mod
 * count's). */
uint64_t segment_arrival(const struct segment *s, uint64_t local);

#endif
