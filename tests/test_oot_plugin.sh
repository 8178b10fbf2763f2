#!/bin/sh
# test_oot_plugin.sh - a third-party plugin built against the installed mltk.
#
# What this is: installs the build tree into a temporary DESTDIR, checks
# that the installed mltk looks for its plugins in the configured plugin
# directory (mltk.pc's plugindir), compiles tests/oot/scale.c with nothing
# but `pkg-config --cflags --libs mltk` pointed at that staged install,
# and trains a small Fashion-MNIST MLP with the `scale` layer (y = g * x,
# g trainable) using the INSTALLED mltk binary, libmltk and plugins (never
# the build tree's).  Checks that `mltk plugins` lists it, that the model
# trains, that its descriptor parameter reaches it (g starts at factor),
# that g trains (it changes, and a model whose g starts at 0 learns only
# through g's gradient, computed in the layer's buffer) and that the
# forward multiplies by g through its buffer (a frozen g of 0 gives chance
# accuracy).
# What this is not: a test of the in-tree plugins (tests/test_cli.sh).
#
# Needs: top_builddir, top_srcdir, MAKE and CC (exported by tests/local.mk).
# Exits 77 (skipped) only when Fashion-MNIST is missing.

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
MAKE=${MAKE:-make}
CC=${CC:-cc}
data_dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

tl_tmpdir oot

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

# ---- the manual's example is this plugin ----

# mltk-plugin(7) prints tests/oot/scale.c and scale.ini verbatim, roff-
# escaped, between the comment lines BEGIN <file> and END <file>.
for f in scale.c scale.ini; do
    awk -v f="$f" '$0 == ".\\\" END " f { p = 0 }
                   p && $0 != ".EX" && $0 != ".EE" { print }
                   $0 == ".\\\" BEGIN " f { p = 1 }' "$top_srcdir/man/mltk-plugin.7" |
        sed -e 's/^\\&//' -e 's/\\(aq/'"'"'/g' -e 's/\\-/-/g' -e 's/\\e/\\/g' >"$tmp/man.$f"
    diff -u "$tmp/man.$f" "$top_srcdir/tests/oot/$f" \
        || die "man/mltk-plugin.7 does not show tests/oot/$f as it is"
done
ok "man/mltk-plugin.7 shows tests/oot/scale.c and scale.ini as they are"

# ---- install into a staging root ----

root="$tmp/root"
# MAKEFLAGS from the outer `make check` would leak -j and friends.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        $MAKE -C "$top_builddir" install DESTDIR="$root" >"$tmp/install.log" 2>&1; then
    tail -n 30 "$tmp/install.log"
    die "make install DESTDIR=$root"
fi

pc=$(find "$root" -name mltk.pc -type f | head -n 1)
[ -n "$pc" ] || die "no mltk.pc under $root"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")          # $(libdir) inside the staging root
plugindir="$libdir/mltk"
bin=$(find "$root" -path '*/bin/mltk' -type f | head -n 1)
[ -n "$bin" ] || die "no installed mltk binary under $root"
[ -f "$plugindir/dense.ini" ] || die "no dense.ini in the installed plugin dir $plugindir"
ok "installed: $bin, plugins in $plugindir"

# The installed mltk looks for its plugins in the configured directory
# (mltk.pc's plugindir, outside the staging root), which the staged
# install does not have: it says so at debug level, naming it.  A
# libmltk built for another prefix names another directory.
configured=$(PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_PATH=$pcdir pkg-config --variable=plugindir mltk) \
    || die "pkg-config --variable=plugindir mltk"
(cd "$tmp" && env -u MLTK_PLUGIN_PATH MLTK_LOG_LEVEL=debug \
    LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin" plugins) \
    >"$tmp/default.out" 2>&1
grep -F "'$configured'" "$tmp/default.out" >/dev/null \
    || grep -F "$configured/" "$tmp/default.out" >/dev/null \
    || { cat "$tmp/default.out"; die "the installed mltk does not search $configured"; }
ok "the installed mltk searches the configured plugin directory $configured"

# ---- build the plugin with pkg-config only ----

oot="$tmp/oot"
mkdir "$oot"
PKG_CONFIG_LIBDIR=$pcdir
PKG_CONFIG_PATH=$pcdir
PKG_CONFIG_SYSROOT_DIR=$root
export PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
cflags=$(pkg-config --cflags mltk) || die "pkg-config --cflags mltk"
libs=$(pkg-config --libs mltk) || die "pkg-config --libs mltk"
case "$cflags" in
    *"$root"*) ;;
    *) die "pkg-config --cflags mltk ($cflags) does not point into $root" ;;
esac
# shellcheck disable=SC2086 # word splitting of the flags is intended
$CC -std=gnu11 -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes \
    -shared -fPIC $cflags "$top_srcdir/tests/oot/scale.c" -o "$oot/scale.so" $libs \
    || die "compiling scale.c against the installed headers"
cp "$top_srcdir/tests/oot/scale.ini" "$oot/scale.ini"
chmod u+w "$oot/scale.ini"
ok "built $oot/scale.so with pkg-config"

# Only the plugin's entry point is exported.
if command -v nm >/dev/null 2>&1; then
    exported=$(nm -D --defined-only "$oot/scale.so" | awk '$2 == "T" { print $3 }')
    [ "$exported" = "mltk_plugin_scale" ] \
        || die "scale.so exports '$exported', expected only mltk_plugin_scale"
    ok "scale.so exports only mltk_plugin_scale"
fi

# ---- run the installed mltk ----

LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
MLTK_PLUGIN_PATH=$plugindir
export LD_LIBRARY_PATH MLTK_PLUGIN_PATH

"$bin" plugins --plugin-dir "$oot" >"$tmp/plugins.out" 2>"$tmp/plugins.err" \
    || { cat "$tmp/plugins.err"; die "mltk plugins --plugin-dir $oot"; }
grep -E "^ *scale[[:space:]].*layer.*$oot/scale\.ini" "$tmp/plugins.out" >/dev/null \
    || { cat "$tmp/plugins.out"; die "mltk plugins does not list scale with $oot/scale.ini"; }
grep -E "^ *dense[[:space:]].*$plugindir/dense\.ini" "$tmp/plugins.out" >/dev/null \
    || { cat "$tmp/plugins.out"; die "mltk plugins does not take dense from $plugindir"; }
ok "mltk plugins lists scale ($oot/scale.ini) and the installed dense"

"$bin" plugins show scale --plugin-dir "$oot" >"$tmp/show.out" 2>&1 \
    || { cat "$tmp/show.out"; die "mltk plugins show scale"; }
grep -q 'factor' "$tmp/show.out" || { cat "$tmp/show.out"; die "plugins show scale lacks factor"; }
ok "mltk plugins show scale documents factor"

tl_need_fashion_mnist

# write_config FILE FACTOR [KEY = VALUE of layer.half [SAVE]]
write_config() {
    cat >"$1" <<EOF
[run]
seed = 1
backend = cpu
threads = 2

[train]
epochs = 2
batch_size = 32

[data]
type = idx
path = $data_dir
train_limit = 2000
test_limit = 500

[layer.flat]
type = flatten

[layer.hidden]
type = dense
units = 64
activation = relu

[layer.half]
type = scale
factor = $2
${3:-}

[layer.out]
type = dense
units = 10

[model]
save = ${4:-$1.safetensors}

[loss]
type = cross_entropy

[optimizer]
type = adam
lr = 0.002
EOF
}

# final_acc FILE: val_acc of the last epoch line
final_acc() {
    awk '$1 == "epoch" { for (i = 2; i < NF; i++) if ($i == "val_acc") a = $(i + 1) }
         END { print a }' "$1"
}

# gain FILE: "min max mean" of half.gain in the weights file FILE
gain() {
    "$bin" inspect "$1" | awk '$1 == "half.gain" { print $4, $5, $6 }'
}

write_config "$tmp/scale.ini" 0.5
"$bin" --config "$tmp/scale.ini" --plugin-dir "$oot" >"$tmp/train.out" 2>"$tmp/train.err"
rc=$?
cat "$tmp/train.out"
[ "$rc" -eq 0 ] || { cat "$tmp/train.err"; die "training with scale: exit $rc"; }
n_epochs=$(grep -c '^epoch [12]/2 ' "$tmp/train.out")
[ "$n_epochs" -eq 2 ] || die "expected 2 epoch lines, got $n_epochs"
acc=$(final_acc "$tmp/train.out")
awk -v a="$acc" 'BEGIN { exit !(a > 0.6) }' || die "final val_acc $acc is not above 0.6"
ok "trained with scale (factor 0.5): final val_acc $acc"

# g is a parameter of shape (64,) that started at 0.5 everywhere and moved
g=$(gain "$tmp/scale.ini.safetensors")
"$bin" inspect "$tmp/scale.ini.safetensors" | grep -E -q '^half\.gain +[Ff]32 +\(64,\) ' \
    || { "$bin" inspect "$tmp/scale.ini.safetensors"; die "no half.gain (64,) in the saved weights"; }
echo "$g" | awk '{ exit !($1 != 0.5 || $2 != 0.5) }' \
    || die "half.gain (min max mean: $g) did not change from 0.5"
ok "the gain trained: min max mean $g"

# A frozen g of 0 cuts the hidden layer off: the output sees only its
# bias, so the model cannot beat guessing.  This shows that the factor
# reaches the plugin and that forward multiplies by g (through the buffer
# it fills).
write_config "$tmp/frozen.ini" 0 "freeze = true"
"$bin" --config "$tmp/frozen.ini" --plugin-dir "$oot" --epochs 1 \
    >"$tmp/frozen.out" 2>"$tmp/frozen.err" || { cat "$tmp/frozen.err"; die "training with a frozen g of 0"; }
acc0=$(final_acc "$tmp/frozen.out")
awk -v a="$acc0" 'BEGIN { exit !(a < 0.3) }' || die "with a frozen g of 0, val_acc $acc0 is not below 0.3"
g=$(gain "$tmp/frozen.ini.safetensors")
[ "$g" = "0 0 0" ] || die "a frozen gain moved: min max mean $g"
ok "a frozen g of 0 stays 0 and gives chance accuracy ($acc0)"

# The same g of 0, trained: at first only g's gradient (dy * x summed over
# the batch, in the buffer) is not zero, so the model learns only if
# backward computes it right.
write_config "$tmp/zero.ini" 0
"$bin" --config "$tmp/zero.ini" --plugin-dir "$oot" \
    >"$tmp/zero.out" 2>"$tmp/zero.err" || { cat "$tmp/zero.err"; die "training with g from 0"; }
acc1=$(final_acc "$tmp/zero.out")
awk -v a="$acc1" 'BEGIN { exit !(a > 0.6) }' || die "with g trained from 0, val_acc $acc1 is not above 0.6"
ok "g trained from 0 learns through its gradient ($acc1)"

# The descriptor validates the plugin's parameters like any other.
write_config "$tmp/bad.ini" big
"$bin" --config "$tmp/bad.ini" --plugin-dir "$oot" --dry-run >"$tmp/bad.out" 2>"$tmp/bad.err"
rc=$?
[ "$rc" -eq 3 ] || { cat "$tmp/bad.err"; die "factor = big: exit $rc, expected 3"; }
grep -q "bad\.ini:[0-9]*:.*factor" "$tmp/bad.err" || { cat "$tmp/bad.err"; die "factor = big: message lacks file:line and key"; }
ok "factor = big is a configuration error naming bad.ini and factor"

# Without --plugin-dir the layer is unknown: a configuration error.
"$bin" --config "$tmp/scale.ini" --dry-run >"$tmp/noplug.out" 2>"$tmp/noplug.err"
rc=$?
[ "$rc" -eq 3 ] || { cat "$tmp/noplug.err"; die "unknown layer scale: exit $rc, expected 3"; }
ok "without --plugin-dir, scale is unknown (exit 3)"

echo "$n_pass passed, 0 failed"
exit 0
