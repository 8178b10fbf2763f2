# metrics: sources added to the core library (see core/local.mk)
#
# metrics.c accumulates evaluation metrics and writes the confusion CSV;
# plot.c draws training curves and confusion matrices as PNG with cairo.
libmltkcore_la_SOURCES += core/metrics.h core/metrics.c core/plot.h core/plot.c
libmltkcore_la_CPPFLAGS += $(CAIRO_CFLAGS)
libmltkcore_la_LIBADD += $(CAIRO_LIBS)
