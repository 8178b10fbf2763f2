# Dataset plugins.
pkglib_LTLIBRARIES += datasets/idx.la
datasets_idx_la_SOURCES = datasets/idx.c datasets/idx.h datasets/sha256.h
datasets_idx_la_CPPFLAGS = $(AM_CPPFLAGS) $(ZLIB_CFLAGS)
datasets_idx_la_LDFLAGS = $(PLUGIN_LDFLAGS)
datasets_idx_la_LIBADD = $(PLUGIN_LIBADD) $(ZLIB_LIBS)
plugin_DATA += datasets/idx.ini
EXTRA_DIST += datasets/idx.ini.in
