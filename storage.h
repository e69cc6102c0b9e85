/* storage.h: the confined storage directory: open, list, delete, atomic
 * uploads (temporary file, fsync, rename, directory fsync) (storage.c). */
#ifndef FILESERV_STORAGE_H
#define FILESERV_STORAGE_H

#include "fileserv.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FS_TMP_PREFIX ".fileserv-tmp-"

/* How an upload's anonymous O_TMPFILE gets a name at commit. */
enum storage_link {
	STORAGE_LINK_UNKNOWN = 0, /* found out at the first upload */
	STORAGE_LINK_PROC,	  /* linkat of /proc/self/fd/N */
	STORAGE_LINK_EMPTY_PATH,  /* linkat(fd, "", AT_EMPTY_PATH) */
	STORAGE_LINK_NAMED	  /* neither: named temporaries instead */
};

struct storage {
	int dirfd;
	int sync;	 /* fsync uploads and the directory */
	int link_method; /* an enum storage_link */
};

/* Opens (creating if missing) the storage directory and removes stale
 * temporary files. Returns 0 or -1 with st set. */
int storage_open(struct storage *s, const char *path, int sync,
		 struct fs_status *st);
void storage_close(struct storage *s);
/* Removes named temporary files: all of them (pid 0), or those a dead
 * process left. */
void storage_sweep(struct storage *s, pid_t pid);
/* The functions below return -1 (or NULL) with st set: FS_ERR_PROTOCOL
 * for a name proto_check_name() refuses, FS_ERR_LOCAL otherwise, the
 * message naming the file and the cause (it becomes the ERROR reply). */

/* Opens a regular file for reading and sets *size. */
int storage_open_file(struct storage *s, const char *name, uint64_t *size,
		      struct fs_status *st);
/* The names of the regular files in sorted order, read a bounded batch at
 * a time (see storage.c): storage_list_open() reads the first batch, and
 * storage_list_next() sets *name (valid until the next call) and returns
 * 1, or 0 at the end. */
struct storage_listing;
struct storage_listing *storage_list_open(struct storage *s,
					  struct fs_status *st);
int storage_list_next(struct storage_listing *l, const char **name,
		      struct fs_status *st);
void storage_list_close(struct storage_listing *l);
int storage_delete(struct storage *s, const char *name, struct fs_status *st);

/* An upload in progress: invisible until committed. */
struct upload {
	struct storage *storage;
	int fd;
	char tmpname[64]; /* named temporary, when O_TMPFILE is unsupported */
	uint64_t bytes;
	int replaced_fd; /* the version a commit replaced, until released */
};
int storage_upload_begin(struct storage *s, struct upload *u,
			 struct fs_status *st);
int storage_upload_write(struct upload *u, const void *buf, size_t len,
			 struct fs_status *st);
/* Makes the upload visible as name, durably when sync is on. The version
 * it replaces stays open, so that freeing its pages waits for
 * storage_upload_release(), after the reply. */
int storage_upload_commit(struct upload *u, const char *name,
			  struct fs_status *st);
void storage_upload_release(struct upload *u);
/* Discards an upload that was not committed. Safe to call twice. */
void storage_upload_abort(struct upload *u);

#endif
