#!/bin/sh
# test_cli.sh - the `mltk` command as a user meets it.
#
# What this is: runs the built ./mltk (the libtool wrapper in
# $top_builddir) on configs written into a temporary directory and checks
# exit codes (mltk(1), EXIT STATUS), the messages on stderr, the plugin
# listing, the --dry-run model summary and a short real training run with
# its JSON-lines log.
# What this is not: a test of training quality (tests/test_oot_plugin.sh
# and the Check suites do that) or of each plugin's parameters.
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk).  The
# checks that train read Fashion-MNIST from $FASHION_MNIST_DIR (default
# /usr/share/datasets/fashion-mnist).  When it is missing they are
# skipped and, the other checks passing, the test exits 77 (skipped), not
# 0; under CI=true (.ci/run), where the data set is installed, a skipped
# check is a failure.

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
data_dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
mltk="$top_builddir/mltk"

tl_tmpdir cli

# ---- helpers ----

n_pass=0
n_fail=0
n_skip=0

skip() {
    if [ "${CI:-}" = true ]; then
        fail "$1 (CI=true: the check must run, not skip)"
    else
        n_skip=$((n_skip + 1))
        echo "skip - $1"
    fi
}

# write_config FILE DATA_KEYS MODEL: a small classifier on the idx set
write_config() {
    cat >"$1" <<EOF
# written by test_cli.sh
[run]
seed = 1
backend = cpu
threads = 2

[train]
epochs = 1
batch_size = 100

[data]
type = idx
$2

[layer.flat]
type = flatten

$3

[loss]
type = cross_entropy

[optimizer]
type = adam
lr = 0.001
EOF
}

small_data="path = $data_dir
train_limit = 1000
test_limit = 200"

mlp="[layer.fc1]
type = dense
units = 32
activation = relu

[layer.out]
type = dense
units = 10"

have_data=no
[ -f "$data_dir/train-images-idx3-ubyte.gz" ] && have_data=yes

# ---- help and version ----

run help --help
expect_rc 0 "--help"
expect_in out '--config' "--help names --config"
expect_in out 'plugins' "--help names the plugins command"

run help_short -h
expect_rc 0 "-h"
if cmp -s "$tmp/help.out" "$tmp/help_short.out"; then
    pass "-h prints the same as --help"
else
    fail "-h and --help differ"
fi

version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/config.h")
run version --version
expect_rc 0 "--version"
expect_in out "mltk.*$version" "--version prints mltk $version"

run version_short -V
expect_rc 0 "-V"

# ---- usage errors: 2 ----

run noargs
expect_rc 2 "no arguments"

run badopt --frobnicate
expect_rc 2 "unknown option"
expect_in err 'frobnicate' "unknown option is named"

run epochs_bad --config "$tmp/none.ini" --epochs zero
expect_rc 2 "--epochs with a non-number"

run badcmd frobnicate
expect_rc 2 "unknown command"
expect_in err 'frobnicate' "unknown command is named"

run shownoname plugins show
expect_rc 2 "plugins show without a name"

# ---- configuration errors: 3 ----

run missing --config "$tmp/does-not-exist.ini"
expect_rc 3 "missing config file"
expect_in err 'does-not-exist\.ini' "missing config file is named"

write_config "$tmp/typo.ini" "$small_data" "[layer.fc1]
type = dense
unit = 32

[layer.out]
type = dense
units = 10"
typo_line=$(grep -n '^unit = 32$' "$tmp/typo.ini" | cut -d: -f1)
run typo --config "$tmp/typo.ini"
expect_rc 3 "unknown key"
expect_in err "typo\.ini:$typo_line:" "unknown key: message names file:line ($typo_line)"
expect_in err "unknown key 'unit'" "unknown key: message names the key"
expect_in err "did you mean 'units'" "unknown key: did-you-mean hint"

write_config "$tmp/noplugin.ini" "$small_data" "[layer.fc1]
type = dense_typo
units = 32"
run noplugin --config "$tmp/noplugin.ini"
expect_rc 3 "unknown layer type"
expect_in err "dense_typo" "unknown layer type is named"
expect_in err "noplugin\.ini:[0-9]+" "unknown layer type: message names file:line"

write_config "$tmp/range.ini" "$small_data" "[layer.fc1]
type = dense
units = 0"
run range --config "$tmp/range.ini"
expect_rc 3 "out-of-range value"
expect_in err "range\.ini:[0-9]+" "out-of-range value: message names file:line"

write_config "$tmp/section.ini" "$small_data" "$mlp

[trainn]
epochs = 2"
run section --config "$tmp/section.ini"
expect_rc 3 "unknown section"
expect_in err "trainn" "unknown section is named"

# ---- data errors: 5 ----

write_config "$tmp/nodata.ini" "path = $tmp/no-such-dir" "$mlp"
run nodata --config "$tmp/nodata.ini"
expect_rc 5 "data path that does not exist"
expect_in err "no-such-dir" "missing data path is named"

# a truncated image file: the first 1000 bytes of the real one
if [ "$have_data" = yes ]; then
    mkdir "$tmp/trunc"
    cp "$data_dir"/*labels-idx1-ubyte.gz "$data_dir"/t10k-images-idx3-ubyte.gz "$tmp/trunc/"
    gzip -dc "$data_dir/train-images-idx3-ubyte.gz" | head -c 1000 | gzip -c \
        >"$tmp/trunc/train-images-idx3-ubyte.gz"
    write_config "$tmp/trunc.ini" "path = $tmp/trunc" "$mlp"
    run trunc --config "$tmp/trunc.ini"
    expect_rc 5 "truncated data file"
    expect_in err "train-images-idx3-ubyte" "truncated data file is named"
else
    skip "truncated data file (no Fashion-MNIST in $data_dir)"
fi

# ---- plugins ----

run plugins plugins
expect_rc 0 "plugins"
for p in dense relu flatten cross_entropy sgd adam idx cpu; do
    expect_in out "^ *$p[[:space:]]" "plugins lists $p"
done
expect_in out "layers/dense\.ini" "plugins shows the descriptor path"

run show plugins show dense
expect_rc 0 "plugins show dense"
expect_in out 'units' "plugins show dense lists units"
expect_in out 'activation' "plugins show dense lists activation"

run shownone plugins show nosuch
expect_rc 4 "plugins show of an unknown plugin"
expect_in err 'nosuch' "unknown plugin is named"

run plugdir plugins --plugin-dir "$tmp/no-such-plugin-dir"
expect_rc 2 "plugins with a --plugin-dir that does not exist"
expect_in err 'no-such-plugin-dir' "missing --plugin-dir is named"

# ---- dry run and training ----

if [ "$have_data" = yes ]; then
    write_config "$tmp/good.ini" "$small_data" "$mlp"
    printf '\n[log]\njsonl = %s\n' "$tmp/run.jsonl" >>"$tmp/good.ini"

    run dry --config "$tmp/good.ini" --dry-run
    expect_rc 0 "--dry-run"
    expect_in out 'layer' "--dry-run summary has a layer column"
    expect_in out 'params' "--dry-run summary has a params column"
    # flatten: (784); fc1: 784*32+32 = 25120 params; out: 32*10+10 = 330
    expect_in out 'flat.*flatten.*784' "--dry-run shows flatten's output shape"
    expect_in out 'fc1.*dense.*32.*25120' "--dry-run shows fc1 with 25120 parameters"
    expect_in out 'out.*dense.*10.*330' "--dry-run shows out with 330 parameters"
    if grep -q '^epoch ' "$tmp/dry.out"; then
        fail "--dry-run trained"
    else
        pass "--dry-run does not train"
    fi
    if [ -e "$tmp/run.jsonl" ]; then
        fail "--dry-run created (or truncated) the jsonl log"
    else
        pass "--dry-run leaves the jsonl log alone"
    fi

    run train --config "$tmp/good.ini"
    expect_rc 0 "short training run"
    expect_in out '^epoch 1/1 +train_loss [0-9.]+ +val_loss [0-9.]+ +val_acc [0-9.]+ +samples/s [0-9]+ +lr [0-9.e-]+ +time [0-9.]+s$' \
        "training prints the epoch line"
    if [ -f "$tmp/run.jsonl" ] && [ "$(wc -l <"$tmp/run.jsonl")" -eq 1 ]; then
        pass "jsonl log has one line for one epoch"
    else
        fail "jsonl log missing or not one line"
    fi
    for k in epoch train_loss val_loss val_acc samples_per_s lr wall_s; do
        if grep -Eq "\"$k\" *: *[-0-9.eE+]+" "$tmp/run.jsonl" 2>/dev/null; then
            pass "jsonl has numeric $k"
        else
            fail "jsonl lacks numeric $k"
        fi
    done
    if grep -q '"epoch" *: *1[,}]' "$tmp/run.jsonl" 2>/dev/null; then
        pass "jsonl epoch is 1"
    else
        fail "jsonl epoch is not 1"
    fi

    # sgd with an absurd learning rate overflows within the first epoch
    sed -e 's/^type = adam$/type = sgd/' -e 's/^lr = 0.001$/lr = 1e38/' \
        "$tmp/good.ini" >"$tmp/diverge.ini"
    run diverge --config "$tmp/diverge.ini"
    expect_rc 1 "diverging training run (runtime failure)"
    expect_in err 'non-finite' "diverging run says the loss became non-finite"

    run quiet --config "$tmp/good.ini" --quiet
    expect_rc 0 "--quiet training run"
    if grep -q '^epoch ' "$tmp/quiet.out"; then
        fail "--quiet still prints epoch lines"
    else
        pass "--quiet prints no epoch lines"
    fi

    run epochs --config "$tmp/good.ini" --epochs 2 --quiet
    expect_rc 0 "--epochs 2"
    if [ "$(wc -l <"$tmp/run.jsonl")" -eq 2 ]; then
        pass "--epochs 2 overrides [train] epochs (2 jsonl lines)"
    else
        fail "--epochs 2 wrote $(wc -l <"$tmp/run.jsonl") jsonl lines"
    fi
else
    skip "--dry-run and training (no Fashion-MNIST in $data_dir)"
fi

# ---- summary ----

echo "$n_pass passed, $n_fail failed, $n_skip skipped"
[ "$n_fail" -eq 0 ] || exit 1
[ "$n_skip" -eq 0 ] || exit 77
exit 0
