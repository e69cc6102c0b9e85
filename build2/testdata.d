build2/testdata.o: testdata.c testdata.h
testdata.h:
