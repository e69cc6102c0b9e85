/* log.c: one line per event in the Python original's format,
 *   2025-05-24 19:02:59,174 - INFO - worker-1 - message
 * to stderr and, when asked, appended to a log file. Each line is written
 * with a single write() so that threads and processes never interleave
 * within a line. log_reopen() (SIGHUP: log rotation) opens the file's path
 * again onto the same descriptor with dup2(), so a writer in another
 * thread only ever sees the old file or the new one. */
#include "fileserv.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;
static int log_quiet;
static const char *log_path;

static int log_open_path(void)
{
	return open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int log_open(const char *path, int quiet, struct fs_status *st)
{
	log_quiet = quiet;
	log_path = path;
	if (!path)
		return 0;
	log_fd = log_open_path();
	if (log_fd < 0)
		return fs_fail(st, FS_ERR_LOCAL, "log file %s: %s", path,
			       strerror(errno));
	return 0;
}

int log_reopen(void)
{
	if (log_fd < 0)
		return 0;
	int saved = errno, fd = log_open_path();
	int rc = fd >= 0 && dup3(fd, log_fd, O_CLOEXEC) >= 0 ? 0 : -1;
	if (fd >= 0)
		close(fd);
	if (rc == 0)
		errno = saved;
	return rc;
}

int log_file_fd(void)
{
	return log_fd;
}

int log_enabled(void)
{
	return !log_quiet || log_fd >= 0;
}

static void log_line(const char *level, const char *worker, const char *fmt,
		     va_list ap)
{
	if (!log_enabled())
		return;
	char line[1024];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ",%03ld - %s - %s - ",
			      (long)(tv.tv_usec / 1000), level, worker);
	if (n < sizeof(line))
		n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (!log_quiet && write(STDERR_FILENO, line, n) < 0)
		return;
	if (log_fd >= 0 && write(log_fd, line, n) < 0)
		return;
}

void log_info(const char *worker, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("INFO", worker, fmt, ap);
	va_end(ap);
}

void log_error(const char *worker, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("ERROR", worker, fmt, ap);
	va_end(ap);
}
