# Tests of the model plugins: layers and loss (gradient checks), optimizers
# (against reference updates) and the idx dataset (good and damaged files,
# and the core's label check when it loads a split).
# They load the plugins from the build tree, so `make check` builds those
# first (they are part of `all`).
if HAVE_CHECK
check_PROGRAMS += tests/check_layers tests/check_optim tests/check_idx
TESTS += tests/check_layers tests/check_optim tests/check_idx

tests_check_layers_SOURCES = tests/check_layers.c
tests_check_layers_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_layers_CFLAGS = $(TEST_CFLAGS)
tests_check_layers_LDADD = $(TEST_LIBS)

tests_check_optim_SOURCES = tests/check_optim.c
tests_check_optim_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_optim_CFLAGS = $(TEST_CFLAGS)
tests_check_optim_LDADD = $(TEST_LIBS)

tests_check_idx_SOURCES = tests/check_idx.c
tests_check_idx_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core $(ZLIB_CFLAGS)
tests_check_idx_CFLAGS = $(TEST_CFLAGS)
tests_check_idx_LDADD = $(TEST_LIBS) $(ZLIB_LIBS)
# test_label_range_load loads a split through the core on the cpu backend
EXTRA_tests_check_idx_DEPENDENCIES = backends/cpu/cpu.la datasets/idx.la
endif
