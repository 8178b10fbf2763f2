# tests for the graph family (see tests/check_graph.c): multi-input layers,
# embedding, dense initialisers and the losses, with their backend ops.
# The plugins are loaded from the build tree, so they must be built first.
if HAVE_CHECK
check_PROGRAMS += tests/check_graph
TESTS += tests/check_graph
tests_check_graph_SOURCES = tests/check_graph.c tests/loss_ref.h
tests_check_graph_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/core
tests_check_graph_CFLAGS = $(TEST_CFLAGS)
tests_check_graph_LDADD = $(TEST_LIBS)
EXTRA_tests_check_graph_DEPENDENCIES = backends/cpu/cpu.la layers/add.la \
	layers/concat.la layers/embedding.la layers/dense.la layers/flatten.la \
	layers/relu.la plugins/losses/cross_entropy.la plugins/losses/mse.la \
	plugins/losses/l1.la plugins/losses/bce_with_logits.la plugins/losses/kl_div.la
endif
EXTRA_DIST += tests/gen_loss_ref.py
