#!/bin/sh
# test_reconfigure.sh - a built tree configured again for another prefix.
#
# What this is: the sequence `configure --prefix=A; make; configure
# --prefix=B; make; make install` in a fresh copy of the distributed
# sources (`make distdir`, built in place, without cuda), then checks that
# the mltk installed under B runs with B's libmltk and lists its plugins
# from B's plugin directory without MLTK_PLUGIN_PATH, and that nothing of
# A's prefix is compiled into what B installed.  The second make must
# rebuild what embeds the directories (core/paths.h) and relink every
# library, or `make install` fails ("cannot install ... to a directory not
# ending in A/lib/mltk") or the installed mltk looks for its plugins in A.
# What this is not: part of `make check` (two builds take minutes); run it
# with `make check-reconfigure`.
#
# Needs: top_srcdir, top_builddir and MAKE (exported by the
# check-reconfigure rule); the build's own dependencies.

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check-reconfigure)}"
: "${top_builddir:?top_builddir must be set (run through make check-reconfigure)}"
. "$top_srcdir/tests/testlib.sh"
MAKE=${MAKE:-make}

tl_tmpdir reconf

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

# step NAME COMMAND...: run in the build directory, log to $tmp/NAME.log
step() {
    name=$1
    shift
    (cd "$tmp/src" && "$@") >"$tmp/$name.log" 2>&1 \
        || { tail -n 30 "$tmp/$name.log"; die "$name: $*"; }
}

a="$tmp/a"
b="$tmp/b"
# MAKEFLAGS of an outer make would leak into the builds
unset MAKEFLAGS MFLAGS MAKELEVEL

$MAKE -C "$top_builddir" distdir distdir="$tmp/src" >"$tmp/distdir.log" 2>&1 \
    || { tail -n 30 "$tmp/distdir.log"; die "make distdir"; }
step configure-a ./configure --prefix="$a" --without-cuda
step make-a $MAKE -j2
ok "configured for $a and built"

step configure-b ./configure --prefix="$b" --without-cuda
grep -q "$b/lib/mltk" "$tmp/configure-b.log" \
    || die "configure's summary does not name $b/lib/mltk"
step make-b $MAKE -j2
grep -q "MLTK_PLUGIN_DIR \"$b/lib/mltk\"" "$tmp/src/core/paths.h" \
    || { cat "$tmp/src/core/paths.h"; die "core/paths.h does not name $b/lib/mltk"; }
ok "configured again for $b and rebuilt"

step install-b $MAKE install
[ -x "$b/bin/mltk" ] || die "no $b/bin/mltk"
[ ! -e "$a" ] || die "make install wrote under the old prefix $a"
ok "make install put mltk under $b"

# nothing of A's prefix stays compiled into what B installed
for f in "$b/bin/mltk" "$b"/lib/libmltk.so.* "$b"/lib/mltk/*.so; do
    [ -f "$f" ] || continue
    if grep -F -q "$a/" "$f"; then
        die "$f still names the old prefix $a"
    fi
done
ok "no installed library or program names $a"

# the installed mltk finds B's libmltk and B's plugins by itself
ldd "$b/bin/mltk" >"$tmp/ldd.out" 2>&1
grep -q "libmltk.so.* => $b/lib/libmltk.so" "$tmp/ldd.out" \
    || { cat "$tmp/ldd.out"; die "$b/bin/mltk does not load $b/lib/libmltk.so"; }
(cd "$tmp" && env -u MLTK_PLUGIN_PATH -u LD_LIBRARY_PATH "$b/bin/mltk" plugins) \
    >"$tmp/plugins.out" 2>"$tmp/plugins.err" \
    || { cat "$tmp/plugins.err"; die "$b/bin/mltk plugins"; }
for p in cpu dense relu cross_entropy adam idx; do
    grep -E -q "^$p[[:space:]].*$b/lib/mltk/$p\\.ini\$" "$tmp/plugins.out" \
        || { cat "$tmp/plugins.out"; die "mltk plugins does not list $p from $b/lib/mltk"; }
done
ok "$b/bin/mltk lists its plugins from $b/lib/mltk"

echo "$n_pass passed, 0 failed"
exit 0
