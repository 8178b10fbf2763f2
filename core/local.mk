# libmltk: the core library, and the mltk command.
#
# The core is built once as a convenience library; libmltk.so wraps it and
# exports only the public mltk_* API (internal functions are hidden), while
# the test programs link the convenience library statically so that they
# can reach internal functions too.
noinst_LTLIBRARIES = libmltkcore.la
libmltkcore_la_SOURCES = \
	core/internal.h core/schema.h core/schema.c \
	core/util.c core/tensor.c core/op.h core/op.c core/ini.c core/init.c \
	core/descriptor.c core/params.c core/registry.c core/config.c \
	core/session.h core/model.c core/data.c core/session.c core/train.c \
	core/checkpoint.c core/ops.c core/nvml.c \
	core/train/component.h core/train/components.c core/train/step.c \
	core/train/checkpointing.c core/train/early_stop.c core/train/nan_policy.c \
	core/train/loss_scale.c core/train/logs.c core/train/alerts.c core/train/progress.c
libmltkcore_la_CPPFLAGS = $(AM_CPPFLAGS) $(INIH_CFLAGS) $(ZLIB_CFLAGS) $(JANSSON_CFLAGS) \
	-DMLTK_PLUGIN_DIR='"$(pkglibdir)"' \
	-DMLTK_BUILD_DIR='"$(abs_top_builddir)"' \
	-DMLTK_BUILD_PLUGIN_DIRS='"$(MLTK_BUILD_PLUGIN_DIRS)"'
libmltkcore_la_LIBADD = $(INIH_LIBS) $(ZLIB_LIBS) $(JANSSON_LIBS) -ldl -lm

lib_LTLIBRARIES += libmltk.la
libmltk_la_SOURCES =
nodist_EXTRA_libmltk_la_SOURCES = core/dummy.c
libmltk_la_LIBADD = libmltkcore.la
libmltk_la_LDFLAGS = $(AM_LDFLAGS) -no-undefined -version-info $(LIBMLTK_LT_VERSION) \
	-export-symbols-regex '^mltk_'

# The command draws its plots itself: cairo is linked here, never into
# libmltk.  Its own files use only the public API (<mltk/mltk.h>).
bin_PROGRAMS += mltk
mltk_SOURCES = core/cli/mltk.c core/cli/plot.h core/cli/plot.c core/cli/confusion.c
mltk_CPPFLAGS = $(AM_CPPFLAGS) $(CAIRO_CFLAGS) $(JANSSON_CFLAGS)
mltk_LDADD = libmltk.la $(CAIRO_LIBS) $(JANSSON_LIBS) -lm

# file formats and metrics, one fragment each
include core/tbevents.mk
include core/safetensors.mk
include core/metrics.mk
