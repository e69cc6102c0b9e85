/* lua/lfileserv.c: the `fileserv` Lua library: clients, servers, test
 * files, time, JSON. It only converts values between Lua and the C API
 * (client.c, spawn.c, testdata.c); it does no protocol I/O itself. Below
 * it is lua/json.c; `fileserv.stress` (lua/lstress.c) and the runner
 * (lua/script.c) build on it.
 *
 * Handles follow liolib.c: full userdata with a named metatable, methods in
 * __index, and __gc and __close sharing one function; a server handle is
 * created closed before the process starts. Misuse raises (luaL_check*);
 * an expected failure returns nil, message, class. */
#include "fileserv.h"
#include "client.h"
#include "clock.h"
#include "conn.h"
#include "lua/json.h"
#include "lua/lfileserv.h"
#include "proto.h"
#include "spawn.h"
#include "stress.h"
#include "testdata.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_MT "fileserv.client"
#define SERVER_MT "fileserv.server"

/* ---- servers left running, and errors ---- */

#define CHILDREN_MAX 64
static pid_t children[CHILDREN_MAX];
static pid_t parents[CHILDREN_MAX]; /* the process that started each */

static void remember_child(pid_t pid)
{
	for (int i = 0; i < CHILDREN_MAX; i++)
		if (children[i] == 0) {
			children[i] = pid;
			parents[i] = getpid();
			return;
		}
}

static void forget_child(pid_t pid)
{
	for (int i = 0; i < CHILDREN_MAX; i++)
		if (children[i] == pid)
			children[i] = 0;
}

/* A forked stress worker inherits this exit handler and the table: its
 * exit stops only the servers it started itself, never its parent's. */
void lfileserv_stop_servers(void)
{
	pid_t self = getpid();
	for (int i = 0; i < CHILDREN_MAX; i++)
		if (children[i] > 0 && parents[i] == self)
			kill(children[i], SIGTERM);
	for (int i = 0; i < CHILDREN_MAX; i++)
		if (children[i] > 0 && parents[i] == self)
			waitpid(children[i], NULL, 0);
}

double lfileserv_opt_seconds(lua_State *L, int idx, const char *key, double def,
			     int zero_ok)
{
	int type = lua_getfield(L, idx, key);
	double v = def;
	struct fs_status st;
	if (type == LUA_TSTRING &&
	    units_parse_seconds(lua_tostring(L, -1), &v, &st) < 0)
		luaL_error(L, "%s: %s", key, st.message);
	if (type == LUA_TNUMBER)
		v = lua_tonumber(L, -1);
	if ((type != LUA_TNIL && type != LUA_TSTRING && type != LUA_TNUMBER) ||
	    !(v > 0 || (zero_ok && v == 0)) || v > 1e9)
		luaL_error(L, "%s must be %s seconds (at most 1e9), not %s",
			   key, zero_ok ? "0 or more" : "more than 0",
			   luaL_tolstring(L, -1, NULL));
	lua_pop(L, 1);
	return v;
}

/* An error object that is not a string is shown through its __tostring,
 * as lua.c does. */
int lfileserv_msghandler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (!msg && luaL_callmeta(L, 1, "__tostring") &&
	    lua_type(L, -1) == LUA_TSTRING)
		msg = lua_tostring(L, -1);
	else if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)",
				      luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* ---- option tables ---- */

void lfileserv_check_options(lua_State *L, int idx, const char *func,
			     const char *const known[])
{
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		const char *key =
		    lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		int i = 0;
		while (key && known[i] && strcmp(key, known[i]) != 0)
			i++;
		if (key && known[i])
			continue;
		luaL_Buffer b;
		luaL_buffinit(L, &b);
		for (i = 0; known[i]; i++) {
			luaL_addstring(&b, i ? ", " : "");
			luaL_addstring(&b, known[i]);
		}
		luaL_pushresult(&b);
		if (key)
			luaL_error(L, "%s: unknown option '%s' (options: %s)",
				   func, key, lua_tostring(L, -1));
		luaL_error(L,
			   "%s: option keys are names, not a %s (options: %s)",
			   func, luaL_typename(L, -2), lua_tostring(L, -1));
	}
}

/* ---- results ---- */

/* The registry key of the stress worker's tally (lfileserv_set_tally). */
static const char tally_key;

void lfileserv_set_tally(lua_State *L, struct stress_tally *tally)
{
	lua_pushlightuserdata(L, tally);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &tally_key);
}

static int push_failure(lua_State *L, const struct fs_status *st)
{
	luaL_pushfail(L);
	lua_pushstring(L, st->message);
	lua_pushstring(L, fs_error_name(st->code));
	return 3;
}

/* The stress worker's tally, or NULL outside a stress worker. */
static struct stress_tally *worker_tally(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &tally_key);
	struct stress_tally *tally = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return tally;
}

/* In a stress worker: counts a step of the scenario; raises when the
 * step cannot be counted (too many names). */
static void step_record(lua_State *L, const char *name, int ok, double seconds)
{
	struct stress_tally *tally = worker_tally(L);
	struct fs_status st = {0};
	if (tally && stress_step_record(tally, name, ok, seconds, &st) < 0)
		luaL_error(L, "%s", st.message);
}

static void push_result(lua_State *L, const struct fs_result *res)
{
	lua_createtable(L, 0, 4);
	lua_pushliteral(L, "OK");
	lua_setfield(L, -2, "status");
	lua_pushinteger(L, (lua_Integer)res->bytes);
	lua_setfield(L, -2, "bytes");
	lua_pushnumber(L, res->seconds);
	lua_setfield(L, -2, "seconds");
	struct stress_tally *tally = worker_tally(L);
	if (tally)
		__atomic_fetch_add(&tally->bytes, res->bytes, __ATOMIC_RELAXED);
}

/* ---- client handles ---- */

static struct fs_client *check_client(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, CLIENT_MT);
}

void lfileserv_push_client(lua_State *L, const struct fs_client *c)
{
	struct fs_client *u = lua_newuserdatauv(L, sizeof(*u), 0);
	*u = *c;
	luaL_setmetatable(L, CLIENT_MT);
}

static int client_put_l(lua_State *L)
{
	struct fs_client *c = check_client(L, 1);
	const char *path = luaL_checkstring(L, 2);
	const char *slash = strrchr(path, '/');
	const char *name = luaL_optstring(L, 3, slash ? slash + 1 : path);
	struct fs_status st = {0};
	uint64_t size;
	int fd = client_open_source(path, &size, &st);
	if (fd < 0)
		return push_failure(L, &st);
	struct fs_result res;
	int rc = client_put(c, name, fd, size, NULL, NULL, &res, &st);
	close(fd);
	client_result_free(&res);
	if (rc < 0)
		return push_failure(L, &st);
	push_result(L, &res);
	return 1;
}

static int client_get_l(lua_State *L)
{
	struct fs_client *c = check_client(L, 1);
	const char *name = luaL_checkstring(L, 2);
	const char *dest = luaL_optstring(L, 3, NULL);
	struct fs_status st = {0};
	struct fs_result res;
	struct fs_sink sink = {client_discard, NULL};
	int rc = dest ? client_get_file(c, name, dest, 1, NULL, NULL, &res, &st)
		      : client_get(c, name, &sink, &res, &st);
	client_result_free(&res);
	if (rc < 0)
		return push_failure(L, &st);
	push_result(L, &res);
	return 1;
}

/* ls, rm and stats: the reply's data goes into the result as `field`. */
static int client_simple(lua_State *L, enum proto_command cmd,
			 const char *field)
{
	struct fs_client *c = check_client(L, 1);
	const char *name = cmd == CMD_DELETE ? luaL_checkstring(L, 2) : NULL;
	struct fs_status st = {0};
	struct fs_result res;
	if (client_request(c, cmd, name, &res, &st) < 0) {
		client_result_free(&res);
		return push_failure(L, &st);
	}
	push_result(L, &res);
	json_push(L, cJSON_GetObjectItem(res.reply, "data"));
	lua_setfield(L, -2, field);
	client_result_free(&res);
	return 1;
}

/* What c:ls() keeps in its table: names and a per-name allowance for
 * Lua's string and slot. Beyond it, c:ls(fn) streams the names. */
#define LUA_LIST_MAX (256u << 20)

/* A listing's sink: each name goes to the table or function at `target`
 * inside a protected call, so that a memory error, or an error the
 * function raises, ends the listing instead of unwinding through the
 * client. */
struct lua_names {
	lua_State *L;
	int target;
	lua_Integer n;
	size_t held;
	int raised;  /* the error is on the stack */
	int too_big; /* the table reached LUA_LIST_MAX */
};

/* (table or function, name, length, index): stores or passes the name. */
static int names_append(lua_State *L)
{
	int call = lua_isfunction(L, 1);
	if (call)
		lua_pushvalue(L, 1);
	lua_pushlstring(L, lua_touserdata(L, 2), (size_t)lua_tointeger(L, 3));
	if (call)
		lua_call(L, 1, 0);
	else
		lua_rawseti(L, 1, lua_tointeger(L, 4));
	return 0;
}

static int names_write(void *ctx, const void *name, size_t len)
{
	struct lua_names *s = ctx;
	lua_State *L = s->L;
	if (!lua_isfunction(L, s->target) &&
	    (s->held += len + 32) > LUA_LIST_MAX) {
		s->too_big = 1;
		errno = EFBIG;
		return -1;
	}
	if (!lua_checkstack(L, 6)) {
		errno = ENOMEM;
		return -1;
	}
	lua_pushcfunction(L, names_append);
	lua_pushvalue(L, s->target);
	lua_pushlightuserdata(L, (void *)name);
	lua_pushinteger(L, (lua_Integer)len);
	lua_pushinteger(L, ++s->n);
	if (lua_pcall(L, 4, 0, 0) == LUA_OK)
		return 0;
	s->raised = 1;
	errno = ECANCELED;
	return -1;
}

/* c:ls() adds `names`, a table; c:ls(fn) calls fn(name) for each name as
 * it arrives and adds `count`. */
static int client_ls_l(lua_State *L)
{
	struct fs_client *c = check_client(L, 1);
	int streamed = !lua_isnoneornil(L, 2);
	if (streamed)
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	if (!streamed) {
		lua_newtable(L);
		lua_replace(L, 2);
	}
	struct lua_names s = {.L = L, .target = 2};
	struct fs_sink sink = {names_write, &s};
	struct fs_status st = {0};
	struct fs_result res;
	int rc = client_list(c, &sink, &res, &st);
	client_result_free(&res);
	if (s.raised)
		return lua_error(L);
	if (rc < 0 && s.too_big)
		fs_fail(&st, FS_ERR_LOCAL,
			"listing larger than c:ls() keeps (256 MiB); "
			"c:ls(function(name) ... end) streams it");
	if (rc < 0)
		return push_failure(L, &st);
	push_result(L, &res);
	lua_pushinteger(L, s.n);
	lua_setfield(L, -2, "count");
	if (!streamed) {
		lua_pushvalue(L, 2);
		lua_setfield(L, -2, "names");
	}
	return 1;
}

static int client_rm_l(lua_State *L)
{
	return client_simple(L, CMD_DELETE, "message");
}

static int client_stats_l(lua_State *L)
{
	return client_simple(L, CMD_STATS, "data");
}

/* A client method as a step named after it: upvalues are the method
 * and its name; a first result of nil or false is a failed step. */
static int client_timed(lua_State *L)
{
	int nargs = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	double t0 = clock_now();
	lua_call(L, nargs, LUA_MULTRET);
	step_record(L, lua_tostring(L, lua_upvalueindex(2)),
		    lua_toboolean(L, 1), clock_now() - t0);
	return lua_gettop(L);
}

static int client_index(lua_State *L)
{
	struct fs_client *c = check_client(L, 1);
	const char *key = luaL_checkstring(L, 2);
	if (strcmp(key, "host") == 0)
		lua_pushstring(L, c->host);
	else if (strcmp(key, "port") == 0)
		lua_pushinteger(L, atoi(c->port));
	else if (luaL_getmetafield(L, 1, "methods") != LUA_TNIL)
		lua_getfield(L, -1, key);
	else
		lua_pushnil(L);
	return 1;
}

static int client_tostring(lua_State *L)
{
	struct fs_client *c = check_client(L, 1);
	lua_pushfstring(L, "fileserv.client(%s:%s)", c->host, c->port);
	return 1;
}

/* fileserv.client("host:port") or fileserv.client{host=, port=} */
static int client_new(lua_State *L)
{
	const char *server = NULL, *port = NULL;
	if (lua_istable(L, 1)) {
		static const char *const known[] = {"host", "port", "timeout",
						    NULL};
		lfileserv_check_options(L, 1, "fileserv.client", known);
		lua_getfield(L, 1, "host");
		lua_getfield(L, 1, "port");
		server = lua_tostring(L, -2);
		port = lua_tostring(L, -1);
	} else {
		server = luaL_optstring(L, 1, NULL);
	}
	struct fs_client c;
	struct fs_status st = {0};
	if (client_init(&c, server, port, &st) < 0)
		return luaL_error(L, "%s", st.message);
	if (lua_istable(L, 1))
		c.timeout =
		    lfileserv_opt_seconds(L, 1, "timeout", c.timeout, 0);
	lfileserv_push_client(L, &c);
	return 1;
}

/* ---- server handles: a fileserv serve child process ---- */

struct lua_server {
	pid_t pid; /* 0 once stopped */
	int port;
	char host[64];
};

static struct lua_server *check_server(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, SERVER_MT);
}

/* A server handle whose process still runs; raises otherwise. */
static struct lua_server *check_running(lua_State *L, int idx)
{
	struct lua_server *s = check_server(L, idx);
	if (s->pid <= 0)
		luaL_error(L, "fileserv.server on %s:%d is stopped", s->host,
			   s->port);
	return s;
}

static void server_terminate(struct lua_server *s)
{
	if (s->pid <= 0)
		return;
	server_reap(s->pid, 15);
	forget_child(s->pid);
	s->pid = 0;
}

/* stop, __gc and __close: a stopped server stays stopped. */
static int server_stop_l(lua_State *L)
{
	server_terminate(check_server(L, 1));
	return 0;
}

/* The client of a running server handle s into c. */
static void server_to_client(lua_State *L, const struct lua_server *s,
			     struct fs_client *c)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", s->port);
	if (client_init(c, s->host, port, NULL) < 0)
		luaL_error(L, "bad server address %s:%d", s->host, s->port);
}

static int server_client_l(lua_State *L)
{
	struct fs_client c;
	server_to_client(L, check_running(L, 1), &c);
	lfileserv_push_client(L, &c);
	return 1;
}

struct fs_client *lfileserv_test_client(lua_State *L, int idx,
					struct fs_client *out)
{
	const struct fs_client *c = luaL_testudata(L, idx, CLIENT_MT);
	if (c) {
		*out = *c;
		return out;
	}
	if (!luaL_testudata(L, idx, SERVER_MT))
		return NULL;
	server_to_client(L, check_running(L, idx), out);
	return out;
}

static int server_tostring(lua_State *L)
{
	struct lua_server *s = check_server(L, 1);
	if (s->pid > 0)
		lua_pushfstring(L, "fileserv.server(%s:%d, pid %d)", s->host,
				s->port, (int)s->pid);
	else
		lua_pushfstring(L, "fileserv.server(%s:%d, stopped)", s->host,
				s->port);
	return 1;
}

static int server_stats_l(lua_State *L)
{
	lua_settop(L, 1);
	server_client_l(L);
	lua_replace(L, 1);
	return client_stats_l(L);
}

static int server_index(lua_State *L)
{
	struct lua_server *s = check_server(L, 1);
	const char *key = luaL_checkstring(L, 2);
	if (strcmp(key, "host") == 0)
		lua_pushstring(L, s->host);
	else if (strcmp(key, "port") == 0)
		lua_pushinteger(L, s->port);
	else if (strcmp(key, "pid") == 0)
		lua_pushinteger(L, s->pid);
	else if (luaL_getmetafield(L, 1, "methods") != LUA_TNIL)
		lua_getfield(L, -1, key);
	else
		lua_pushnil(L);
	return 1;
}

/* serve{} options that become `fileserv serve` flags. */
static const char *const server_flags[][2] = {
    {"mode", "--mode"},
    {"workers", "--workers"},
    {"host", "--host"},
    {"port", "--port"},
    {"storage", "--storage"},
    {"log", "--log-file"},
    {"idle_timeout", "--idle-timeout"},
    {"max_upload", "--max-upload"},
    {"drain_timeout", "--drain-timeout"},
    {"codec", "--codec"},
    {"head_timeout", "--head-timeout"},
    {"min_rate", "--min-rate"},
    {"max_conns", "--max-conns"},
    {"queue_timeout", "--queue-timeout"},
    {"transfer_timeout", "--transfer-timeout"},
    {"user", "--user"},
    {"cpus", "--cpus"},
};
#define SERVER_FLAGS (sizeof(server_flags) / sizeof(server_flags[0]))

/* Raises unless every key of the options table at 1 is a serve{} option. */
static void server_check_options(lua_State *L)
{
	const char *known[SERVER_FLAGS + 2];
	for (size_t i = 0; i < SERVER_FLAGS; i++)
		known[i] = server_flags[i][0];
	known[SERVER_FLAGS] = "sync";
	known[SERVER_FLAGS + 1] = NULL;
	lfileserv_check_options(L, 1, "fileserv.serve", known);
}

/* Argument vector for `fileserv serve` from the options table at 1 and
 * the host to listen on (host= with its brackets removed). */
static int server_argv(lua_State *L, const char *host, const char **argv,
		       int max)
{
	int n = 0;
	argv[n++] = "--quiet";
	argv[n++] = "--port"; /* any free port, unless port= says otherwise */
	argv[n++] = "0";
	argv[n++] = "--host";
	argv[n++] = host;
	for (size_t i = 0; i < SERVER_FLAGS; i++) {
		if (strcmp(server_flags[i][0], "host") == 0)
			continue; /* given above */
		lua_getfield(L, 1, server_flags[i][0]);
		if (!lua_isnil(L, -1) && n + 2 < max) {
			argv[n++] = server_flags[i][1];
			argv[n++] = luaL_tolstring(L, -1, NULL);
		}
	}
	lua_getfield(L, 1, "sync");
	if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
		argv[n++] = "--no-sync";
	argv[n] = NULL;
	return n;
}

/* The host= option, as an address to listen on: "[::1]" is "::1". */
static void server_host(lua_State *L, struct lua_server *s)
{
	size_t len;
	lua_getfield(L, 1, "host");
	const char *host = luaL_optlstring(L, -1, "127.0.0.1", &len);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(s->host) || memchr(host, '\0', len))
		luaL_error(L, "serve: invalid host '%s'", host);
	memcpy(s->host, host, len);
	s->host[len] = '\0';
	lua_pop(L, 1);
}

/* fileserv.serve{mode=, workers=, port=0, storage=, sync=, ...} */
static int server_new(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	server_check_options(L);
	struct lua_server *s = lua_newuserdatauv(L, sizeof(*s), 0);
	memset(s, 0, sizeof(*s)); /* closed until the process runs */
	luaL_setmetatable(L, SERVER_MT);
	server_host(L, s);
	const char *argv[40];
	server_argv(L, s->host, argv, 36);
	struct fs_status st = {0};
	int port;
	pid_t pid = server_spawn(argv, &port, &st);
	if (pid < 0) {
		luaL_pushfail(L);
		lua_pushstring(L, st.message);
		return 2;
	}
	s->pid = pid;
	s->port = port;
	remember_child(pid);
	lua_pushvalue(L, 2);
	return 1;
}

/* ---- test files, time ---- */

static uint64_t check_size(lua_State *L, int idx)
{
	if (lua_type(L, idx) == LUA_TNUMBER) {
		lua_Integer n = luaL_checkinteger(L, idx);
		luaL_argcheck(L, n >= 0, idx, "size must be >= 0");
		return (uint64_t)n;
	}
	uint64_t size;
	struct fs_status st;
	if (units_parse_size(luaL_checkstring(L, idx), &size, &st) < 0)
		luaL_argerror(L, idx, st.message);
	return size;
}

/* fileserv.mkfile(path, size [, seed]) */
static int mkfile_l(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	uint64_t size = check_size(L, 2),
		 seed = (uint64_t)luaL_optinteger(L, 3, 1);
	if (testdata_make(path, size, seed) < 0)
		return luaL_fileresult(L, 0, path);
	lua_pushinteger(L, (lua_Integer)size);
	return 1;
}

static int now_l(lua_State *L)
{
	lua_pushnumber(L, clock_now());
	return 1;
}

static int sleep_l(lua_State *L)
{
	double s = luaL_checknumber(L, 1);
	luaL_argcheck(L, s >= 0 && s < 1e9, 1, "out of range");
	struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR &&
	       !stress_interrupted())
		;
	return 0;
}

/* fileserv.timer(name, fn, ...): fn(...)'s results, timed as step
 * `name` in a stress worker; failed if fn raises (the error goes on) or
 * returns nil or false first. */
static int timer_l(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	luaL_checkany(L, 2);
	double t0 = clock_now();
	int rc = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
	int ok = rc == LUA_OK && (lua_gettop(L) == 1 || lua_toboolean(L, 2));
	step_record(L, name, ok, clock_now() - t0);
	if (rc != LUA_OK)
		return lua_error(L);
	return lua_gettop(L) - 1;
}

static int size_l(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)check_size(L, 1));
	return 1;
}

/* fileserv.visible(text): text as a terminal may show it, every byte
 * visible (proto_escape_visible). */
static int visible_l(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *out = luaL_buffinitsize(L, &b, 4 * len + 1);
	luaL_pushresultsize(&b,
			    proto_escape_visible(text, len, out, 4 * len + 1));
	return 1;
}

/* ---- registration ---- */

static const luaL_Reg client_methods[] = {
    {"put", client_put_l}, {"get", client_get_l},     {"ls", client_ls_l},
    {"rm", client_rm_l},   {"stats", client_stats_l}, {NULL, NULL},
};

static const luaL_Reg client_meta[] = {
    {"__index", client_index},
    {"__tostring", client_tostring},
    {NULL, NULL},
};

static const luaL_Reg server_methods[] = {
    {"stop", server_stop_l},
    {"stats", server_stats_l},
    {"client", server_client_l},
    {NULL, NULL},
};

static const luaL_Reg server_meta[] = {
    {"__index", server_index},
    {"__tostring", server_tostring},
    {"__gc", server_stop_l},
    {"__close", server_stop_l},
    {NULL, NULL},
};

static const luaL_Reg functions[] = {
    {"client", client_new}, {"serve", server_new}, {"mkfile", mkfile_l},
    {"now", now_l},	    {"sleep", sleep_l},	   {"size", size_l},
    {"visible", visible_l}, {"timer", timer_l},	   {NULL, NULL},
};

/* A class whose methods are steps (timed) or not. */
static void new_class(lua_State *L, const char *name, const luaL_Reg *meta,
		      const luaL_Reg *methods, int timed)
{
	luaL_newmetatable(L, name);
	luaL_setfuncs(L, meta, 0);
	lua_newtable(L);
	for (const luaL_Reg *m = methods; m->name; m++) {
		lua_pushcfunction(L, m->func);
		if (timed) {
			lua_pushstring(L, m->name);
			lua_pushcclosure(L, client_timed, 2);
		}
		lua_setfield(L, -2, m->name);
	}
	lua_setfield(L, -2, "methods");
	lua_pop(L, 1);
}

int luaopen_fileserv(lua_State *L)
{
	new_class(L, CLIENT_MT, client_meta, client_methods, 1);
	new_class(L, SERVER_MT, server_meta, server_methods, 0);
	luaL_newlib(L, functions);
	json_open(L);
	lua_setfield(L, -2, "json");
	lua_pushliteral(L, FILESERV_VERSION);
	lua_setfield(L, -2, "version");
	return 1;
}
