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
# Multi-input layers and embedding.
pkglib_LTLIBRARIES += layers/add.la layers/concat.la layers/embedding.la
layers_add_la_SOURCES = layers/add.c
layers_add_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_add_la_LIBADD = $(PLUGIN_LIBADD)
layers_concat_la_SOURCES = layers/concat.c
layers_concat_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_concat_la_LIBADD = $(PLUGIN_LIBADD)
layers_embedding_la_SOURCES = layers/embedding.c
layers_embedding_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_embedding_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += layers/add.ini layers/concat.ini layers/embedding.ini
EXTRA_DIST += layers/add.ini.in layers/concat.ini.in layers/embedding.ini.in
# Convolution and pooling.
pkglib_LTLIBRARIES += layers/conv2d.la layers/maxpool2d.la layers/avgpool2d.la \
	layers/global_avgpool.la
layers_conv2d_la_SOURCES = layers/conv2d.c
layers_conv2d_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_conv2d_la_LIBADD = $(PLUGIN_LIBADD)
layers_maxpool2d_la_SOURCES = layers/pool2d.c
layers_maxpool2d_la_CPPFLAGS = $(AM_CPPFLAGS) -DPOOL_LAYER=maxpool2d
layers_maxpool2d_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_maxpool2d_la_LIBADD = $(PLUGIN_LIBADD)
layers_avgpool2d_la_SOURCES = layers/pool2d.c
layers_avgpool2d_la_CPPFLAGS = $(AM_CPPFLAGS) -DPOOL_LAYER=avgpool2d
layers_avgpool2d_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_avgpool2d_la_LIBADD = $(PLUGIN_LIBADD)
layers_global_avgpool_la_SOURCES = layers/global_avgpool.c
layers_global_avgpool_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_global_avgpool_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += layers/conv2d.ini layers/maxpool2d.ini layers/avgpool2d.ini \
	layers/global_avgpool.ini
EXTRA_DIST += layers/conv2d.ini.in layers/maxpool2d.ini.in layers/avgpool2d.ini.in \
	layers/global_avgpool.ini.in
# Normalisation, dropout and activations.  leaky_relu, elu, gelu, sigmoid
# and tanh are one source, layers/activation.c, built once per plugin with
# -DACT_LAYER=<name>.
pkglib_LTLIBRARIES += layers/batchnorm.la layers/layernorm.la layers/dropout.la \
	layers/softmax.la layers/leaky_relu.la layers/elu.la layers/gelu.la \
	layers/sigmoid.la layers/tanh.la
layers_batchnorm_la_SOURCES = layers/batchnorm.c
layers_batchnorm_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_batchnorm_la_LIBADD = $(PLUGIN_LIBADD)
layers_layernorm_la_SOURCES = layers/layernorm.c
layers_layernorm_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_layernorm_la_LIBADD = $(PLUGIN_LIBADD)
layers_dropout_la_SOURCES = layers/dropout.c
layers_dropout_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_dropout_la_LIBADD = $(PLUGIN_LIBADD)
layers_softmax_la_SOURCES = layers/softmax.c
layers_softmax_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_softmax_la_LIBADD = $(PLUGIN_LIBADD)
layers_leaky_relu_la_SOURCES = layers/activation.c
layers_leaky_relu_la_CPPFLAGS = $(AM_CPPFLAGS) -DACT_LAYER=leaky_relu
layers_leaky_relu_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_leaky_relu_la_LIBADD = $(PLUGIN_LIBADD)
layers_elu_la_SOURCES = layers/activation.c
layers_elu_la_CPPFLAGS = $(AM_CPPFLAGS) -DACT_LAYER=elu
layers_elu_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_elu_la_LIBADD = $(PLUGIN_LIBADD)
layers_gelu_la_SOURCES = layers/activation.c
layers_gelu_la_CPPFLAGS = $(AM_CPPFLAGS) -DACT_LAYER=gelu
layers_gelu_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_gelu_la_LIBADD = $(PLUGIN_LIBADD)
layers_sigmoid_la_SOURCES = layers/activation.c
layers_sigmoid_la_CPPFLAGS = $(AM_CPPFLAGS) -DACT_LAYER=sigmoid
layers_sigmoid_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_sigmoid_la_LIBADD = $(PLUGIN_LIBADD)
layers_tanh_la_SOURCES = layers/activation.c
layers_tanh_la_CPPFLAGS = $(AM_CPPFLAGS) -DACT_LAYER=tanh
layers_tanh_la_LDFLAGS = $(PLUGIN_LDFLAGS)
layers_tanh_la_LIBADD = $(PLUGIN_LIBADD)
plugin_DATA += layers/batchnorm.ini layers/layernorm.ini layers/dropout.ini \
	layers/softmax.ini layers/leaky_relu.ini layers/elu.ini layers/gelu.ini \
	layers/sigmoid.ini layers/tanh.ini
EXTRA_DIST += layers/batchnorm.ini.in layers/layernorm.ini.in layers/dropout.ini.in \
	layers/softmax.ini.in layers/leaky_relu.ini.in layers/elu.ini.in \
	layers/gelu.ini.in layers/sigmoid.ini.in layers/tanh.ini.in
