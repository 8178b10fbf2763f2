# The cifar data set plugin, its tests and fuzz harness.
pkglib_LTLIBRARIES += datasets/cifar.la
datasets_cifar_la_SOURCES = datasets/cifar.c datasets/mapfile.h datasets/sha256.h
datasets_cifar_la_LDFLAGS = $(PLUGIN_LDFLAGS)
datasets_cifar_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += datasets/cifar.ini
EXTRA_DIST += datasets/cifar.ini.in

# tests/check_cifar: CIFAR-10 and CIFAR-100 files made in the test (good,
# partial record, labels out of range, class names, reads from 4 threads).
if HAVE_CHECK
check_PROGRAMS += tests/check_cifar
TESTS += tests/check_cifar
tests_check_cifar_SOURCES = tests/check_cifar.c
tests_check_cifar_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_cifar_CFLAGS = $(TEST_CFLAGS)
tests_check_cifar_LDADD = $(TEST_LIBS) -lpthread
EXTRA_tests_check_cifar_DEPENDENCIES = datasets/cifar.la
endif

# The fuzz harness of the checks (tests/fuzz/fuzz_cifar.c includes
# cifar.c): the replay build always, the libFuzzer build with `make fuzz`
# (rules as in tests/fuzz.mk, whose variables are not yet defined here, so
# the core objects are listed).
check_PROGRAMS += tests/fuzz/replay_cifar
tests_fuzz_replay_cifar_SOURCES = tests/fuzz/fuzz_cifar.c tests/fuzz/driver.c \
	tests/fuzz/fuzz.h
tests_fuzz_replay_cifar_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core \
	-I$(top_srcdir)/tests/fuzz -I$(top_srcdir)/datasets
tests_fuzz_replay_cifar_LDADD = libmltkcore.la -lm
EXTRA_DIST += tests/fuzz/fuzz_cifar.c
CLEANFILES += tests/fuzz/fuzz_cifar
if HAVE_LIBFUZZER
CIFAR_FUZZ_LOG = tests/fuzz/test_fuzz.sh.log
fuzz: tests/fuzz/fuzz_cifar
$(CIFAR_FUZZ_LOG): tests/fuzz/fuzz_cifar
# the harness includes the plugin's source, which the object rule does not track
tests/fuzz/obj/tests/fuzz/fuzz_cifar.o: datasets/cifar.c datasets/mapfile.h datasets/sha256.h
tests/fuzz/fuzz_cifar: tests/fuzz/obj/tests/fuzz/fuzz_cifar.o \
		tests/fuzz/obj/core/util.o tests/fuzz/obj/core/tensor.o \
		tests/fuzz/obj/core/ini.o tests/fuzz/obj/core/descriptor.o \
		tests/fuzz/obj/core/params.o tests/fuzz/obj/core/registry.o \
		tests/fuzz/obj/core/schema.o tests/fuzz/obj/core/config.o
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_CORE_LIBS)
endif
