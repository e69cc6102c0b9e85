/* bench_peers.c: the programs `fileserv bench` measures fileserv against,
 * run as the system installed them (Debian iperf3, nginx-light or nginx,
 * wrk; `make bench` installs them when run as root):
 *   - iperf3's single loopback TCP stream, the reference transfers are
 *     reported against, and a loopback stream of our own made the way
 *     iperf3 makes it (128 KB sends from one process to another), so
 *     that a machine without iperf3 still has a reference;
 *   - nginx, one worker, serving a 1 KB file to wrk with one connection
 *     per request (Connection: close).
 * Each peer is a child process stopped by its pid. A missing program or
 * a failed run is -1 with st saying why, and bench shows the row as
 * skipped with that note. */
#include "fileserv.h"
#include "bench.h"
#include "clock.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PEER_BLOCK (128 * 1024) /* iperf3's default TCP block */

/* ---- our own loopback stream ---- */

/* A listening socket on 127.0.0.1 and its port; -1 on failure. */
static int listen_loopback(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0 ||
	    listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static int connect_loopback(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The receiving process: reads until EOF, then answers one byte. */
static void receive_all(int listener)
{
	int fd = accept(listener, NULL, NULL);
	char *buf = malloc(PEER_BLOCK), done = 1;
	while (fd >= 0 && buf && recv(fd, buf, PEER_BLOCK, 0) > 0)
		;
	if (fd >= 0 && send(fd, &done, 1, MSG_NOSIGNAL) != 1)
		_exit(1); /* the child of fork() */
	_exit(0);
}

double peers_loopback(uint64_t bytes, struct fs_status *st)
{
	int port, listener = listen_loopback(&port);
	if (listener < 0)
		return fs_fail(st, FS_ERR_NETWORK, "loopback: %s",
			       strerror(errno));
	pid_t pid = fork();
	if (pid == 0)
		receive_all(listener);
	close(listener);
	int fd = pid > 0 ? connect_loopback(port) : -1;
	char *buf = malloc(PEER_BLOCK), ack = 0;
	double t0 = clock_now(), mbs = -1;
	uint64_t sent = 0;
	if (buf)
		memset(buf, 0x5a, PEER_BLOCK);
	while (fd >= 0 && buf && sent < bytes) {
		ssize_t n = send(fd, buf, PEER_BLOCK, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		sent += (uint64_t)n;
	}
	if (fd >= 0 && shutdown(fd, SHUT_WR) == 0 &&
	    recv(fd, &ack, 1, 0) == 1 && sent >= bytes)
		mbs = (double)sent / (clock_now() - t0) / 1e6;
	free(buf);
	if (fd >= 0)
		close(fd);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	if (mbs < 0)
		return fs_fail(st, FS_ERR_NETWORK, "loopback stream failed");
	return mbs;
}

/* ---- running other programs ---- */

/* Finds program in PATH, /usr/sbin or /sbin (nginx); 0 with its path
 * in path, or -1. */
static int find_program(const char *program, char *path, size_t len)
{
	char dirs[4096];
	const char *env = getenv("PATH");
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin", env ? env : "");
	for (char *save, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/%s", d, program);
		if (access(path, X_OK) == 0)
			return 0;
	}
	return -1;
}

/* Starts argv (argv[0] a program find_program finds) in the background,
 * its output to log; returns its pid, or -1. */
static pid_t peer_start(char *const argv[], const char *log)
{
	char path[4096];
	if (find_program(argv[0], path, sizeof(path)) < 0)
		return -1;
	int out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	pid_t pid = out < 0 ? -1 : fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(out, 1);
		dup2(out, 2);
		execv(path, argv);
		_exit(127); /* the child of fork(): exec failed */
	}
	if (out >= 0)
		close(out);
	return pid;
}

static void peer_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	double until = clock_now() + 5;
	while (waitpid(pid, NULL, WNOHANG) == 0) {
		if (clock_now() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return;
		}
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
}

/* CPU seconds spent so far by process pid's live threads and its live
 * children's (nginx's worker under its master, a process-mode server's
 * workers), in ns from each thread's schedstat: /proc/PID/stat counts in
 * clock ticks, too coarse for a 60 ms transfer. A thread or child that
 * ends between two readings takes its time with it: the servers measured
 * here keep theirs (fileserv's pools, nginx's worker, Debian 12's
 * single-threaded iperf3 -s). */
static double tree_cpu(pid_t pid, int depth)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *tasks = opendir(path);
	const struct dirent *t;
	double s = 0;
	while (tasks && (t = readdir(tasks))) {
		if (t->d_name[0] == '.')
			continue;
		unsigned long long ns;
		int child;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat",
			 (int)pid, t->d_name);
		FILE *f = fopen(path, "r");
		if (f && fscanf(f, "%llu", &ns) == 1)
			s += (double)ns / 1e9;
		if (f)
			fclose(f);
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/children",
			 (int)pid, t->d_name);
		f = depth < 2 ? fopen(path, "r") : NULL;
		while (f && fscanf(f, "%d", &child) == 1)
			s += tree_cpu(child, depth + 1);
		if (f)
			fclose(f);
	}
	if (tasks)
		closedir(tasks);
	return s;
}

double peers_cpu(pid_t pid)
{
	return pid > 0 ? tree_cpu(pid, 0) : 0;
}

/* Output of a shell command, up to cap - 1 bytes; -1 if it failed. */
static int command_output(const char *cmd, char *out, size_t cap)
{
	FILE *f = popen(cmd, "r");
	size_t n = 0, got;
	if (!f)
		return -1;
	while (n < cap - 1 && (got = fread(out + n, 1, cap - 1 - n, f)) > 0)
		n += got;
	out[n] = '\0';
	return pclose(f) == 0 ? 0 : -1;
}

/* Waits up to 5 s until something listens on port. */
static int wait_listening(int port)
{
	for (int i = 0; i < 500; i++) {
		int fd = connect_loopback(port);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	return -1;
}

/* A port nothing listens on now, below the ephemeral range. */
static int free_port(void)
{
	static int next = 0;
	if (!next)
		next = 20000 + (int)(getpid() % 5000) * 2;
	for (int tries = 0; tries < 100; tries++) {
		int port = next++, fd = connect_loopback(port);
		if (fd < 0)
			return port;
		close(fd);
	}
	return -1;
}

/* ---- iperf3 ---- */

int peers_iperf3_start(struct peer *p, struct fs_status *st)
{
	p->pid = -1;
	char port[16], path[4096];
	if (find_program("iperf3", path, sizeof(path)) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "iperf3 is not installed");
	p->port = free_port();
	snprintf(port, sizeof(port), "%d", p->port);
	char *argv[] = {"iperf3", "-s", "-B", "127.0.0.1", "-p", port, NULL};
	p->pid = p->port > 0 ? peer_start(argv, "/dev/null") : -1;
	if (p->pid < 0 || wait_listening(p->port) < 0) {
		peer_stop(p->pid);
		p->pid = -1;
		return fs_fail(st, FS_ERR_LOCAL, "iperf3 -s did not start");
	}
	return 0;
}

double peers_iperf3_run(const struct peer *p, uint64_t bytes,
			struct fs_status *st)
{
	char cmd[160], *out = malloc(1 << 20);
	snprintf(cmd, sizeof(cmd),
		 "iperf3 -c 127.0.0.1 -p %d -n %llu -J 2>/dev/null", p->port,
		 (unsigned long long)bytes);
	double mbs = -1;
	if (out && command_output(cmd, out, 1 << 20) == 0) {
		cJSON *j = cJSON_Parse(out);
		cJSON *end = cJSON_GetObjectItem(j, "end");
		cJSON *sum = cJSON_GetObjectItem(end, "sum_received");
		cJSON *bps = cJSON_GetObjectItem(sum, "bits_per_second");
		if (cJSON_IsNumber(bps))
			mbs = bps->valuedouble / 8e6;
		cJSON_Delete(j);
	}
	free(out);
	if (mbs <= 0)
		return fs_fail(st, FS_ERR_LOCAL, "iperf3 -c failed");
	return mbs;
}

void peers_stop(struct peer *p)
{
	peer_stop(p->pid);
	p->pid = -1;
}

/* ---- nginx and wrk ---- */

/* nginx.conf for one worker serving dir/www on port, everything it
 * writes kept under dir. */
static int nginx_config(const char *dir, int port)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/nginx.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"%s"
		"worker_processes 1;\n"
		"daemon off;\n"
		"pid %s/nginx.pid;\n"
		"error_log %s/error.log;\n"
		"events { worker_connections 1024; }\n"
		"http {\n"
		"  access_log off;\n"
		"  client_body_temp_path %s/body;\n"
		"  proxy_temp_path %s/proxy;\n"
		"  fastcgi_temp_path %s/fastcgi;\n"
		"  server { listen 127.0.0.1:%d; root %s/www; }\n"
		"}\n",
		geteuid() == 0 ? "user root;\n" : "", dir, dir, dir, dir, dir,
		port, dir);
	return fclose(f);
}

int peers_nginx_start(struct peer *p, const char *dir, struct fs_status *st)
{
	char conf[256], log[256], path[4096];
	p->pid = -1;
	if (find_program("nginx", path, sizeof(path)) < 0 ||
	    find_program("wrk", path, sizeof(path)) < 0)
		return fs_fail(st, FS_ERR_LOCAL,
			       "nginx and wrk are not both installed");
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(log, sizeof(log), "%s/nginx.out", dir);
	p->port = free_port();
	char *argv[] = {"nginx",  "-p", (char *)dir, "-e",
			"stderr", "-c", conf,	     NULL};
	if (p->port < 0 || nginx_config(dir, p->port) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "nginx: %s: %s", conf,
			       strerror(errno));
	p->pid = peer_start(argv, log);
	if (p->pid < 0 || wait_listening(p->port) < 0) {
		peer_stop(p->pid);
		p->pid = -1;
		return fs_fail(st, FS_ERR_LOCAL, "nginx did not start (see %s)",
			       log);
	}
	return 0;
}

double peers_wrk_run(const struct peer *p, const char *file, int clients,
		     double seconds, double *requests, struct fs_status *st)
{
	char cmd[512], out[8192];
	snprintf(cmd, sizeof(cmd),
		 "wrk -t 2 -c %d -d %.0fs -H 'Connection: close' "
		 "http://127.0.0.1:%d/%s 2>&1",
		 clients, seconds < 1 ? 1 : seconds, p->port, file);
	if (command_output(cmd, out, sizeof(out)) < 0)
		return fs_fail(st, FS_ERR_LOCAL, "wrk failed");
	const char *rate = strstr(out, "Requests/sec:");
	if (strstr(out, "Non-2xx") || strstr(out, "Socket errors"))
		return fs_fail(st, FS_ERR_LOCAL, "wrk saw errors: %.200s",
			       strstr(out, "Non-2xx") ? strstr(out, "Non-2xx")
						      : strstr(out, "Socket"));
	const char *count = strstr(out, " requests in ");
	if (!rate || !count)
		return fs_fail(st, FS_ERR_LOCAL, "wrk: no rate in its output");
	while (count > out && count[-1] >= '0' && count[-1] <= '9')
		count--;
	*requests = atof(count);
	return atof(rate + strlen("Requests/sec:"));
}
