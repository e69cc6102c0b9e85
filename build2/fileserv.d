build2/fileserv.o: fileserv.c fileserv.h codec.h commands.h cmdline.h \
 log.h server.h storage.h units.h
fileserv.h:
codec.h:
commands.h:
cmdline.h:
log.h:
server.h:
storage.h:
units.h:
