/* bench.h: what `fileserv bench` (bench.c) measures fileserv against
 * (bench_peers.c): loopback TCP streams, iperf3, nginx driven by wrk. */
#ifndef FILESERV_BENCH_H
#define FILESERV_BENCH_H

#include "fileserv.h"

#include <stdint.h>
#include <sys/types.h>

/* A peer program running in the background. */
struct peer {
	pid_t pid;
	int port;
};

/* MB/s of one loopback TCP stream sending bytes as iperf3 does (128 KB
 * sends to another process), or -1 with st set. */
double peers_loopback(uint64_t bytes, struct fs_status *st);

/* Starts `iperf3 -s` on 127.0.0.1; 0, or -1 with st set (also when iperf3
 * is not installed). */
int peers_iperf3_start(struct peer *p, struct fs_status *st);
/* MB/s received by one `iperf3 -c` stream of bytes, or -1 with st set. */
double peers_iperf3_run(const struct peer *p, uint64_t bytes,
			struct fs_status *st);

/* Starts nginx with one worker serving dir/www on 127.0.0.1 (its
 * configuration, pid and logs also in dir); 0, or -1 with st set (also
 * when nginx or wrk is not installed). */
int peers_nginx_start(struct peer *p, const char *dir, struct fs_status *st);
/* Requests a second wrk makes for dir/www/file over clients connections,
 * one per request (Connection: close), for seconds, and in *requests how
 * many it made; -1 with st set on failure or when any request failed. */
double peers_wrk_run(const struct peer *p, const char *file, int clients,
		     double seconds, double *requests, struct fs_status *st);

/* CPU seconds spent so far by process pid, its threads and its live
 * children (a server's workers, nginx's worker), 0 for no pid. The
 * kernel charges a loopback packet's receive processing to the task
 * that sends it, so each side's figure includes some of its peer's. */
double peers_cpu(pid_t pid);

/* Stops a peer started above (by its pid). */
void peers_stop(struct peer *p);

#endif
