/* usage.c: what the server's processes spend, for STATS: CPU seconds
 * (user and system) and resident memory.
 *
 * Thread and single mode: the server is one process, and getrusage(
 * RUSAGE_SELF) when STATS is answered is the whole answer.
 *
 * Process mode: STATS is answered by the parent's acceptor (or by a
 * worker, for a request with bytes after it), and no process can ask the
 * kernel about a live sibling or child, so every process publishes its
 * own getrusage(RUSAGE_SELF) in a slot of a MAP_SHARED array: a worker
 * before it answers STATS, before it waits idle, and after a request when
 * its last publication is 10 ms old (pool.c's publisher), the parent just
 * before it answers STATS (only then: a getrusage per connection cost the
 * acceptor 7% of its time). A worker in the middle of a long transfer is
 * counted up to its last publication. When the parent reaps a dead worker (one
 * that exited, or was killed and replaced), the kernel adds that worker's final
 * figures to the parent's getrusage(RUSAGE_CHILDREN); the parent publishes that
 * and clears the dead worker's slot in one step, under a sequence counter that
 * readers retry on (a seqlock). The total is parent + reaped children +
 * the slots of the others, and each process is counted once: a worker is
 * in its slot until it is reaped, and in the children's figure after,
 * never in both.
 *
 * Memory: ru_maxrss is one process's peak; RUSAGE_CHILDREN's is the
 * largest peak of any reaped worker. Resident memory now is read from
 * /proc/PID/statm for each live process; pages that forked processes
 * still share are counted in each of them. */
#include "usage.h"

#include <cjson/cJSON.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

struct slot {
	uint64_t pid, user_us, system_us, maxrss_kb;
};

struct usage {
	int workers;	      /* 0: the server is this one process */
	uint64_t seq;	      /* odd while the parent changes what it owns */
	struct slot parent;   /* the parent's own use */
	struct slot children; /* every worker the parent has reaped */
	struct slot worker[]; /* live workers, or zero */
};

struct usage *usage_create(int workers)
{
	size_t size =
	    sizeof(struct usage) + (size_t)workers * sizeof(struct slot);
	struct usage *u = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (u == MAP_FAILED)
		return NULL;
	u->workers = workers;
	return u;
}

static uint64_t micros(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void slot_store(struct slot *s, pid_t pid, int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	__atomic_store_n(&s->user_us, micros(ru.ru_utime), __ATOMIC_RELAXED);
	__atomic_store_n(&s->system_us, micros(ru.ru_stime), __ATOMIC_RELAXED);
	__atomic_store_n(&s->maxrss_kb, (uint64_t)ru.ru_maxrss,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&s->pid, (uint64_t)pid, __ATOMIC_RELAXED);
}

static struct slot slot_load(const struct slot *s)
{
	return (struct slot){
	    __atomic_load_n(&s->pid, __ATOMIC_RELAXED),
	    __atomic_load_n(&s->user_us, __ATOMIC_RELAXED),
	    __atomic_load_n(&s->system_us, __ATOMIC_RELAXED),
	    __atomic_load_n(&s->maxrss_kb, __ATOMIC_RELAXED),
	};
}

void usage_publish(struct usage *u, int worker)
{
	if (u->workers == 0 || worker >= u->workers)
		return;
	slot_store(worker < 0 ? &u->parent : &u->worker[worker], getpid(),
		   RUSAGE_SELF);
}

void usage_reaped(struct usage *u, int worker)
{
	if (u->workers == 0 || worker < 0 || worker >= u->workers)
		return;
	uint64_t seq = u->seq;
	__atomic_store_n(&u->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	slot_store(&u->children, 0, RUSAGE_CHILDREN);
	struct slot *s = &u->worker[worker];
	__atomic_store_n(&s->pid, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->user_us, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->system_us, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->maxrss_kb, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&u->seq, seq + 2, __ATOMIC_RELEASE);
}

/* Resident bytes of a live process now; 0 if it is gone. */
static unsigned long long resident_bytes(uint64_t pid)
{
	char path[64];
	unsigned long long pages = 0, resident = 0;
	snprintf(path, sizeof(path), "/proc/%llu/statm",
		 (unsigned long long)pid);
	FILE *f = fopen(path, "re");
	if (f && fscanf(f, "%llu %llu", &pages, &resident) != 2)
		resident = 0;
	if (f)
		fclose(f);
	return resident * (unsigned long long)sysconf(_SC_PAGESIZE);
}

/* Adds one process's figures (pid 0: the reaped workers, not live). A
 * live process's peak is at least what it holds now (the kernel updates
 * ru_maxrss lazily). */
static void totals_add(struct usage_totals *t, const struct slot *s)
{
	unsigned long long peak = s->maxrss_kb * 1024ull;
	unsigned long long now = s->pid ? resident_bytes(s->pid) : 0;
	if (now > peak)
		peak = now;
	t->user_s += s->user_us / 1e6;
	t->system_s += s->system_us / 1e6;
	if (peak > t->peak_rss)
		t->peak_rss = peak;
	if (s->pid == 0)
		return;
	t->peak_rss_sum += peak;
	t->rss_sum += now;
	t->processes++;
}

/* One consistent reading of the slots (see the seqlock above). */
static void totals_read(struct usage *u, struct usage_totals *t)
{
	for (int tries = 0;; tries++) {
		uint64_t seq = __atomic_load_n(&u->seq, __ATOMIC_ACQUIRE);
		*t = (struct usage_totals){0};
		struct slot s = slot_load(&u->parent);
		totals_add(t, &s);
		s = slot_load(&u->children);
		totals_add(t, &s);
		for (int i = 0; i < u->workers; i++) {
			s = slot_load(&u->worker[i]);
			if (s.pid)
				totals_add(t, &s);
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if ((seq & 1) == 0 &&
		    __atomic_load_n(&u->seq, __ATOMIC_RELAXED) == seq)
			return;
		if (tries >= 1000)
			return; /* the parent is stuck mid-update: close enough
				 */
		sched_yield();
	}
}

void usage_measure(struct usage *u, struct usage_totals *t)
{
	if (u->workers > 0) {
		totals_read(u, t);
		return;
	}
	struct slot self;
	slot_store(&self, getpid(), RUSAGE_SELF);
	*t = (struct usage_totals){0};
	totals_add(t, &self);
}

void usage_to_json(const struct usage_totals *t, cJSON *data)
{
	cJSON_AddNumberToObject(data, "cpu_user_s", t->user_s);
	cJSON_AddNumberToObject(data, "cpu_system_s", t->system_s);
	cJSON_AddNumberToObject(data, "peak_rss_bytes", (double)t->peak_rss);
	cJSON_AddNumberToObject(data, "peak_rss_sum_bytes",
				(double)t->peak_rss_sum);
	cJSON_AddNumberToObject(data, "rss_sum_bytes", (double)t->rss_sum);
	cJSON_AddNumberToObject(data, "processes", t->processes);
}
