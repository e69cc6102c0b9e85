/* usage.h: what the server's processes spend: CPU time and memory. */
#ifndef FILESERV_USAGE_H
#define FILESERV_USAGE_H

struct cJSON;
struct usage;

/* The whole server's resource use at one moment. */
struct usage_totals {
	double user_s, system_s; /* CPU seconds, every process ever */
	unsigned long long
	    peak_rss; /* bytes: the largest peak of one process */
	unsigned long long
	    peak_rss_sum;	    /* bytes: peaks of the live ones, summed */
	unsigned long long rss_sum; /* bytes: resident now, live ones summed */
	int processes;		    /* live processes counted */
};

/* Accounting for a server of one process (workers == 0: thread and
 * single mode) or of a parent and `workers` forked workers, whose figures
 * travel through shared memory. NULL on failure (errno set). */
struct usage *usage_create(int workers);
/* Process mode: records the calling process's own use so far in its
 * slot: worker 0..workers-1, or -1 for the parent. No-op otherwise. */
void usage_publish(struct usage *u, int worker);
/* Process mode, in the parent, after waitpid() reaped `worker`: its final
 * use now counts among the reaped children, so its slot is cleared. */
void usage_reaped(struct usage *u, int worker);
/* The server's totals, measured from the calling process. */
void usage_measure(struct usage *u, struct usage_totals *t);
/* Adds the totals to a STATS reply's data object. */
void usage_to_json(const struct usage_totals *t, struct cJSON *data);

#endif
