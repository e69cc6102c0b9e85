/* testdata.c: test files that are a pure function of (size, seed), so that
 * the benchmarks and scripts make them again instead of keeping them. */
#include "testdata.h"
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
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
	struct stat sb = {0};
	int rc = fd < 0 || !buf || fstat(fd, &sb) < 0 ? -1 : 0;
	for (uint64_t left = size; rc == 0 && left > 0;) {
		size_t n = left < 64 * 1024 ? (size_t)left : 64 * 1024;
		for (size_t i = 0; i < (n + 7) / 8; i++)
			buf[i] = splitmix(&seed);
		rc = write_all(fd, buf, n);
		left -= n;
	}
	int e = errno;
	free(buf);
	if (fd >= 0 && close(fd) < 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	if (rc < 0 && fd >= 0 && S_ISREG(sb.st_mode))
		unlink(path); /* a partial file (a full disk) is no test file */
	errno = rc ? e : 0;
	return rc;
}
