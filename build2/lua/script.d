build2/lua/script.o: lua/script.c fileserv.h client.h fileserv.h conn.h \
 proto.h commands.h cmdline.h lua/script.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h stress.h client.h stats.h \
 /usr/include/lua5.4/lauxlib.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/lualib.h
fileserv.h:
client.h:
fileserv.h:
conn.h:
proto.h:
commands.h:
cmdline.h:
lua/script.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
stress.h:
client.h:
stats.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/lualib.h:
