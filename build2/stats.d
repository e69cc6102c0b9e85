build2/stats.o: stats.c proto.h fileserv.h stats.h
proto.h:
fileserv.h:
stats.h:
