/* error.c: the error vocabulary shared by every module: a class per
 * failure (enum fs_error), a message naming the thing and the cause, and
 * the exit status each class maps to. */
#include "fileserv.h"

#include <errno.h>
#include <stdio.h>

static const char *const error_names[FS_ERR_COUNT] = {
    [FS_OK] = "ok",
    [FS_ERR_USAGE] = "usage",
    [FS_ERR_SERVER] = "server",
    [FS_ERR_REFUSED] = "refused",
    [FS_ERR_RESET] = "reset",
    [FS_ERR_TIMEOUT] = "timeout",
    [FS_ERR_PROTOCOL] = "protocol",
    [FS_ERR_NETWORK] = "network",
    [FS_ERR_LOCAL] = "local",
    [FS_ERR_MISMATCH] = "mismatch",
    [FS_ERR_SCRIPT] = "script",
    [FS_ERR_WORKER] = "worker",
};

const char *fs_error_name(enum fs_error code)
{
	return code < FS_ERR_COUNT ? error_names[code] : "unknown";
}

int fs_fail(struct fs_status *st, enum fs_error code, const char *fmt, ...)
{
	if (!st)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	st->code = code;
	vsnprintf(st->message, sizeof(st->message), fmt, ap);
	va_end(ap);
	return -1;
}

enum fs_error fs_error_from_errno(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return FS_ERR_REFUSED;
	case ECONNRESET:
	case EPIPE:
	case ECONNABORTED:
		return FS_ERR_RESET;
	case EAGAIN:
	case ETIMEDOUT:
		return FS_ERR_TIMEOUT;
	default:
		return FS_ERR_NETWORK;
	}
}

int fs_exit_code(enum fs_error code)
{
	switch (code) {
	case FS_OK:
		return 0;
	case FS_ERR_SERVER:
		return 1;
	case FS_ERR_USAGE:
		return 2;
	default:
		return 3;
	}
}
