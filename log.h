/* log.h: log lines in the original's format, to stderr and an optional
 * log file (log.c). */
#ifndef FILESERV_LOG_H
#define FILESERV_LOG_H

struct fs_status;

/* Also writes to path (appending) when it is not NULL; quiet silences
 * stderr. Returns 0, or -1 with st naming the file and the cause. */
int log_open(const char *path, int quiet, struct fs_status *st);
/* Opens the log file's path again (after it was rotated) onto the same
 * descriptor; async-signal-safe. 0, or -1 (errno set; the old file stays
 * in use). */
int log_reopen(void);
/* The log file's descriptor, or -1. */
int log_file_fd(void);
/* Whether log lines go anywhere (not --quiet without a log file). */
int log_enabled(void);
void log_info(const char *worker, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_error(const char *worker, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
