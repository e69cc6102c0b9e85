build2/storage.o: storage.c fileserv.h conn.h log.h proto.h storage.h
fileserv.h:
conn.h:
log.h:
proto.h:
storage.h:
