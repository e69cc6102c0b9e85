/* storage.c: the storage directory, confined and crash-safe.
 *
 * Every file is reached relative to one directory descriptor, by a name
 * that proto_check_name() accepted (one path component, no leading dot),
 * opened with O_NOFOLLOW and checked to be a regular file: no symlink,
 * FIFO or device is ever served.
 *
 * An upload is written to an anonymous O_TMPFILE in the directory (or, on
 * file systems without it, or where such a file cannot be given a name,
 * to a dot-named temporary that LIST never shows and start-up sweeps
 * away). An anonymous file is named through /proc/self/fd, or with
 * linkat(AT_EMPTY_PATH) where /proc is not mounted (chroots, minimal
 * containers); which works is found out once, at a process's first
 * upload. Commit is fsync(file), a link to a temporary
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
	s->link_method = STORAGE_LINK_UNKNOWN;
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

/* The listing is read in passes over the directory, each keeping only
 * the smallest names after the last one returned that fit in LIST_BUDGET
 * bytes (names, their allocation and their pointer): names are gathered
 * up to twice that, then sorted and cut back, so that a listing's memory
 * is bounded whatever the directory holds, about 2 * LIST_BUDGET. A
 * directory whose names fit takes one pass (some 60,000 names of 20
 * bytes, 9,000 of 200). Each name is returned once, in strictly
 * increasing order; a file created or removed while a listing runs may or
 * may not be in it. */
#define LIST_BUDGET	  (2 << 20)
#define NAME_COST(length) ((length) + 1 + 32)

struct storage_listing {
	struct storage *storage;
	char **names; /* the current batch, sorted once read */
	size_t n, cap, next;
	size_t cost;	    /* NAME_COST of the names held */
	const char *cutoff; /* once cut: the largest name kept, or NULL */
	char last[FS_NAME_MAX + 1]; /* the last name returned, or "" */
};

static void batch_clear(struct storage_listing *l, size_t from)
{
	for (size_t i = from; i < l->n; i++)
		free(l->names[i]);
	l->n = from < l->n ? from : l->n;
}

/* Sorts the batch and keeps the smallest names that fit the budget. */
static void batch_trim(struct storage_listing *l)
{
	if (l->n > 1) /* an empty batch has no array: qsort wants one */
		qsort(l->names, l->n, sizeof(*l->names), compare_names);
	size_t keep = 0, cost = 0;
	while (keep < l->n &&
	       cost + NAME_COST(strlen(l->names[keep])) <= LIST_BUDGET)
		cost += NAME_COST(strlen(l->names[keep++]));
	if (keep < l->n) {
		batch_clear(l, keep);
		l->cutoff = l->names[keep - 1];
	}
	l->cost = cost;
}

/* Whether e belongs to this pass: listed, after the last name returned,
 * and (once the batch was cut) before the largest name kept. */
static int batch_wants(const struct storage_listing *l, const struct dirent *e)
{
	if (l->last[0] && strcmp(e->d_name, l->last) <= 0)
		return 0;
	if (l->cutoff && strcmp(e->d_name, l->cutoff) >= 0)
		return 0;
	return is_listed(l->storage->dirfd, e);
}

/* Adds a copy of name to the batch; 0 or -1 (ENOMEM). */
static int batch_add(struct storage_listing *l, const char *name)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;
		char **p = realloc(l->names, cap * sizeof(*p));
		if (!p)
			return -1;
		l->names = p;
		l->cap = cap;
	}
	if (!(l->names[l->n] = strdup(name)))
		return -1;
	l->n++;
	l->cost += NAME_COST(strlen(name));
	if (l->cost > 2 * LIST_BUDGET)
		batch_trim(l);
	return 0;
}

/* Reads the next batch of names; 0, or -1 with errno set. */
static int batch_read(struct storage_listing *l)
{
	int fd =
	    openat(l->storage->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	batch_clear(l, 0);
	l->next = l->cost = 0;
	l->cutoff = NULL;
	int err = 0;
	struct dirent *e;
	while (!err && (errno = 0, e = readdir(dir)))
		if (batch_wants(l, e) && batch_add(l, e->d_name) < 0)
			err = ENOMEM;
	err = err ? err : errno;
	closedir(dir);
	batch_trim(l);
	errno = err;
	return err ? -1 : 0;
}

struct storage_listing *storage_list_open(struct storage *s,
					  struct fs_status *st)
{
	struct storage_listing *l = calloc(1, sizeof(*l));
	if (!l) {
		fail(st, "listing storage", ENOMEM);
		return NULL;
	}
	l->storage = s;
	if (batch_read(l) < 0) {
		fail(st, "listing storage", errno);
		storage_list_close(l);
		return NULL;
	}
	return l;
}

int storage_list_next(struct storage_listing *l, const char **name,
		      struct fs_status *st)
{
	if (l->next == l->n && l->cutoff) {
		snprintf(l->last, sizeof(l->last), "%s", l->names[l->n - 1]);
		if (batch_read(l) < 0)
			return fail(st, "listing storage", errno);
	}
	if (l->next == l->n)
		return 0;
	*name = l->names[l->next++];
	return 1;
}

void storage_list_close(struct storage_listing *l)
{
	if (!l)
		return;
	batch_clear(l, 0);
	free(l->names);
	free(l);
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

/* Names the anonymous file fd as name in dirfd, one way; 0 or -1. */
static int link_anonymous(int dirfd, int fd, const char *name, int how)
{
	if (how == STORAGE_LINK_EMPTY_PATH)
		return linkat(fd, "", dirfd, name, AT_EMPTY_PATH);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, path, dirfd, name, AT_SYMLINK_FOLLOW);
}

/* How this process can name an anonymous temporary: tries each way on a
 * probe file (O_TMPFILE itself may be unsupported). */
static int find_link_method(struct storage *s)
{
	int fd = openat(s->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	int how = STORAGE_LINK_NAMED;
	char name[64];
	for (int way = STORAGE_LINK_PROC; fd >= 0 && way < STORAGE_LINK_NAMED;
	     way++) {
		temp_name(name, sizeof(name));
		if (link_anonymous(s->dirfd, fd, name, way) == 0) {
			unlinkat(s->dirfd, name, 0);
			how = way;
			break;
		}
	}
	if (fd >= 0)
		close(fd);
	return how;
}

int storage_upload_begin(struct storage *s, struct upload *u,
			 struct fs_status *st)
{
	memset(u, 0, sizeof(*u));
	u->storage = s;
	u->replaced_fd = -1;
	int how = __atomic_load_n(&s->link_method, __ATOMIC_RELAXED);
	if (how == STORAGE_LINK_UNKNOWN) {
		how = find_link_method(s);
		__atomic_store_n(&s->link_method, how, __ATOMIC_RELAXED);
	}
	if (how != STORAGE_LINK_NAMED)
		u->fd = openat(s->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC,
			       0644);
	if (how != STORAGE_LINK_NAMED && u->fd >= 0)
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
	struct storage *s = u->storage;
	temp_name(u->tmpname, sizeof(u->tmpname));
	if (link_anonymous(
		s->dirfd, u->fd, u->tmpname,
		__atomic_load_n(&s->link_method, __ATOMIC_RELAXED)) == 0)
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
