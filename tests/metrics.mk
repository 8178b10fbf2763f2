# tests of the metrics module: core/metrics.c (check_metrics) and the
# PNG plots of core/plot.c (check_plot, which reads its images back with
# cairo)
if HAVE_CHECK
check_PROGRAMS += tests/check_metrics tests/check_plot
TESTS += tests/check_metrics tests/check_plot

tests_check_metrics_SOURCES = tests/check_metrics.c tests/testutil.h
tests_check_metrics_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_metrics_CFLAGS = $(TEST_CFLAGS)
tests_check_metrics_LDADD = $(TEST_LIBS)

tests_check_plot_SOURCES = tests/check_plot.c tests/testutil.h
tests_check_plot_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core $(CAIRO_CFLAGS)
tests_check_plot_CFLAGS = $(TEST_CFLAGS)
tests_check_plot_LDADD = $(TEST_LIBS) $(CAIRO_LIBS)
endif
