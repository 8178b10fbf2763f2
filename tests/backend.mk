# The conformance table of the ops (tests/check_conformance.c): every op of
# backend.h on the cpu backend against double-precision references
# (tests/op_ref.h), on every other backend built here (cuda) against the
# cpu, and every backward op against finite differences (tests/fdcheck.h).
# The backends are dlopen()ed from the build tree through the registry, so
# they must be built first; $(pkglib_LTLIBRARIES) brings the cuda backend
# when configure enabled it.
if HAVE_CHECK
check_PROGRAMS += tests/check_conformance
TESTS += tests/check_conformance
tests_check_conformance_SOURCES = tests/check_conformance.c tests/op_ref.h \
	tests/fdcheck.h tests/optim_ref.h tests/testutil.h
tests_check_conformance_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_conformance_CFLAGS = $(TEST_CFLAGS)
tests_check_conformance_LDADD = $(TEST_LIBS)
EXTRA_tests_check_conformance_DEPENDENCIES = backends/cpu/cpu.la $(pkglib_LTLIBRARIES)
endif
EXTRA_DIST += tests/gen_optim_ref.py
