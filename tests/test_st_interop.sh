#!/bin/sh
# test_st_interop.sh - mltk's safetensors files against other readers and
# writers.
#
# What this is: mltk writes the test fixture (check_safetensors --write);
# an independent standard-library reader (tests/st_read.py) checks it
# value by value; then, in the Python environment of tests/pyvenv.sh,
# Hugging Face's safetensors.numpy loads the same fixture (less its BF16
# tensor, which numpy cannot hold) and compares values and metadata, and
# writes a file of its own that mltk must read back exactly
# (check_safetensors --dump), and reject once truncated.
# What this is not: the format's unit tests (tests/check_safetensors.c).
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk).  Exits 77
# (skipped) without python3, without the Check-built driver, or where the
# Python packages cannot be installed (the standard-library check has run
# by then); under CI=true each of these is a failure (tests/pyvenv.sh).

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
. "$top_srcdir/tests/pyvenv.sh"
drv="$top_builddir/tests/check_safetensors"
st_read="$top_srcdir/tests/st_read.py"

command -v python3 >/dev/null 2>&1 || mltk_unavailable "no python3"
[ -x "$drv" ] || mltk_unavailable "$drv not built (no Check)"

tl_tmpdir st

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

# ---- mltk writes, the standard library reads ----

"$drv" --write "$tmp/mltk.safetensors" || die "check_safetensors --write"
python3 "$st_read" verify "$tmp/mltk.safetensors" || die "stdlib reader"
ok "mltk's file read by the standard-library reader"

# ---- numpy and safetensors, both ways ----

PY=$(mltk_pyvenv numpy safetensors) \
    || mltk_unavailable "no Python environment with numpy and safetensors ($n_pass passed)"

"$drv" --write "$tmp/mltk-np.safetensors" nobf16 || die "check_safetensors --write nobf16"
"$PY" "$st_read" verify-numpy "$tmp/mltk-np.safetensors" || die "safetensors.numpy load"
ok "mltk's file loaded by safetensors.numpy"

"$PY" "$st_read" write-numpy "$tmp/py.safetensors" || die "safetensors.numpy save"
"$drv" --dump "$tmp/py.safetensors" >"$tmp/py.dump" 2>"$tmp/py.err" \
    || die "mltk cannot read safetensors.numpy's file: $(cat "$tmp/py.err")"
"$PY" "$st_read" check-dump "$tmp/py.safetensors" "$tmp/py.dump" || die "mltk's dump"
ok "safetensors.numpy's file read by mltk"

# the same file cut short by one byte: rejected, naming the file
python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(d[:-1])' \
    "$tmp/py.safetensors" "$tmp/cut.safetensors" || die "cannot truncate"
if "$drv" --dump "$tmp/cut.safetensors" >/dev/null 2>"$tmp/cut.err"; then
    die "mltk read a truncated file"
fi
grep -q "^$tmp/cut.safetensors: truncated: expected [0-9]* bytes of tensor data, found" \
    "$tmp/cut.err" || die "message for a truncated file: $(cat "$tmp/cut.err")"
ok "truncated file rejected: $(cat "$tmp/cut.err")"

echo "$n_pass passed, 0 failed"
exit 0
