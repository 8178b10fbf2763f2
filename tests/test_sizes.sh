#!/bin/sh
# test_sizes.sh - absurd layer sizes are config errors, never crashes.
#
# What this is: runs the built ./mltk, with --dry-run and as a one-step
# training run, on configs whose layer sizes are out of range (a kernel,
# stride or dilation of 2^63 - 1, a padding of 2^31 - 1, an embedding or
# dense layer whose weight alone is beyond what a model may use, a model
# whose layers each fit but whose total does not, a convolution whose
# output is beyond the backends' int sizes) and checks that each exits
# with status 3 (mltk(1): invalid configuration) and a message that names
# the file and line, the layer and, where one key is at fault, the key.
# A model of sensible sizes trains one step (exit 0).  The data set is a
# tiny IDX set written here, so nothing outside the build tree is read.
# What this is not: a test of the overflow helpers (tests/check_sizes.c)
# or of the validator's other messages (tests/check_config.c).

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
mltk="$top_builddir/mltk"

tl_tmpdir sizes

n_pass=0
n_fail=0

# expect_rc WANT WHAT: the last run exited with WANT
expect_rc() {
    if [ "$rc" -eq "$1" ]; then
        pass "$2: exit $1"
    else
        fail "$2: exit $rc, expected $1"
        sed 's/^/    /' "$tmp/$name.err"
    fi
}

# expect_err PATTERN WHAT: the last run's stderr matches the extended
# regular expression PATTERN
expect_err() {
    if grep -Eq -- "$1" "$tmp/$name.err"; then
        pass "$2"
    else
        fail "$2: no match for /$1/ in stderr"
        sed 's/^/    /' "$tmp/$name.err"
    fi
}

# line_of FILE TEXT: the number of the first line of FILE that is TEXT
line_of() {
    grep -nxF -- "$2" "$1" | head -n 1 | cut -d: -f1
}

# ---- a tiny IDX data set: 8 images of 8x8 bytes, labels 0..3 ----

printf '\000\000\010\003\000\000\000\010\000\000\000\010\000\000\000\010' >"$tmp/img"
i=0
while [ $i -lt 64 ]; do
    printf '\001\002\003\004\005\006\007\010' >>"$tmp/img"
    i=$((i + 1))
done
printf '\000\000\010\001\000\000\000\010\000\001\002\003\000\001\002\003' >"$tmp/lab"

# write_config NAME MODEL: NAME.ini with the layers MODEL, on that set
write_config() {
    cat >"$tmp/$1.ini" <<EOF
# written by test_sizes.sh
[run]
seed = 1
backend = cpu
threads = 1
dir = $tmp/run-$1

[train]
epochs = 1
batch_size = 4

[data]
type = idx
path = $tmp
train_images = img
train_labels = lab
test_images = img
test_labels = lab

$2

[loss]
type = cross_entropy

[optimizer]
type = sgd
lr = 0.1
EOF
}

# sect NAME TYPE [LINE]...: a [layer.NAME] section of TYPE with LINEs
sect() {
    printf '[layer.%s]\ntype = %s\n' "$1" "$2"
    shift 2
    for l in "$@"; do
        printf '%s\n' "$l"
    done
    printf '\n'
}

# head_of LAYERS...: the LAYERS, then flatten and a dense layer of 4 units
head_of() {
    "$@"
    sect flat flatten
    sect out dense 'units = 4'
}

# conv_model KEYS: a conv2d layer 'c1' with KEYS, then flatten and dense
conv_model() {
    head_of sect c1 conv2d 'filters = 2' "$1"
}

# refused NAME KEY_LINE LAYER KEY WHAT: --dry-run and one training step on
# NAME.ini both exit 3 with "NAME.ini:LINE: layer 'LAYER' (...): key 'KEY'"
# or "...: KEY ..." (no KEY: the layer only), where LINE is the line that
# is KEY_LINE
refused() {
    cfg="$tmp/$1.ini"
    line=$(line_of "$cfg" "$2")
    [ -n "$line" ] || { fail "$5: no line '$2' in $1.ini"; return; }
    quoted=$(printf '%s' "$cfg" | sed 's/[.[\*^$()+?{|]/\\&/g')
    pat="^mltk: error: $quoted:$line: layer '$3' \([a-z0-9_]+\): "
    [ -n "$4" ] && pat="${pat}(key '$4'|$4 )"
    run "$1-dry" --config "$cfg" --dry-run
    expect_rc 3 "$5 (--dry-run)"
    expect_err "$pat" "$5 (--dry-run): names $1.ini:$line, layer '$3'${4:+ and key '$4'}"
    run "$1-train" --config "$cfg" --max-steps 1 --quiet
    expect_rc 3 "$5 (training)"
    expect_err "$pat" "$5 (training): names $1.ini:$line, layer '$3'${4:+ and key '$4'}"
}

# ---- conv2d: each size key at 2^63 - 1, padding parsed by the layer ----

write_config kernel_same "$(conv_model 'kernel = 9223372036854775807
padding = same')"
refused kernel_same "kernel = 9223372036854775807" c1 kernel "kernel = 2^63-1, padding = same"

write_config pad_int "$(conv_model 'kernel = 3
padding = 2147483647')"
refused pad_int "padding = 2147483647" c1 padding "kernel = 3, padding = 2^31-1"
expect_err "key 'padding' values must be <= 4096, got '2147483647'" "padding: the range"

write_config pad_range "$(conv_model 'kernel = 3
padding = 99999999999999999999')"
refused pad_range "padding = 99999999999999999999" c1 padding "padding beyond 64 bits"

write_config pad_pair "$(conv_model 'kernel = 3
padding = 1, 4097')"
refused pad_pair "padding = 1, 4097" c1 padding "padding = 1, 4097"

write_config pad_neg "$(conv_model 'kernel = 3
padding = -1')"
refused pad_neg "padding = -1" c1 padding "padding = -1"

write_config dilation "$(conv_model 'kernel = 3
dilation = 9223372036854775807')"
refused dilation "dilation = 9223372036854775807" c1 dilation "dilation = 2^63-1"

write_config stride "$(conv_model 'kernel = 3
stride = 1, 9223372036854775807')"
refused stride "stride = 1, 9223372036854775807" c1 stride "stride = 1, 2^63-1"

write_config filters "$(head_of sect c1 conv2d 'filters = 2147483648' 'kernel = 3')"
refused filters "filters = 2147483648" c1 filters "filters = 2^31"

write_config groups "$(conv_model 'kernel = 3
groups = 9223372036854775807')"
refused groups "groups = 9223372036854775807" c1 groups "groups = 2^63-1"
expect_err "must be <= 1048576, got 9223372036854775807" "groups: the value as written, not as a double"

# every key in range, but the output image (K, P, Q) beyond the backends'
# int sizes: the layer, at its section
write_config conv_out "$(head_of sect c1 conv2d 'filters = 1048576' 'kernel = 3' \
    'padding = 4096')"
refused conv_out "[layer.c1]" c1 "" "conv2d output beyond int sizes"
expect_err "each output image .* more than the 2147483647 the backends take" \
    "conv2d output: says what is too large"

# ---- pooling, dense, embedding ----

write_config pool "$(head_of sect p1 maxpool2d 'kernel = 9223372036854775807')"
refused pool "kernel = 9223372036854775807" p1 kernel "maxpool2d kernel = 2^63-1"

write_config avgpad "$(head_of sect p1 avgpool2d 'kernel = 2' 'padding = 2147483647')"
refused avgpad "padding = 2147483647" p1 padding "avgpool2d padding = 2^31-1"

write_config units_max "$(sect flat flatten; sect out dense 'units = 9223372036854775807')"
refused units_max "units = 9223372036854775807" out units "dense units = 2^63-1"

# units at its maximum with a huge input: the weight alone is too large
write_config units_huge "$(sect c1 conv2d 'filters = 65536' 'kernel = 1'; sect flat flatten
    sect out dense 'units = 1048576')"
refused units_huge "units = 1048576" out units "dense units = 2^20 on 2^22 inputs"
expect_err "a weight \(and its gradient\) of more than the 16 TiB a model may use" \
    "dense weight: says why"

write_config embed "$(sect flat0 flatten; head_of sect emb embedding 'vocab = 16777216' \
    'dim = 1048576')"
refused embed "dim = 1048576" emb dim "embedding vocab = 2^24, dim = 2^20"

# ---- layers that each fit, a model that does not ----

write_config total "$(sect flat0 flatten; sect fc1 dense 'units = 1048576'
    sect fc2 dense 'units = 1048576'; head_of sect fc3 dense 'units = 1048576')"
refused total "[layer.fc3]" fc3 "" "three dense layers of 2^20 units"
expect_err "with this layer the model needs more than the 16\.0 TiB a model may use" \
    "model total: says why"

# ---- sensible sizes still train ----

write_config good "$(conv_model 'kernel = 3
padding = 1
stride = 1, 2
dilation = 1')"
run good --config "$tmp/good.ini" --max-steps 1 --quiet
expect_rc 0 "a model of sensible sizes trains one step"

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
