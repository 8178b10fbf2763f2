#!/bin/sh
# test_man.sh - every plugin and every key of its descriptor is documented
# in mltk.ini(5), and every core section key too, each in its own
# subsection; every op of the op table (include/mltk/backend.h) has its
# row in mltk-plugin(7).
#
# A key counts as documented when it is the tag of a .TP paragraph
# (".TP" then ".B key" or ".BR key ...") in its own subsection: a core
# key of [train] in ".SS [train]" of THE CORE SECTIONS (a [layer.NAME]
# key in ".SS [layer.NAME]"), a key of the layer plugin dense in ".SS
# dense" of LAYER PLUGINS.  So a key of the same name elsewhere (a
# plugin's lr, a core [checkpoint] monitor) does not stand in for it, and
# every tag of those subsections must be a key of that section (nothing
# documented that the code does not read).  When this fails after a
# descriptor changed, run: python3 man/gen-plugin-ref.py
set -u
src=${top_srcdir:?}
page="$src/man/mltk.ini.5"
fail=0; n=0

# has_ss SH SS: the page has subsection ".SS SS" in section ".SH SH"
has_ss() {
    awk -v sh="$1" -v ss="$2" '
        /^\.SH / { insh = (substr($0, 5) == sh) }
        insh && $0 == ".SS " ss { found = 1 }
        END { exit !found }' "$page"
}

# tags SH SS: the first word of each .TP tag in that subsection, a line each
tags() {
    awk -v sh="$1" -v ss="$2" '
        /^\.SH / { insh = (substr($0, 5) == sh); inss = 0; prev = ""; next }
        /^\.SS / { inss = insh && (substr($0, 5) == ss); prev = ""; next }
        inss && prev == ".TP" && ($1 == ".B" || $1 == ".BR") { print $2 }
        { prev = $0 }' "$page"
}

# check WHAT SH SS KEYS...: each key is a tag of the subsection, and each
# tag one of the keys
check() {
    what=$1; sh=$2; ss=$3
    shift 3
    n=$((n + 1))
    if ! has_ss "$sh" "$ss"; then
        echo "FAIL: $what has no subsection '.SS $ss' under '.SH $sh' in mltk.ini.5"
        fail=$((fail + 1))
        return
    fi
    documented=$(tags "$sh" "$ss")
    for key in "$@"; do
        n=$((n + 1))
        if ! printf '%s\n' "$documented" | grep -qx -- "$key"; then
            echo "FAIL: key '$key' of $what is not documented in '.SS $ss' of mltk.ini.5"
            fail=$((fail + 1))
        fi
    done
    for tag in $documented; do
        n=$((n + 1))
        case " $* " in
            *" $tag "*) ;;
            *) echo "FAIL: '.SS $ss' of mltk.ini.5 documents '$tag', which is no key of $what"
               fail=$((fail + 1)) ;;
        esac
    done
}

# the plugins: ".SS name" under ".SH KIND PLUGINS"
check_plugins() {
    for d in $(find "$src" -name '*.ini.in' -not -path '*/tests/*' | sort); do
        name=$(sed -n 's/^name *= *//p' "$d" | head -n 1)
        kind=$(sed -n 's/^kind *= *//p' "$d" | head -n 1)
        sh="$(printf '%s' "$kind" | tr 'a-z' 'A-Z') PLUGINS"
        # shellcheck disable=SC2046
        check "plugin '$name' ($d)" "$sh" "$name" $(sed -n 's/^\[param\.\(.*\)\]$/\1/p' "$d")
    done
}

# the core's own sections (core/schema.c): "[plugin]\nname = train\n" opens
# one, its "[param.KEY]" strings follow; ".SS [train]" (or ".SS
# [layer.NAME]") under ".SH THE CORE SECTIONS"
schema=$(awk '{
        if (match($0, /\[plugin\]\\nname = [a-z_0-9]+/)) {
            s = substr($0, RSTART, RLENGTH); sub(/.*name = /, "", s); print "section", s
        }
        while (match($0, /\[param\.[a-z_0-9]+\]/)) {
            print "key", substr($0, RSTART + 7, RLENGTH - 8); $0 = substr($0, RSTART + RLENGTH)
        }
    }' "$src/core/schema.c")
[ -n "$schema" ] || { echo "FAIL: no sections found in core/schema.c"; exit 1; }
core_check() {
    [ -n "$sec" ] || return 0
    ss="[$sec]"
    has_ss "THE CORE SECTIONS" "$ss" || ss="[$sec.NAME]"
    # shellcheck disable=SC2086
    check "core section [$sec] (core/schema.c)" "THE CORE SECTIONS" "$ss" $keys
}
check_core() {
    sec=; keys=
    while read -r what word; do
        if [ "$what" = section ]; then
            core_check
            sec=$word; keys=
        else
            keys="$keys $word"
        fi
    done <<EOF_SCHEMA
$schema
EOF_SCHEMA
    core_check
}

check_plugins
check_core

# the check itself: a page whose [checkpoint] section lost its monitor tag
# fails, though [early_stopping] documents a key of that name, and so does
# one whose dense section documents a key dense does not have
tmp=$(mktemp "${TMPDIR:-/tmp}/mltk-man.XXXXXX") || exit 99
trap 'rm -f "$tmp"' EXIT
real_page=$page; real_n=$n; real_fail=$fail
awk '/^\.SS / { ck = ($0 == ".SS [checkpoint]"); d = ($0 == ".SS dense") }
     ck && prev == ".TP" && $1 == ".BR" && $2 == "monitor" { $2 = "monitored" }
     d && prev == ".TP" && $1 == ".BR" && $2 == "units" { print; print "x"; print ".TP"; $2 = "unit" }
     { print; prev = $0 }' "$real_page" >"$tmp"
page=$tmp
got=$(check_core; check_plugins)
page=$real_page; n=$((real_n + 1)); fail=$real_fail
for want in "FAIL: key 'monitor' of core section [checkpoint] (core/schema.c) is not documented in '.SS [checkpoint]' of mltk.ini.5" \
            "FAIL: '.SS dense' of mltk.ini.5 documents 'unit', which is no key of plugin 'dense' ($src/layers/dense.ini.in)"; do
    if ! printf '%s\n' "$got" | grep -qxF -- "$want"; then
        echo "FAIL: the check of a broken page did not say: $want"
        printf '%s\n' "$got" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
if [ "$(printf '%s\n' "$got" | grep -c '^FAIL')" -ne 3 ]; then
    echo "FAIL: the broken page gave other failures than the three expected:"
    printf '%s\n' "$got" | sed 's/^/    /'
    fail=$((fail + 1))
fi
# the op table of mltk-plugin(7): a row "ID<tab>name<tab>" per op id
ops=$(sed -n 's/^ *MLTK_OP_\([A-Z0-9_]*\) *= *\([0-9][0-9]*\),.*/\2 \1/p' \
      "$src/include/mltk/backend.h")
plugin_page="$src/man/mltk-plugin.7"
while read -r id op; do
    [ "$id" = 0 ] && continue   # MLTK_OP_NONE
    n=$((n + 1))
    name=$(printf '%s\n' "$op" | tr 'A-Z' 'a-z')
    if ! grep -q "^$id	$name	" "$plugin_page"; then
        echo "FAIL: op $id ($name) has no row in the op table of mltk-plugin.7"
        fail=$((fail + 1))
    fi
done <<EOF_OPS
$ops
EOF_OPS
echo "$((n - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
