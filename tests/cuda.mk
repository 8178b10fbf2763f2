# The cuda backend's own lifetime and memory, and every layer plugin run on
# the cpu and cuda backends and compared (tests/check_cuda.c); the ops are
# compared by the cross mode of tests/check_conformance.c.  The program is
# built whether or not the cuda backend is; it exits 77 (skipped) with the
# reason when the backend is not installed or finds no usable GPU.
if HAVE_CHECK
check_PROGRAMS += tests/check_cuda
TESTS += tests/check_cuda
tests_check_cuda_SOURCES = tests/check_cuda.c tests/testutil.h
tests_check_cuda_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_cuda_CFLAGS = $(TEST_CFLAGS)
tests_check_cuda_LDADD = $(TEST_LIBS)
EXTRA_tests_check_cuda_DEPENDENCIES = backends/cpu/cpu.la $(pkglib_LTLIBRARIES)
endif
