build2/proto.o: proto.c fileserv.h codec.h conn.h proto.h
fileserv.h:
codec.h:
conn.h:
proto.h:
