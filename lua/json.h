/* lua/json.h: Lua values to and from JSON (lua/json.c), the leaf the
 * fileserv library and the stress binding build on. */
#ifndef FILESERV_LUA_JSON_H
#define FILESERV_LUA_JSON_H

#include <lua.h>

struct cJSON;

/* Whether the value at idx converts to JSON: nil, booleans, numbers,
 * strings, and tables of these with string or number keys, not nested too
 * deep (no cycles). */
int json_is_plain(lua_State *L, int idx);
/* The cJSON for a value json_is_plain() accepted; never raises. */
struct cJSON *json_from_lua(lua_State *L, int idx);
/* Pushes a Lua value for a cJSON item (null becomes nil). */
void json_push(lua_State *L, const struct cJSON *item);
/* Parses text[0..len), one JSON value and nothing after it but white
 * space, and pushes it, integer literals as exact Lua integers; 0, or -1
 * with a message pushed instead. */
int json_push_text(lua_State *L, const char *text, size_t len);
/* Pushes the json library table (encode, decode). */
void json_open(lua_State *L);

#endif
