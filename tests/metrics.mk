# tests of the metrics module: core/metrics.c (check_metrics, which also
# reads its confusion CSV back through the command's reader,
# core/cli/confusion.c), and the PNG plots of the command's
# core/cli/plot.c (check_plot, which builds the plot code into itself and
# reads its images back with cairo)
if HAVE_CHECK
check_PROGRAMS += tests/check_metrics tests/check_plot
TESTS += tests/check_metrics tests/check_plot

tests_check_metrics_SOURCES = tests/check_metrics.c tests/testutil.h \
	core/cli/confusion.c core/cli/plot.h
tests_check_metrics_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core -I$(top_srcdir)/core/cli
tests_check_metrics_CFLAGS = $(TEST_CFLAGS)
tests_check_metrics_LDADD = $(TEST_LIBS)

tests_check_plot_SOURCES = tests/check_plot.c tests/testutil.h \
	core/cli/plot.c core/cli/confusion.c core/cli/plot.h
tests_check_plot_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core -I$(top_srcdir)/core/cli \
	$(CAIRO_CFLAGS) $(JANSSON_CFLAGS)
tests_check_plot_CFLAGS = $(TEST_CFLAGS)
tests_check_plot_LDADD = $(TEST_LIBS) $(CAIRO_LIBS) $(JANSSON_LIBS)
endif
