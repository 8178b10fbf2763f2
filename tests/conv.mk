# tests for the conv family: the cpu backend's conv2d and pool2d ops
# against naive double references at 1 and 2 threads, and the conv2d,
# maxpool2d, avgpool2d and global_avgpool layers' outputs and gradients
# against finite differences and the double references of tests/op_ref.h
# (tests/check_conv.c).  The plugins load from the build tree.
if HAVE_CHECK
check_PROGRAMS += tests/check_conv
TESTS += tests/check_conv
tests_check_conv_SOURCES = tests/check_conv.c tests/op_ref.h
tests_check_conv_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_conv_CFLAGS = $(TEST_CFLAGS)
tests_check_conv_LDADD = $(TEST_LIBS)
EXTRA_tests_check_conv_DEPENDENCIES = backends/cpu/cpu.la layers/conv2d.la \
	layers/maxpool2d.la layers/avgpool2d.la layers/global_avgpool.la
endif
