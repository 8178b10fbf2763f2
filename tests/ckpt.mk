# Checkpoints that are damaged, old or unusable, --resume auto past a
# damaged one, stale temporary files, output paths checked before
# training and rescued weights, through the mltk command
# (tests/test_ckpt.sh).
TESTS += tests/test_ckpt.sh
EXTRA_DIST += tests/test_ckpt.sh
