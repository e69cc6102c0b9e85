build2/spawn.o: spawn.c fileserv.h spawn.h units.h
fileserv.h:
spawn.h:
units.h:
