#!/bin/sh
# test_transforms.sh - the transform plugins in training configs.
#
# Every transform in one chain trains (Fashion-MNIST, u8 (1, 28, 28):
# random_resized_crop, flip, rotate, color_jitter, normalize,
# random_erasing, then mixup and cutmix on the batches); a deterministic
# center_crop applies to every split; a bad key names its config line;
# a crop larger than the image is refused at setup with the plugin's
# message; databench runs the chain.
: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
tl_tmpdir transforms
tl_need_fashion_mnist
mltk=$top_builddir/mltk
n_pass=0 n_fail=0

# config FILE DIR TRANSFORMS: a small MLP on 600 training images
config() {
    cat >"$1" <<EOF
[run]
seed = 3
backend = cpu
threads = 1
dir = $2

[train]
epochs = 1
batch_size = 50

[data]
type = idx
path = $data_dir
train_limit = 600
test_limit = 200
workers = 2

$3

[layer.flat]
type = flatten

[layer.fc1]
type = dense
units = 16
activation = relu

[layer.out]
type = dense
units = 10

[loss]
type = cross_entropy

[optimizer]
type = adam
lr = 0.002
EOF
}

CHAIN="[transform.rrc]
type = random_resized_crop
size = 28
scale = 0.5, 1

[transform.flip]
type = flip

[transform.rot]
type = rotate
degrees = 10

[transform.jitter]
type = color_jitter
brightness = 0.3
contrast = 0.3

[transform.norm]
type = normalize
mean = 0.286
std = 0.353

[transform.erase]
type = random_erasing
p = 0.5

[transform.mix]
type = mixup
alpha = 0.4

[transform.cut]
type = cutmix"

config "$tmp/all.ini" "$tmp/all" "$CHAIN"
run all --config "$tmp/all.ini" --quiet
expect_rc 0 "training with every transform in one chain"

config "$tmp/cc.ini" "$tmp/cc" "[transform.cc]
type = center_crop
size = 24"
run cc --config "$tmp/cc.ini" --quiet
expect_rc 0 "center_crop to 24x24 on every split"

config "$tmp/db.ini" "$tmp/db" "$CHAIN"
run db databench --config "$tmp/db.ini" --epochs 1
expect_rc 0 "databench with the chain"
expect_in out '^databench: 600 samples in ' "databench counts the samples"

config "$tmp/bad.ini" "$tmp/bad" "[transform.norm]
type = normalize
mean = 0.1, 0.2
std = 1"
# the line of the key, or at least that of its section
ln=$(grep -n '^mean = 0.1, 0.2' "$tmp/bad.ini" | cut -d: -f1)
sl=$(grep -n '^\[transform.norm\]' "$tmp/bad.ini" | cut -d: -f1)
run bad --config "$tmp/bad.ini"
expect_rc 3 "normalize with two means"
expect_in err "bad\.ini:($ln|$sl): .*key 'mean' must be one number or three \(one per channel\)" \
    "the message names the config line"

config "$tmp/big.ini" "$tmp/big" "[transform.crop]
type = random_crop
size = 40"
run big --config "$tmp/big.ini"
expect_in err "random_crop: size 40x40 is larger than the padded image 28x28" \
    "a crop larger than the image is refused with the plugin's message"
if [ "$rc" -ne 0 ]; then pass "the refused crop exits non-zero ($rc)"; else fail "exit 0"; fi

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
