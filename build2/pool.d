build2/pool.o: pool.c fileserv.h log.h server.h storage.h stats.h proto.h \
 units.h usage.h
fileserv.h:
log.h:
server.h:
storage.h:
stats.h:
proto.h:
units.h:
usage.h:
