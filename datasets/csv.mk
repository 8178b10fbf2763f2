# The csv data set plugin, its tests and fuzz harness.
#
# csv.la is the plugin; tests/check_csv (Check) opens it through the
# registry on small tables written by the test; tests/test_csv_train.sh
# trains mltk end to end on tables of scikit-learn written as CSV files by
# tests/gen_csv_tables.py; tests/fuzz/replay_csv replays the seed corpus
# through tests/fuzz/fuzz_csv.c (test_fuzz.sh runs it), and with libFuzzer
# `make fuzz` also builds tests/fuzz/fuzz_csv.  The fuzz rules are written
# out here because this fragment is included before tests/fuzz.mk.

pkglib_LTLIBRARIES += datasets/csv.la
datasets_csv_la_SOURCES = datasets/csv.c datasets/csv.h datasets/sha256.h
datasets_csv_la_LDFLAGS = $(PLUGIN_LDFLAGS)
datasets_csv_la_LIBADD = $(PLUGIN_LIBADD) -lm
plugin_DATA += datasets/csv.ini
EXTRA_DIST += datasets/csv.ini.in tests/test_csv_train.sh tests/gen_csv_tables.py \
	tests/fuzz/fuzz_csv.c

if HAVE_CHECK
check_PROGRAMS += tests/check_csv
TESTS += tests/check_csv
tests_check_csv_SOURCES = tests/check_csv.c
tests_check_csv_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core -I$(top_srcdir)/datasets
tests_check_csv_CFLAGS = $(TEST_CFLAGS)
tests_check_csv_LDADD = $(TEST_LIBS)
EXTRA_tests_check_csv_DEPENDENCIES = datasets/csv.la
endif

TESTS += tests/test_csv_train.sh

check_PROGRAMS += tests/fuzz/replay_csv
tests_fuzz_replay_csv_SOURCES = tests/fuzz/fuzz_csv.c datasets/csv.c tests/fuzz/driver.c \
	tests/fuzz/fuzz.h
tests_fuzz_replay_csv_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core \
	-I$(top_srcdir)/tests/fuzz -I$(top_srcdir)/datasets
tests_fuzz_replay_csv_LDADD = libmltkcore.la -lm

if HAVE_LIBFUZZER
fuzz: tests/fuzz/fuzz_csv
CSV_FUZZ_TEST_LOG = tests/fuzz/test_fuzz.sh.log
$(CSV_FUZZ_TEST_LOG): tests/fuzz/fuzz_csv
CSV_FUZZ_CORE = core/util.c core/tensor.c core/ini.c core/descriptor.c core/params.c \
	core/registry.c core/schema.c core/config.c
tests/fuzz/fuzz_csv: tests/fuzz/obj/tests/fuzz/fuzz_csv.o tests/fuzz/obj/datasets/csv.o \
		$(CSV_FUZZ_CORE:%.c=tests/fuzz/obj/%.o)
	$(FUZZ_LINK) $^ $(FUZZ_CORE_LIBS)
endif
CLEANFILES += tests/fuzz/fuzz_csv
