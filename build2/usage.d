build2/usage.o: usage.c usage.h
usage.h:
