build2/cmdline.o: cmdline.c cmdline.h fileserv.h client.h conn.h proto.h \
 codec.h commands.h units.h
cmdline.h:
fileserv.h:
client.h:
conn.h:
proto.h:
codec.h:
commands.h:
units.h:
