/* storage.c: the storage directory, confined and crash-safe.
 *
 * Every file is reached relative to one directory descriptor, by a name
 * that proto_check_name() accepted (one path component, no leading dot),
 * opened with O_NOFOLLOW and checked to be a regular file: no symlink,
 * FIFO or device is ever served.
 *
 * An upload is written to an anonymous O_TMPFILE in the directory (or, on
 * file systems without it, to a dot-named temporary that LIST never shows
 * and start-up sweeps away). Commit is fsync(file), a link to a temporary
 * name, renameat() over the target (over an existing file: an exchange of
 * the two names, then an unlink of the old version; see replace_name()),
 * fsync(directory): the new version appears whole or not at all, the old
 * one stays intact until then, and concurrent uploads of one name leave
 * exactly one of them. */
#include "fileserv.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "storage.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void storage_sweep(struct storage *s, pid_t pid)
{
	int dirfd = s->dirfd;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), pid ? "%s%ld-" : "%s", FS_TMP_PREFIX,
		 (long)pid);
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(dir)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			unlinkat(dirfd, e->d_name, 0);
	closedir(dir);
}

int storage_open(struct storage *s, const char *path, int sync,
		 struct fs_status *st)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return fs_fail(st, FS_ERR_LOCAL, "storage %s: %s", path,
			       strerror(errno));
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return fs_fail(st, FS_ERR_LOCAL, "storage %s: %s", path,
			       strerror(errno));
	s->sync = sync;
	storage_sweep(s, 0);
	return 0;
}

void storage_close(struct storage *s)
{
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->dirfd = -1;
}

/* -1 with st set to "what: strerror(e)". */
static int fail(struct fs_status *st, const char *what, int e)
{
	return fs_fail(st, FS_ERR_LOCAL, "%s: %s", what, strerror(e));
}

static int check_name(const char *name, struct fs_status *st)
{
	const char *bad = proto_check_name(name, strlen(name));
	return bad ? fs_fail(st, FS_ERR_PROTOCOL, "%s", bad) : 0;
}

static const char *open_error(int e)
{
	switch (e) {
	case ENOENT:
		return "no such file";
	case ELOOP:
		return "is a symbolic link, not served";
	default:
		return strerror(e);
	}
}

int storage_open_file(struct storage *s, const char *name, uint64_t *size,
		      struct fs_status *st)
{
	if (check_name(name, st) < 0)
		return -1;
	int fd = openat(s->dirfd, name,
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", name,
			       open_error(errno));
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return fs_fail(st, FS_ERR_LOCAL, "%s: not a regular file",
			       name);
	}
	*size = (uint64_t)sb.st_size;
	return fd;
}

static int is_listed(int dirfd, const struct dirent *e)
{
	if (proto_check_name(e->d_name, strlen(e->d_name)))
		return 0;
	if (e->d_type != DT_UNKNOWN)
		return e->d_type == DT_REG;
	struct stat sb;
	return fstatat(dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(sb.st_mode);
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the listed names into a sorted array; returns the count or -1. */
static ssize_t read_names(int dirfd, char ***out)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (!is_listed(dirfd, e))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **p = realloc(names, cap * sizeof(*names));
			if (!p)
				break;
			names = p;
		}
		names[n] = strdup(e->d_name);
		if (names[n])
			n++;
	}
	closedir(dir);
	if (n > 1)
		qsort(names, n, sizeof(*names), compare_names);
	*out = names;
	return (ssize_t)n;
}

cJSON *storage_list(struct storage *s, struct fs_status *st)
{
	char **names = NULL;
	ssize_t n = read_names(s->dirfd, &names);
	if (n < 0) {
		fail(st, "listing storage", errno);
		return NULL;
	}
	cJSON *list = cJSON_CreateArray();
	for (ssize_t i = 0; i < n; i++) {
		if (list)
			cJSON_AddItemToArray(list,
					     cJSON_CreateString(names[i]));
		free(names[i]);
	}
	free(names);
	if (!list)
		fs_fail(st, FS_ERR_LOCAL, "out of memory");
	return list;
}

int storage_delete(struct storage *s, const char *name, struct fs_status *st)
{
	if (check_name(name, st) < 0)
		return -1;
	struct stat sb;
	if (fstatat(s->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "%s: %s", name,
			       open_error(errno));
	/* A symlink is removed itself; what it points to is never touched. */
	if (!S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode))
		return fs_fail(st, FS_ERR_LOCAL, "%s: not a regular file",
			       name);
	if (unlinkat(s->dirfd, name, 0) < 0)
		return fail(st, name, errno);
	return 0;
}

/* ---- uploads ---- */

static void temp_name(char *buf, size_t len)
{
	static unsigned long counter;
	unsigned long n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
	snprintf(buf, len, "%s%ld-%lu", FS_TMP_PREFIX, (long)getpid(), n);
}

int storage_upload_begin(struct storage *s, struct upload *u,
			 struct fs_status *st)
{
	memset(u, 0, sizeof(*u));
	u->storage = s;
	u->replaced_fd = -1;
	u->fd = openat(s->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
	if (u->fd >= 0)
		return 0;
	temp_name(u->tmpname, sizeof(u->tmpname));
	u->fd =
	    openat(s->dirfd, u->tmpname,
		   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (u->fd < 0) {
		u->tmpname[0] = '\0';
		return fail(st, "creating the temporary file", errno);
	}
	return 0;
}

int storage_upload_write(struct upload *u, const void *buf, size_t len,
			 struct fs_status *st)
{
	if (write_all(u->fd, buf, len) < 0)
		return fail(st, "writing the file", errno);
	u->bytes += len;
	return 0;
}

/* Gives an anonymous temporary file a (hidden) name to rename from. */
static int link_temporary(struct upload *u)
{
	char path[64];
	temp_name(u->tmpname, sizeof(u->tmpname));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", u->fd);
	if (linkat(AT_FDCWD, path, u->storage->dirfd, u->tmpname,
		   AT_SYMLINK_FOLLOW) == 0)
		return 0;
	u->tmpname[0] = '\0';
	return -1;
}

/* Puts the linked temporary in place as name. Over an existing regular
 * file, the two names are swapped (RENAME_EXCHANGE) and the old version
 * unlinked: a plain rename over a file makes ext4 (auto_da_alloc) start
 * writing the new data back inside renameat, ~50 ms of CPU for 100 MB
 * before the reply, which --no-sync asked not to pay for (with sync the
 * data is already on disk). Either way the name always shows one whole
 * version; the upload is in place once swapped, so failing to unlink the
 * old version is only logged, and a crash between the two steps leaves
 * it under a temporary name that the next start sweeps. */
static int replace_name(struct upload *u, const char *name)
{
	int dirfd = u->storage->dirfd;
	struct stat sb;
	if (u->replaced_fd < 0 || fstat(u->replaced_fd, &sb) < 0 ||
	    !S_ISREG(sb.st_mode) ||
	    renameat2(dirfd, u->tmpname, dirfd, name, RENAME_EXCHANGE) < 0)
		return renameat(dirfd, u->tmpname, dirfd, name);
	if (unlinkat(dirfd, u->tmpname, 0) < 0 && errno != ENOENT)
		log_error("storage", "removing the version %s replaced: %s",
			  name, strerror(errno));
	return 0;
}

int storage_upload_commit(struct upload *u, const char *name,
			  struct fs_status *st)
{
	struct storage *s = u->storage;
	if (check_name(name, st) < 0) {
		storage_upload_abort(u);
		return -1;
	}
	/* A failed fsync is never retried: the upload fails (PostgreSQL). */
	if (s->sync && fsync(u->fd) < 0)
		goto failed;
	if (!u->tmpname[0] && link_temporary(u) < 0)
		goto failed;
	/* The version replaced is freed (its pages: tens of ms for 100 MB)
	 * when its last reference goes: held here until after the reply.
	 * O_PATH: no read permission needed, and a FIFO is not opened. */
	u->replaced_fd =
	    openat(s->dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (replace_name(u, name) < 0)
		goto failed;
	u->tmpname[0] = '\0';
	close(u->fd);
	u->fd = -1;
	if (s->sync && fsync(s->dirfd) < 0)
		return fail(st, "syncing the storage directory", errno);
	return 0;
failed:;
	int e = errno;
	storage_upload_abort(u);
	return fail(st, "storing the file", e);
}

void storage_upload_release(struct upload *u)
{
	if (u->replaced_fd >= 0)
		close(u->replaced_fd);
	u->replaced_fd = -1;
}

void storage_upload_abort(struct upload *u)
{
	storage_upload_release(u);
	if (u->tmpname[0])
		unlinkat(u->storage->dirfd, u->tmpname, 0);
	u->tmpname[0] = '\0';
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}
