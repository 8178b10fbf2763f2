# The image data set plugin, its tests and fuzz harness.
#
# datasets/image.la: the imagefolder data set (datasets/image.c), with its
# descriptor datasets/imagefolder.ini.  tests/check_image: decoding,
# resizing and the folder rules against values from PIL
# (tests/image_ref.h, written by tests/gen_image_ref.py).
# tests/test_image_train.sh: Fashion-MNIST written as JPEG files by
# tests/mkimagefolder trains the CNN (short); bench/image_vs_idx.sh is the
# full comparison with the IDX files.
pkglib_LTLIBRARIES += datasets/image.la
# the resize is the transforms' (transforms/resample.c, compiled in)
datasets_image_la_SOURCES = datasets/image.c datasets/image.h datasets/sha256.h \
	transforms/resample.c transforms/resample.h
datasets_image_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/transforms \
	$(JPEG_CFLAGS) $(PNG_CFLAGS)
datasets_image_la_LDFLAGS = $(PLUGIN_LDFLAGS)
datasets_image_la_LIBADD = $(PLUGIN_LIBADD) $(JPEG_LIBS) $(PNG_LIBS) -lm
plugin_DATA += datasets/imagefolder.ini
EXTRA_DIST += datasets/imagefolder.ini.in

# the test tool: Fashion-MNIST IDX files -> ROOT/{train,test}/CLASS/N.jpg|png
check_PROGRAMS += tests/mkimagefolder
tests_mkimagefolder_SOURCES = tests/mkimagefolder.c
tests_mkimagefolder_CPPFLAGS = $(AM_CPPFLAGS) $(JPEG_CFLAGS) $(PNG_CFLAGS) $(ZLIB_CFLAGS)
tests_mkimagefolder_LDADD = $(JPEG_LIBS) $(PNG_LIBS) $(ZLIB_LIBS)

if HAVE_CHECK
check_PROGRAMS += tests/check_image
TESTS += tests/check_image
tests_check_image_SOURCES = tests/check_image.c tests/image_ref.h datasets/image.c \
	transforms/resample.c
tests_check_image_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core -I$(top_srcdir)/datasets \
	-I$(top_srcdir)/transforms $(JPEG_CFLAGS) $(PNG_CFLAGS)
tests_check_image_CFLAGS = $(TEST_CFLAGS)
tests_check_image_LDADD = $(TEST_LIBS) $(JPEG_LIBS) $(PNG_LIBS)
EXTRA_tests_check_image_DEPENDENCIES = datasets/image.la
endif
EXTRA_DIST += tests/gen_image_ref.py

TESTS += tests/test_image_train.sh
# (examples/ and bench/ are distributed whole by Makefile.am)
EXTRA_DIST += tests/test_image_train.sh

# the fuzz harness: the replay build always (tests/fuzz/test_fuzz.sh runs
# it over tests/fuzz/corpus/image), the libFuzzer build with `make fuzz`
check_PROGRAMS += tests/fuzz/replay_image
tests_fuzz_replay_image_SOURCES = tests/fuzz/fuzz_image.c datasets/image.c \
	transforms/resample.c tests/fuzz/driver.c tests/fuzz/fuzz.h
tests_fuzz_replay_image_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core \
	-I$(top_srcdir)/tests/fuzz -I$(top_srcdir)/datasets -I$(top_srcdir)/transforms \
	$(JPEG_CFLAGS) $(PNG_CFLAGS)
tests_fuzz_replay_image_LDADD = libmltkcore.la $(JPEG_LIBS) $(PNG_LIBS) -lm

if HAVE_LIBFUZZER
# (tests/fuzz.mk, included later, has the object rule, the flags and the
# core objects; FUZZ_CORE_OBJS is not yet set when this rule is read, so
# the prerequisites are expanded a second time, once make has read all)
# (a prerequisite-only rule for test_fuzz.sh's .log; the target is a
# variable so that automake keeps its own rule, as in tests/fuzz.mk)
fuzz: tests/fuzz/fuzz_image
IMAGE_FUZZ_TEST_LOG = tests/fuzz/test_fuzz.sh.log
$(IMAGE_FUZZ_TEST_LOG): tests/fuzz/fuzz_image
tests/fuzz/obj/datasets/image.o tests/fuzz/obj/tests/fuzz/fuzz_image.o: \
	FUZZ_CPPFLAGS += -I$(top_srcdir)/transforms $(JPEG_CFLAGS) $(PNG_CFLAGS)
.SECONDEXPANSION:
tests/fuzz/fuzz_image: tests/fuzz/obj/tests/fuzz/fuzz_image.o tests/fuzz/obj/datasets/image.o \
		tests/fuzz/obj/transforms/resample.o $$(FUZZ_CORE_OBJS)
	$(FUZZ_LINK) $^ $(JPEG_LIBS) $(PNG_LIBS) $(FUZZ_CORE_LIBS)
endif
clean-local: clean-fuzz-image
clean-fuzz-image:
	-rm -f tests/fuzz/fuzz_image
.PHONY: clean-fuzz-image
