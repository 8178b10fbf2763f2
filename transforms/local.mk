# Transform plugins (per sample and per batch), their tests.
# resample.c (crop-and-resize, bilinear sampling) is compiled into the
# plugins that use it; mixup/cutmix and resize/center_crop are one source
# each, built twice.
TF_COMMON = transforms/tf_common.h
# Loop vectorization as the cpu backend asks for it (backends/cpu/local.mk):
# explicit -f options win over the -O level of CFLAGS.
TF_CFLAGS = $(AM_CFLAGS) -ftree-loop-vectorize -ftree-slp-vectorize \
	-fvect-cost-model=dynamic -fno-math-errno
pkglib_LTLIBRARIES += transforms/random_crop.la transforms/random_resized_crop.la \
	transforms/flip.la transforms/rotate.la transforms/color_jitter.la \
	transforms/normalize.la transforms/random_erasing.la transforms/mixup.la \
	transforms/cutmix.la transforms/resize.la transforms/center_crop.la
transforms_random_crop_la_SOURCES = transforms/random_crop.c $(TF_COMMON)
transforms_random_crop_la_CFLAGS = $(TF_CFLAGS)
transforms_random_crop_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_random_crop_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_random_resized_crop_la_SOURCES = transforms/random_resized_crop.c \
	transforms/resample.c transforms/resample.h $(TF_COMMON)
transforms_random_resized_crop_la_CFLAGS = $(TF_CFLAGS)
transforms_random_resized_crop_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_random_resized_crop_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_flip_la_SOURCES = transforms/flip.c $(TF_COMMON)
transforms_flip_la_CFLAGS = $(TF_CFLAGS)
transforms_flip_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_flip_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_rotate_la_SOURCES = transforms/rotate.c transforms/resample.c \
	transforms/resample.h $(TF_COMMON)
transforms_rotate_la_CFLAGS = $(TF_CFLAGS)
transforms_rotate_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_rotate_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_color_jitter_la_SOURCES = transforms/color_jitter.c $(TF_COMMON)
transforms_color_jitter_la_CFLAGS = $(TF_CFLAGS)
transforms_color_jitter_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_color_jitter_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_normalize_la_SOURCES = transforms/normalize.c $(TF_COMMON)
transforms_normalize_la_CFLAGS = $(TF_CFLAGS)
transforms_normalize_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_normalize_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_random_erasing_la_SOURCES = transforms/random_erasing.c $(TF_COMMON)
transforms_random_erasing_la_CFLAGS = $(TF_CFLAGS)
transforms_random_erasing_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_random_erasing_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_mixup_la_SOURCES = transforms/mix.c $(TF_COMMON)
transforms_mixup_la_CPPFLAGS = $(AM_CPPFLAGS) -DMIX_CUTMIX=0
transforms_mixup_la_CFLAGS = $(TF_CFLAGS)
transforms_mixup_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_mixup_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_cutmix_la_SOURCES = transforms/mix.c $(TF_COMMON)
transforms_cutmix_la_CPPFLAGS = $(AM_CPPFLAGS) -DMIX_CUTMIX=1
transforms_cutmix_la_CFLAGS = $(TF_CFLAGS)
transforms_cutmix_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_cutmix_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_resize_la_SOURCES = transforms/resize.c transforms/resample.c \
	transforms/resample.h $(TF_COMMON)
transforms_resize_la_CPPFLAGS = $(AM_CPPFLAGS) -DRESIZE_CROP=0
transforms_resize_la_CFLAGS = $(TF_CFLAGS)
transforms_resize_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_resize_la_LIBADD = $(PLUGIN_LIBADD) -lm
transforms_center_crop_la_SOURCES = transforms/resize.c transforms/resample.c \
	transforms/resample.h $(TF_COMMON)
transforms_center_crop_la_CPPFLAGS = $(AM_CPPFLAGS) -DRESIZE_CROP=1
transforms_center_crop_la_CFLAGS = $(TF_CFLAGS)
transforms_center_crop_la_LDFLAGS = $(PLUGIN_LDFLAGS)
transforms_center_crop_la_LIBADD = $(PLUGIN_LIBADD) -lm
plugin_DATA += transforms/random_crop.ini \
	transforms/random_resized_crop.ini \
	transforms/flip.ini \
	transforms/rotate.ini \
	transforms/color_jitter.ini \
	transforms/normalize.ini \
	transforms/random_erasing.ini \
	transforms/mixup.ini \
	transforms/cutmix.ini \
	transforms/resize.ini \
	transforms/center_crop.ini
EXTRA_DIST += transforms/random_crop.ini.in \
	transforms/random_resized_crop.ini.in \
	transforms/flip.ini.in \
	transforms/rotate.ini.in \
	transforms/color_jitter.ini.in \
	transforms/normalize.ini.in \
	transforms/random_erasing.ini.in \
	transforms/mixup.ini.in \
	transforms/cutmix.ini.in \
	transforms/resize.ini.in \
	transforms/center_crop.ini.in
include tests/transforms.mk
