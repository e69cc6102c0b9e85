/* lua/json.c: Lua values to and from JSON (cJSON), and the `fileserv.json`
 * table (encode, decode). The leaf of the Lua glue: it knows nothing of
 * fileserv. */
#include "lua/json.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		if (lua_isinteger(L, idx)) { /* exact, beyond a double's 2^53 */
			char digits[32];
			snprintf(digits, sizeof(digits), LUA_INTEGER_FMT,
				 lua_tointeger(L, idx));
			return cJSON_CreateRaw(digits);
		}
		return cJSON_CreateNumber(lua_tonumber(L, idx));
	case LUA_TSTRING:
		return cJSON_CreateString(lua_tostring(L, idx));
	case LUA_TTABLE:
		return table_to_json(L, idx);
	default: /* nil; is_plain() let nothing else through */
		return cJSON_CreateNull();
	}
}

/* The numbers of a JSON text in document order, the order in which
 * push_json meets them in the parsed tree. */
struct json_numbers {
	const char *p, *end;
};

/* The next number token; its length in *len. */
static const char *next_number(struct json_numbers *nums, size_t *len)
{
	const char *p = nums->p;
	while (p < nums->end && !(*p == '-' || (*p >= '0' && *p <= '9'))) {
		if (*p++ != '"')
			continue;
		while (p < nums->end && *p != '"')
			p += *p == '\\' ? 2 : 1;
		p++;
	}
	const char *start = p;
	while (p < nums->end && strchr("+-.0123456789eE", *p))
		p++;
	nums->p = p;
	*len = (size_t)(p - start);
	return start;
}

/* A number: an integer literal as a Lua integer when it fits, exactly;
 * otherwise a float (an integral one below 2^53 as an integer). */
static void push_number(lua_State *L, const cJSON *item,
			struct json_numbers *nums)
{
	char digits[48];
	size_t len = 0;
	const char *tok = nums ? next_number(nums, &len) : NULL;
	if (tok && len < sizeof(digits) && !memchr(tok, '.', len) &&
	    !memchr(tok, 'e', len) && !memchr(tok, 'E', len)) {
		memcpy(digits, tok, len);
		digits[len] = '\0';
		if (lua_stringtonumber(L, digits) == len + 1)
			return;
	}
	double d = item->valuedouble;
	if (d == floor(d) && fabs(d) < 9007199254740992.0)
		lua_pushinteger(L, (lua_Integer)d);
	else
		lua_pushnumber(L, d);
}

static void push_json(lua_State *L, const cJSON *item,
		      struct json_numbers *nums)
{
	luaL_checkstack(L, 4, "json: nested too deeply");
	if (cJSON_IsBool(item)) {
		lua_pushboolean(L, cJSON_IsTrue(item));
	} else if (cJSON_IsNumber(item)) {
		push_number(L, item, nums);
	} else if (cJSON_IsString(item)) {
		lua_pushstring(L, item->valuestring);
	} else if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
		lua_newtable(L);
		lua_Integer i = 1;
		for (const cJSON *c = item->child; c; c = c->next) {
			push_json(L, c, nums);
			if (cJSON_IsArray(item))
				lua_rawseti(L, -2, i++);
			else
				lua_setfield(L, -2, c->string);
		}
	} else {
		lua_pushnil(L);
	}
}

void json_push(lua_State *L, const cJSON *item)
{
	push_json(L, item, NULL);
}

int json_push_text(lua_State *L, const char *text, size_t len)
{
	const char *end = text;
	cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	while (j && end < text + len && *end && strchr(" \t\r\n", *end))
		end++;
	if (!j || end < text + len) {
		cJSON_Delete(j);
		lua_pushlstring(L, end, strnlen(end, 20));
		lua_pushfstring(L, "json: %s near '%s'",
				j ? "trailing characters" : "invalid JSON",
				lua_tostring(L, -1));
		lua_remove(L, -2);
		return -1;
	}
	struct json_numbers nums = {text, text + len};
	push_json(L, j, &nums);
	cJSON_Delete(j);
	return 0;
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
	if (json_push_text(L, text, len) == 0)
		return 1;
	luaL_pushfail(L);
	lua_insert(L, -2);
	return 2;
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
