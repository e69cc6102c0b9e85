build2/error.o: error.c fileserv.h
fileserv.h:
