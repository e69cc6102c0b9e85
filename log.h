/* log.h: log lines in the original's format, to stderr and an optional
 * log file (log.c). */
#ifndef FILESERV_LOG_H
#define FILESERV_LOG_H

/* Also writes to path (appending) when it is not NULL; quiet silences
 * stderr. Returns 0 or -1 (errno set). */
int log_open(const char *path, int quiet);
/* The log file's descriptor, or -1. */
int log_file_fd(void);
/* Whether log lines go anywhere (not --quiet without a log file). */
int log_enabled(void);
void log_info(const char *worker, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_error(const char *worker, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
