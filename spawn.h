/* spawn.h: a server run as a child process of this executable, for the
 * benchmarks and scripts that start their own (spawn.c). */
#ifndef FILESERV_SPAWN_H
#define FILESERV_SPAWN_H

#include "fileserv.h"

#include <sys/types.h>

/* Starts `fileserv serve ARGS... --ready-fd N` as a child process of this
 * executable and waits until it listens (args is NULL-terminated). The
 * child gets SIGTERM if this process dies. Returns its pid and sets *port,
 * or returns -1 with st set. */
pid_t server_spawn(const char *const *args, int *port, struct fs_status *st);
/* Stops a spawned server: SIGTERM, then SIGKILL after grace seconds. */
void server_reap(pid_t pid, double grace);

#endif
