# [run] precision = bf16 and [run] tf32 (tests/check_precision.c): dense and
# conv2d in bf16 against double references within bounds derived from bf16
# rounding, the refusals of fp16 and of bf16 on a backend without it, and a
# bf16 MLP trained on a Fashion-MNIST subset (when the data set is present).
# The plugins load from the build tree.
if HAVE_CHECK
check_PROGRAMS += tests/check_precision
TESTS += tests/check_precision
tests_check_precision_SOURCES = tests/check_precision.c
tests_check_precision_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_precision_CFLAGS = $(TEST_CFLAGS)
tests_check_precision_LDADD = $(TEST_LIBS)
EXTRA_tests_check_precision_DEPENDENCIES = backends/cpu/cpu.la layers/dense.la \
	layers/conv2d.la layers/flatten.la layers/relu.la datasets/idx.la
endif
