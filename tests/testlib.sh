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
# What this is not: a test framework; each test reports in its own way.

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
