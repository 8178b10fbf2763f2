# absurd sizes: the overflow helpers of mltk.h, the cpu conv2d workspace
# beyond its bound, the conv2d and dense layers' range checks
# (tests/check_sizes.c), and the mltk command on configs with layer sizes
# out of range, which must exit 3 naming file, line, layer and key
# (tests/test_sizes.sh).
if HAVE_CHECK
check_PROGRAMS += tests/check_sizes
TESTS += tests/check_sizes
tests_check_sizes_SOURCES = tests/check_sizes.c
tests_check_sizes_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_sizes_CFLAGS = $(TEST_CFLAGS)
tests_check_sizes_LDADD = $(TEST_LIBS)
EXTRA_tests_check_sizes_DEPENDENCIES = backends/cpu/cpu.la layers/conv2d.la layers/dense.la
endif
TESTS += tests/test_sizes.sh
EXTRA_DIST += tests/test_sizes.sh
