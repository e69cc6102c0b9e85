build2/bench.o: bench.c fileserv.h client.h conn.h proto.h codec.h \
 commands.h cmdline.h spawn.h stats.h stress.h testdata.h units.h
fileserv.h:
client.h:
conn.h:
proto.h:
codec.h:
commands.h:
cmdline.h:
spawn.h:
stats.h:
stress.h:
testdata.h:
units.h:
