build2/cli.o: cli.c fileserv.h client.h conn.h proto.h commands.h \
 cmdline.h units.h
fileserv.h:
client.h:
conn.h:
proto.h:
commands.h:
cmdline.h:
units.h:
