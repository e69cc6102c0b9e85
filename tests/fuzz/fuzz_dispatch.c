/* fuzz_dispatch.c: the real command handlers (server_handle) on a
 * temporary storage next to a canary directory, sftp-server style.
 *
 * Once: a mkdtemp root with storage/ and canary/ (canary/keep holds known
 * bytes), and a struct server from server_open (port 0 on 127.0.0.1, sync
 * off, quiet log, an upload cap of 16 KiB so that the "too large" path is
 * reachable). Before every input the storage is reset to a fixture: a
 * regular file, a file with a space in its name, a hard link to
 * canary/keep (an in-place write would show through it), symlinks to
 * canary/keep and /etc/passwd, a directory and a FIFO; or, for inputs
 * whose size is 12-15 mod 16, nothing at all (an empty storage).
 *
 * Each input is one connection's bytes, as a client sends them. As pool.c
 * does with what the acceptor read, the first part of it goes to
 * server_handle(srv, "fuzz", h) as already-read head bytes:
 * len = min(size, FS_HEAD_MAX) * (size % 4) / 4, so 0, 1/4, 1/2 or 3/4 of
 * it (a byte more or less at the end of an input moves the split). A
 * thread writes the rest into the other end of a socketpair, then
 * shutdown(SHUT_WR). After each input:
 *   - the reply, if any, is one JSON object with "status" OK or ERROR,
 *     followed by \r\n\r\n and nothing else, with no \r\n\r\n before;
 *   - canary/keep is unchanged and is canary/'s only entry;
 *   - the root holds nothing but storage/ and canary/;
 *   - storage/ holds no dot-file (no temporary left behind);
 *   - no file descriptor leaked. */
#include "fileserv.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "storage.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* compiler-rt: called when a sanitizer reports an error and dies. */
void __sanitizer_set_death_callback(void (*callback)(void));

static const char canary_text[] = "canary: must never change\n";
static char root[64], storage_path[128], canary_path[128], keep_path[160];
static struct server srv;
static int storage_fd = -1, fd_baseline = -1;

static void cleanup(void);

/* A failed check or setup step: the temporary root goes (so that crashes
 * in long campaigns leave no litter), then abort() for libFuzzer. */
static void die(const char *what)
{
	fprintf(stderr, "fuzz_dispatch: %s: %s\n", what, strerror(errno));
	cleanup();
	abort();
}

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_dispatch: %s\n", what);
	cleanup();
	abort();
}

static void write_file(int dirfd, const char *name, const char *text)
{
	int fd =
	    openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die(name);
	close(fd);
}

static void remove_tree(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir)
		die("opendir storage");
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd, e->d_name, 0) < 0 &&
		    unlinkat(dirfd, e->d_name, AT_REMOVEDIR) < 0)
			die(e->d_name);
	}
	closedir(dir);
}

static void reset_storage(int empty)
{
	remove_tree(storage_fd);
	if (empty)
		return;
	write_file(storage_fd, "a", "hello\n");
	write_file(storage_fd, "my file", "spaced\n");
	if (linkat(AT_FDCWD, keep_path, storage_fd, "h", 0) < 0)
		die("link h");
	if (symlinkat("../canary/keep", storage_fd, "c") < 0 ||
	    symlinkat("/etc/passwd", storage_fd, "pw") < 0)
		die("symlink");
	if (mkdirat(storage_fd, "d", 0755) < 0)
		die("mkdir d");
	if (mkfifoat(storage_fd, "p", 0644) < 0)
		die("mkfifo p");
}

static int remove_entry(const char *path, const struct stat *sb, int type,
			struct FTW *ftw)
{
	(void)sb, (void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Removes the whole temporary root, whatever is in it. Best effort, also
 * from a sanitizer's death callback. */
static void cleanup(void)
{
	static int done;
	if (done || !root[0])
		return;
	done = 1;
	nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof(root), "%s/fuzz_dispatch.XXXXXX",
		 tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	if (!mkdtemp(root))
		die("mkdtemp");
	snprintf(storage_path, sizeof(storage_path), "%s/storage", root);
	snprintf(canary_path, sizeof(canary_path), "%s/canary", root);
	snprintf(keep_path, sizeof(keep_path), "%s/keep", canary_path);
	if (mkdir(canary_path, 0755) < 0)
		die("mkdir canary");
	write_file(AT_FDCWD, keep_path, canary_text);

	log_open(NULL, 1, NULL);
	struct server_config cfg = {
	    .mode = "single",
	    .workers = 1,
	    .host = "127.0.0.1",
	    .port = 0,
	    .storage = storage_path,
	    .quiet = 1,
	    .sync = 0,
	    .idle_timeout = 5,
	    .drain_timeout = 1,
	    .max_upload = 16 * 1024,
	    .ready_fd = -1,
	};
	struct fs_status st = {0};
	if (server_open(&srv, &cfg, &st) < 0) {
		fprintf(stderr, "fuzz_dispatch: server_open: %s\n", st.message);
		abort();
	}
	storage_fd = open(storage_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (storage_fd < 0)
		die("open storage");
	atexit(cleanup);
	__sanitizer_set_death_callback(cleanup);
	fd_baseline = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd_baseline);
}

/* Names in dir other than . and .., as a count; *odd set if one is not in
 * allowed (NULL-terminated) or, when dots is 0, starts with '.'. */
static int check_dir(const char *path, const char *const *allowed, int dots)
{
	DIR *dir = opendir(path);
	if (!dir)
		die(path);
	int n = 0, odd = 0;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		if (!dots && e->d_name[0] == '.') {
			fprintf(stderr, "left behind: %s/%s\n", path,
				e->d_name);
			odd = 1;
		}
		if (allowed) {
			int ok = 0;
			for (const char *const *a = allowed; *a; a++)
				ok |= !strcmp(*a, e->d_name);
			if (!ok) {
				fprintf(stderr, "unexpected entry: %s/%s\n",
					path, e->d_name);
				odd = 1;
			}
		}
	}
	closedir(dir);
	return odd ? -1 : n;
}

static void check_canary(void)
{
	char buf[256];
	int fd = open(keep_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		die("canary/keep is gone");
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != (ssize_t)strlen(canary_text) || memcmp(buf, canary_text, n))
		fail("canary/keep changed");
}

static void check_reply(const char *buf, size_t len)
{
	if (len == 0)
		return; /* closed without a reply: an incomplete request */
	if (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0)
		fail("reply does not end with \\r\\n\\r\\n");
	ssize_t t = proto_find_terminator(buf, len);
	if (t != (ssize_t)len - 4)
		fail("\\r\\n\\r\\n inside the reply");
	cJSON *json = cJSON_ParseWithLength(buf, len - 4);
	if (!json)
		fail("reply is not JSON");
	cJSON *status = cJSON_GetObjectItemCaseSensitive(json, "status");
	if (!cJSON_IsString(status) || (strcmp(status->valuestring, "OK") &&
					strcmp(status->valuestring, "ERROR")))
		fail("reply without status OK or ERROR");
	cJSON_Delete(json);
}

struct feed {
	int fd;
	const uint8_t *data;
	size_t size;
};

static void *writer(void *arg)
{
	struct feed *f = arg;
	size_t off = 0;
	while (off < f->size) {
		ssize_t n =
		    send(f->fd, f->data + off, f->size - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the server closed early: fine */
		off += (size_t)n;
	}
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (storage_fd < 0)
		setup();
	reset_storage(size % 16 >= 12);

	size_t len = (size < FS_HEAD_MAX ? size : FS_HEAD_MAX) * (size % 4) / 4;
	struct handoff *h = calloc(1, sizeof(*h));
	if (!h)
		abort();
	if (len)
		memcpy(h->head, data, len);
	h->len = len;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	struct feed f = {sv[0], size ? data + len : data, size - len};
	pthread_t th;
	if (pthread_create(&th, NULL, writer, &f) != 0)
		die("pthread_create");
	h->fd = sv[1];
	conn_set_timeouts(sv[1], 5);	/* as accepted sockets inherit */
	server_handle(&srv, "fuzz", h); /* closes sv[1] */
	pthread_join(th, NULL);
	free(h);

	size_t cap = 1 << 16, got = 0;
	char *reply = malloc(cap);
	if (!reply)
		abort();
	for (;;) {
		if (got == cap && !(reply = realloc(reply, cap *= 2)))
			abort();
		ssize_t n = recv(sv[0], reply + got, cap - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(sv[0]);
	check_reply(reply, got);
	free(reply);

	static const char *const root_ok[] = {"storage", "canary", NULL};
	static const char *const canary_ok[] = {"keep", NULL};
	if (check_dir(root, root_ok, 1) < 0)
		fail("something appeared outside storage/");
	if (check_dir(canary_path, canary_ok, 1) != 1)
		fail("canary/ changed");
	check_canary();
	if (check_dir(storage_path, NULL, 0) < 0)
		fail("temporary file left in storage/");

	int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(probe);
	if (probe != fd_baseline) {
		fprintf(stderr, "next fd %d, baseline %d\n", probe,
			fd_baseline);
		fail("file descriptor leak");
	}
	return 0;
}
