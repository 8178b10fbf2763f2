# tests of the tbevents module
#
# check_tbevents: CRC-32C, the record framing, the bytes of a scalar event
# and the statistics of a histogram, read back by a small parser in the
# test itself.  test_tb_interop.sh: tb_write_demo writes a file of known
# events; tests/tb_read.py (Python standard library only) must read the
# same values back, and so must TensorBoard's own EventAccumulator (from
# the test virtual environment, tests/pyvenv.sh; skipped without it).
if HAVE_CHECK
check_PROGRAMS += tests/check_tbevents
TESTS += tests/check_tbevents
tests_check_tbevents_SOURCES = tests/check_tbevents.c tests/testutil.h
tests_check_tbevents_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_tbevents_CFLAGS = $(TEST_CFLAGS)
tests_check_tbevents_LDADD = $(TEST_LIBS)
endif

check_PROGRAMS += tests/tb_write_demo
tests_tb_write_demo_SOURCES = tests/tb_write_demo.c
tests_tb_write_demo_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_tb_write_demo_LDADD = libmltkcore.la -lm

TESTS += tests/test_tb_interop.sh
EXTRA_DIST += tests/test_tb_interop.sh tests/tb_read.py
