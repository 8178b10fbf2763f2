#!/bin/sh
# test_image_train.sh - the CNN trains on Fashion-MNIST written as JPEG
# files as it does on the IDX files, and a corrupt image stops it.
#
# What this is: the imagefolder data set end to end, short.  The test
# setup writes the first 2000 training and 500 test images of
# Fashion-MNIST as JPEG files (quality 95, tests/mkimagefolder) into
# ROOT/{train,test}/LABEL/NNNNN.jpg; examples/imagefolder-cnn.ini (the
# CNN) trains one epoch on them on the cpu, and examples/fashion-mnist-
# cnn.ini one epoch on the same 2000 + 500 samples of the IDX files
# (train_limit, test_limit).  Each must reach a test accuracy of at
# least 0.55 (after one epoch on 2000 samples both are near 0.65) and
# they must agree within 5 points (the orders of the samples differ,
# the JPEG pixels differ from the IDX bytes by a few levels).  Then one
# test image is damaged: the run must stop with exit status 5 and a
# message naming the file.  The full comparison (60,000 images, the
# example's 12 epochs, within 0.3 points) is bench/image_vs_idx.sh.
# What this is not: a test of the decoder's values (tests/check_image.c).

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
mltk="$top_builddir/mltk"
tl_need_fashion_mnist
tl_tmpdir imgtrain
n_pass=0
n_fail=0

"$top_builddir/tests/mkimagefolder" -q 95 -n 2000 -t 500 "$data_dir" "$tmp/jpg" || exit 99

sed -e "s|^path = .*|path = $tmp/jpg/train|" \
    -e "s|^test_path = .*|test_path = $tmp/jpg/test|" \
    -e "s|^epochs = .*|epochs = 1|" \
    -e "s|^backend = .*|backend = cpu|" \
    "$top_srcdir/examples/imagefolder-cnn.ini" >"$tmp/img.ini" || exit 99
sed -e "s|^epochs = .*|epochs = 1|" \
    -e "s|^backend = .*|backend = cpu|" \
    -e "s|^type = idx|type = idx\\
path = $data_dir\\
train_limit = 2000\\
test_limit = 500|" \
    "$top_srcdir/examples/fashion-mnist-cnn.ini" >"$tmp/idx.ini" || exit 99
grep -q "^test_path = $tmp/jpg/test" "$tmp/img.ini" && grep -q "^train_limit = 2000" "$tmp/idx.ini" \
    || { echo "FAIL: the examples no longer have the keys this test sets"; exit 1; }

# the last epoch's val_acc from the run's output
acc_of() {
    sed -n 's/.* val_acc \([0-9.]*\) .*/\1/p' "$tmp/$1.out" | tail -n 1
}

run img --config "$tmp/img.ini"
expect_rc 0 "the CNN trains on the JPEG folder"
run idx --config "$tmp/idx.ini"
expect_rc 0 "the CNN trains on the IDX files"
a_img=$(acc_of img)
a_idx=$(acc_of idx)
echo "test accuracy after one epoch on 2000 images: JPEG folder $a_img, IDX $a_idx"
if awk -v a="$a_img" -v b="$a_idx" 'BEGIN { d = a - b; if (d < 0) d = -d;
        exit !(a >= 0.55 && b >= 0.55 && d <= 0.05) }'; then
    pass "accuracies >= 0.55 and within 5 points ($a_img, $a_idx)"
else
    fail "accuracies $a_img (JPEG folder) and $a_idx (IDX): want both >= 0.55, within 5 points"
    show
fi

# a damaged image in the test split: exit 5 naming the file
bad=$(ls "$tmp/jpg/test/3" | sed -n 2p)
head -c 300 "$tmp/jpg/test/3/$bad" >"$tmp/cut" && mv "$tmp/cut" "$tmp/jpg/test/3/$bad"
run bad --config "$tmp/img.ini"
expect_rc 5 "a truncated JPEG stops the run"
expect_in err "$tmp/jpg/test/3/$bad: corrupt JPEG at byte 300: Premature end of JPEG file" \
    "the message names the file and the byte"

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
