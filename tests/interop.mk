# The interoperability tests' shared parts: the pinned Python packages of
# tests/pyvenv.sh, and LAMB against optax (tests/test_lamb_interop.sh:
# tests/opt_steps runs mltk's plugin, tests/lamb_ref.py runs optax and
# compares).  opt_steps needs no Check.
check_PROGRAMS += tests/opt_steps
tests_opt_steps_SOURCES = tests/opt_steps.c
tests_opt_steps_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_opt_steps_LDADD = libmltkcore.la -lm

TESTS += tests/test_lamb_interop.sh
EXTRA_DIST += tests/test_lamb_interop.sh tests/lamb_ref.py tests/pyvenv.txt
