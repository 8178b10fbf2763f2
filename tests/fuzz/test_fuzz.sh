#!/bin/sh
# test_fuzz.sh - every fuzz harness over its seed corpus, and a short
# libFuzzer run of each where the libFuzzer builds exist.
#
# What this is: tests/fuzz/replay_NAME replays tests/fuzz/corpus/NAME (the
# seeds and the inputs of fixed crashes) through harness NAME; where
# `make fuzz` has built tests/fuzz/fuzz_NAME (configure found a clang with
# libFuzzer), that also runs for a fixed number of runs from seed 1
# (FUZZ_RUNS overrides the numbers below).  New inputs go to a temporary
# directory, never into the source tree; a crash leaves its input in
# tests/fuzz/crash-NAME-* in the build tree and fails the test.
# What this is not: the long fuzzing campaign (tests/fuzz/README.md).
: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
tl_tmpdir fuzz

fail=0
# NAME:RUNS:MAX_LEN; the config harness is the slowest (some 500 runs/s)
for spec in ini:20000:4096 config:2000:4096 descriptor:5000:4096 \
            safetensors:5000:2048 idx:5000:512 metrics_jsonl:5000:2048 \
            csv:20000:2048 image:5000:4096 cifar:20000:8192 tokens:50000:2048; do
    name=${spec%%:*}
    rest=${spec#*:}
    runs=${FUZZ_RUNS:-${rest%%:*}}
    maxlen=${rest#*:}
    corpus=$top_srcdir/tests/fuzz/corpus/$name
    if ! "$top_builddir/tests/fuzz/replay_$name" "$corpus"; then
        echo "FAIL: replay_$name over $corpus" >&2
        fail=1
        continue
    fi
    fuzzer=$top_builddir/tests/fuzz/fuzz_$name
    [ -x "$fuzzer" ] || continue
    mkdir -p "$tmp/$name"
    if ! "$fuzzer" -runs="$runs" -seed=1 -max_len="$maxlen" \
            -artifact_prefix="$top_builddir/tests/fuzz/crash-$name-" \
            "$tmp/$name" "$corpus" > "$tmp/$name.log" 2>&1; then
        tail -n 40 "$tmp/$name.log" >&2
        echo "FAIL: fuzz_$name -runs=$runs -seed=1 (input in tests/fuzz/crash-$name-*)" >&2
        fail=1
        continue
    fi
    echo "fuzz_$name: $(grep '^Done' "$tmp/$name.log")"
done
exit $fail
