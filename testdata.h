/* testdata.h: deterministic pseudo-random test files (testdata.c). */
#ifndef FILESERV_TESTDATA_H
#define FILESERV_TESTDATA_H

#include <stdint.h>

/* Writes size pseudo-random bytes, a function of seed, to path; 0, or -1
 * with errno set and then no file left at path (unless it is not a
 * regular file, as /dev/full). */
int testdata_make(const char *path, uint64_t size, uint64_t seed);

#endif
