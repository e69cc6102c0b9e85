build2/tests/t_proto: tests/t_proto.c fileserv.h conn.h proto.h \
 fileserv.h tests/check.h
fileserv.h:
conn.h:
proto.h:
fileserv.h:
tests/check.h:
