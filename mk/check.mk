# mk/check.mk: sanitizer builds, libFuzzer targets and the sanitizer check
# (docs/reliability.md, "Sanitizers and fuzzing").
# Included by the Makefile; uses its LIB_SRCS, LUA_SRCS, lua/embed.S,
# PKG_CFLAGS and LDLIBS.
#
#   make asan             build-asan/fileserv + build-asan/tests/t_*  (ASan+UBSan)
#   make tsan             build-tsan/fileserv + build-tsan/tests/t_*  (TSan)
#   make fuzz             build-fuzz/fuzz_*, replay the corpora, then fuzz
#                         each target FUZZ_SECONDS (default 20) seconds
#   make fuzz-replay      replay the committed corpora only (-runs=0)
#   make fuzz-run         fuzz without the replay; `make fuzz FUZZ_SECONDS=600`
#                         is the long campaign
#   make check-sanitize   tests/check.sh: ASan and TSan suites, corpus replay
#   make clean-check      remove build-asan/ build-tsan/ build-fuzz/
#
# A sanitizer build is this same Makefile run again with another BUILD, CC
# and flags, so every object rule stays the Makefile's own. The flags go in
# through the environment: the Makefile's `CFLAGS +=` then appends its
# -std, -I and pkg-config flags to them (a command-line CFLAGS would
# replace them).

SAN_CC	     ?= clang-14
SAN_OPT	     ?= -O1 -g -fno-omit-frame-pointer
ASAN_FLAGS    = -fsanitize=address,undefined -fno-sanitize-recover=all
TSAN_FLAGS    = -fsanitize=thread
FUZZ_FLAGS    = -fsanitize=address,undefined -fno-sanitize-recover=all

FUZZ_SECONDS ?= 20
FUZZ_TARGETS  = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS     = $(FUZZ_TARGETS:%=build-fuzz/%)
FUZZ_OPTS     = -max_len=65536 -timeout=5 -rss_limit_mb=2048 \
		-dict=tests/fuzz/fileserv.dict
UNIT_NAMES    = $(UNIT_SRCS:tests/%.c=%)

# $(call san_make,BUILD dir,sanitizer flags for compiling,for linking)
san_make = CFLAGS='$(SAN_OPT) $(2)' LDFLAGS='$(3)' \
	$(MAKE) --no-print-directory BUILD=$(1) CC=$(SAN_CC) B64_LIB=$(B64_LIB)

.PHONY: asan tsan fuzz fuzz-build fuzz-replay fuzz-run check-sanitize \
	clean-check

# The executable in $(BUILD) (the Makefile's own rule writes ./fileserv).
$(BUILD)/fileserv: $(BUILD)/fileserv.o $(BUILD)/libfileserv.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets: library objects built with fuzzer-no-link, linked
# with the fuzzer runtime (which brings main).
$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libfileserv.a
	$(CC) $(CFLAGS) $(DEPFLAGS) $(FUZZ_LINK) -o $@ $< $(BUILD)/libfileserv.a $(LDLIBS)

asan:
	+@$(call san_make,build-asan,$(ASAN_FLAGS),$(ASAN_FLAGS)) \
	  build-asan/fileserv $(UNIT_NAMES:%=build-asan/tests/%)

tsan:
	+@$(call san_make,build-tsan,$(TSAN_FLAGS),$(TSAN_FLAGS)) \
	  build-tsan/fileserv $(UNIT_NAMES:%=build-tsan/tests/%)

fuzz-build:
	+@$(call san_make,build-fuzz,-fsanitize=fuzzer-no-link $(FUZZ_FLAGS),) \
	  FUZZ_LINK='-fsanitize=fuzzer $(FUZZ_FLAGS)' \
	  $(FUZZ_BINS)

# Regression test: every committed input must run clean.
fuzz-replay: fuzz-build
	@mkdir -p build-fuzz/crashes; rc=0; for t in $(FUZZ_TARGETS); do \
	  echo "replay $$t ($$(ls tests/fuzz/corpus/$$t | wc -l) inputs)"; \
	  build-fuzz/$$t -runs=0 $(FUZZ_OPTS) tests/fuzz/corpus/$$t \
	    -artifact_prefix=build-fuzz/crashes/$$t- \
	    2>build-fuzz/$$t.replay.log || { tail -30 build-fuzz/$$t.replay.log; rc=1; }; \
	done; exit $$rc

# Fuzzing: new inputs go to build-fuzz/corpus/<target> (the committed
# corpus only seeds it: merge by hand, `build-fuzz/T -merge=1
# tests/fuzz/corpus/T build-fuzz/corpus/T`), crashes to build-fuzz/crashes/.
# Two targets at a time (2 cores).
define fuzz_run
	@mkdir -p build-fuzz/crashes
	@printf '%s\n' $(FUZZ_TARGETS) | xargs -P 2 -I T sh -c '\
	  mkdir -p build-fuzz/corpus/T; \
	  echo "fuzz T for $(FUZZ_SECONDS) s"; \
	  build-fuzz/T $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=build-fuzz/crashes/T- -print_final_stats=1 \
	    build-fuzz/corpus/T tests/fuzz/corpus/T >build-fuzz/T.log 2>&1; \
	  rc=$$?; grep -E "^stat::number_of_executed_units|^Done" build-fuzz/T.log | sed "s/^/T: /"; \
	  if [ $$rc != 0 ]; then tail -60 build-fuzz/T.log; exit 255; fi'
endef

fuzz-run: fuzz-build
	$(fuzz_run)

fuzz: fuzz-replay
	$(fuzz_run)

check-sanitize: asan tsan fuzz-build
	bash tests/check.sh

clean-check:
	rm -rf build-asan build-tsan build-fuzz
