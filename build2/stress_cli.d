build2/stress_cli.o: stress_cli.c fileserv.h client.h conn.h proto.h \
 cmdline.h commands.h stats.h stress.h units.h
fileserv.h:
client.h:
conn.h:
proto.h:
cmdline.h:
commands.h:
stats.h:
stress.h:
units.h:
