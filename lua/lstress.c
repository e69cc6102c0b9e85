/* lua/lstress.c: `fileserv.stress{...}`: the options table turned into a
 * stress_config, and the scenario hooks that run a Lua function in each
 * stress worker (stress.c), one Lua state per worker.
 *
 * What crosses from the script into a worker is a copy: the scenario
 * function as bytecode (lua_dump), its upvalues described as JSON (plain
 * data is copied, a module or global is looked up again in the worker;
 * anything else, such as a local function or a server handle, is refused
 * before the run, naming the variable), and `args` as JSON text. Nothing
 * else is shared, so threads and forked processes behave the same.
 *
 * `fileserv.merge{...}` merges the instances' results (merge.c). */
#include "fileserv.h"
#include "affinity.h"
#include "client.h"
#include "lua/json.h"
#include "lua/lfileserv.h"
#include "lua/lstress.h"
#include "result.h"
#include "arrival.h"
#include "merge.h"
#include "stress.h"
#include "threshold.h"
#include "units.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scenario {
	char *code;
	size_t len, cap;
	char *args;	/* JSON text */
	char *upvalues; /* JSON text: how to rebuild each upvalue */
	struct fs_client server;
};

/* Makes a worker's Lua state (the runner's, with the fileserv library). */
static lua_State *(*new_worker_state)(void);

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

/* Adds item to obj as its JSON text (whose integers json_push_text
 * restores exactly); takes ownership of item. */
static void add_json_text(cJSON *obj, const char *key, cJSON *item)
{
	char *text = cJSON_PrintUnformatted(item);
	cJSON_Delete(item);
	if (text)
		cJSON_AddStringToObject(obj, key, text);
	free(text);
}

/* Whether the value at the top is the global `name`. */
static int is_global(lua_State *L, const char *name)
{
	lua_getglobal(L, name);
	int global = !lua_isnil(L, -1) && lua_rawequal(L, -1, -2);
	lua_pop(L, 1);
	return global;
}

/* Whether the upvalue `name` at the top can be rebuilt in a worker: the
 * globals, a loaded module, the global of that name, or plain data. */
static int upvalue_crosses(lua_State *L, const char *name)
{
	return strcmp(name, "_ENV") == 0 || loaded_name(L) ||
	       is_global(L, name) || json_is_plain(L, -1);
}

/* Raises, naming the variable, if an upvalue of the scenario at f cannot
 * cross into a worker (it would arrive as nil). */
static void check_upvalues(lua_State *L, int f)
{
	const char *name;
	for (int i = 1; (name = lua_getupvalue(L, f, i)); i++) {
		if (!upvalue_crosses(L, name)) {
			const char *what = lua_istable(L, -1)
					       ? "table that is not plain data"
					       : luaL_typename(L, -1);
			if (luaL_getmetafield(L, -1, "__name") != LUA_TNIL)
				what = luaL_optstring(L, -1, what);
			luaL_error(L,
				   "fileserv.stress: the scenario uses the "
				   "local '%s' (a %s) of the script, which "
				   "cannot be copied into the workers: pass "
				   "its data in args = {...} (the scenario's "
				   "4th parameter), and require modules or "
				   "define functions inside the scenario",
				   name, what);
		}
		lua_pop(L, 1);
	}
}

/* How each upvalue of the function at f is rebuilt in a worker. */
static char *describe_upvalues(lua_State *L, int f)
{
	cJSON *list = cJSON_CreateArray();
	const char *name;
	for (int i = 1; (name = lua_getupvalue(L, f, i)); i++) {
		cJSON *u = cJSON_CreateObject();
		const char *module = loaded_name(L);
		if (strcmp(name, "_ENV") == 0)
			cJSON_AddTrueToObject(u, "env");
		else if (module)
			cJSON_AddStringToObject(u, "module", module);
		else if (is_global(L, name))
			cJSON_AddStringToObject(u, "global", name);
		else if (json_is_plain(L, -1))
			add_json_text(u, "value", json_from_lua(L, -1));
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
		const char *v =
		    cJSON_GetStringValue(cJSON_GetObjectItem(u, "value"));
		if (!v || json_push_text(L, v, strlen(v)) < 0) {
			lua_pop(L, !!v);
			lua_pushnil(L);
		}
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

#define WORKER_EXIT "fileserv.exit" /* registry: os.exit's code */

/* os.exit in a scenario ends its worker, in either pool, and nothing
 * else: not the program, not the script's servers. The code is kept in
 * the registry, so that a pcall in the scenario cannot swallow it. */
static int worker_exit(lua_State *L)
{
	lua_Integer code = lua_isboolean(L, 1) ? !lua_toboolean(L, 1)
					       : luaL_optinteger(L, 1, 0);
	lua_pushinteger(L, code);
	lua_setfield(L, LUA_REGISTRYINDEX, WORKER_EXIT);
	return luaL_error(L, "os.exit(%I) ends this worker", code);
}

/* Worker state: [1] msghandler [2] scenario [3] client [4] args. What the
 * scenario's client calls move counts in the worker's tally. */
static void *scenario_start(void *ctx, int worker, struct stress_tally *tally,
			    struct fs_status *st)
{
	(void)worker;
	struct scenario *sc = ctx;
	lua_State *L = new_worker_state();
	if (!L) {
		fs_fail(st, FS_ERR_SCRIPT, "cannot create a Lua state");
		return NULL;
	}
	lfileserv_set_tally(L, tally);
	lua_getglobal(L, "os");
	lua_pushcfunction(L, worker_exit);
	lua_setfield(L, -2, "exit");
	lua_pop(L, 1);
	lua_pushcfunction(L, lfileserv_msghandler);
	if (luaL_loadbufferx(L, sc->code, sc->len, "=scenario", "b") !=
	    LUA_OK) {
		fs_fail(st, FS_ERR_SCRIPT, "%s", lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
	restore_upvalues(L, 2, sc->upvalues);
	lfileserv_push_client(L, &sc->server);
	if (json_push_text(L, sc->args, strlen(sc->args)) < 0) {
		fs_fail(st, FS_ERR_SCRIPT, "args: %s", lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
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
 * returning nothing or anything else is a success; os.exit ends the
 * worker (-2). */
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
	if (lua_getfield(L, LUA_REGISTRYINDEX, WORKER_EXIT) != LUA_TNIL) {
		fs_fail(st, FS_ERR_WORKER, "worker %d called os.exit(%lld)",
			worker, (long long)lua_tointeger(L, -1));
		rc = -2;
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
	} else if (!lfileserv_test_client(L, -1, &cfg->server)) {
		luaL_error(L, "stress: server must be a server, a client or "
			      "\"host:port\"");
	}
	cfg->server.timeout =
	    lfileserv_opt_seconds(L, 1, "timeout", cfg->server.timeout, 0);
}

static void stress_scenario(lua_State *L, struct scenario *sc)
{
	lua_getfield(L, 1, "scenario");
	int f = lua_gettop(L);
	check_upvalues(L, f);
	lua_getfield(L, 1, "args");
	if (!json_is_plain(L, -1))
		luaL_error(L, "stress: args must be plain data (nil, booleans, "
			      "numbers, strings and tables of these)");
	lua_pushvalue(L, f);
	if (lua_dump(L, dump_writer, sc, 0) != 0)
		luaL_error(L, "stress: cannot copy the scenario");
	lua_pop(L, 1);
	sc->upvalues = describe_upvalues(L, f);
	cJSON *args = json_from_lua(L, -1);
	sc->args = cJSON_PrintUnformatted(args);
	cJSON_Delete(args);
}

/* ---- the open model and thresholds ---- */

#define LUA_THRESHOLDS_MAX 32

/* What the options table's open model and thresholds fill. */
struct stress_open {
	struct arrival_plan plan;
	struct arrival_plan ramp; /* the closed model's client stages */
	struct threshold thresholds[LUA_THRESHOLDS_MAX];
};

/* Seconds from option `key`: a number, or a string such as "50ms"; def
 * when absent. */
static double opt_seconds(lua_State *L, const char *key, double def)
{
	lua_getfield(L, 1, key);
	double v = def;
	struct fs_status st = {0};
	if (lua_type(L, -1) == LUA_TNUMBER) {
		v = lua_tonumber(L, -1);
		if (!(v >= 0 && v <= 1e9))
			luaL_error(L,
				   "fileserv.stress: invalid %s %s (seconds, "
				   "0 or more)",
				   key, lua_tostring(L, -1));
	} else if (lua_type(L, -1) == LUA_TSTRING) {
		if (units_parse_seconds(lua_tostring(L, -1), &v, &st) < 0)
			luaL_error(L, "fileserv.stress: %s: %s", key,
				   st.message);
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L,
			   "fileserv.stress: %s must be seconds (a number "
			   "or a string such as \"50ms\")",
			   key);
	}
	lua_pop(L, 1);
	return v;
}

/* The text "DURATION:VALUE,..." of the stages table at idx, pushed; *clients
 * says whether the value is `clients` (the closed model) or `rate`, the
 * same in every stage. */
static const char *stages_text(lua_State *L, int idx, int *clients)
{
	static const char *const keys[] = {"duration", "rate", "clients", NULL};
	idx = lua_absindex(L, idx);
	lua_Integer n = luaL_len(L, idx);
	if (n < 1 || n > ARRIVAL_MAX_STAGES)
		luaL_error(L,
			   "fileserv.stress: stages must list 1 to %d "
			   "{duration = ..., rate = ...} or {duration = ..., "
			   "clients = ...}",
			   ARRIVAL_MAX_STAGES);
	luaL_checkstack(L, (int)n * 2 + 4, "stages");
	for (lua_Integer i = 1; i <= n; i++) {
		if (lua_geti(L, idx, i) != LUA_TTABLE)
			luaL_error(L,
				   "fileserv.stress: stages[%I] must be "
				   "{duration = ..., rate = ...}",
				   i);
		lfileserv_check_options(L, -1, "fileserv.stress: stages", keys);
		if (i == 1) {
			*clients = lua_getfield(L, -1, "clients") != LUA_TNIL;
			lua_pop(L, 1);
		}
		const char *value = *clients ? "clients" : "rate";
		lua_getfield(L, -1, "duration");
		lua_getfield(L, -2, value);
		lua_getfield(L, -3, *clients ? "rate" : "clients");
		if (!lua_isstring(L, -3) || !lua_isstring(L, -2) ||
		    !lua_isnil(L, -1))
			luaL_error(L,
				   "fileserv.stress: stages[%I] needs a "
				   "duration and a %s (as stages[1])",
				   i, value);
		lua_pop(L, 1);
		lua_pushfstring(L, "%s%s:%s", i > 1 ? "," : "",
				lua_tostring(L, -2), lua_tostring(L, -1));
		lua_replace(L, -4);
		lua_pop(L, 2);
	}
	lua_concat(L, (int)n);
	return lua_tostring(L, -1);
}

/* stages of {duration, clients}: the closed model's client stages into
 * o->ramp, settled by stress_ramp; clients is then at most the largest
 * stage (0 when not given). */
static void stress_client_stages(lua_State *L, struct stress_config *cfg,
				 struct stress_open *o, int rate)
{
	struct fs_status st = {0};
	if (rate)
		luaL_error(L, "fileserv.stress: stages of clients are the "
			      "closed model; leave out rate");
	lua_getfield(L, 1, "iterations");
	if (stress_ramp(cfg, &o->ramp, !lua_isnil(L, -1), "", &st) < 0)
		luaL_error(L, "fileserv.stress: %s", st.message);
}

/* rate, stages, poisson, seed and max_late into o->plan and cfg->plan
 * (the duration is then the plan's), settled by stress_plan as `fileserv
 * stress` settles them; or stages of clients into o->ramp. */
static void stress_open(lua_State *L, struct stress_config *cfg,
			struct stress_open *o)
{
	struct arrival_plan *p = &o->plan;
	struct fs_status st = {0};
	lua_getfield(L, 1, "rate");
	int rate = !lua_isnil(L, -1), ramp = 0;
	p->start_rate = lua_tonumber(L, -1);
	if (rate && !(p->start_rate > 0 && isfinite(p->start_rate)))
		luaL_error(L,
			   "fileserv.stress: invalid rate '%s' (operations "
			   "per second, above 0)",
			   luaL_tolstring(L, -1, NULL));
	lua_getfield(L, 1, "stages");
	int stages = !lua_isnil(L, -1);
	const char *text = !stages		? NULL
			   : lua_istable(L, -1) ? stages_text(L, -1, &ramp)
						: luaL_tolstring(L, -1, NULL);
	if (stages && arrival_parse_stages(text, ramp ? &o->ramp : p, &st) < 0)
		luaL_error(L, "fileserv.stress: stages: %s", st.message);
	stages &= !ramp;
	lua_getfield(L, 1, "poisson");
	p->poisson = lua_toboolean(L, -1);
	lua_getfield(L, 1, "seed");
	int seeded = !lua_isnil(L, -1);
	lua_Integer seed = luaL_optinteger(L, -1, 0);
	if (seed < 0)
		luaL_error(L, "fileserv.stress: invalid seed %I (0 or more)",
			   seed);
	p->seed = (uint64_t)seed;
	cfg->max_late = opt_seconds(L, "max_late", 0);
	if (ramp)
		stress_client_stages(L, cfg, o, rate);
	if (!rate && !stages) {
		if (p->poisson || seeded || cfg->max_late > 0)
			luaL_error(L, "fileserv.stress: poisson, seed and "
				      "max_late need rate or stages of rates");
		return;
	}
	lua_getfield(L, 1, "iterations");
	if (stress_plan(cfg, p, !lua_isnil(L, -1), "", &st) < 0)
		luaL_error(L, "fileserv.stress: %s", st.message);
}

/* The thresholds = {"p99<50ms", ...} of the options table at idx into
 * t[0..LUA_THRESHOLDS_MAX); returns how many. fn names the function in
 * messages. */
static int opt_thresholds(lua_State *L, int idx, const char *fn,
			  struct threshold *t)
{
	lua_getfield(L, idx, "thresholds");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	if (!lua_istable(L, -1))
		luaL_error(L,
			   "fileserv.%s: thresholds must be a table of "
			   "strings such as {\"p99<50ms\", \"failed<1%%\"}",
			   fn);
	lua_Integer n = luaL_len(L, -1);
	if (n > LUA_THRESHOLDS_MAX)
		luaL_error(L, "fileserv.%s: at most %d thresholds", fn,
			   LUA_THRESHOLDS_MAX);
	struct fs_status st = {0};
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, -1, i);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L,
				   "fileserv.%s: thresholds[%I] must be "
				   "a string such as \"p99<50ms\"",
				   fn, i);
		if (threshold_parse(lua_tostring(L, -1), &t[i - 1], &st) < 0)
			luaL_error(L, "fileserv.%s: thresholds[%I]: %s", fn, i,
				   st.message);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return (int)n;
}

/* fileserv.threshold(text): {threshold, limit, unit, below, or_equal}
 * as `fileserv stress --threshold` parses it, or nil, message: a check of
 * thresholds before any load is sent. */
static int threshold_l(lua_State *L)
{
	const char *text = luaL_checkstring(L, 1);
	struct threshold t;
	struct fs_status st = {0};
	if (threshold_parse(text, &t, &st) < 0) {
		luaL_pushfail(L);
		lua_pushstring(L, st.message);
		return 2;
	}
	lua_createtable(L, 0, 5);
	lua_pushstring(L, t.text);
	lua_setfield(L, -2, "threshold");
	lua_pushnumber(L, t.limit);
	lua_setfield(L, -2, "limit");
	lua_pushstring(L, threshold_unit(&t));
	lua_setfield(L, -2, "unit");
	lua_pushboolean(L, t.below);
	lua_setfield(L, -2, "below");
	lua_pushboolean(L, t.or_equal);
	lua_setfield(L, -2, "or_equal");
	return 1;
}

/* ---- the interval callback ---- */

/* interval = function(t): called by the engine in the script's thread. */
struct interval_call {
	lua_State *L;
	int fn;	 /* stack index of the function */
	int err; /* stack index of its error message, nil until it fails */
};

/* Calls the script's interval function with the interval as a table;
 * -1 (stopping the run) when it raises, its message kept for stress_l. */
static int interval_call(void *ctx, const cJSON *interval)
{
	struct interval_call *c = ctx;
	lua_State *L = c->L;
	lua_pushcfunction(L, lfileserv_msghandler);
	lua_pushvalue(L, c->fn);
	json_push(L, interval);
	if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
		lua_replace(L, c->err);
		lua_pop(L, 1);
		return -1;
	}
	lua_pop(L, 1);
	return 0;
}

/* interval and interval_period: the callback and how often (default 1s,
 * at least 10 ms). Leaves the function and a slot for its error on the
 * stack. */
static void stress_interval(lua_State *L, struct stress_config *cfg,
			    struct interval_call *c)
{
	double period = lfileserv_opt_seconds(L, 1, "interval_period", 1, 0);
	int given = lua_getfield(L, 1, "interval_period") != LUA_TNIL;
	lua_getfield(L, 1, "interval");
	if (lua_isnil(L, -1) && given)
		luaL_error(L, "fileserv.stress: interval_period needs an "
			      "interval function");
	if (lua_isnil(L, -1))
		return;
	if (!lua_isfunction(L, -1))
		luaL_error(L, "fileserv.stress: interval must be a function "
			      "(it receives each interval's figures)");
	if (period < 0.01)
		luaL_error(L,
			   "fileserv.stress: invalid interval_period %f "
			   "(at least 10ms)",
			   period);
	c->L = L;
	c->fn = lua_gettop(L);
	lua_pushnil(L);
	c->err = lua_gettop(L);
	cfg->interval = period;
	cfg->on_interval = interval_call;
	cfg->interval_ctx = c;
}

/* segment = "I/N" or {index = I, count = N} as text "I/N", pushed;
 * NULL when absent. */
static const char *segment_text(lua_State *L)
{
	static const char *const keys[] = {"index", "count", NULL};
	lua_getfield(L, 1, "segment");
	if (lua_isnil(L, -1) || lua_type(L, -1) == LUA_TSTRING)
		return lua_tostring(L, -1);
	if (!lua_istable(L, -1))
		luaL_error(L, "fileserv.stress: segment must be \"I/N\" or "
			      "{index = I, count = N}");
	lfileserv_check_options(L, -1, "fileserv.stress: segment", keys);
	lua_getfield(L, -1, "index");
	lua_getfield(L, -2, "count");
	if (!lua_isinteger(L, -2) || !lua_isinteger(L, -1))
		luaL_error(L, "fileserv.stress: segment needs an integer index "
			      "and count");
	return lua_pushfstring(L, "%I/%I", lua_tointeger(L, -2),
			       lua_tointeger(L, -1));
}

/* The share of a distributed run (segment, segments, else the launcher's
 * environment), start_at, and out_json (its name, %r and %n expanded,
 * into out; "" without one), as `fileserv stress` reads them. */
static void stress_distributed(lua_State *L, struct stress_config *cfg,
			       char *out, size_t len)
{
	struct fs_status st = {0};
	const char *option = segment_text(L);
	lua_getfield(L, 1, "segments");
	const char *total =
	    lua_isnil(L, -1) ? NULL : luaL_tolstring(L, -1, NULL);
	if (segment_resolve(option, total, &cfg->segment, &st) < 0)
		luaL_error(L, "fileserv.stress: %s", st.message);
	lua_getfield(L, 1, "start_at");
	if (lua_type(L, -1) == LUA_TNUMBER) {
		cfg->start_at = lua_tonumber(L, -1);
		if (!(cfg->start_at > 0 && isfinite(cfg->start_at)))
			luaL_error(L,
				   "fileserv.stress: invalid start_at %s "
				   "(seconds since 1970)",
				   lua_tostring(L, -1));
	} else if (lua_type(L, -1) == LUA_TSTRING) {
		if (units_parse_time(lua_tostring(L, -1), &cfg->start_at, &st) <
		    0)
			luaL_error(L, "fileserv.stress: start_at: %s",
				   st.message);
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L, "fileserv.stress: start_at must be seconds since "
			      "1970 or a time such as "
			      "\"2026-11-30T10:00:00Z\"");
	}
	const char *pattern = opt_string(L, "out_json");
	out[0] = '\0';
	if (pattern && result_path(pattern, &cfg->segment, out, len, &st) < 0)
		luaL_error(L, "fileserv.stress: out_json: %s", st.message);
}

/* The keys of fileserv.stress{}. */
static const char *const stress_keys[] = {
    "server",	  "op",
    "scenario",	  "args",
    "file",	  "name",
    "clients",	  "pool",
    "iterations", "duration",
    "verify",	  "timeout",
    "warmup",	  "cpus",
    "rate",	  "stages",
    "poisson",	  "seed",
    "max_late",	  "thresholds",
    "interval",	  "interval_period",
    "threads",	  "segment",
    "segments",	  "start_at",
    "out_json",	  NULL,
};

static void stress_options(lua_State *L, struct stress_config *cfg,
			   struct stress_open *o, struct scenario *sc,
			   struct interval_call *interval,
			   char out[RESULT_PATH_MAX])
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lfileserv_check_options(L, 1, "fileserv.stress", stress_keys);
	stress_server(L, cfg);
	lua_getfield(L, 1, "clients"); /* 0: not given (client stages) */
	cfg->clients =
	    lua_isnil(L, -1) ? 0 : opt_int(L, "clients", 1, 1, 10000);
	cfg->iterations = opt_int(L, "iterations", 1, 1, 1 << 30);
	cfg->duration = lfileserv_opt_seconds(L, 1, "duration", 0, 1);
	lua_getfield(L, 1, "warmup");
	cfg->warmup = luaL_optnumber(L, -1, 0);
	lua_getfield(L, 1, "verify");
	cfg->verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
	struct fs_status st;
	const char *pool = opt_string(L, "pool");
	if (pool && strcmp(pool, "thread") && strcmp(pool, "process"))
		luaL_error(L, "stress: pool must be \"thread\" or \"process\"");
	cfg->processes = pool && strcmp(pool, "process") == 0;
	lua_getfield(L, 1, "threads");
	if (!lua_isnil(L, -1) &&
	    stress_threads_parse(luaL_tolstring(L, -1, NULL), &cfg->threads,
				 &st) < 0)
		luaL_error(L, "stress: threads: %s", st.message);
	const char *cpus = opt_string(L, "cpus");
	if (cpus && affinity_parse(cpus, &cfg->cpus, &st) < 0)
		luaL_error(L, "stress: %s", st.message);
	cfg->pinned = cpus != NULL;
	stress_open(L, cfg, o); /* stages set the duration */
	if (!cfg->clients)
		cfg->clients = 1;
	if (cfg->warmup < 0 || (cfg->warmup > 0 && cfg->duration <= 0))
		luaL_error(L, "stress: warmup needs a duration or stages and "
			      "must be >= 0");
	cfg->thresholds = o->thresholds;
	cfg->nthresholds = opt_thresholds(L, 1, "stress", o->thresholds);
	stress_interval(L, cfg, interval);
	stress_distributed(L, cfg, out, RESULT_PATH_MAX);
	if (stress_check(cfg, &st) < 0)
		luaL_error(L, "fileserv.stress: %s", st.message);
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

/* Set by a run whose thresholds did not all pass (atomically: a
 * scenario in a thread worker may call fileserv.stress too). */
static int thresholds_failed;

int lstress_thresholds_failed(void)
{
	return __atomic_load_n(&thresholds_failed, __ATOMIC_RELAXED);
}

/* What one fileserv.stress or fileserv.find_max call holds. */
struct stress_call {
	struct stress_config cfg;
	struct scenario sc;
	struct stress_open open;
	struct stress_hooks hooks;
	struct interval_call interval;
	char out[RESULT_PATH_MAX]; /* out_json, expanded; "" without */
};

/* The options table into c: the configuration ready to run. */
static void call_prepare(lua_State *L, struct stress_call *c)
{
	c->hooks = (struct stress_hooks){scenario_start, scenario_step,
					 scenario_stop, &c->sc};
	stress_options(L, &c->cfg, &c->open, &c->sc, &c->interval, c->out);
	c->sc.server = c->cfg.server;
	c->cfg.hooks = &c->hooks;
}

static void call_free(struct stress_call *c)
{
	free(c->sc.code);
	free(c->sc.args);
	free(c->sc.upvalues);
}

/* Writes the run's result, with its error if it failed, to out; 0, or -1
 * with st set when the file could not be written. */
static int stress_save(const char *out, const struct stress_config *cfg,
		       const struct stress_result *res, int rc,
		       struct fs_status *st)
{
	cJSON *j = stress_result_json(cfg, res, rc < 0 ? st : NULL);
	struct fs_status write = {0};
	int saved = result_write(out, j, &write);
	cJSON_Delete(j);
	if (saved < 0 && rc == 0)
		*st = write;
	return saved < 0 ? -1 : rc;
}

/* fileserv.stress{...} */
static int stress_l(lua_State *L)
{
	struct stress_call c = {0};
	call_prepare(L, &c);
	struct stress_result res;
	struct fs_status st = {0};
	int rc = stress_run(&c.cfg, &res, &st);
	call_free(&c);
	if (c.interval.err && !lua_isnil(L, c.interval.err)) {
		rc = fs_fail(&st, FS_ERR_SCRIPT, "interval: %s",
			     lua_tostring(L, c.interval.err));
		if (c.out[0])
			stress_save(c.out, &c.cfg, &res, rc, &st);
		return luaL_error(L, "fileserv.stress: %s", st.message);
	}
	if (c.out[0])
		rc = stress_save(c.out, &c.cfg, &res, rc, &st);
	if (rc < 0) {
		luaL_pushfail(L);
		lua_pushstring(L, st.message);
		lua_pushstring(L, fs_error_name(st.code));
	}
	if (rc == 0 || res.counted) {
		cJSON *j = stress_to_json(&c.cfg, &res);
		if (cJSON_IsFalse(cJSON_GetObjectItem(j, "thresholds_passed")))
			__atomic_store_n(&thresholds_failed, 1,
					 __ATOMIC_RELAXED);
		json_push(L, j);
		cJSON_Delete(j);
	}
	return rc == 0 ? 1 : res.counted ? 4 : 3;
}

/* fileserv.find_max{...}: the capacity search of `fileserv stress
 * --find-max`; {steps, max_rate, first_failing_rate, interrupted}, or
 * nil, message, class when a step could not run. */
static int find_max_l(lua_State *L)
{
	struct stress_call c = {0};
	call_prepare(L, &c);
	if (!c.cfg.plan || c.open.plan.nstages || !c.cfg.nthresholds ||
	    c.cfg.on_interval || c.out[0] || c.cfg.segment.count > 1 ||
	    c.cfg.start_at > 0) {
		call_free(&c);
		return luaL_error(L, "fileserv.find_max: give rate (the first "
				     "step's), duration (each step's) and "
				     "thresholds, and no stages, interval, "
				     "segment, start_at or out_json");
	}
	struct fs_status st = {0};
	int interrupted;
	cJSON *j = stress_find_max(&c.cfg, &c.open.plan, NULL, NULL,
				   &interrupted, &st);
	call_free(&c);
	if (!j) {
		luaL_pushfail(L);
		lua_pushstring(L, st.message);
		lua_pushstring(L, fs_error_name(st.code));
		return 3;
	}
	cJSON *fm = cJSON_GetObjectItem(j, "find_max");
	if (interrupted)
		cJSON_AddStringToObject(fm, "interrupted",
					stress_signal_name(interrupted));
	json_push(L, fm);
	cJSON_Delete(j);
	return 1;
}

/* ---- fileserv.merge ---- */

/* Raises unless every input is a file name or a plain table. */
static void merge_check_inputs(lua_State *L, lua_Integer n)
{
	for (lua_Integer k = 1; k <= n; k++) {
		lua_geti(L, 1, k);
		if (lua_type(L, -1) != LUA_TSTRING &&
		    !(lua_istable(L, -1) && json_is_plain(L, -1)))
			luaL_error(L,
				   "fileserv.merge: inputs[%I] must be a file "
				   "name or a summary table",
				   k);
		lua_pop(L, 1);
	}
}

/* Input k of fileserv.merge's list (at the top), a file name or a
 * summary table, into in. 0, or -1 with st set. */
static int merge_input_l(lua_State *L, lua_Integer k, struct merge_input *in,
			 struct fs_status *st)
{
	if (lua_type(L, -1) == LUA_TSTRING)
		return merge_read(lua_tostring(L, -1), in, st);
	char name[32];
	snprintf(name, sizeof(name), "inputs[%lld]", (long long)k);
	/* through text: json_from_lua keeps integers as raw digits */
	cJSON *raw = json_from_lua(L, -1);
	char *text = cJSON_PrintUnformatted(raw);
	cJSON_Delete(raw);
	cJSON *summary = text ? cJSON_Parse(text) : NULL;
	free(text);
	return merge_input_set(in, name, summary, st);
}

/* fileserv.merge(inputs [, {thresholds=, expect=, max_start_spread=}]):
 * the merged summary, or fail, message. */
static int merge_l(lua_State *L)
{
	struct threshold t[LUA_THRESHOLDS_MAX];
	struct merge_options opt = {.thresholds = t};
	luaL_checktype(L, 1, LUA_TTABLE);
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		opt.nthresholds = opt_thresholds(L, 2, "merge", t);
		lua_getfield(L, 2, "expect");
		opt.expect = (int)luaL_optinteger(L, -1, 0);
		luaL_argcheck(L, opt.expect >= 0 && opt.expect <= 1000000, 2,
			      "expect must be 0 to 1000000");
		opt.max_start_spread = lfileserv_opt_seconds(
		    L, 2, "max_start_spread", MERGE_START_SPREAD_S, 0);
	}
	lua_Integer n = luaL_len(L, 1);
	luaL_argcheck(L, n >= 1 && n <= 1000000, 1,
		      "a list of 1 or more inputs");
	merge_check_inputs(L, n);
	struct merge_input *in =
	    lua_newuserdatauv(L, (size_t)n * sizeof(*in), 0);
	memset(in, 0, (size_t)n * sizeof(*in));
	struct fs_status st = {0};
	int rc = 0;
	for (lua_Integer k = 1; k <= n && rc == 0; k++) {
		lua_geti(L, 1, k);
		rc = merge_input_l(L, k, &in[k - 1], &st);
		lua_pop(L, 1);
	}
	cJSON *j = rc == 0 ? merge_run(in, (int)n, &opt, &st) : NULL;
	for (lua_Integer k = 0; k < n; k++)
		merge_input_free(&in[k]);
	if (!j) {
		luaL_pushfail(L);
		lua_pushstring(L, st.message);
		return 2;
	}
	json_push(L, j);
	cJSON_Delete(j);
	return 1;
}

void lstress_open(lua_State *L, lua_State *(*new_state)(void))
{
	if (new_worker_state != new_state) /* workers only read it */
		new_worker_state = new_state;
	lua_pushcfunction(L, stress_l);
	lua_setfield(L, -2, "stress");
	lua_pushcfunction(L, find_max_l);
	lua_setfield(L, -2, "find_max");
	lua_pushcfunction(L, threshold_l);
	lua_setfield(L, -2, "threshold");
	lua_pushcfunction(L, merge_l);
	lua_setfield(L, -2, "merge");
}
