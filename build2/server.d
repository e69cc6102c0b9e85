build2/server.o: server.c fileserv.h client.h conn.h proto.h codec.h \
 log.h server.h storage.h stats.h units.h usage.h
fileserv.h:
client.h:
conn.h:
proto.h:
codec.h:
log.h:
server.h:
storage.h:
stats.h:
units.h:
usage.h:
