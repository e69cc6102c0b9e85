/* result.c: summary files for merging distributed runs (result.h).
 *
 * A merger tells a failed instance from a missing one by the file: a run
 * that failed still writes its summary, with an "error" member, and the
 * write is atomic (a temporary in the same directory, fsync, rename), so
 * that a file that exists is complete even if the instance was killed
 * while writing it. */
#include "result.h"
#include "conn.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int result_path(const char *pattern, const struct segment *s, char *out,
		size_t len, struct fs_status *st)
{
	size_t at = 0;
	for (const char *p = pattern; *p; p++) {
		char piece[24] = {*p, '\0'};
		if (*p == '%') {
			p++;
			if (*p == 'r' || *p == 'n')
				snprintf(piece, sizeof(piece), "%d",
					 *p == 'r' ? s->index : s->count);
			else if (*p != '%')
				return fs_fail(st, FS_ERR_USAGE,
					       "%s: unknown escape '%%%.1s' "
					       "(%%r the index, %%n the "
					       "count, %%%% a %%)",
					       pattern, p);
		}
		size_t n = strlen(piece);
		if (at + n >= len)
			return fs_fail(st, FS_ERR_USAGE, "%s: name too long",
				       pattern);
		memcpy(out + at, piece, n);
		at += n;
	}
	out[at] = '\0';
	return 0;
}

int result_write(const char *path, const struct cJSON *j, struct fs_status *st)
{
	char tmp[RESULT_PATH_MAX + 32];
	char *text = cJSON_Print(j);
	if (!text)
		return fs_fail(st, FS_ERR_LOCAL, "%s: out of memory", path);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		free(text);
		return fs_fail(st, FS_ERR_LOCAL, "%s: name too long", path);
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = fd < 0 ? -1 : 0;
	if (rc == 0 && (write_all(fd, text, strlen(text)) < 0 ||
			write_all(fd, "\n", 1) < 0 || fsync(fd) < 0))
		rc = -1;
	int err = errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0) {
		rc = -1;
		err = errno;
	}
	if (rc == 0 && rename(tmp, path) < 0) {
		rc = -1;
		err = errno;
	}
	free(text);
	if (rc == 0)
		return 0;
	if (fd >= 0)
		unlink(tmp);
	return fs_fail(st, FS_ERR_LOCAL, "%s: %s", path, strerror(err));
}
