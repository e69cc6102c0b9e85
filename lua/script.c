/* lua/script.c: the embedded Lua 5.4 interpreter: `fileserv run`, the
 * states (one for the script, one per stress worker), JSON conversion, and
 * the scenario hooks that let the stress engine run a Lua function in each
 * worker.
 *
 * Every call into Lua is protected and reports `file.lua:LINE: message`
 * with a traceback (lua.c's docall/msghandler). What crosses from the
 * script into a worker is a copy: the scenario function as bytecode
 * (lua_dump), its upvalues described as JSON (plain data is copied, a
 * module or global is looked up again in the worker, anything else
 * becomes nil), and `args` as JSON text. Nothing else is shared, so
 * threads and forked processes behave the same. The Lua modules in lua/
 * are compiled into the binary (lua/embed.S). */
#include "fileserv.h"
#include "client.h"
#include "commands.h"
#include "lua/script.h"
#include "stress.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* ---- server processes left running ---- */

#define CHILDREN_MAX 64
static pid_t children[CHILDREN_MAX];

void script_remember_child(pid_t pid)
{
	for (int i = 0; i < CHILDREN_MAX; i++)
		if (children[i] == 0) {
			children[i] = pid;
			return;
		}
}

void script_forget_child(pid_t pid)
{
	for (int i = 0; i < CHILDREN_MAX; i++)
		if (children[i] == pid)
			children[i] = 0;
}

/* At exit (os.exit included): no script leaves a server behind. */
static void stop_children(void)
{
	for (int i = 0; i < CHILDREN_MAX; i++)
		if (children[i] > 0)
			kill(children[i], SIGTERM);
	for (int i = 0; i < CHILDREN_MAX; i++)
		if (children[i] > 0)
			waitpid(children[i], NULL, 0);
}

/* ---- JSON ---- */

#define JSON_DEPTH 64

/* Whether the value at idx converts to JSON: nil, booleans, numbers,
 * strings and tables of these with string or number keys, nested at
 * most JSON_DEPTH deep (which also rules out cycles). Checked before any
 * cJSON is built, so that an error never leaks a half-built tree. */
static int is_plain(lua_State *L, int idx, int depth)
{
	int t = lua_type(L, idx);
	if (t != LUA_TTABLE)
		return t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER ||
		       t == LUA_TSTRING;
	if (depth > JSON_DEPTH || !lua_checkstack(L, 3))
		return 0;
	int plain = 1;
	lua_pushnil(L);
	while (plain && lua_next(L, idx)) {
		int top = lua_gettop(L);
		plain = (lua_type(L, -2) == LUA_TSTRING ||
			 lua_type(L, -2) == LUA_TNUMBER) &&
			is_plain(L, top, depth + 1);
		lua_pop(L, 1);
	}
	if (!plain)
		lua_pop(L, 1);
	return plain;
}

/* Converts a value is_plain() accepted; never raises. */
static cJSON *to_json(lua_State *L, int idx);

static int is_array(lua_State *L, int idx)
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
	if (n == 0)
		return 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
		    lua_tointeger(L, -1) > n)
			count = -1 - n;
		count++;
	}
	return count == n;
}

static cJSON *table_to_json(lua_State *L, int idx)
{
	int array = is_array(L, idx);
	cJSON *out = array ? cJSON_CreateArray() : cJSON_CreateObject();
	if (array) {
		lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_rawgeti(L, idx, i);
			cJSON_AddItemToArray(out, to_json(L, lua_gettop(L)));
			lua_pop(L, 1);
		}
		return out;
	}
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pushvalue(L, -2);
		const char *key = lua_tostring(L, -1);
		if (key)
			cJSON_AddItemToObject(out, key,
					      to_json(L, lua_gettop(L) - 1));
		lua_pop(L, 2);
	}
	return out;
}

static cJSON *to_json(lua_State *L, int idx)
{
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		return cJSON_CreateBool(lua_toboolean(L, idx));
	case LUA_TNUMBER:
		return cJSON_CreateNumber(lua_tonumber(L, idx));
	case LUA_TSTRING:
		return cJSON_CreateString(lua_tostring(L, idx));
	case LUA_TTABLE:
		return table_to_json(L, idx);
	default: /* nil; is_plain() let nothing else through */
		return cJSON_CreateNull();
	}
}

void script_push_json(lua_State *L, const cJSON *item)
{
	luaL_checkstack(L, 4, "json: nested too deeply");
	if (cJSON_IsBool(item)) {
		lua_pushboolean(L, cJSON_IsTrue(item));
	} else if (cJSON_IsNumber(item)) {
		double d = item->valuedouble;
		if (d == floor(d) && fabs(d) < 9007199254740992.0)
			lua_pushinteger(L, (lua_Integer)d);
		else
			lua_pushnumber(L, d);
	} else if (cJSON_IsString(item)) {
		lua_pushstring(L, item->valuestring);
	} else if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
		lua_newtable(L);
		lua_Integer i = 1;
		for (const cJSON *c = item->child; c; c = c->next) {
			script_push_json(L, c);
			if (cJSON_IsArray(item))
				lua_rawseti(L, -2, i++);
			else
				lua_setfield(L, -2, c->string);
		}
	} else {
		lua_pushnil(L);
	}
}

static int json_encode(lua_State *L)
{
	luaL_checkany(L, 1);
	if (!is_plain(L, 1, 0))
		return luaL_error(L,
				  "json: cannot encode functions, userdata, "
				  "cycles or tables nested over %d deep",
				  JSON_DEPTH);
	cJSON *j = to_json(L, 1);
	char *text =
	    lua_toboolean(L, 2) ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!text)
		return luaL_error(L, "json: out of memory");
	lua_pushstring(L, text);
	free(text);
	return 1;
}

static int json_decode(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	cJSON *j = cJSON_ParseWithLength(text, len);
	if (!j) {
		char near[24] = "";
		if (cJSON_GetErrorPtr())
			snprintf(near, sizeof(near), "%s", cJSON_GetErrorPtr());
		luaL_pushfail(L);
		lua_pushfstring(L, "json: invalid JSON near '%s'", near);
		return 2;
	}
	script_push_json(L, j);
	cJSON_Delete(j);
	return 1;
}

void script_open_json(lua_State *L)
{
	static const luaL_Reg json[] = {
	    {"encode", json_encode},
	    {"decode", json_decode},
	    {NULL, NULL},
	};
	luaL_newlib(L, json);
}

/* ---- states ---- */

static int msghandler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)",
				      luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

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

/* require "fileserv": the C library completed by lua/fileserv.lua. */
static int open_fileserv(lua_State *L)
{
	luaopen_fileserv(L);
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

lua_State *script_new_state(void)
{
	lua_State *L = luaL_newstate();
	if (!L)
		return NULL;
	lua_pushcfunction(L, msghandler);
	lua_pushcfunction(L, setup_state);
	if (lua_pcall(L, 0, 0, 1) != LUA_OK) {
		fprintf(stderr, "fileserv: %s\n", lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
	lua_settop(L, 0);
	return L;
}

/* ---- scenarios in stress workers ---- */

struct scenario {
	char *code;
	size_t len, cap;
	char *args;	/* JSON text */
	char *upvalues; /* JSON text: how to rebuild each upvalue */
	struct fs_client server;
};

/* The name under which package.loaded holds the value at the top, or
 * NULL. The returned string lives in the loaded table. */
static const char *loaded_name(lua_State *L)
{
	const char *found = NULL;
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_pushnil(L);
	while (!found && lua_next(L, -2)) {
		if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, -4))
			found = lua_tostring(L, -2);
		lua_pop(L, 1);
	}
	if (found)
		lua_pop(L, 1); /* the key */
	lua_pop(L, 1);
	return found;
}

/* How each upvalue of the function at f is rebuilt in a worker. */
static char *describe_upvalues(lua_State *L, int f)
{
	cJSON *list = cJSON_CreateArray();
	const char *name;
	for (int i = 1; (name = lua_getupvalue(L, f, i)); i++) {
		cJSON *u = cJSON_CreateObject();
		const char *module = loaded_name(L);
		lua_getglobal(L, name);
		int global = !lua_isnil(L, -1) && lua_rawequal(L, -1, -2);
		lua_pop(L, 1);
		if (strcmp(name, "_ENV") == 0)
			cJSON_AddTrueToObject(u, "env");
		else if (module)
			cJSON_AddStringToObject(u, "module", module);
		else if (global)
			cJSON_AddStringToObject(u, "global", name);
		else if (is_plain(L, lua_gettop(L), 0))
			cJSON_AddItemToObject(u, "value",
					      to_json(L, lua_gettop(L)));
		lua_pop(L, 1);
		cJSON_AddItemToArray(list, u);
	}
	char *text = cJSON_PrintUnformatted(list);
	cJSON_Delete(list);
	return text;
}

static void push_upvalue(lua_State *L, const cJSON *u)
{
	const char *module =
	    cJSON_GetStringValue(cJSON_GetObjectItem(u, "module"));
	const char *global =
	    cJSON_GetStringValue(cJSON_GetObjectItem(u, "global"));
	if (cJSON_IsTrue(cJSON_GetObjectItem(u, "env"))) {
		lua_pushglobaltable(L);
	} else if (module) {
		lua_getglobal(L, "require");
		lua_pushstring(L, module);
		if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
			lua_pop(L, 1);
			lua_pushnil(L);
		}
	} else if (global) {
		lua_getglobal(L, global);
	} else {
		script_push_json(L, cJSON_GetObjectItem(u, "value"));
	}
}

static void restore_upvalues(lua_State *L, int f, const char *text)
{
	cJSON *list = cJSON_Parse(text);
	int i = 1;
	for (const cJSON *u = list ? list->child : NULL; u; u = u->next, i++) {
		push_upvalue(L, u);
		if (!lua_setupvalue(L, f, i))
			lua_pop(L, 1);
	}
	cJSON_Delete(list);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	struct scenario *sc = ud;
	if (sc->len + n > sc->cap) {
		size_t cap = (sc->len + n) * 2;
		char *code = realloc(sc->code, cap);
		if (!code)
			return 1;
		sc->code = code;
		sc->cap = cap;
	}
	memcpy(sc->code + sc->len, p, n);
	sc->len += n;
	return 0;
}

/* Worker state: [1] msghandler [2] scenario [3] client [4] args */
static void *scenario_start(void *ctx, int worker, struct fs_status *st)
{
	(void)worker;
	struct scenario *sc = ctx;
	lua_State *L = script_new_state();
	if (!L) {
		fs_fail(st, FS_ERR_SCRIPT, "cannot create a Lua state");
		return NULL;
	}
	lua_pushcfunction(L, msghandler);
	if (luaL_loadbufferx(L, sc->code, sc->len, "=scenario", "b") !=
	    LUA_OK) {
		fs_fail(st, FS_ERR_SCRIPT, "%s", lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
	restore_upvalues(L, 2, sc->upvalues);
	script_push_client(L, &sc->server);
	cJSON *args = cJSON_Parse(sc->args);
	script_push_json(L, args);
	cJSON_Delete(args);
	return L;
}

static enum fs_error error_class(const char *name)
{
	for (int i = FS_ERR_USAGE; name && i < FS_ERR_COUNT; i++)
		if (strcmp(name, fs_error_name(i)) == 0)
			return i;
	return FS_ERR_SCRIPT;
}

/* Calls scenario(client, worker, iteration, args). A raised error, or a
 * return of nil/false [, message [, class]], is a failed iteration;
 * returning nothing or anything else is a success. */
static int scenario_step(void *state, int worker, long iteration,
			 struct fs_status *st)
{
	lua_State *L = state;
	for (int i = 2; i <= 3; i++)
		lua_pushvalue(L, i);
	lua_pushinteger(L, worker);
	lua_pushinteger(L, iteration + 1);
	lua_pushvalue(L, 4);
	int rc = 0;
	if (lua_pcall(L, 4, LUA_MULTRET, 1) != LUA_OK) {
		rc = fs_fail(st, FS_ERR_SCRIPT, "%s", lua_tostring(L, -1));
	} else if (lua_gettop(L) > 4 && !lua_toboolean(L, 5)) {
		const char *msg =
		    lua_gettop(L) >= 6 ? lua_tostring(L, 6) : NULL;
		const char *class =
		    lua_gettop(L) >= 7 ? lua_tostring(L, 7) : NULL;
		rc = fs_fail(st, error_class(class), "%s",
			     msg ? msg : "scenario returned false");
	}
	lua_settop(L, 4);
	return rc;
}

static void scenario_stop(void *state)
{
	lua_close(state);
}

/* ---- fileserv.stress{...} ---- */

static int opt_int(lua_State *L, const char *key, lua_Integer def,
		   lua_Integer min, lua_Integer max)
{
	lua_getfield(L, 1, key);
	lua_Integer v = luaL_optinteger(L, -1, def);
	lua_pop(L, 1);
	if (v < min || v > max)
		luaL_error(L, "stress: %s must be %I to %I", key, min, max);
	return (int)v;
}

static const char *opt_string(lua_State *L, const char *key)
{
	lua_getfield(L, 1, key); /* stays on the stack: keeps the string */
	return luaL_optstring(L, -1, NULL);
}

static void stress_server(lua_State *L, struct stress_config *cfg)
{
	lua_getfield(L, 1, "server");
	struct fs_status st = {0};
	if (lua_isstring(L, -1)) {
		if (client_init(&cfg->server, lua_tostring(L, -1), NULL, &st))
			luaL_error(L, "stress: %s", st.message);
	} else if (luaL_testudata(L, -1, "fileserv.server")) {
		lua_getfield(L, -1, "client");
		lua_pushvalue(L, -2);
		lua_call(L, 1, 1);
		cfg->server = *script_check_client(L, -1);
	} else if (luaL_testudata(L, -1, "fileserv.client")) {
		cfg->server = *script_check_client(L, -1);
	} else {
		luaL_error(L, "stress: server must be a server, a client or "
			      "\"host:port\"");
	}
	lua_getfield(L, 1, "timeout");
	if (lua_isnumber(L, -1))
		cfg->server.timeout = lua_tonumber(L, -1);
}

static void stress_scenario(lua_State *L, struct scenario *sc)
{
	lua_getfield(L, 1, "scenario");
	if (lua_dump(L, dump_writer, sc, 0) != 0)
		luaL_error(L, "stress: cannot copy the scenario");
	sc->upvalues = describe_upvalues(L, lua_gettop(L));
	lua_getfield(L, 1, "args");
	if (!is_plain(L, lua_gettop(L), 0))
		luaL_error(L, "stress: args must be plain data (nil, booleans, "
			      "numbers, strings and tables of these)");
	cJSON *args = to_json(L, lua_gettop(L));
	sc->args = cJSON_PrintUnformatted(args);
	cJSON_Delete(args);
}

static void stress_options(lua_State *L, struct stress_config *cfg,
			   struct scenario *sc)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	stress_server(L, cfg);
	cfg->clients = opt_int(L, "clients", 1, 1, 10000);
	cfg->iterations = opt_int(L, "iterations", 1, 1, 1 << 30);
	lua_getfield(L, 1, "duration");
	cfg->duration = luaL_optnumber(L, -1, 0);
	lua_getfield(L, 1, "verify");
	cfg->verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
	const char *pool = opt_string(L, "pool");
	if (pool && strcmp(pool, "thread") && strcmp(pool, "process"))
		luaL_error(L, "stress: pool must be \"thread\" or \"process\"");
	cfg->processes = pool && strcmp(pool, "process") == 0;
	cfg->file = opt_string(L, "file");
	cfg->name = opt_string(L, "name");
	if (!cfg->name && cfg->file) {
		const char *slash = strrchr(cfg->file, '/');
		cfg->name = slash ? slash + 1 : cfg->file;
	}
	lua_getfield(L, 1, "scenario");
	int scripted = lua_isfunction(L, -1);
	const char *op = opt_string(L, "op");
	if (scripted) {
		cfg->op = STRESS_SCRIPT;
		stress_scenario(L, sc);
	} else if (!op || stress_op_parse(op, &cfg->op) < 0) {
		luaL_error(L, "stress: op must be \"upload\", \"download\" or "
			      "\"list\", or give a scenario function");
	} else if (cfg->op != STRESS_LIST && !cfg->name) {
		luaL_error(L, "stress: %s needs file= or name=", op);
	}
}

int script_stress(lua_State *L)
{
	struct stress_config cfg = {0};
	struct scenario sc = {0};
	struct stress_hooks hooks = {scenario_start, scenario_step,
				     scenario_stop, &sc};
	stress_options(L, &cfg, &sc);
	sc.server = cfg.server;
	cfg.hooks = &hooks;
	struct stress_result res;
	struct fs_status st = {0};
	int rc = stress_run(&cfg, &res, &st);
	free(sc.code);
	free(sc.args);
	free(sc.upvalues);
	if (rc < 0) {
		luaL_pushfail(L);
		lua_pushstring(L, st.message);
		lua_pushstring(L, fs_error_name(st.code));
		return 3;
	}
	cJSON *j = stress_to_json(&cfg, &res);
	script_push_json(L, j);
	cJSON_Delete(j);
	return 1;
}

/* ---- fileserv run ---- */

static const char run_usage[] =
    "usage: fileserv run [-s HOST[:PORT]] SCRIPT [ARGS...]\n"
    "\n"
    "Runs a Lua 5.4 script, as `lua SCRIPT ARGS` would (the `arg` table,\n"
    "`...`, os.exit), with the standard libraries and the `fileserv`\n"
    "library (also require \"fileserv\"). See docs/lua.md. Servers the\n"
    "script starts are stopped when it ends, however it ends.\n"
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
	atexit(stop_children);
	lua_State *L = script_new_state();
	if (!L)
		return 3;
	push_args(L, argc - 1, argv + 1);
	lua_pushcfunction(L, msghandler);
	int status = luaL_loadfile(L, argv[1]);
	if (status == LUA_OK) {
		for (int i = 2; i < argc; i++)
			lua_pushstring(L, argv[i]);
		status = lua_pcall(L, argc - 2, 0, 1);
	}
	if (status != LUA_OK)
		fprintf(stderr, "fileserv: %s\n", lua_tostring(L, -1));
	lua_close(L);
	return status == LUA_OK ? 0 : 1;
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
	lua_pushcfunction(L, msghandler);
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
