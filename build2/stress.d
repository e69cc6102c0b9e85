build2/stress.o: stress.c fileserv.h client.h conn.h proto.h stats.h \
 stress.h units.h
fileserv.h:
client.h:
conn.h:
proto.h:
stats.h:
stress.h:
units.h:
