/* lua/script.h: what the Lua glue files share. */
#ifndef FILESERV_SCRIPT_H
#define FILESERV_SCRIPT_H

#include <lua.h>
#include <sys/types.h>

struct cJSON;
struct fs_client;

int luaopen_fileserv(lua_State *L);

/* A state with the standard libraries, `fileserv` (global and require)
 * and the built-in Lua modules; NULL on out of memory. */
lua_State *script_new_state(void);

/* Pushes a Lua value for a cJSON item (null becomes nil). */
void script_push_json(lua_State *L, const struct cJSON *item);
/* Pushes the json library table (encode, decode). */
void script_open_json(lua_State *L);

struct fs_client *script_check_client(lua_State *L, int idx);
void script_push_client(lua_State *L, const struct fs_client *c);

/* fileserv.stress{...} */
int script_stress(lua_State *L);

/* Server processes a script started: stopped at exit whatever happens. */
void script_remember_child(pid_t pid);
void script_forget_child(pid_t pid);

#endif
