build2/client.o: client.c fileserv.h client.h conn.h proto.h codec.h \
 units.h
fileserv.h:
client.h:
conn.h:
proto.h:
codec.h:
units.h:
