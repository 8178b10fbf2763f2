# Shell tests of the mltk command and of an out-of-tree plugin built
# against a staged install (see the scripts' opening comments).
TESTS += tests/test_cli.sh tests/test_oot_plugin.sh
EXTRA_DIST += tests/test_cli.sh tests/test_oot_plugin.sh \
	tests/oot/scale.c tests/oot/scale.ini

# test_oot_plugin.sh runs `make install`, which relinks the plugins and the
# mltk program inside the build tree, so it starts only after every other
# test has finished.  (A prerequisite-only rule; automake's own rule for
# the .log supplies the recipe.  The target is a variable so that automake
# does not take it for an override of that rule.)
OOT_TEST_LOG = tests/test_oot_plugin.sh.log
$(OOT_TEST_LOG): $(filter-out $(OOT_TEST_LOG),$(TEST_LOGS))

# a real run's event file, metrics and weights read by other tools
TESTS += tests/test_run_interop.sh
EXTRA_DIST += tests/test_run_interop.sh
