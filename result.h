/* result.h: a stress run's summary written to a file for a merger
 * (result.c): the file name with the instance's segment in it, and an
 * atomic write, so that a file is either whole or absent. */
#ifndef FILESERV_RESULT_H
#define FILESERV_RESULT_H

#include "fileserv.h"
#include "segment.h"

#include <stddef.h>

struct cJSON;

/* The longest file name result_path writes, with its NUL. */
#define RESULT_PATH_MAX 4096

/* Expands `pattern` into out: %r becomes the segment's index, %n its
 * count, %% a %. Returns 0, or -1 with st set (another escape, or a name
 * longer than len). */
int result_path(const char *pattern, const struct segment *s, char *out,
		size_t len, struct fs_status *st);
/* Writes j, formatted, with a final newline, to path: into a temporary
 * file beside it, flushed to disk, then renamed over path. Returns 0, or
 * -1 with st set (and no temporary left). */
int result_write(const char *path, const struct cJSON *j, struct fs_status *st);

#endif
