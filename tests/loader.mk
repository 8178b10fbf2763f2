# The data loader end to end: workers, resume mid-epoch, resident against
# streamed, the validation split, class balance, databench.
TESTS += tests/test_loader.sh
EXTRA_DIST += tests/test_loader.sh
