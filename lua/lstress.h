/* lua/lstress.h: `fileserv.stress` (lua/lstress.c). */
#ifndef FILESERV_LUA_LSTRESS_H
#define FILESERV_LUA_LSTRESS_H

#include <lua.h>

/* Sets `stress`, `find_max`, `threshold` and `merge` in the fileserv
 * table at the top of the stack. Each stress worker's Lua state comes from
 * new_state (NULL on failure). */
void lstress_open(lua_State *L, lua_State *(*new_state)(void));
/* Whether a fileserv.stress call of this process had a threshold that
 * did not pass: `fileserv run` then exits with THRESHOLD_EXIT. */
int lstress_thresholds_failed(void);

#endif
