# tests of the safetensors module: the Check suite (tests/check_safetensors.c,
# which doubles as the writer and dumper the interop test drives), and
# tests/test_st_interop.sh, which proves our files against an independent
# standard-library reader (tests/st_read.py) and against Hugging Face's
# safetensors package, both ways.
if HAVE_CHECK
check_PROGRAMS += tests/check_safetensors
TESTS += tests/check_safetensors
tests_check_safetensors_SOURCES = tests/check_safetensors.c tests/testutil.h
tests_check_safetensors_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_safetensors_CFLAGS = $(TEST_CFLAGS)
tests_check_safetensors_LDADD = $(TEST_LIBS)
endif

TESTS += tests/test_st_interop.sh
EXTRA_DIST += tests/test_st_interop.sh tests/st_read.py
