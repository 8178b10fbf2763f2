# The test suite.  Check programs per module, shell tests for the CLI and
# the out-of-tree plugin; each area's tests are in tests/<area>.mk.
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
TEST_LIBS = libmltkcore.la $(CHECK_LIBS) -lm
AM_TESTS_ENVIRONMENT = \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	MLTK_LOG_LEVEL=warn; export MLTK_LOG_LEVEL; \
	CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-60}; export CK_DEFAULT_TIMEOUT; \
	MAKE='$(MAKE)'; export MAKE; \
	CC='$(CC)'; export CC;
# Check's default of 4 s per test is too short for a sanitizer build on a
# loaded 2-core machine; a hung test is still stopped after a minute.
# testutil.h includes fdcheck.h (the finite-difference harness); the shell
# tests source testlib.sh
EXTRA_DIST += tests/testutil.h tests/dsfixture.h tests/pyvenv.sh tests/testlib.sh

include tests/core.mk
include tests/backend.mk
include tests/opcheck.mk
include tests/plugins.mk
include tests/cli.mk
include tests/conv.mk
include tests/bf16.mk
include tests/norm.mk
include tests/graph.mk
include tests/optim2.mk
include tests/tbevents.mk
include tests/safetensors.mk
include tests/metrics.mk
include tests/loader.mk
include tests/ops.mk
include tests/cuda.mk
include tests/precision.mk
include tests/ckpt.mk
include tests/fuzz.mk
include tests/interop.mk
include tests/sizes.mk

if HAVE_CHECK
check_PROGRAMS += tests/check_train
TESTS += tests/check_train
tests_check_train_SOURCES = tests/check_train.c
tests_check_train_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_train_CFLAGS = $(TEST_CFLAGS)
tests_check_train_LDADD = $(TEST_LIBS)
endif

# every descriptor key and core key is documented in mltk.ini(5)
TESTS += tests/test_man.sh
EXTRA_DIST += tests/test_man.sh man/gen-plugin-ref.py

# the pages render without escapes printed literally
TESTS += tests/test_man_render.sh
EXTRA_DIST += tests/test_man_render.sh

# metrics.csv has metrics.jsonl's [metrics] columns
TESTS += tests/test_metrics_csv.sh
EXTRA_DIST += tests/test_metrics_csv.sh

# configure --prefix=A, make, configure --prefix=B, make, make install:
# two builds, so not in `make check`
EXTRA_DIST += tests/test_reconfigure.sh
check-reconfigure: all
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	MAKE='$(MAKE)' $(SHELL) $(top_srcdir)/tests/test_reconfigure.sh
.PHONY: check-reconfigure

# the interoperability tests' Python environment (tests/pyvenv.sh)
clean-local: clean-pyvenv
clean-pyvenv:
	-rm -rf tests/pyvenv tests/pyvenv.lock
.PHONY: clean-pyvenv
