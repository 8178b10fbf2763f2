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

# The registry's refusals (tests/check_registry.c, built in tests/core.mk):
# more descriptors of test plugins, and the plugin commands of the CLI and
# the README's plugin example run as written (tests/test_plugin_cli.sh,
# tests/test_readme.sh).
EXTRA_DIST += tests/badplugins/bp_trunc.ini.in tests/badplugins/bp_badsym.ini.in \
	tests/badplugins/bp_broken.ini.in tests/loose-tree.sh \
	tests/test_plugin_cli.sh tests/test_readme.sh
TESTS += tests/test_plugin_cli.sh tests/test_readme.sh

# mltk refuses plugin directories and files that others may write to.  A
# tree built or tested under a umask that lets the group write (002) is
# legitimately such a tree: there the tests allow it, as a user would with
# --allow-insecure-plugin-dir; the tests of the refusal unset it.
AM_TESTS_ENVIRONMENT += \
	if test -z "$${MLTK_ALLOW_INSECURE_PLUGIN_DIR+set}" \
	   && $(SHELL) '$(abs_top_srcdir)/tests/loose-tree.sh' '$(abs_top_builddir)'; then \
	  MLTK_ALLOW_INSECURE_PLUGIN_DIR=1; export MLTK_ALLOW_INSECURE_PLUGIN_DIR; \
	fi;
