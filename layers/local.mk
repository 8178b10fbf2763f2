# Layer plugins.
pkglib_LTLIBRARIES += layers/dense.la layers/relu.la layers/flatten.la
layers_dense_la_SOURCES = layers/dense.c
layers_dense_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_dense_la_LIBADD = $(PLUGIN_LIBADD)
layers_relu_la_SOURCES = layers/relu.c
layers_relu_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_relu_la_LIBADD = $(PLUGIN_LIBADD)
layers_flatten_la_SOURCES = layers/flatten.c
layers_flatten_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_flatten_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += layers/dense.ini layers/relu.ini layers/flatten.ini
EXTRA_DIST += layers/dense.ini.in layers/relu.ini.in layers/flatten.ini.in
