#!/bin/sh
# loose-tree.sh BUILDDIR - is this a tree mltk would refuse plugins from?
#
# What this is: the test suite's check (tests/plugins.mk) whether the
# build tree, or what the tests create under the current umask, is
# writable by the group or by others - as a tree built under umask 002 is.
# mltk refuses plugin directories, descriptors and libraries that others
# may write to (and a directory above them that is not sticky); in such a
# tree the tests run with MLTK_ALLOW_INSECURE_PLUGIN_DIR=1.  Exits 0 when
# the tree is loose, 1 when mltk would trust it.
# What this is not: the check itself (core/registry.c), which the tests of
# the refusal exercise with the variable unset.

dir=${1:?usage: loose-tree.sh BUILDDIR}

# files the tests create
case $(umask) in
    *[0145][0-7] | *[0-7][0145]) exit 0 ;;
esac
uid=$(id -u)

# the build tree, where the plugins and the test modules are
[ -n "$(find "$dir" \( -type d -o \( -type f \( -name '*.ini' -o -name '*.so' \) \) \) \
        \( -perm -g+w -o -perm -o+w -o \( ! -user 0 ! -user "$uid" \) \) \
        -print 2>/dev/null | head -n 1)" ] && exit 0

# the directories above it (a sticky one, as /tmp, is fine)
d=$(cd "$dir" && pwd -P) || exit 1
while [ "$d" != / ] && [ -n "$d" ]; do
    d=$(dirname "$d")
    [ -n "$(find "$d" -maxdepth 0 \( \( \( -perm -g+w -o -perm -o+w \) ! -perm -1000 \) \
            -o \( ! -user 0 ! -user "$uid" \) \) -print 2>/dev/null)" ] && exit 0
done
exit 1
