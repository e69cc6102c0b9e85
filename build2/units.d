build2/units.o: units.c units.h fileserv.h
units.h:
fileserv.h:
