# Fuzz harnesses (tests/fuzz/): one libFuzzer target per reader of outside
# input, each with a seed corpus in tests/fuzz/corpus/NAME; see
# tests/fuzz/README.md.
#
# Always built: tests/fuzz/replay_NAME, the harness compiled like the rest
# of the tree and linked with a replay driver (tests/fuzz/driver.c), which
# test_fuzz.sh runs over the seed corpus, so that the harnesses build and
# pass wherever the tree does.
# With a clang whose libFuzzer links (configure's FUZZ_CC check): `make
# fuzz` builds tests/fuzz/fuzz_NAME, the harness and the code under test
# compiled by FUZZ_CC with coverage instrumentation, AddressSanitizer and
# UndefinedBehaviorSanitizer, and test_fuzz.sh also runs each for a fixed
# number of runs from a fixed seed.  These are built by explicit rules,
# not as automake programs, because they use another compiler than CC.

FUZZ_NAMES = ini config descriptor safetensors idx metrics_jsonl

TESTS += tests/fuzz/test_fuzz.sh
EXTRA_DIST += tests/fuzz/README.md tests/fuzz/test_fuzz.sh tests/fuzz/corpus

# ---- the replay builds ----------------------------------------------------------

FUZZ_REPLAY_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core -I$(top_srcdir)/tests/fuzz
FUZZ_REPLAY_COMMON = tests/fuzz/driver.c tests/fuzz/fuzz.h

check_PROGRAMS += tests/fuzz/replay_ini tests/fuzz/replay_config \
	tests/fuzz/replay_descriptor tests/fuzz/replay_safetensors \
	tests/fuzz/replay_idx tests/fuzz/replay_metrics_jsonl

tests_fuzz_replay_ini_SOURCES = tests/fuzz/fuzz_ini.c $(FUZZ_REPLAY_COMMON)
tests_fuzz_replay_ini_CPPFLAGS = $(FUZZ_REPLAY_CPPFLAGS)
tests_fuzz_replay_ini_LDADD = libmltkcore.la -lm

tests_fuzz_replay_config_SOURCES = tests/fuzz/fuzz_config.c $(FUZZ_REPLAY_COMMON)
tests_fuzz_replay_config_CPPFLAGS = $(FUZZ_REPLAY_CPPFLAGS) \
	-DFUZZ_PLUGIN_DIRS='"$(MLTK_BUILD_PLUGIN_DIRS)"'
tests_fuzz_replay_config_LDADD = libmltkcore.la -lm

tests_fuzz_replay_descriptor_SOURCES = tests/fuzz/fuzz_descriptor.c $(FUZZ_REPLAY_COMMON)
tests_fuzz_replay_descriptor_CPPFLAGS = $(FUZZ_REPLAY_CPPFLAGS)
tests_fuzz_replay_descriptor_LDADD = libmltkcore.la -lm

tests_fuzz_replay_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c $(FUZZ_REPLAY_COMMON)
tests_fuzz_replay_safetensors_CPPFLAGS = $(FUZZ_REPLAY_CPPFLAGS)
tests_fuzz_replay_safetensors_LDADD = libmltkcore.la -lm

tests_fuzz_replay_idx_SOURCES = tests/fuzz/fuzz_idx.c datasets/idx.c $(FUZZ_REPLAY_COMMON)
tests_fuzz_replay_idx_CPPFLAGS = $(FUZZ_REPLAY_CPPFLAGS) -I$(top_srcdir)/datasets \
	$(ZLIB_CFLAGS)
tests_fuzz_replay_idx_LDADD = libmltkcore.la $(ZLIB_LIBS) -lm

tests_fuzz_replay_metrics_jsonl_SOURCES = tests/fuzz/fuzz_metrics_jsonl.c \
	core/cli/plot.c core/cli/confusion.c $(FUZZ_REPLAY_COMMON)
tests_fuzz_replay_metrics_jsonl_CPPFLAGS = $(FUZZ_REPLAY_CPPFLAGS) \
	-I$(top_srcdir)/core/cli $(CAIRO_CFLAGS) $(JANSSON_CFLAGS)
tests_fuzz_replay_metrics_jsonl_LDADD = libmltkcore.la $(CAIRO_LIBS) $(JANSSON_LIBS) -lm

# ---- the libFuzzer builds -------------------------------------------------------

FUZZ_BINS = $(FUZZ_NAMES:%=tests/fuzz/fuzz_%)
FUZZ_SANFLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
FUZZ_CPPFLAGS = $(libmltkcore_la_CPPFLAGS) -I$(top_srcdir)/core \
	-I$(top_srcdir)/core/cli -I$(top_srcdir)/datasets -I$(top_srcdir)/tests/fuzz \
	$(CAIRO_CFLAGS) -DFUZZ_PLUGIN_DIRS='"$(MLTK_BUILD_PLUGIN_DIRS)"'
FUZZ_CORE_LIBS = $(INIH_LIBS) $(ZLIB_LIBS) $(JANSSON_LIBS) -ldl -lm
# the core files every harness links (the config loader and what it needs)
FUZZ_CORE = core/util.c core/tensor.c core/ini.c core/descriptor.c core/params.c \
	core/registry.c core/schema.c core/config.c
FUZZ_CORE_OBJS = $(FUZZ_CORE:%.c=tests/fuzz/obj/%.o)

if HAVE_LIBFUZZER
fuzz: $(FUZZ_BINS)
# test_fuzz.sh runs the libFuzzer builds when they are there.  (A
# prerequisite-only rule; the target is a variable so that automake keeps
# its own rule for the .log, as in tests/cli.mk.)
FUZZ_TEST_LOG = tests/fuzz/test_fuzz.sh.log
$(FUZZ_TEST_LOG): $(FUZZ_BINS)

# Every object also waits for the core library, so that a header a
# colleague's change generates exists, and a changed core rebuilds these.
tests/fuzz/obj/%.o: %.c libmltkcore.la
	$(AM_V_CC)$(MKDIR_P) $(@D) && $(FUZZ_CC) -std=gnu11 $(FUZZ_SANFLAGS) \
	  -fsanitize=fuzzer-no-link $(FUZZ_CPPFLAGS) -c -o $@ $<

# registry.c reads the configured directories from core/paths.h (core/local.mk)
tests/fuzz/obj/core/registry.o: FUZZ_CPPFLAGS += -include core/paths.h

FUZZ_LINK = $(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@
tests/fuzz/fuzz_ini: tests/fuzz/obj/tests/fuzz/fuzz_ini.o $(FUZZ_CORE_OBJS)
	$(FUZZ_LINK) $^ $(FUZZ_CORE_LIBS)
tests/fuzz/fuzz_config: tests/fuzz/obj/tests/fuzz/fuzz_config.o $(FUZZ_CORE_OBJS)
	$(FUZZ_LINK) $^ $(FUZZ_CORE_LIBS)
tests/fuzz/fuzz_descriptor: tests/fuzz/obj/tests/fuzz/fuzz_descriptor.o $(FUZZ_CORE_OBJS)
	$(FUZZ_LINK) $^ $(FUZZ_CORE_LIBS)
tests/fuzz/fuzz_safetensors: tests/fuzz/obj/tests/fuzz/fuzz_safetensors.o \
		tests/fuzz/obj/core/safetensors.o $(FUZZ_CORE_OBJS)
	$(FUZZ_LINK) $^ $(FUZZ_CORE_LIBS)
tests/fuzz/fuzz_idx: tests/fuzz/obj/tests/fuzz/fuzz_idx.o tests/fuzz/obj/datasets/idx.o \
		$(FUZZ_CORE_OBJS)
	$(FUZZ_LINK) $^ $(FUZZ_CORE_LIBS)
tests/fuzz/fuzz_metrics_jsonl: tests/fuzz/obj/tests/fuzz/fuzz_metrics_jsonl.o \
		tests/fuzz/obj/core/cli/plot.o tests/fuzz/obj/core/cli/confusion.o \
		$(FUZZ_CORE_OBJS)
	$(FUZZ_LINK) $^ $(CAIRO_LIBS) $(FUZZ_CORE_LIBS)
else
fuzz:
	@echo "make fuzz: no clang with libFuzzer was found by configure; install clang" \
	  "and libclang-rt-14-dev (Debian 12), or set FUZZ_CC, and configure again" >&2; \
	exit 1
endif
.PHONY: fuzz

clean-local: clean-fuzz
clean-fuzz:
	-rm -rf tests/fuzz/obj $(FUZZ_BINS) tests/fuzz/crash-*
.PHONY: clean-fuzz
