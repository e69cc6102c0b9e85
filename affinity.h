/* affinity.h: CPU sets given as lists ("0", "0-1", "1,3") and pinning. */
#ifndef FILESERV_AFFINITY_H
#define FILESERV_AFFINITY_H

#include <sched.h>
#include <stddef.h>

struct fs_status;

/* Parses a CPU list ("0", "0-1", "1,3", "0-2,5") into set. Each CPU must
 * be one this process may run on. Returns 0, or -1 with a message that
 * names the list and the cause. */
int affinity_parse(const char *text, cpu_set_t *set, struct fs_status *st);
/* Writes set as a list ("0-1,3") into buf; returns buf. */
const char *affinity_format(const cpu_set_t *set, char *buf, size_t len);
/* The CPUs the calling thread may run on, as a list; returns buf. */
const char *affinity_current(char *buf, size_t len);
/* Pins the calling thread, and the threads and processes it starts
 * afterwards, to set; 0, or -1 with st set. */
int affinity_apply(const cpu_set_t *set, struct fs_status *st);

#endif
