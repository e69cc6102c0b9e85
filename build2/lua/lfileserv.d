build2/lua/lfileserv.o: lua/lfileserv.c fileserv.h client.h fileserv.h \
 conn.h proto.h conn.h lua/script.h /usr/include/lua5.4/lua.h \
 /usr/include/lua5.4/luaconf.h spawn.h stress.h client.h stats.h \
 testdata.h units.h /usr/include/lua5.4/lauxlib.h \
 /usr/include/lua5.4/lua.h
fileserv.h:
client.h:
fileserv.h:
conn.h:
proto.h:
conn.h:
lua/script.h:
/usr/include/lua5.4/lua.h:
/usr/include/lua5.4/luaconf.h:
spawn.h:
stress.h:
client.h:
stats.h:
testdata.h:
units.h:
/usr/include/lua5.4/lauxlib.h:
/usr/include/lua5.4/lua.h:
