/* testdata.c: test files that are a pure function of (size, seed), so that
 * the benchmarks and scripts make them again instead of keeping them. */
#include "testdata.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* splitmix64: a tiny, well-distributed generator, so that a file is a
 * pure function of (size, seed) and can be made again instead of kept. */
static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int testdata_make(const char *path, uint64_t size, uint64_t seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	uint64_t *buf = malloc(64 * 1024);
	int rc = fd < 0 || !buf ? -1 : 0;
	for (uint64_t left = size; rc == 0 && left > 0;) {
		size_t n = left < 64 * 1024 ? (size_t)left : 64 * 1024;
		for (size_t i = 0; i < (n + 7) / 8; i++)
			buf[i] = splitmix(&seed);
		if (write(fd, buf, n) != (ssize_t)n)
			rc = -1;
		left -= n;
	}
	int e = errno;
	free(buf);
	if (fd >= 0 && close(fd) < 0)
		rc = -1;
	errno = rc ? e : 0;
	return rc;
}
