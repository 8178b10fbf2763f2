# Check suites of the core's configuration and plugin-registry modules:
# util.c (check_util), descriptor.c, params.c and config.c (check_config),
# registry.c (check_registry).  check_registry loads the small broken
# plugins under tests/badplugins, built here as libtool modules that are
# never installed; each fails the loader's checks in one way.

BADPLUGINS_LDFLAGS = -module -avoid-version -shared \
	-export-symbols-regex '^mltk_plugin_' -rpath /nowhere

EXTRA_DIST += tests/badplugins/badplugin.h \
	tests/badplugins/bp_good.ini.in tests/badplugins/bp_nolib.ini.in \
	tests/badplugins/bp_nosym.ini.in tests/badplugins/bp_abimajor.ini.in \
	tests/badplugins/bp_abiminor.ini.in tests/badplugins/bp_kind.ini.in \
	tests/badplugins/bp_name.ini.in tests/badplugins/bp_small.ini.in \
	tests/badplugins/bp_vtsize.ini.in tests/badplugins/bp_nullfn.ini.in \
	tests/badplugins/bp_undef.ini.in \
	tests/data/config/good.ini tests/data/config/typo-key.ini \
	tests/data/config/unknown-section.ini tests/data/config/unknown-type.ini \
	tests/data/config/missing-loss.ini tests/data/config/bad-value.ini

if HAVE_CHECK
check_PROGRAMS += tests/check_util tests/check_config tests/check_registry
TESTS += tests/check_util tests/check_config tests/check_registry

tests_check_util_SOURCES = tests/check_util.c tests/testutil.h
tests_check_util_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_util_CFLAGS = $(TEST_CFLAGS)
tests_check_util_LDADD = $(TEST_LIBS)

tests_check_config_SOURCES = tests/check_config.c tests/testutil.h
tests_check_config_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_config_CFLAGS = $(TEST_CFLAGS)
tests_check_config_LDADD = $(TEST_LIBS)

tests_check_registry_SOURCES = tests/check_registry.c tests/testutil.h
tests_check_registry_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_registry_CFLAGS = $(TEST_CFLAGS)
tests_check_registry_LDADD = $(TEST_LIBS)

check_LTLIBRARIES += tests/badplugins/bp_good.la tests/badplugins/bp_nosym.la \
	tests/badplugins/bp_abimajor.la tests/badplugins/bp_abiminor.la \
	tests/badplugins/bp_kind.la tests/badplugins/bp_name.la \
	tests/badplugins/bp_small.la tests/badplugins/bp_vtsize.la \
	tests/badplugins/bp_nullfn.la tests/badplugins/bp_undef.la
tests_badplugins_bp_good_la_SOURCES = tests/badplugins/bp_good.c
tests_badplugins_bp_good_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
tests_badplugins_bp_nosym_la_SOURCES = tests/badplugins/bp_nosym.c
tests_badplugins_bp_nosym_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
tests_badplugins_bp_abimajor_la_SOURCES = tests/badplugins/bp_abimajor.c
tests_badplugins_bp_abimajor_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
tests_badplugins_bp_abiminor_la_SOURCES = tests/badplugins/bp_abiminor.c
tests_badplugins_bp_abiminor_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
tests_badplugins_bp_kind_la_SOURCES = tests/badplugins/bp_kind.c
tests_badplugins_bp_kind_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
tests_badplugins_bp_name_la_SOURCES = tests/badplugins/bp_name.c
tests_badplugins_bp_name_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
tests_badplugins_bp_small_la_SOURCES = tests/badplugins/bp_small.c
tests_badplugins_bp_small_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
tests_badplugins_bp_vtsize_la_SOURCES = tests/badplugins/bp_vtsize.c
tests_badplugins_bp_vtsize_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
tests_badplugins_bp_nullfn_la_SOURCES = tests/badplugins/bp_nullfn.c
tests_badplugins_bp_nullfn_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
# bp_undef needs a symbol nothing defines: no -no-undefined here
tests_badplugins_bp_undef_la_SOURCES = tests/badplugins/bp_undef.c
tests_badplugins_bp_undef_la_LDFLAGS = $(BADPLUGINS_LDFLAGS)
endif
