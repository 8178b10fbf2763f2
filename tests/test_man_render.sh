#!/bin/sh
# test_man_render.sh - the manual pages render without stray escapes.
#
# What this is: renders man/mltk.1, man/mltk.ini.5 and man/mltk-plugin.7
# as man(1) would (groff -t -man -Tutf8) and fails on any backslash in
# the rendered text, which is an escape printed literally (the generated
# plugin reference once showed "\(>= 1" for "≥ 1"), and checks that the
# generated plugin reference shows its lower bounds as ≥.
# What this is not: the check that every key is documented
# (tests/test_man.sh).
#
# Needs: top_srcdir (exported by tests/local.mk) and groff; skipped (77)
# without groff.

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"

if ! command -v groff >/dev/null 2>&1; then
    tl_skip "groff is needed to render the pages"
fi

tl_tmpdir manr

n_fail=0
for page in mltk.1 mltk.ini.5 mltk-plugin.7; do
    # -P-cbou: plain text, no overstriking or colours
    if ! groff -t -man -Tutf8 -P-cbou "$top_srcdir/man/$page" >"$tmp/$page.txt" 2>"$tmp/$page.err"; then
        cat "$tmp/$page.err"
        echo "FAIL - groff cannot render man/$page"
        n_fail=$((n_fail + 1))
        continue
    fi
    if grep -n '\\' "$tmp/$page.txt" >"$tmp/$page.bad"; then
        sed 's/^/    /' "$tmp/$page.bad"
        echo "FAIL - man/$page shows escapes literally (a backslash in the rendered text)"
        n_fail=$((n_fail + 1))
    else
        echo "ok   - man/$page renders without a literal escape"
    fi
done

# a lower bound alone is written \(>= N, and shown as the glyph
n_ge=$(grep -c '\\(>= ' "$top_srcdir/man/mltk.ini.5")
n_glyph=$(grep -c '≥ ' "$tmp/mltk.ini.5.txt")
if [ "$n_glyph" -ge "$n_ge" ]; then
    echo "ok   - mltk.ini(5) shows its $n_ge lower bounds as ≥"
else
    echo "FAIL - mltk.ini(5) has $n_ge lower bounds, but only $n_glyph show as ≥"
    n_fail=$((n_fail + 1))
fi

[ "$n_fail" -eq 0 ] || exit 1
exit 0
