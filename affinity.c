/* affinity.c: CPU sets for `serve --cpus` and `stress --cpus`: lists in
 * the kernel's own notation (as in /proc/PID/status Cpus_allowed_list
 * and taskset -c), checked against the CPUs this process may use, and
 * applied with sched_setaffinity, which threads and forked processes
 * inherit from the thread that starts them. */
#include "affinity.h"
#include "fileserv.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One CPU number at *p, advancing it; -1 if there is none. */
static long cpu_number(const char **p)
{
	if (!isdigit((unsigned char)**p))
		return -1;
	char *end;
	errno = 0;
	long n = strtol(*p, &end, 10);
	*p = end;
	return errno || n >= CPU_SETSIZE ? -1 : n;
}

int affinity_parse(const char *text, cpu_set_t *set, struct fs_status *st)
{
	cpu_set_t allowed;
	char avail[256];
	CPU_ZERO(set);
	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "CPU affinity: %s",
			       strerror(errno));
	for (const char *p = text;;) {
		long low = cpu_number(&p), high = low;
		if (low >= 0 && *p == '-') {
			p++;
			high = cpu_number(&p);
		}
		if (low < 0 || high < low || (*p && *p != ','))
			return fs_fail(st, FS_ERR_USAGE,
				       "invalid CPU list '%s' (e.g. 0, 0-1, "
				       "1,3)",
				       text);
		for (long cpu = low; cpu <= high; cpu++) {
			if (!CPU_ISSET(cpu, &allowed))
				return fs_fail(
				    st, FS_ERR_USAGE,
				    "CPU list '%s': CPU %ld is not available "
				    "(available: %s)",
				    text, cpu,
				    affinity_format(&allowed, avail,
						    sizeof(avail)));
			CPU_SET(cpu, set);
		}
		if (!*p++)
			return 0;
	}
}

const char *affinity_format(const cpu_set_t *set, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, set))
			continue;
		int last = cpu;
		while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set))
			last++;
		int n = last > cpu ? snprintf(buf + used, len - used, "%s%d-%d",
					      used ? "," : "", cpu, last)
				   : snprintf(buf + used, len - used, "%s%d",
					      used ? "," : "", cpu);
		if (n < 0 || (size_t)n >= len - used)
			break; /* cut short: len was too small */
		used += (size_t)n;
		cpu = last;
	}
	return buf;
}

const char *affinity_current(char *buf, size_t len)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		CPU_ZERO(&set);
	return affinity_format(&set, buf, len);
}

int affinity_apply(const cpu_set_t *set, struct fs_status *st)
{
	if (sched_setaffinity(0, sizeof(*set), set) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "CPU affinity: %s",
			       strerror(errno));
	return 0;
}
