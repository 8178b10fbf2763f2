# The tokens data set plugin, its tests and fuzz harness.
# tokens (token-id files) and text (any file as bytes), one source: text is
# tokens.c built with -DTOKENS_TEXT.
pkglib_LTLIBRARIES += datasets/tokens.la datasets/text.la
datasets_tokens_la_SOURCES = datasets/tokens.c datasets/mapfile.h datasets/sha256.h
datasets_tokens_la_LDFLAGS = $(PLUGIN_LDFLAGS)
datasets_tokens_la_LIBADD = $(PLUGIN_LIBADD) -lm
datasets_text_la_SOURCES = datasets/tokens.c datasets/mapfile.h datasets/sha256.h
datasets_text_la_CPPFLAGS = $(AM_CPPFLAGS) -DTOKENS_TEXT
datasets_text_la_LDFLAGS = $(PLUGIN_LDFLAGS)
datasets_text_la_LIBADD = $(PLUGIN_LIBADD) -lm
plugin_DATA += datasets/tokens.ini datasets/text.ini
EXTRA_DIST += datasets/tokens.ini.in datasets/text.ini.in

# tests/check_tokens: both plugins on small files (windows, targets, every
# kind of damaged file); tests/test_text_lm.sh: a byte-level language
# model trained with examples/text-bytes-lm.ini, whose loss must fall.
if HAVE_CHECK
check_PROGRAMS += tests/check_tokens
TESTS += tests/check_tokens
tests_check_tokens_SOURCES = tests/check_tokens.c
tests_check_tokens_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_tokens_CFLAGS = $(TEST_CFLAGS)
tests_check_tokens_LDADD = $(TEST_LIBS)
EXTRA_tests_check_tokens_DEPENDENCIES = datasets/tokens.la datasets/text.la
endif
TESTS += tests/test_text_lm.sh
EXTRA_DIST += tests/test_text_lm.sh

# The fuzz harness of the parser (tests/fuzz/fuzz_tokens.c includes
# tokens.c): the replay build always, the libFuzzer build with `make fuzz`
# (rules as in tests/fuzz.mk, which defines FUZZ_CC, FUZZ_SANFLAGS and the
# object rule; its variables are not yet defined here, so the core objects
# are listed).
check_PROGRAMS += tests/fuzz/replay_tokens
tests_fuzz_replay_tokens_SOURCES = tests/fuzz/fuzz_tokens.c tests/fuzz/driver.c \
	tests/fuzz/fuzz.h
tests_fuzz_replay_tokens_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core \
	-I$(top_srcdir)/tests/fuzz -I$(top_srcdir)/datasets
tests_fuzz_replay_tokens_LDADD = libmltkcore.la -lm
EXTRA_DIST += tests/fuzz/fuzz_tokens.c
CLEANFILES += tests/fuzz/fuzz_tokens
if HAVE_LIBFUZZER
TOKENS_FUZZ_LOG = tests/fuzz/test_fuzz.sh.log
fuzz: tests/fuzz/fuzz_tokens
$(TOKENS_FUZZ_LOG): tests/fuzz/fuzz_tokens
# the harness includes the plugin's source, which the object rule does not track
tests/fuzz/obj/tests/fuzz/fuzz_tokens.o: datasets/tokens.c datasets/mapfile.h datasets/sha256.h
tests/fuzz/fuzz_tokens: tests/fuzz/obj/tests/fuzz/fuzz_tokens.o \
		tests/fuzz/obj/core/util.o tests/fuzz/obj/core/tensor.o \
		tests/fuzz/obj/core/ini.o tests/fuzz/obj/core/descriptor.o \
		tests/fuzz/obj/core/params.o tests/fuzz/obj/core/registry.o \
		tests/fuzz/obj/core/schema.o tests/fuzz/obj/core/config.o
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_CORE_LIBS)
endif
