#!/bin/sh
# pyvenv.sh - the Python environment of the interoperability tests.
#
#   . "$top_srcdir/tests/pyvenv.sh"
#   PY=$(mltk_pyvenv safetensors numpy) || mltk_unavailable "no safetensors"
#
# mltk itself needs no Python.  The tests that prove its files against the
# ecosystem (TensorBoard reading our event files, safetensors loading our
# weights, optax's LAMB against ours) run in one virtual environment under
# the build tree, created on first use and shared by every test; packages
# come from PyPI at the exact versions of tests/pyvenv.txt (passed to pip
# as constraints, so what they pull in is pinned as well).  A package the
# pins do not name is refused.  Where there is no python3, no venv module
# or no network, mltk_pyvenv fails and the caller calls mltk_unavailable:
# a skip (exit 77) on a developer's machine, a failure under CI=true,
# where PyPI is reachable and a broken environment must not pass as a
# skip.  .ci/run sets CI=true.
#
# Concurrent tests (make -j) serialise on a lock file while installing.

# mltk_unavailable WHAT: something the test needs (python3, a package, a
# data set, a test program) is missing: print "skip: WHAT" and exit 77, or
# under CI=true "FAIL: WHAT" and exit 1.
mltk_unavailable()
{
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $1 (CI=true: the test must run, not skip)"
        exit 1
    fi
    echo "skip: $1"
    exit 77
}

mltk_pyvenv()
{
    _dir="${top_builddir:-.}/tests/pyvenv"
    _pins="${top_srcdir:-.}/tests/pyvenv.txt"
    command -v python3 >/dev/null 2>&1 || { echo "pyvenv: no python3" >&2; return 1; }
    [ -r "$_pins" ] || { echo "pyvenv: cannot read $_pins" >&2; return 1; }
    mkdir -p "${top_builddir:-.}/tests"
    (
        if command -v flock >/dev/null 2>&1; then
            flock 9
        fi
        # a venv made from other pins is made again
        if [ -x "$_dir/bin/python" ] && ! cmp -s "$_pins" "$_dir/pins.txt"; then
            rm -rf "$_dir"
        fi
        if [ ! -x "$_dir/bin/python" ]; then
            rm -rf "$_dir"
            python3 -m venv "$_dir" >&2 || { rm -rf "$_dir"; exit 1; }
            cp "$_pins" "$_dir/pins.txt" || exit 1
        fi
        _mods=
        for _p in "$@"; do
            if ! grep -iq "^$_p==" "$_pins"; then
                echo "pyvenv: $_p is not pinned in $_pins" >&2
                exit 1
            fi
            _mods="$_mods${_mods:+, }$(echo "$_p" | sed 's/-/_/g')"
        done
        # one interpreter start to see whether all are there
        if [ -n "$_mods" ] && ! "$_dir/bin/python" -c "import $_mods" >/dev/null 2>&1; then
            "$_dir/bin/python" -m pip install -q --disable-pip-version-check \
                --timeout 30 -c "$_pins" "$@" >&2 || exit 1
        fi
    ) 9>"${top_builddir:-.}/tests/pyvenv.lock" || return 1
    echo "$_dir/bin/python"
}
