# fileserv: one executable (server, client, Lua stress engine).
# Dependencies come from Debian: liblua5.4-dev, libcjson-dev, libb64-dev.
# Lua and libb64 are linked statically so the binary stands alone.

CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
PKGS      = lua5.4 libcjson
DEB_PKGS  = liblua5.4-dev libcjson-dev libb64-dev pkg-config python3

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LUA_LIBDIR := $(shell pkg-config --variable=libdir lua5.4 2>/dev/null)
MULTIARCH  := $(shell $(CC) -print-multiarch 2>/dev/null)
B64_LIB    ?= /usr/lib/$(MULTIARCH)/libb64.a

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -fstack-protector-strong \
            -D_FORTIFY_SOURCE=2 -D_GNU_SOURCE -I. $(PKG_CFLAGS)
# Each object's header dependencies, written by the compiler beside it.
DEPFLAGS  = -MMD -MP
LDLIBS   += $(LUA_LIBDIR)/liblua5.4.a $(B64_LIB) \
            $(shell pkg-config --libs libcjson 2>/dev/null) \
            -lpthread -lm -ldl

LIB_SRCS  = arrival.c segment.c result.c threshold.c interval.c codec.c proto.c storage.c server.c acceptor.c pool.c spawn.c stats.c usage.c affinity.c client.c event.c fiber.c stress.c stress_cli.c merge.c merge_cli.c testdata.c bench.c bench_peers.c \
            cli.c cmdline.c log.c units.c clock.c error.c
LUA_SRCS  = lua/script.c lua/lfileserv.c lua/lstress.c lua/json.c
LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o) $(LUA_SRCS:%.c=$(BUILD)/%.o) \
            $(BUILD)/lua/embed.o
UNIT_SRCS = $(wildcard tests/t_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/%.c=$(BUILD)/tests/%)
LUA_UNITS = $(wildcard tests/t_*.lua)

.PHONY: all deps test check-long run install clean format check-format

all: deps fileserv

# Installs the Debian packages when something is missing (as root), or
# prints the command to run.
deps:
	@if ! pkg-config --exists $(PKGS) 2>/dev/null || \
	    [ ! -f /usr/include/b64/cencode.h ] || ! command -v python3 >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(DEB_PKGS)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS); \
	  else \
	    echo "missing packages; run: sudo apt-get install -y $(DEB_PKGS)"; exit 1; \
	  fi; \
	fi

$(BUILD)/%.o: %.c | $(BUILD) $(BUILD)/lua
	$(CC) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/lua/embed.o: lua/embed.S $(wildcard lua/*.lua) | $(BUILD)/lua
	$(CC) -c -o $@ lua/embed.S

$(BUILD) $(BUILD)/tests $(BUILD)/lua:
	mkdir -p $@

$(BUILD)/libfileserv.a: $(LIB_OBJS)
	$(AR) rcs $@ $^

fileserv: $(BUILD)/fileserv.o $(BUILD)/libfileserv.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libfileserv.a | $(BUILD)/tests
	$(CC) $(CFLAGS) $(DEPFLAGS) -o $@ $< $(BUILD)/libfileserv.a $(LDLIBS)

test: deps fileserv $(UNIT_BINS)
	python3 tests/run.py --bin ./fileserv --units "$(UNIT_BINS) $(LUA_UNITS)"

# The long variants: 1000 clients, 900-connection slowloris, 500 MB round
# trips, a 10-minute soak, then 10 minutes of fuzzing per target.
check-long: deps fileserv $(UNIT_BINS)
	python3 tests/run.py --long --bin ./fileserv --units "$(UNIT_BINS) $(LUA_UNITS)"
	$(MAKE) fuzz FUZZ_SECONDS=600

run: deps fileserv
	./fileserv run scripts/stress_all.lua

# The binary, its man page, the Lua scripts (share/fileserv/scripts) and
# the documentation (share/doc/fileserv), under $(DESTDIR)$(PREFIX).
INSTALL_DOCS    = README.md $(wildcard docs/*.md)
INSTALL_SCRIPTS = $(wildcard scripts/*.lua)

install: fileserv
	install -D -m 755 fileserv $(DESTDIR)$(PREFIX)/bin/fileserv
	install -D -m 644 fileserv.1 $(DESTDIR)$(PREFIX)/share/man/man1/fileserv.1
	install -d $(DESTDIR)$(PREFIX)/share/fileserv/scripts \
	  $(DESTDIR)$(PREFIX)/share/doc/fileserv
	install -m 644 $(INSTALL_SCRIPTS) $(DESTDIR)$(PREFIX)/share/fileserv/scripts
	install -m 644 $(INSTALL_DOCS) $(DESTDIR)$(PREFIX)/share/doc/fileserv

# Every C source and header of the tree, for clang-format (.clang-format).
FORMAT_SRCS = $(shell find . -path ./build -prune -o -path './build-*' -prune \
	        -o -path ./.git -prune -o \( -name '*.c' -o -name '*.h' \) -print)

format:
	clang-format -i $(FORMAT_SRCS)

# Fails, naming file and line, where the sources differ from the style.
check-format:
	clang-format --dry-run -Werror $(FORMAT_SRCS)

clean:
	rm -rf $(BUILD) fileserv

# ---- benchmarks (fileserv bench) ----
# The peers bench compares with (iperf3, nginx, wrk) are installed when
# missing and run as root; otherwise their rows say they were skipped.
BENCH_PKGS = iperf3 nginx-light wrk

.PHONY: bench
bench: deps fileserv
	@if [ "$$(id -u)" = 0 ] && { ! command -v iperf3 >/dev/null || \
	    ! command -v wrk >/dev/null || \
	    ! PATH="$$PATH:/usr/sbin" command -v nginx >/dev/null; }; then \
	  echo "installing $(BENCH_PKGS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq $(BENCH_PKGS) || true; \
	fi
	./fileserv bench

-include $(wildcard $(BUILD)/*.d $(BUILD)/lua/*.d $(BUILD)/tests/*.d)

# ---- sanitizer builds and fuzzing: see mk/check.mk ----
-include mk/check.mk
