#!/bin/sh
# test_plugin_cli.sh - how `mltk` treats the plugins it finds.
#
# What this is: runs the built ./mltk on plugin directories written into a
# temporary directory and checks, with the exit codes of mltk(1): the
# refusal of a directory others may write to (and
# --allow-insecure-plugin-dir), a broken descriptor that is only a warning
# until it is asked for (and is marked in `mltk plugins`), an entry symbol
# outside mltk_plugin_*, a truncated library (refused before dlopen, where
# it used to kill mltk with SIGBUS), and the width of `mltk plugins` and
# `mltk plugins show`.
# What this is not: the registry's own tests (tests/check_registry.c hold
# the exact messages) or a test of the README (tests/test_readme.sh).
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk).  The
# truncated library is met when a config is loaded, which opens the data:
# that check reads Fashion-MNIST from $FASHION_MNIST_DIR (default
# /usr/share/datasets/fashion-mnist) and is skipped without it.  The
# refusal checks are skipped in a build tree that mltk would refuse itself
# (built under umask 002; see tests/loose-tree.sh).

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
data_dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
mltk="$top_builddir/mltk"

tl_tmpdir plugcli
umask 022
unset COLUMNS

n_pass=0
n_fail=0
# a check that cannot run here is a failure under CI=true (tl_skip's rule)
skip() {
    if [ "${CI:-}" = true ]; then
        fail "$1 (CI=true: the check must run, not skip)"
    else
        echo "skip - $1"
    fi
}

# runc COLUMNS NAME ARGS...: run at a terminal width
runc() {
    c=$1
    name=$2
    shift 2
    COLUMNS=$c "$mltk" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
    rc=$?
}

show() {
    echo "  stdout:"; sed 's/^/    /' "$tmp/$name.out"
    echo "  stderr:"; sed 's/^/    /' "$tmp/$name.err"
}

expect_rc() {
    if [ "$rc" -eq "$1" ]; then pass "$2: exit $1"; else fail "$2: exit $rc, expected $1"; show; fi
}

# expect_in out|err PATTERN WHAT (grep -E)
expect_in() {
    if grep -E -- "$2" "$tmp/$name.$1" >/dev/null; then pass "$3"; else fail "$3"; show; fi
}

# no line of stdout is wider than $1, but those starting with $2
expect_width() {
    wide=$(awk -v w="$1" -v skip="$2" 'length($0) > w && index($0, skip) != 1' "$tmp/$name.out")
    if [ -z "$wide" ]; then pass "$3"; else fail "$3"; echo "$wide" | sed 's/^/    /'; fi
}

# ---- a plugin directory: a long summary, a broken descriptor, a config ----

p="$tmp/p"
mkdir "$p"
cat >"$p/longsum.ini" <<'EOI'
[plugin]
name = longsum
kind = layer
abi = 2
library = longsum.so
summary = a layer with a summary far longer than any terminal column should have to hold, to see it cut
EOI
cat >"$p/broken_one.ini" <<'EOI'
[plugin]
name = broken_one
kind = layer
abi = 2
library = broken_one.so
colour = blue
EOI
cat >"$p/evil.ini" <<'EOI'
[plugin]
name = evil
kind = layer
abi = 2
library = evil.so
symbol = abort
EOI
printf '[run]\nseed = 1\n' >"$p/train.ini"

# ---- mltk plugins: columns, cut summaries, broken entries ----

runc 80 list plugins --plugin-dir "$p"
expect_rc 0 "plugins with a broken descriptor on the path"
expect_in err "warn: ignoring plugin 'broken_one': $p/broken_one.ini:6: \[plugin\]: unknown key 'colour'" \
    "the broken descriptor is a warning naming file and line"
expect_in err "warn: ignoring plugin 'evil': $p/evil.ini:6: \[plugin\]: symbol 'abort' must start with 'mltk_plugin_'" \
    "symbol = abort is refused, naming file and line"
expect_in out "^broken_one +broken +line 6: \[plugin\]: unknown k.* +$p/broken_one\.ini$" \
    "plugins marks the broken descriptor and says why"
expect_in out "^longsum +layer +a layer with a summary far.*\.\.\.  +$p/longsum\.ini$" \
    "a long summary is cut with ..."
if grep -q 'train\.ini' "$tmp/list.out" "$tmp/list.err"; then
    fail "train.ini (no [plugin] section) is not a descriptor"; show
else
    pass "train.ini (no [plugin] section) is not a descriptor"
fi
# every row's descriptor starts under the DESCRIPTOR heading
misaligned=$(awk 'NR == 1 { col = index($0, "DESCRIPTOR"); next }
                  { if (length($0) - length($NF) + 1 != col) print }' "$tmp/list.out")
if [ -z "$misaligned" ]; then
    pass "plugins keeps its columns"
else
    fail "plugins keeps its columns"; echo "$misaligned" | sed 's/^/    /'
fi
cols=$(awk 'NR == 1 { print index($0, "DESCRIPTOR") }' "$tmp/list.out")
[ "$cols" -le 80 ] && pass "the DESCRIPTOR column starts within 80 columns ($cols)" \
    || { fail "the DESCRIPTOR column starts at $cols, past 80"; show; }

runc 250 listwide plugins --plugin-dir "$p"
expect_in out "to hold, to see it cut +$p/longsum\.ini$" "a wide terminal shows the whole summary"

# ---- plugins show: the broken one fails, the others work ----

run showbroken plugins show broken_one --plugin-dir "$p"
expect_rc 4 "plugins show of a broken descriptor"
expect_in err "^mltk: error: $p/broken_one.ini:6: \[plugin\]: unknown key 'colour'" \
    "plugins show names the broken descriptor's file and line"
run showevil plugins show evil --plugin-dir "$p"
expect_rc 4 "plugins show of a descriptor with symbol = abort"
run showdense plugins show dense --plugin-dir "$p"
expect_rc 0 "plugins show dense with a broken descriptor elsewhere on the path"

# ---- plugins show: wrapped to the width ----

run show80 plugins show conv2d
expect_rc 0 "plugins show conv2d"
expect_width 80 "  library:" "plugins show conv2d fits 80 columns when not a terminal"
runc 120 show120 plugins show conv2d
expect_width 120 "  library:" "plugins show conv2d fits COLUMNS=120"
expect_in out "^  NAME +TYPE +DEFAULT +RANGE +REQUIRED +DESCRIPTION$" \
    "at 120 columns the description has its column"

# ---- a truncated library: refused before dlopen ----

if [ -f "$data_dir/train-images-idx3-ubyte.gz" ]; then
    t="$tmp/trunc"
    mkdir "$t"
    sed 's/^library *=.*/library = relu.so/' "$top_builddir/layers/relu.ini" >"$t/relu.ini"
    head -c 3000 "$top_builddir/layers/.libs/relu.so" >"$t/relu.so"
    cat >"$t/train.ini" <<EOI
[run]
backend = cpu
[data]
type = idx
path = $data_dir
train_limit = 64
test_limit = 64
[layer.flat]
type = flatten
[layer.act]
type = relu
[layer.out]
type = dense
units = 10
[loss]
type = cross_entropy
[optimizer]
type = sgd
EOI
    run trunc --config "$t/train.ini" --plugin-dir "$t" --dry-run
    expect_rc 4 "a library cut to 3000 bytes"
    expect_in err "plugin 'relu': library $t/relu.so is truncated or not a shared object \(.*; descriptor $t/relu.ini\)" \
        "the truncated library and its descriptor are named"
else
    skip "a truncated library (no Fashion-MNIST in $data_dir)"
fi

# ---- directories others may write to ----

run help --help
expect_in out "--allow-insecure-plugin-dir" "--help names --allow-insecure-plugin-dir"

if env -u MLTK_ALLOW_INSECURE_PLUGIN_DIR "$mltk" plugins >/dev/null 2>&1; then
    w="$tmp/ww"
    mkdir "$w"
    cp "$p/longsum.ini" "$w/"
    chmod 0777 "$w"
    env -u MLTK_ALLOW_INSECURE_PLUGIN_DIR "$mltk" plugins --plugin-dir "$w" \
        >"$tmp/ww.out" 2>"$tmp/ww.err"
    rc=$?
    name=ww
    expect_rc 4 "a world-writable --plugin-dir"
    expect_in err "refusing plugin directory $w: it is writable by others \(mode 0777\).*chmod go-w $w.*--allow-insecure-plugin-dir" \
        "the refusal says why and how to fix it"
    chmod 1777 "$w"
    env -u MLTK_ALLOW_INSECURE_PLUGIN_DIR MLTK_PLUGIN_PATH="$w" "$mltk" plugins \
        >"$tmp/wwenv.out" 2>"$tmp/wwenv.err"
    rc=$?
    name=wwenv
    expect_rc 4 "a sticky world-writable directory in MLTK_PLUGIN_PATH"
    env -u MLTK_ALLOW_INSECURE_PLUGIN_DIR "$mltk" plugins --plugin-dir "$w" \
        --allow-insecure-plugin-dir >"$tmp/wwok.out" 2>"$tmp/wwok.err"
    rc=$?
    name=wwok
    expect_rc 0 "--allow-insecure-plugin-dir"
    expect_in out "^longsum " "--allow-insecure-plugin-dir lists the plugin"
    MLTK_ALLOW_INSECURE_PLUGIN_DIR=1 "$mltk" plugins --plugin-dir "$w" \
        >"$tmp/wwvar.out" 2>"$tmp/wwvar.err"
    rc=$?
    name=wwvar
    expect_rc 0 "MLTK_ALLOW_INSECURE_PLUGIN_DIR=1"
    chmod 0755 "$w"
else
    skip "refusals: mltk refuses this build tree itself (see tests/loose-tree.sh)"
fi

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
