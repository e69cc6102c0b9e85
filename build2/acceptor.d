build2/acceptor.o: acceptor.c fileserv.h log.h proto.h server.h storage.h \
 stats.h units.h usage.h
fileserv.h:
log.h:
proto.h:
server.h:
storage.h:
stats.h:
units.h:
usage.h:
