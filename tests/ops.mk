# Tests of the operations around the training loop: checkpoints and exact
# resume, the NaN policy, early stopping, init_from and the run directory
# (tests/check_ops.c, through the session), and the same seen from the
# command line: signals, kill -9, `mltk inspect`, `mltk plot` and alerts
# (tests/test_ops_cli.sh).  Both load tests/plugins/nanbomb, a layer that
# makes one training step's output NaN, built here as a libtool module
# that is never installed.
EXTRA_DIST += tests/plugins/nanbomb.ini.in tests/test_ops_cli.sh

check_LTLIBRARIES += tests/plugins/nanbomb.la
tests_plugins_nanbomb_la_SOURCES = tests/plugins/nanbomb.c
tests_plugins_nanbomb_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^mltk_plugin_' -rpath /nowhere
tests_plugins_nanbomb_la_LIBADD = libmltk.la

if HAVE_CHECK
check_PROGRAMS += tests/check_ops
TESTS += tests/check_ops
tests_check_ops_SOURCES = tests/check_ops.c tests/testutil.h
tests_check_ops_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_ops_CFLAGS = $(TEST_CFLAGS)
tests_check_ops_LDADD = $(TEST_LIBS)
endif

# the shell test needs the plugin too; check_LTLIBRARIES are built before
# any test runs
TESTS += tests/test_ops_cli.sh
