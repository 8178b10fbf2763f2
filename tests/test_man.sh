#!/bin/sh
# test_man.sh - every plugin and every key of its descriptor is documented
# in mltk.ini(5), and every core section key too; every op of the op table
# (include/mltk/backend.h) has its row in mltk-plugin(7).  When this fails
# after a descriptor changed, run: python3 man/gen-plugin-ref.py
set -u
src=${top_srcdir:?}
page="$src/man/mltk.ini.5"
fail=0; n=0
for d in $(find "$src" -name '*.ini.in' -not -path '*/tests/*' | sort); do
    name=$(sed -n 's/^name *= *//p' "$d" | head -n 1)
    # the page's subsection for this plugin: from ".SS name" to the next .SS/.SH
    body=$(awk -v n="$name" '$0 == ".SS " n {on=1; next} on && /^\.S[SH] / {exit} on' "$page")
    n=$((n + 1))
    if [ -z "$body" ]; then
        echo "FAIL: plugin '$name' ($d) has no section in mltk.ini.5"; fail=$((fail + 1)); continue
    fi
    for key in $(sed -n 's/^\[param\.\(.*\)\]$/\1/p' "$d"); do
        n=$((n + 1))
        if ! printf '%s\n' "$body" | grep -q "^\.BR\{0,1\} $key\b"; then
            echo "FAIL: key '$key' of plugin '$name' is not documented in mltk.ini.5"
            fail=$((fail + 1))
        fi
    done
done
# the core's own sections (core/schema.c)
for key in $(sed -n 's/.*\[param\.\([a-z_]*\)\].*/\1/p' "$src/core/schema.c"); do
    n=$((n + 1))
    grep -q "^\.BR $key\b" "$page" || { echo "FAIL: core key '$key' is not documented in mltk.ini.5"; fail=$((fail + 1)); }
done
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
