/* lua/lfileserv.h: the `fileserv` Lua library (lua/lfileserv.c), as the
 * stress binding (lua/lstress.c) and the runner (lua/script.c) use it. */
#ifndef FILESERV_LUA_LFILESERV_H
#define FILESERV_LUA_LFILESERV_H

#include <lua.h>

struct fs_client;
struct stress_tally;

/* Pushes the library table (without `stress`, which lstress_open adds). */
int luaopen_fileserv(lua_State *L);

/* Pushes a client handle holding a copy of c. */
void lfileserv_push_client(lua_State *L, const struct fs_client *c);
/* The client of the value at idx into out: a client handle, or a server
 * handle (raises if that server is stopped); NULL for anything else. */
struct fs_client *lfileserv_test_client(lua_State *L, int idx,
					struct fs_client *out);
/* In a stress worker's state: the bytes its client calls move count in
 * tally (NULL: nowhere). */
void lfileserv_set_tally(lua_State *L, struct stress_tally *tally);

/* Raises "FUNC: unknown option 'KEY' (options: ...)" unless every key of
 * the table at idx is one of known (NULL-terminated). */
void lfileserv_check_options(lua_State *L, int idx, const char *func,
			     const char *const known[]);

/* Option key of the table at idx in seconds: a number or a string such as
 * "30s"; def when nil. Raises unless it is above 0 (or 0 when zero_ok)
 * and at most 1e9. */
double lfileserv_opt_seconds(lua_State *L, int idx, const char *key, double def,
			     int zero_ok);
/* Message handler for lua_pcall: the message with a traceback. */
int lfileserv_msghandler(lua_State *L);
/* Stops the servers fileserv.serve started that still run (at exit). */
void lfileserv_stop_servers(void);

#endif
