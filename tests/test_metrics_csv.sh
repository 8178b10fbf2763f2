#!/bin/sh
# test_metrics_csv.sh - metrics.csv has the columns of metrics.jsonl.
#
# What this is: trains a tiny Fashion-MNIST MLP with the built ./mltk and
# [metrics] list = accuracy, top3, f1_macro, and checks that metrics.csv's
# header has val_top3 and val_f1_macro after val_acc, as metrics.jsonl
# names them, that every row has as many fields as the header and the
# same values as the JSON line of its epoch, and that a resumed run
# appends its rows under the one header, in the file's columns when its
# [metrics] changed.
# What this is not: the checks of the run directory's other files
# (tests/check_ops.c) or of the metrics themselves (tests/check_metrics.c).
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk), python3
# and Fashion-MNIST in $FASHION_MNIST_DIR (default
# /usr/share/datasets/fashion-mnist); skipped (77) without them.

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
data_dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
mltk="$top_builddir/mltk"

tl_need_fashion_mnist
if ! command -v python3 >/dev/null 2>&1; then
    tl_skip "python3 is needed to read metrics.jsonl"
fi

tl_tmpdir mcsv

n_pass=0
ok() {
    n_pass=$((n_pass + 1))
    echo "ok   - $*"
}
die() {
    echo "FAIL - $*"
    echo "$n_pass passed, 1 failed"
    exit 1
}

cat >"$tmp/c.ini" <<EOF
[run]
seed = 3
backend = cpu
threads = 1
dir = $tmp/run

[train]
epochs = 2
batch_size = 50

[data]
type = idx
path = $data_dir
train_limit = 300
test_limit = 100

[layer.flat]
type = flatten

[layer.out]
type = dense
units = 10

[loss]
type = cross_entropy

[optimizer]
type = sgd
lr = 0.05

[metrics]
list = accuracy, top3, f1_macro

[checkpoint]
every_epochs = 1
EOF

# compare: the CSV's rows against the JSON lines, field by field
compare() {
    python3 - "$tmp/run/metrics.csv" "$tmp/run/metrics.jsonl" "$1" <<'EOF'
import csv, json, math, sys
rows = list(csv.reader(open(sys.argv[1])))
lines = [json.loads(l) for l in open(sys.argv[2])]
want = int(sys.argv[3])
head = rows[0]
expect = ["epoch", "train_loss", "val_loss", "val_acc", "val_top3", "val_f1_macro",
          "samples_per_s", "data_wait", "lr", "wall_s", "cpu_percent", "rss_mb"]
if head != expect:
    sys.exit("header %s, expected %s" % (",".join(head), ",".join(expect)))
if len(rows) != want + 1 or len(lines) != want:
    sys.exit("%d rows and %d JSON lines, expected %d" % (len(rows) - 1, len(lines), want))
for row, obj in zip(rows[1:], lines):
    if len(row) != len(head):
        sys.exit("row %s has %d fields, the header %d" % (row, len(row), len(head)))
    for k, v in zip(head, row):
        j = obj.get(k)
        if v == "" and j is None:
            continue
        if j is None or abs(float(v) - j) > 1e-7 * max(1.0, abs(j)):
            sys.exit("epoch %s: %s is %r in the CSV, %r in the JSON" % (row[0], k, v, j))
EOF
}

"$mltk" --config "$tmp/c.ini" --epochs 1 >"$tmp/a.out" 2>"$tmp/a.err" \
    || { cat "$tmp/a.err"; die "the first run (1 epoch)"; }
compare 1 || die "metrics.csv after one epoch"
ok "metrics.csv has the [metrics] columns of metrics.jsonl, with their values"

"$mltk" --config "$tmp/c.ini" --resume auto >"$tmp/b.out" 2>"$tmp/b.err" \
    || { cat "$tmp/b.err"; die "the resumed run (to epoch 2)"; }
compare 2 || die "metrics.csv after the resumed run"
if grep -q "metrics.csv" "$tmp/b.err"; then
    cat "$tmp/b.err"
    die "the resumed run warns about metrics.csv's columns"
fi
ok "a resumed run appends its rows under the one header"

# resumed again with other [metrics]: a warning, and the rows keep the
# file's columns (val_top3 empty, val_f1_macro filled)
sed 's/^list = .*/list = accuracy, f1_macro/' "$tmp/c.ini" >"$tmp/d.ini"
"$mltk" --config "$tmp/d.ini" --resume auto --epochs 3 >"$tmp/d.out" 2>"$tmp/d.err" \
    || { cat "$tmp/d.err"; die "the run resumed with other [metrics]"; }
grep -q "metrics\.csv: its columns (.*) are not this run's" "$tmp/d.err" \
    || { cat "$tmp/d.err"; die "no warning that metrics.csv's columns differ"; }
compare 3 || die "metrics.csv after the run with other [metrics]"
row=$(sed -n 4p "$tmp/run/metrics.csv")
case $row in
    3,*,*,*,,[0-9]*) ;;
    *) die "epoch 3's row '$row' does not leave val_top3 empty and fill val_f1_macro" ;;
esac
ok "a run resumed with other [metrics] warns and keeps the file's columns"

echo "$n_pass passed, 0 failed"
exit 0
