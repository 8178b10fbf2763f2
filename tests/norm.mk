# tests for the norm family (see tests/check_norm.c): batch and layer norm,
# dropout, softmax and activations, ops and layers.  The layer plugins and
# the cpu backend are loaded from the build tree, so they are built first.
if HAVE_CHECK
check_PROGRAMS += tests/check_norm
TESTS += tests/check_norm
tests_check_norm_SOURCES = tests/check_norm.c tests/norm_ref.h tests/op_ref.h
tests_check_norm_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_norm_CFLAGS = $(TEST_CFLAGS)
tests_check_norm_LDADD = $(TEST_LIBS)
EXTRA_tests_check_norm_DEPENDENCIES = backends/cpu/cpu.la layers/batchnorm.la \
	layers/layernorm.la layers/dropout.la layers/softmax.la layers/leaky_relu.la \
	layers/elu.la layers/gelu.la layers/sigmoid.la layers/tanh.la
endif
EXTRA_DIST += tests/gen_norm_ref.py
