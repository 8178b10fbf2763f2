# Loss and optimizer plugins.
pkglib_LTLIBRARIES += plugins/losses/cross_entropy.la \
	plugins/optimizers/sgd.la plugins/optimizers/adam.la
plugins_losses_cross_entropy_la_SOURCES = plugins/losses/cross_entropy.c
plugins_losses_cross_entropy_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_losses_cross_entropy_la_LIBADD = $(PLUGIN_LIBADD)
plugins_optimizers_sgd_la_SOURCES = plugins/optimizers/sgd.c
plugins_optimizers_sgd_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_optimizers_sgd_la_LIBADD = $(PLUGIN_LIBADD)
plugins_optimizers_adam_la_SOURCES = plugins/optimizers/adam.c
plugins_optimizers_adam_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_optimizers_adam_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += plugins/losses/cross_entropy.ini \
	plugins/optimizers/sgd.ini plugins/optimizers/adam.ini
EXTRA_DIST += plugins/losses/cross_entropy.ini.in \
	plugins/optimizers/sgd.ini.in plugins/optimizers/adam.ini.in
