/* lua/json.c: Lua values to and from JSON (cJSON), and the `fileserv.json`
 * table (encode, decode). The leaf of the Lua glue: it knows nothing of
 * fileserv. */
#include "lua/json.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

void json_push(lua_State *L, const cJSON *item)
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
			json_push(L, c);
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
	json_push(L, j);
	cJSON_Delete(j);
	return 1;
}

void json_open(lua_State *L)
{
	static const luaL_Reg json[] = {
	    {"encode", json_encode},
	    {"decode", json_decode},
	    {NULL, NULL},
	};
	luaL_newlib(L, json);
}

int json_is_plain(lua_State *L, int idx)
{
	return is_plain(L, lua_absindex(L, idx), 0);
}

cJSON *json_from_lua(lua_State *L, int idx)
{
	return to_json(L, lua_absindex(L, idx));
}
