# testlib.sh - the preamble the shell tests share, sourced after they have
# checked that top_srcdir is set:
#
#     : "${top_srcdir:?top_srcdir must be set (run through make check)}"
#     . "$top_srcdir/tests/testlib.sh"
#     tl_tmpdir cli
#
# What this is: the checks of the test environment (top_builddir and
# top_srcdir, exported by tests/local.mk) and a fresh temporary directory
# $tmp that is removed on exit, with a signal ending the test as an error
# (exit status 99, as automake's test driver reads it).  Skip rules (exit
# 77) stay in each test, which knows what it needs.
# What this is not: a test framework: the checks at the end are shared
# helpers, and each test reports its own summary.

set -u

: "${top_builddir:?top_builddir must be set (run through make check)}"
: "${top_srcdir:?top_srcdir must be set (run through make check)}"

# tl_tmpdir NAME [CLEANUP]: make $tmp, "${TMPDIR:-/tmp}/mltk-NAME.XXXXXX";
# on exit run CLEANUP (shell code, e.g. killing a background job), then
# remove $tmp.
tl_tmpdir() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/mltk-$1.XXXXXX") || exit 99
    trap "${2:-:}; rm -rf \"\$tmp\"" EXIT
    trap 'exit 99' HUP INT TERM
}

# ---- checks, for the tests that count them ----
# A test sets mltk (the program to run) and n_pass=0 n_fail=0, then ends
# with `echo "$n_pass passed, $n_fail failed"; [ "$n_fail" -eq 0 ]`.  A
# test may define its own version of any of these after sourcing this.

pass() { n_pass=$((n_pass + 1)); echo "ok   - $1"; }
fail() { n_fail=$((n_fail + 1)); echo "FAIL - $1"; }

# run NAME ARGS...: run mltk, keep stdout, stderr and the exit status
run() {
    name=$1
    shift
    "$mltk" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
    rc=$?
}

show() {
    echo "  stdout:"; sed 's/^/    /' "$tmp/$name.out"
    echo "  stderr:"; sed 's/^/    /' "$tmp/$name.err"
}

# expect_rc WANT WHAT: the last run exited with WANT
expect_rc() {
    if [ "$rc" -eq "$1" ]; then
        pass "$2: exit $1"
    else
        fail "$2: exit $rc, expected $1"
        show
    fi
}

# expect_in out|err PATTERN WHAT: the last run's output matches the
# extended regular expression PATTERN
expect_in() {
    if grep -Eq -- "$2" "$tmp/$name.$1"; then
        pass "$3"
    else
        fail "$3: no match for /$2/ in std$1"
        sed 's/^/    /' "$tmp/$name.$1"
    fi
}

# tl_skip WHY: skip the test (exit 77); under CI=true fail it instead (exit
# 1), since CI installs everything the tests need and a skip there would
# hide a test that never ran.
tl_skip() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $1 (CI=true: the test must run, not skip)" >&2
        exit 1
    fi
    echo "skip: $1"
    exit 77
}

# tl_need_fashion_mnist: the Fashion-MNIST IDX files in $data_dir
# ($FASHION_MNIST_DIR, default Debian's dataset-fashion-mnist), or tl_skip
tl_need_fashion_mnist() {
    data_dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
    [ -f "$data_dir/train-images-idx3-ubyte.gz" ] || tl_skip "no Fashion-MNIST in $data_dir"
}
