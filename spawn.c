/* spawn.c: a server as a child process of this executable (`fileserv
 * serve ... --ready-fd N`), for the scripts and benchmarks that start
 * their own: started, waited for until it listens, and stopped. */
#include "fileserv.h"
#include "clock.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Reads the port from the ready pipe; -1 if the child exits or hangs. */
static int wait_ready(int fd)
{
	char buf[32];
	size_t got = 0;
	struct pollfd p = {fd, POLLIN, 0};
	while (got < sizeof(buf) - 1 && poll(&p, 1, 15000) > 0) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(buf, '\n', got))
			break;
	}
	buf[got] = '\0';
	return got ? atoi(buf) : -1;
}

pid_t server_spawn(const char *const *args, int *port, struct fs_status *st)
{
	const char *argv[64];
	char ready[16];
	int n = 0, pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "pipe: %s", strerror(errno));
	snprintf(ready, sizeof(ready), "%d", pipefd[1]);
	argv[n++] = "fileserv";
	argv[n++] = "serve";
	while (*args && n < 60)
		argv[n++] = *args++;
	argv[n++] = "--ready-fd";
	argv[n++] = ready;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fcntl(pipefd[1], F_SETFD, 0);
		execv("/proc/self/exe", (char **)argv);
		_exit(127); /* the child of fork(): exec failed */
	}
	close(pipefd[1]);
	*port = pid > 0 ? wait_ready(pipefd[0]) : -1;
	close(pipefd[0]);
	if (*port > 0)
		return pid;
	if (pid > 0)
		server_reap(pid, 0);
	return fs_fail(st, FS_ERR_LOCAL,
		       "server did not start (see its message above)");
}

void server_reap(pid_t pid, double grace)
{
	kill(pid, SIGTERM);
	double until = clock_now() + grace;
	while (waitpid(pid, NULL, WNOHANG) == 0) {
		if (clock_now() >= until) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return;
		}
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
}
