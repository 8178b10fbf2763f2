# metrics: sources added to the core library (see core/local.mk)
#
# metrics.c accumulates evaluation metrics and writes the confusion CSV.
# Reading that CSV back and drawing it is the command's (core/cli/plot.c,
# core/cli/confusion.c, see core/local.mk): libmltk does not link cairo.
libmltkcore_la_SOURCES += core/metrics.h core/metrics.c
