# Tests of the transform plugins (tests/check_transforms.c): each plugin
# loaded from the build tree, against PIL references (tests/transforms_ref.h,
# written by tests/transforms_ref.py) and expectations recomputed from the
# same random draws.  resample.c is also compiled into the test itself.
if HAVE_CHECK
check_PROGRAMS += tests/check_transforms
TESTS += tests/check_transforms
tests_check_transforms_SOURCES = tests/check_transforms.c tests/transforms_ref.h \
	transforms/resample.c transforms/resample.h
tests_check_transforms_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core \
	-I$(top_srcdir)/transforms
tests_check_transforms_CFLAGS = $(TEST_CFLAGS)
tests_check_transforms_LDADD = $(TEST_LIBS)
EXTRA_tests_check_transforms_DEPENDENCIES = transforms/random_crop.la \
	transforms/random_resized_crop.la transforms/flip.la transforms/rotate.la \
	transforms/color_jitter.la transforms/normalize.la transforms/random_erasing.la \
	transforms/mixup.la transforms/cutmix.la transforms/resize.la \
	transforms/center_crop.la
endif
EXTRA_DIST += tests/transforms_ref.py
# The transforms in training configs (needs the mltk program and the plugins).
TESTS += tests/test_transforms.sh
EXTRA_DIST += tests/test_transforms.sh
