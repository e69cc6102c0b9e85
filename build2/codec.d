build2/codec.o: codec.c codec.h
codec.h:
