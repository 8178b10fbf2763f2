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
# Value and distillation losses.
pkglib_LTLIBRARIES += plugins/losses/mse.la plugins/losses/l1.la \
	plugins/losses/bce_with_logits.la plugins/losses/kl_div.la
plugins_losses_mse_la_SOURCES = plugins/losses/pointwise.c
plugins_losses_mse_la_CPPFLAGS = $(AM_CPPFLAGS) -DPW_LOSS=mse
plugins_losses_mse_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_losses_mse_la_LIBADD = $(PLUGIN_LIBADD)
plugins_losses_l1_la_SOURCES = plugins/losses/pointwise.c
plugins_losses_l1_la_CPPFLAGS = $(AM_CPPFLAGS) -DPW_LOSS=l1
plugins_losses_l1_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_losses_l1_la_LIBADD = $(PLUGIN_LIBADD)
plugins_losses_bce_with_logits_la_SOURCES = plugins/losses/pointwise.c
plugins_losses_bce_with_logits_la_CPPFLAGS = $(AM_CPPFLAGS) -DPW_LOSS=bce_with_logits
plugins_losses_bce_with_logits_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_losses_bce_with_logits_la_LIBADD = $(PLUGIN_LIBADD)
plugins_losses_kl_div_la_SOURCES = plugins/losses/kl_div.c
plugins_losses_kl_div_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_losses_kl_div_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += plugins/losses/mse.ini plugins/losses/l1.ini \
	plugins/losses/bce_with_logits.ini plugins/losses/kl_div.ini
EXTRA_DIST += plugins/losses/mse.ini.in plugins/losses/l1.ini.in \
	plugins/losses/bce_with_logits.ini.in plugins/losses/kl_div.ini.in

# More optimizers: AdamW, RMSprop, LAMB.
pkglib_LTLIBRARIES += plugins/optimizers/adamw.la plugins/optimizers/rmsprop.la \
	plugins/optimizers/lamb.la
plugins_optimizers_adamw_la_SOURCES = plugins/optimizers/adamw.c
plugins_optimizers_adamw_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_optimizers_adamw_la_LIBADD = $(PLUGIN_LIBADD)
plugins_optimizers_rmsprop_la_SOURCES = plugins/optimizers/rmsprop.c
plugins_optimizers_rmsprop_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_optimizers_rmsprop_la_LIBADD = $(PLUGIN_LIBADD)
plugins_optimizers_lamb_la_SOURCES = plugins/optimizers/lamb.c
plugins_optimizers_lamb_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_optimizers_lamb_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += plugins/optimizers/adamw.ini plugins/optimizers/rmsprop.ini \
	plugins/optimizers/lamb.ini
EXTRA_DIST += plugins/optimizers/adamw.ini.in plugins/optimizers/rmsprop.ini.in \
	plugins/optimizers/lamb.ini.in

# Learning-rate schedules.
pkglib_LTLIBRARIES += plugins/schedules/constant.la plugins/schedules/step.la \
	plugins/schedules/multistep.la plugins/schedules/exponential.la \
	plugins/schedules/cosine.la plugins/schedules/reduce_on_plateau.la
plugins_schedules_constant_la_SOURCES = plugins/schedules/constant.c
plugins_schedules_constant_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_schedules_constant_la_LIBADD = $(PLUGIN_LIBADD)
plugins_schedules_step_la_SOURCES = plugins/schedules/step.c
plugins_schedules_step_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_schedules_step_la_LIBADD = $(PLUGIN_LIBADD) -lm
plugins_schedules_multistep_la_SOURCES = plugins/schedules/multistep.c
plugins_schedules_multistep_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_schedules_multistep_la_LIBADD = $(PLUGIN_LIBADD) -lm
plugins_schedules_exponential_la_SOURCES = plugins/schedules/exponential.c
plugins_schedules_exponential_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_schedules_exponential_la_LIBADD = $(PLUGIN_LIBADD) -lm
plugins_schedules_cosine_la_SOURCES = plugins/schedules/cosine.c
plugins_schedules_cosine_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_schedules_cosine_la_LIBADD = $(PLUGIN_LIBADD) -lm
plugins_schedules_reduce_on_plateau_la_SOURCES = plugins/schedules/reduce_on_plateau.c
plugins_schedules_reduce_on_plateau_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_schedules_reduce_on_plateau_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += plugins/schedules/constant.ini plugins/schedules/step.ini \
	plugins/schedules/multistep.ini plugins/schedules/exponential.ini \
	plugins/schedules/cosine.ini plugins/schedules/reduce_on_plateau.ini
EXTRA_DIST += plugins/schedules/constant.ini.in plugins/schedules/step.ini.in \
	plugins/schedules/multistep.ini.in plugins/schedules/exponential.ini.in \
	plugins/schedules/cosine.ini.in plugins/schedules/reduce_on_plateau.ini.in
