# check_opcheck: the op contract's checks and dispatch (core/op.c) and the
# tensor views (core/tensor.c), on a fake backend; no plugin is loaded.
if HAVE_CHECK
check_PROGRAMS += tests/check_opcheck
TESTS += tests/check_opcheck
tests_check_opcheck_SOURCES = tests/check_opcheck.c tests/testutil.h
tests_check_opcheck_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_opcheck_CFLAGS = $(TEST_CFLAGS)
tests_check_opcheck_LDADD = $(TEST_LIBS)
endif
