/* lua/script.c: the embedded Lua 5.4 interpreter, the top of the Lua
 * glue: `fileserv run` and `fileserv compare`, and the states they and
 * the stress workers use (the standard libraries, the fileserv library of
 * lua/lfileserv.c with lua/lstress.c's `stress`, completed by
 * lua/fileserv.lua, and the Lua modules compiled into the binary by
 * lua/embed.S).
 *
 * Every call into Lua is protected and reports `file.lua:LINE: message`
 * with a traceback (lua.c's docall/msghandler). */
#include "fileserv.h"
#include "cmdline.h"
#include "commands.h"
#include "lua/lfileserv.h"
#include "lua/lstress.h"
#include "stress.h"
#include "threshold.h"

#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

extern const char script_prelude[], script_prelude_end[];
extern const char script_report[], script_report_end[];
extern const char script_stats[], script_stats_end[];
extern const char script_matrix[], script_matrix_end[];
extern const char script_compare[], script_compare_end[];
extern const char script_html[], script_html_end[];

/* The modules of lua/embed.S that scripts load with require. */
static const struct embedded {
	const char *module, *chunk, *start, *end;
} embedded[] = {
    {"fileserv.report", "=fileserv/report.lua", script_report,
     script_report_end},
    {"fileserv.stats", "=fileserv/stats.lua", script_stats, script_stats_end},
    {"fileserv.matrix", "=fileserv/matrix.lua", script_matrix,
     script_matrix_end},
    {"fileserv.compare", "=fileserv/compare.lua", script_compare,
     script_compare_end},
    {"fileserv.html", "=fileserv/html.lua", script_html, script_html_end},
};

/* ---- states ---- */

/* package.preload loader of an embedded module (its upvalue). */
static int load_embedded(lua_State *L)
{
	const struct embedded *m = lua_touserdata(L, lua_upvalueindex(1));
	if (luaL_loadbuffer(L, m->start, (size_t)(m->end - m->start),
			    m->chunk) != LUA_OK)
		return lua_error(L);
	lua_call(L, 0, 1);
	return 1;
}

static lua_State *script_new_state(void);

/* ---- fileserv run: SIGINT and SIGTERM ----
 *
 * A signal sets a flag (stress_interrupt) instead of killing the process:
 * a running fileserv.stress stops its workers and returns what ran, and a
 * script that asks fileserv.interrupted() can save its work and end. A
 * script that never asked is stopped at once by a Lua error raised from
 * a hook (lua.c's way with Ctrl-C), so that old scripts still stop. Either
 * way the servers it started are stopped at exit, and the exit status is
 * 128 + the signal unless the script calls os.exit itself. A second
 * signal ends the process at once. */

static lua_State *script_state;		   /* the script's own state */
static volatile sig_atomic_t script_polls; /* it asked interrupted() */

static void stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	lua_sethook(L, NULL, 0, 0);
	luaL_error(L, "interrupted (%s)",
		   stress_signal_name(stress_interrupted()));
}

static void script_on_signal(int sig)
{
	if (stress_interrupted()) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	stress_interrupt(sig);
	if (!script_polls && script_state)
		lua_sethook(script_state, stop_hook,
			    LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* fileserv.interrupted(): "SIGINT", "SIGTERM" or nil */
static int interrupted_l(lua_State *L)
{
	int sig = stress_interrupted();
	script_polls = 1;
	if (sig)
		lua_pushstring(L, stress_signal_name(sig));
	else
		lua_pushnil(L);
	return 1;
}

static void script_catch_signals(lua_State *L)
{
	struct sigaction sa = {.sa_handler = script_on_signal};
	script_state = L;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* require "fileserv": the C library completed by lua/fileserv.lua. */
static int open_fileserv(lua_State *L)
{
	luaopen_fileserv(L);
	lstress_open(L, script_new_state);
	lua_pushcfunction(L, interrupted_l);
	lua_setfield(L, -2, "interrupted");
	if (luaL_loadbuffer(L, script_prelude,
			    (size_t)(script_prelude_end - script_prelude),
			    "=fileserv/fileserv.lua") != LUA_OK)
		return lua_error(L);
	lua_insert(L, -2);
	lua_call(L, 1, 1);
	return 1;
}

static int setup_state(lua_State *L)
{
	luaL_openlibs(L);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	for (size_t i = 0; i < sizeof embedded / sizeof embedded[0]; i++) {
		lua_pushlightuserdata(L, (void *)&embedded[i]);
		lua_pushcclosure(L, load_embedded, 1);
		lua_setfield(L, -2, embedded[i].module);
	}
	lua_pop(L, 1);
	luaL_requiref(L, "fileserv", open_fileserv, 1);
	return 0;
}

/* A state with the standard libraries, `fileserv` (global and require)
 * and the built-in Lua modules; NULL on out of memory. */
static lua_State *script_new_state(void)
{
	lua_State *L = luaL_newstate();
	if (!L)
		return NULL;
	lua_pushcfunction(L, lfileserv_msghandler);
	lua_pushcfunction(L, setup_state);
	if (lua_pcall(L, 0, 0, 1) != LUA_OK) {
		fprintf(stderr, "fileserv: %s\n", lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
	lua_settop(L, 0);
	return L;
}

/* ---- fileserv run ---- */

static const char run_usage[] =
    "usage: fileserv run [-s HOST[:PORT]] SCRIPT [ARGS...]\n"
    "\n"
    "Runs a Lua 5.4 script, as `lua SCRIPT ARGS` would (the `arg` table,\n"
    "`...`, os.exit), with the standard libraries and the `fileserv`\n"
    "library (also require \"fileserv\"). See docs/lua.md. Servers the\n"
    "script starts are stopped when it ends, however it ends.\n"
    "SIGINT/SIGTERM: a running fileserv.stress returns what ran so far;\n"
    "a script that checks fileserv.interrupted() may then finish its\n"
    "work, any other is stopped with the error \"interrupted (SIGINT)\".\n"
    "The exit status is then 130 (SIGINT) or 143 (SIGTERM).\n"
    "A script that ends normally (no os.exit, no error) exits with 4 if a\n"
    "fileserv.stress call in it had a threshold that failed, else 0.\n"
    "Options after SCRIPT are the script's. With -s, the script's client\n"
    "calls default to that server (as $FILESERV_SERVER does).\n"
    "Example: fileserv run scripts/stress_all.lua --sizes 10MB\n";

static void push_args(lua_State *L, int argc, char **argv)
{
	lua_createtable(L, argc, 2);
	lua_pushliteral(L, "fileserv run");
	lua_rawseti(L, -2, -1);
	for (int i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i);
	}
	lua_setglobal(L, "arg");
}

static int run_option(void *ctx, int ch, const char *arg, struct fs_status *st)
{
	(void)ctx, (void)ch, (void)arg;
	return fs_fail(st, FS_ERR_USAGE, "run has no options of its own");
}

static const struct cmdline_spec run_spec = {
    .usage = run_usage,
    .globals = CMDLINE_SERVER,
    .in_order = 1,
    .option = run_option,
};

int script_main(struct cmdline *cl, int argc, char **argv)
{
	struct fs_status st;
	int at = cmdline_parse(cl, &run_spec, NULL, argc, argv, &st);
	if (at == 0)
		return 0;
	if (at > 0 && at >= argc)
		at = fs_fail(&st, FS_ERR_USAGE, "expected SCRIPT");
	if (at < 0)
		return cmdline_usage_error(cl, &st);
	/* the default server of the script's client calls */
	if (cl->server)
		setenv("FILESERV_SERVER", cl->server, 1);
	argc -= at - 1;
	argv += at - 1;
	atexit(lfileserv_stop_servers);
	lua_State *L = script_new_state();
	if (!L)
		return 3;
	push_args(L, argc - 1, argv + 1);
	lua_pushcfunction(L, lfileserv_msghandler);
	script_catch_signals(L);
	int status = luaL_loadfile(L, argv[1]);
	if (status == LUA_OK) {
		for (int i = 2; i < argc; i++)
			lua_pushstring(L, argv[i]);
		status = lua_pcall(L, argc - 2, 0, 1);
	}
	if (status != LUA_OK)
		fprintf(stderr, "fileserv: %s\n", lua_tostring(L, -1));
	script_state = NULL;
	lua_close(L);
	if (stress_interrupted())
		return 128 + stress_interrupted();
	if (status != LUA_OK)
		return 1;
	return lstress_thresholds_failed() ? THRESHOLD_EXIT : 0;
}

/* ---- fileserv compare ---- */

static int call_compare(lua_State *L)
{
	int argc = (int)lua_tointeger(L, 1);
	char **argv = lua_touserdata(L, 2);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "fileserv.compare");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "main");
	lua_createtable(L, argc, 0);
	for (int i = 1; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i);
	}
	lua_call(L, 1, 1);
	return 1;
}

int compare_main(struct cmdline *cl, int argc, char **argv)
{
	struct fs_status st;
	if (cmdline_check_globals(cl, 0, &st) < 0)
		return cmdline_usage_error(cl, &st);
	lua_State *L = script_new_state();
	if (!L)
		return 3;
	lua_pushcfunction(L, lfileserv_msghandler);
	lua_pushcfunction(L, call_compare);
	lua_pushinteger(L, argc);
	lua_pushlightuserdata(L, argv);
	int status = lua_pcall(L, 2, 1, 1) == LUA_OK
			 ? (int)lua_tointeger(L, -1)
			 : (fprintf(stderr, "fileserv compare: %s\n",
				    lua_tostring(L, -1)),
			    3);
	lua_close(L);
	return status;
}
