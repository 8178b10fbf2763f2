#!/bin/sh
# pyvenv.sh - the Python environment of the interoperability tests.
#
#   . "$top_srcdir/tests/pyvenv.sh"
#   PY=$(mltk_pyvenv safetensors numpy) || exit 77
#
# mltk itself needs no Python.  The tests that prove its files against the
# ecosystem (TensorBoard reading our event files, safetensors and PyTorch
# loading our weights) run their readers in one virtual environment under
# the build tree, created on first use and shared by every test; packages
# come from PyPI.  Where there is no python3, no venv module or no network,
# mltk_pyvenv fails and the caller skips (exit 77): the tests that need only
# the Python standard library do not use this.
#
# Concurrent tests (make -j) serialise on a lock file while installing.

mltk_pyvenv()
{
    _dir="${top_builddir:-.}/tests/pyvenv"
    command -v python3 >/dev/null 2>&1 || { echo "pyvenv: no python3" >&2; return 1; }
    mkdir -p "${top_builddir:-.}/tests"
    (
        if command -v flock >/dev/null 2>&1; then
            flock 9
        fi
        if [ ! -x "$_dir/bin/python" ]; then
            python3 -m venv "$_dir" >&2 || { rm -rf "$_dir"; exit 1; }
        fi
        for _p in "$@"; do
            _mod=$(echo "$_p" | sed 's/[<>=].*//; s/-/_/g')
            if ! "$_dir/bin/python" -c "import $_mod" >/dev/null 2>&1; then
                "$_dir/bin/python" -m pip install -q --disable-pip-version-check \
                    --timeout 30 "$_p" >&2 || exit 1
            fi
        done
    ) 9>"${top_builddir:-.}/tests/pyvenv.lock" || return 1
    echo "$_dir/bin/python"
}
