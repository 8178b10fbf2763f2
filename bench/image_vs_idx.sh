#!/bin/sh
# image_vs_idx.sh - the CNN on Fashion-MNIST as JPEG files against the
# same CNN on the IDX files: the test accuracies and their difference.
#
# What this is: the full comparison of issue 10 ("an image-folder data set
# of JPEGs, made from Fashion-MNIST, trains the CNN example to the same
# accuracy as the IDX files do, within 0.3 points").  All 60,000 + 10,000
# images are written as JPEG files (quality 95, grey, by
# tests/mkimagefolder of a built tree) into WORK/{train,test}/LABEL/, then
# examples/imagefolder-cnn.ini and examples/fashion-mnist-cnn.ini are
# trained as written (12 epochs, seed 1) except for the folder, the
# backend (BACKEND, default the examples' "cuda, cpu") and EPOCHS when
# given.  It prints both final test accuracies and the difference in
# points, and exits 1 when the difference is above 0.3 points.
#
#     bench/image_vs_idx.sh BUILD_DIR [WORK_DIR]
#     EPOCHS=1 FORMAT=png bench/image_vs_idx.sh BUILD_DIR
#
# FORMAT=png writes lossless PNG files instead (the pixels are then the
# IDX bytes; only the order of the samples differs).  Not part of `make
# check`: on a 2-core cpu each run of 12 epochs takes some half an hour.
# What this is not: a speed benchmark (bench/loader_vs_torch.py is).
set -eu

build=${1:?usage: $0 BUILD_DIR [WORK_DIR]}
src=$(cd "$(dirname "$0")/.." && pwd)
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
format=${FORMAT:-jpg}
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/image_vs_idx.XXXXXX")}
mkdir -p "$work"

if [ ! -d "$work/$format/train" ]; then
    echo "writing $data as $format files into $work/$format ..."
    "$build/tests/mkimagefolder" -f "$format" -q 95 "$data" "$work/$format"
fi

edit="s|^path = .*|path = $work/$format/train|;s|^test_path = .*|test_path = $work/$format/test|"
[ -n "${BACKEND:-}" ] && edit="$edit;s|^backend = .*|backend = $BACKEND|"
[ -n "${EPOCHS:-}" ] && edit="$edit;s|^epochs = .*|epochs = $EPOCHS|"
sed -e "$edit" "$src/examples/imagefolder-cnn.ini" >"$work/img.ini"
sed -e "$edit;s|^\[data\]|[data]\\
path = $data|" "$src/examples/fashion-mnist-cnn.ini" >"$work/idx.ini"

for which in img idx; do
    echo "== $which: $work/$which.ini"
    start=$(date +%s)
    "$build/mltk" --config "$work/$which.ini" | tee "$work/$which.out"
    echo "   $(( $(date +%s) - start )) s"
done

acc() { sed -n 's/.* val_acc \([0-9.]*\) .*/\1/p' "$work/$1.out" | tail -n 1; }
a_img=$(acc img)
a_idx=$(acc idx)
awk -v a="$a_img" -v b="$a_idx" -v f="$format" 'BEGIN {
    d = (a - b) * 100
    printf "test accuracy: image folder (%s) %.4f, IDX %.4f, difference %+.2f points\n", f, a, b, d
    if (d < 0) d = -d
    exit !(d <= 0.3)
}'
