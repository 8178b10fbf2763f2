#!/bin/sh
# test_readme.sh - the README's examples, run as they are written.
#
# What this is: takes the shell blocks of README.md's tour ("Check a
# configuration", "List the plugins found") and its plugin example ("Write
# your own plugin": compile a layer with pkg-config, then `mltk --config
# train.ini --plugin-dir .`) out of README.md and runs them unchanged: the
# tour in a directory holding ./mltk and examples/, the plugin example in
# a directory holding scale.c and scale.ini (tests/oot, the example of
# mltk-plugin(7)) and a train.ini that uses the layer - the training
# config next to the descriptor, as a user keeps them.  `mltk` and
# pkg-config's mltk are the build tree's (tests/test_oot_plugin.sh covers
# the installed ones).
# What this is not: a test of training quality.
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk), cc and
# pkg-config.  Exits 77 (skipped) when Fashion-MNIST is missing from
# $FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist).

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
data_dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

tl_tmpdir readme
umask 022

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

# block AFTER: the first ```sh block after the line starting with AFTER
block() {
    awk -v after="$1" 'index($0, after) == 1 { f = 1 }
                       f && $0 == "```sh" { p = 1; next }
                       p && $0 == "```" { exit }
                       p { print }' "$top_srcdir/README.md"
}

block "Write your own plugin" >"$tmp/plugin.sh"
grep -q -- '--plugin-dir' "$tmp/plugin.sh" || die "README.md: no plugin example with --plugin-dir"
block "Check a configuration" >"$tmp/dryrun.sh"
block "List the plugins found" >"$tmp/list.sh"
[ -s "$tmp/dryrun.sh" ] && [ -s "$tmp/list.sh" ] || die "README.md: the tour's blocks are missing"
ok "README.md's examples: $(cat "$tmp/dryrun.sh" "$tmp/list.sh" "$tmp/plugin.sh" | wc -l) commands"

tl_need_fashion_mnist
command -v pkg-config >/dev/null 2>&1 || die "pkg-config is missing"

# `mltk` and `./mltk` run the build tree's; pkg-config's mltk is the build
# tree's headers and library
mkdir "$tmp/bin" "$tmp/pc" "$tmp/tour" "$tmp/work" || die "mkdir in $tmp"
printf '#!/bin/sh\nexec "%s/mltk" "$@"\n' "$top_builddir" >"$tmp/bin/mltk"
chmod +x "$tmp/bin/mltk"
cp "$tmp/bin/mltk" "$tmp/tour/mltk"
ln -s "$top_srcdir/examples" "$tmp/tour/examples"
{
    echo "Name: mltk"
    echo "Description: mltk in its build tree"
    echo "Version: 0"
    echo "Cflags: -I$top_srcdir/include"
    echo "Libs: -L$top_builddir/.libs -lmltk"
} >"$tmp/pc/mltk.pc"
PATH="$tmp/bin:$PATH"
PKG_CONFIG_LIBDIR="$tmp/pc"
PKG_CONFIG_PATH="$tmp/pc"
export PATH PKG_CONFIG_LIBDIR PKG_CONFIG_PATH
unset PKG_CONFIG_SYSROOT_DIR 2>/dev/null || :

# ---- the tour ----

for b in dryrun list; do
    (cd "$tmp/tour" && sh -eu "$tmp/$b.sh") >"$tmp/$b.out" 2>"$tmp/$b.err" \
        || { cat "$tmp/$b.sh" "$tmp/$b.err"; die "README.md's tour: $(head -n 1 "$tmp/$b.sh")"; }
    ok "as written: $(tr '\n' ';' <"$tmp/$b.sh")"
done
grep -q '^dense ' "$tmp/list.out" || die "the tour's ./mltk plugins lists no dense"

# ---- the plugin example ----

cp "$top_srcdir/tests/oot/scale.c" "$top_srcdir/tests/oot/scale.ini" "$tmp/work/" \
    || die "copying tests/oot"
chmod u+w "$tmp/work/scale.ini"
printf '%s\n' "[run]" "seed = 1" "backend = cpu" "" \
    "[train]" "epochs = 1" "batch_size = 64" "" \
    "[data]" "type = idx" "path = $data_dir" "train_limit = 1024" "test_limit = 256" "" \
    "[layer.flat]" "type = flatten" "" "[layer.half]" "type = scale" "" \
    "[layer.out]" "type = dense" "units = 10" "" \
    "[loss]" "type = cross_entropy" "" "[optimizer]" "type = adam" >"$tmp/work/train.ini"
(cd "$tmp/work" && sh -eu "$tmp/plugin.sh") >"$tmp/plugin.out" 2>"$tmp/plugin.err" \
    || { cat "$tmp/plugin.sh" "$tmp/plugin.err"; die "README.md's plugin example fails as written"; }
grep -q '^epoch 1/1 ' "$tmp/plugin.out" \
    || { cat "$tmp/plugin.out" "$tmp/plugin.err"; die "the plugin example trained no epoch"; }
if grep -q 'train\.ini' "$tmp/plugin.err"; then
    cat "$tmp/plugin.err"
    die "train.ini next to the descriptor drew a message"
fi
ok "as written, next to train.ini: $(tr '\n' ';' <"$tmp/plugin.sh")"

echo "$n_pass passed, 0 failed"
exit 0
