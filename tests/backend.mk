# tests for backend: conformance of the cpu backend's ops.  The plugin is
# dlopen()ed from the build tree, so it must be built first.
if HAVE_CHECK
check_PROGRAMS += tests/check_backend
TESTS += tests/check_backend
tests_check_backend_SOURCES = tests/check_backend.c tests/optim_ref.h
tests_check_backend_CFLAGS = $(TEST_CFLAGS)
tests_check_backend_LDADD = $(TEST_LIBS)
EXTRA_tests_check_backend_DEPENDENCIES = backends/cpu/cpu.la
endif
EXTRA_DIST += tests/gen_optim_ref.py
