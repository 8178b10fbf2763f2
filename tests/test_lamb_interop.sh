#!/bin/sh
# test_lamb_interop.sh - mltk's LAMB against optax's, all of its state.
#
# What this is: tests/lamb_ref.py writes the inputs of three cases
# (parameters in seven tensors, some crossing the cpu backend's chunk
# boundaries, one starting at zero, one never given a gradient; the
# gradients and rate of each of 4 to 6 steps; beta1, beta2, eps and
# weight_decay), tests/opt_steps runs mltk's lamb plugin on them, and
# lamb_ref.py runs optax.lamb (an independent implementation, from the
# Python environment of tests/pyvenv.sh) on the same inputs and compares
# the parameters, the first and the second moment after every step, at
# the tolerance its opening comment states.  A control run with eps under
# the square root must miss that tolerance.
# What this is not: the unit test of the lamb_step op (check_optim2.c),
# or a test of lr_mult, which optax does not have.
#
# Needs top_builddir and top_srcdir (tests/local.mk exports them).  Without
# python3 or the packages (no network) it is skipped (exit 77), except under
# CI=true, where that is a failure.

set -u
: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
. "$top_srcdir/tests/pyvenv.sh"
drv="$top_builddir/tests/opt_steps"
ref="$top_srcdir/tests/lamb_ref.py"

[ -x "$drv" ] || { echo "FAIL: $drv is not built"; exit 1; }
PY=$(mltk_pyvenv numpy safetensors jax jaxlib optax) \
    || mltk_unavailable "no Python environment with numpy, safetensors and optax"

tl_tmpdir lamb
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

"$PY" "$ref" write "$tmp" || fail "lamb_ref.py write"
for in in "$tmp"/case-*.in.safetensors; do
    "$drv" "$in" "${in%.in.safetensors}.out.safetensors" || fail "tests/opt_steps $in"
done
echo "ok   - mltk's lamb plugin ran every case"

# jax on the cpu, without probing for accelerators (or warning about them)
JAX_PLATFORMS=cpu "$PY" "$ref" compare "$tmp" >"$tmp/compare.out" 2>"$tmp/compare.err"
rc=$?
cat "$tmp/compare.out"
[ "$rc" -eq 0 ] || { cat "$tmp/compare.err"; fail "mltk's LAMB differs from optax's"; }
n_ok=$(grep -c '^ok ' "$tmp/compare.out")
echo "$((n_ok + 1)) passed, 0 failed"
exit 0
