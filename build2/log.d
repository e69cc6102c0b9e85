build2/log.o: log.c log.h
log.h:
