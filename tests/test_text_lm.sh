#!/bin/sh
# test_text_lm.sh - a byte-level language model trains on plain text.
#
# What this is: the text dataset plugin end to end.  A text file of some
# 170 KB is made from the tree's own prose (the manual pages, the docs,
# the README and the public headers), and examples/text-bytes-lm.ini is
# trained on it as written except for the file, the run directory, one
# thread and a stride of 4 bytes between windows (to keep the test to
# seconds).  The next-byte cross-entropy starts near ln(256) = 5.545 nats
# (a uniform guess); the test asserts that the last epoch's training loss
# is below 2.0 nats and at least 0.8 below the first epoch's (the mean
# over epoch 1, which already learns most of the letter statistics), and
# that the validation loss (on the last 10% of the file) is below 3.0
# nats, and prints every epoch's numbers.  (Measured when it was written,
# a 235 KB corpus: 2.81 -> 1.43 training, 2.38 validation; the bounds
# leave a margin for a corpus that changes with the tree.)
# What this is not: a test of the parser's checks (tests/check_tokens.c)
# or of generating text.
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk) and
# python3 (to read metrics.jsonl); skipped (77) without python3.

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
mltk="$top_builddir/mltk"

if ! command -v python3 >/dev/null 2>&1; then
    tl_skip "python3 is needed to read metrics.jsonl"
fi
tl_tmpdir textlm

cat "$top_srcdir"/man/*.[0-9] "$top_srcdir"/doc/*.md "$top_srcdir/README.md" \
    "$top_srcdir"/include/mltk/*.h >"$tmp/corpus.txt" || exit 99
size=$(wc -c <"$tmp/corpus.txt")
echo "corpus: $size bytes"
if [ "$size" -lt 100000 ]; then
    echo "FAIL: the corpus holds only $size bytes"
    exit 1
fi

sed -e "s|^train = .*|train = $tmp/corpus.txt|" \
    -e "s|^stride = .*|stride = 4|" \
    -e "s|^\[run\]|[run]\\
dir = $tmp/run\\
threads = 1|" "$top_srcdir/examples/text-bytes-lm.ini" >"$tmp/lm.ini" || exit 99
grep -q "^train = $tmp/corpus.txt" "$tmp/lm.ini" && grep -q "^dir = " "$tmp/lm.ini" \
    || { echo "FAIL: the example no longer has the keys this test sets"; exit 1; }

if ! "$mltk" --config "$tmp/lm.ini" >"$tmp/out" 2>"$tmp/err"; then
    cat "$tmp/out" "$tmp/err"
    echo "FAIL: training the byte-level model"
    exit 1
fi

python3 - "$tmp/run/metrics.jsonl" <<'PY'
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
for l in lines:
    print("epoch %d: train_loss %.4f val_loss %.4f val_acc %.4f"
          % (l["epoch"], l["train_loss"], l["val_loss"], l["val_acc"]))
first, last = lines[0], lines[-1]
print("ln(256) = %.4f; the training loss fell by %.4f"
      % (math.log(256), first["train_loss"] - last["train_loss"]))
bad = []
if len(lines) < 2:
    bad.append("%d epochs in metrics.jsonl" % len(lines))
if not last["train_loss"] < 2.0:
    bad.append("the last training loss %.4f is not below 2.0" % last["train_loss"])
if not first["train_loss"] - last["train_loss"] >= 0.8:
    bad.append("the training loss fell by %.4f, less than 0.8"
               % (first["train_loss"] - last["train_loss"]))
if not last["val_loss"] < 3.0:
    bad.append("the validation loss %.4f is not below 3.0" % last["val_loss"])
for b in bad:
    print("FAIL: " + b)
sys.exit(1 if bad else 0)
PY
