#!/bin/sh
# test_ops_cli.sh - the operations of a long run, as the `mltk` command does them.
#
# What this is: runs the built ./mltk (the libtool wrapper in
# $top_builddir) and checks what a user relies on when a run is stopped
# or crashes: SIGTERM and SIGINT end a run with a checkpoint and exit
# 128+N, and `--resume auto` continues it to weights bit-identical to an
# uninterrupted run's; kill -9 at random moments of a run that writes a
# checkpoint every step never leaves a damaged ckpt-*.safetensors, and
# resuming after each kill still ends bit-identical; `mltk inspect` shows
# tensors and the position and refuses a damaged file in one message;
# `mltk plot` writes valid PNG files; [alert] commands see the events.
# The signals are sent from an [alert] command at a chosen checkpoint, so
# they land in the middle of the run whatever the machine's speed.
# What this is not: the session-level checks of the same machinery
# (tests/check_ops.c) or the plot's pixels (tests/check_plot.c).
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk),
# Fashion-MNIST in $FASHION_MNIST_DIR (default
# /usr/share/datasets/fashion-mnist; skipped, 77, without it) and python3
# for comparing tensors and reading PNG files (standard library only).

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
data_dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
mltk="$top_builddir/mltk"

tl_need_fashion_mnist
if ! command -v python3 >/dev/null 2>&1; then
    tl_skip "python3 is needed to compare tensors"
fi

bg=
tl_tmpdir ops '[ -n "$bg" ] && kill -9 $bg 2>/dev/null'

# ---- helpers ----

n_pass=0
n_fail=0

# check WHAT COMMAND...: COMMAND succeeds
check() {
    what=$1
    shift
    if "$@" >"$tmp/check.out" 2>&1; then
        pass "$what"
    else
        fail "$what"
        sed 's/^/    /' "$tmp/check.out"
    fi
}

# The nanbomb test layer, through a plugin directory of our own.
abi=$(sed -n 's/^#define MLTK_ABI_MAJOR \([0-9][0-9]*\).*/\1/p' \
    "$top_srcdir/include/mltk/plugin.h")
mkdir "$tmp/plugins"
sed -e "s|@NANBOMB_DIR@|$top_builddir/tests/plugins/.libs|" \
    -e "s|@MLTK_ABI_MAJOR@|$abi|" \
    "$top_srcdir/tests/plugins/nanbomb.ini.in" >"$tmp/plugins/nanbomb.ini"

# Standard-library readers of safetensors and PNG files.
cat >"$tmp/files.py" <<'EOF'
import json, struct, sys, zlib

def safetensors(path):
    with open(path, 'rb') as f:
        b = f.read()
    n, = struct.unpack('<Q', b[:8])
    header = json.loads(b[8:8 + n].decode('utf-8'))
    meta = header.pop('__metadata__', {})
    data = b[8 + n:]
    tensors = {}
    for name, t in header.items():
        lo, hi = t['data_offsets']
        tensors[name] = (t['dtype'], tuple(t['shape']), data[lo:hi])
    return meta, tensors

def same(a, b):
    """the tensors of two files: same names, dtypes, shapes and bytes"""
    ma, ta = safetensors(a)
    mb, tb = safetensors(b)
    bad = 0
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            print('%s only in %s' % (name, a if name in ta else b))
            bad += 1
        elif ta[name][:2] != tb[name][:2]:
            print('%s: %s %s vs %s %s' % ((name,) + ta[name][:2] + tb[name][:2]))
            bad += 1
        elif ta[name][2] != tb[name][2]:
            fa = struct.unpack('<%df' % (len(ta[name][2]) // 4), ta[name][2])
            fb = struct.unpack('<%df' % (len(tb[name][2]) // 4), tb[name][2])
            i = next(k for k in range(len(fa)) if fa[k] != fb[k])
            print('%s[%d]: %r vs %r' % (name, i, fa[i], fb[i]))
            bad += 1
    if ma.get('format') != 'mltk.weights' or mb.get('format') != 'mltk.weights':
        print('not both weights files: %r, %r' % (ma.get('format'), mb.get('format')))
        bad += 1
    print('%d tensors compared, %d differ' % (len(ta), bad))
    return bad == 0 and len(ta) > 0

def png(path, width=None, height=None):
    """a whole PNG: signature, chunks with good CRCs, IHDR first, IEND last,
    image data that inflates; and the size when given"""
    with open(path, 'rb') as f:
        b = f.read()
    if b[:8] != b'\x89PNG\r\n\x1a\n':
        print('no PNG signature')
        return False
    at, chunks, idat = 8, [], b''
    while at < len(b):
        n, kind = struct.unpack('>I4s', b[at:at + 8])
        body = b[at + 8:at + 8 + n]
        crc, = struct.unpack('>I', b[at + 8 + n:at + 12 + n])
        if zlib.crc32(kind + body) & 0xffffffff != crc:
            print('bad CRC in chunk %r' % kind)
            return False
        chunks.append(kind)
        if kind == b'IDAT':
            idat += body
        if kind == b'IHDR':
            w, h = struct.unpack('>II', body[:8])
        at += 12 + n
    if not chunks or chunks[0] != b'IHDR' or chunks[-1] != b'IEND':
        print('chunks: %r' % chunks)
        return False
    zlib.decompress(idat)
    print('%d x %d' % (w, h))
    if width is not None and (w, h) != (int(width), int(height)):
        print('expected %s x %s' % (width, height))
        return False
    return w > 0 and h > 0

if __name__ == '__main__':
    what = sys.argv[1]
    ok = same(*sys.argv[2:4]) if what == 'same' else png(*sys.argv[2:])
    sys.exit(0 if ok else 1)
EOF
same() { python3 "$tmp/files.py" same "$1" "$2"; }
png() { python3 "$tmp/files.py" png "$@"; }

# config FILE RUNDIR TRAIN_LIMIT EPOCHS LAYERS [SECTIONS]: a training
# config on the idx set with 256 test samples and batches of 64
config() {
    cat >"$1" <<EOF
# written by test_ops_cli.sh
[run]
seed = 5
backend = cpu
threads = 2
dir = $2

[train]
epochs = $4
batch_size = 64

[data]
type = idx
path = $data_dir
train_limit = $3
test_limit = 256

$5

[loss]
type = cross_entropy

[optimizer]
type = adamw
lr = 0.003

${6:-}
EOF
}

mlp="[layer.flat]
type = flatten

[layer.fc1]
type = dense
units = 32
activation = relu

[layer.out]
type = dense
units = 10"

# batchnorm's running statistics, dropout's mask, adamw's moments and a
# cosine schedule are all part of what a resume restores
cnn="[layer.conv]
type = conv2d
filters = 4
kernel = 3

[layer.bn]
type = batchnorm

[layer.act]
type = relu

[layer.flat]
type = flatten

[layer.drop]
type = dropout
rate = 0.2

[layer.out]
type = dense
units = 10

[schedule]
type = cosine"

# ---- a. SIGTERM and SIGINT end a run with a checkpoint; resume is exact ----

# 1024 samples: 16 steps an epoch, 48 in all.  The alert after the
# checkpoint of step 10 sends SIGTERM to mltk (the shell's parent), the one
# after step 20 SIGINT; each run then stops after the step in progress.
config "$tmp/ref.ini" "$tmp/ref" 1024 3 "$cnn" "[model]
save = $tmp/ref/final.safetensors"
run ref --config "$tmp/ref.ini" --quiet
expect_rc 0 "uninterrupted reference run"

config "$tmp/sig.ini" "$tmp/sig" 1024 3 "$cnn" "[checkpoint]
every_steps = 5

[alert]
on = checkpoint
command = if [ \"\$MLTK_STEP\" = 10 ]; then kill -TERM \$PPID; elif [ \"\$MLTK_STEP\" = 20 ]; then kill -INT \$PPID; fi

[model]
save = $tmp/sig/final.safetensors"
ck="$tmp/sig/checkpoints"

# (--verbose: the hint on how to continue is an info message)
run term --config "$tmp/sig.ini" --verbose
expect_rc 143 "SIGTERM at step 10 ends the run"
if [ -f "$ck/ckpt-000000000011.safetensors" ]; then
    pass "SIGTERM: checkpoint of step 11 written"
else
    fail "SIGTERM: no checkpoint of step 11 in $ck: $(ls "$ck" 2>&1 | tr '\n' ' ')"
fi
expect_in err "continue with --resume .*ckpt-000000000011\.safetensors" \
    "SIGTERM: the message says how to continue"
if [ -e "$tmp/sig/final.safetensors" ]; then
    fail "SIGTERM: the final weights were written by a stopped run"
else
    pass "SIGTERM: no final weights yet"
fi
check "SIGTERM: run.json says interrupted" \
    grep -q '"status": "interrupted"' "$tmp/sig/run.json"

# ---- c. mltk inspect (on the checkpoint of the interrupted run) ----

run inspect inspect "$ck/ckpt-000000000011.safetensors"
expect_rc 0 "inspect a checkpoint"
expect_in out '^format: +mltk\.checkpoint$' "inspect: format"
expect_in out '^step: +11$' "inspect: step 11"
expect_in out '^batch: +11$' "inspect: batch 11 of the epoch"
expect_in out '^epoch: +1 \(in progress: 11 batches done\)$' \
    "inspect: epoch 1, counted as the epoch lines count"
expect_in out '^conv\.weight +F32 +\(4, 1, 3, 3\) ' "inspect: conv.weight and its shape"
expect_in out '^bn\.running_var +F32 +\(4,\) ' "inspect: running statistics"
expect_in out '^optimizer\.slot1\.out\.weight +F32 +\(10, 2704\) ' \
    "inspect: optimizer state"
expect_in out '^optimizer: +adamw$' "inspect: the optimizer"
expect_in out '^type = adamw$' "inspect: the config text"

head -c 1000 "$ck/ckpt-000000000011.safetensors" >"$tmp/cut.safetensors"
run inspect_cut inspect "$tmp/cut.safetensors"
expect_rc 5 "inspect a truncated file (a data problem)"
if [ "$(wc -l <"$tmp/inspect_cut.err")" -eq 1 ] \
    && grep -q "^mltk: error: .*$tmp/cut\.safetensors" "$tmp/inspect_cut.err"; then
    pass "inspect a truncated file: one message naming it"
else
    fail "inspect a truncated file: stderr is not one message naming the file"
    sed 's/^/    /' "$tmp/inspect_cut.err"
fi

run inspect_usage inspect
expect_rc 2 "inspect without a file"

# a weights file is not something to resume from
run resume_weights --config "$tmp/sig.ini" --resume "$tmp/ref/final.safetensors"
expect_rc 5 "--resume with a weights file"
expect_in err "not a training checkpoint \(format 'mltk\.weights'\)" \
    "--resume with a weights file says what it is"

# ---- a (continued) ----

run int --config "$tmp/sig.ini" --resume auto
expect_rc 130 "resumed, then SIGINT at step 20 ends the run"
if [ -f "$ck/ckpt-000000000021.safetensors" ]; then
    pass "SIGINT: checkpoint of step 21 written"
else
    fail "SIGINT: no checkpoint of step 21: $(ls "$ck" 2>&1 | tr '\n' ' ')"
fi

run resume --config "$tmp/sig.ini" --resume auto --quiet
expect_rc 0 "--resume auto finishes the run"
check "twice interrupted and resumed: weights bit-identical to the reference" \
    same "$tmp/ref/final.safetensors" "$tmp/sig/final.safetensors"
check "run.json says finished" grep -q '"status": "finished"' "$tmp/sig/run.json"
if [ "$(wc -l <"$tmp/sig/metrics.jsonl")" -eq 3 ]; then
    pass "metrics.jsonl: one line per epoch over three processes"
else
    fail "metrics.jsonl has $(wc -l <"$tmp/sig/metrics.jsonl") lines, expected 3"
fi
# the epoch numbers of the resumed run are those of the reference
for k in train_loss val_loss val_acc; do
    a=$(sed -n "s/.*\"$k\": \([^,}]*\).*/\1/p" "$tmp/ref/metrics.jsonl" | tr '\n' ' ')
    b=$(sed -n "s/.*\"$k\": \([^,}]*\).*/\1/p" "$tmp/sig/metrics.jsonl" | tr '\n' ' ')
    if [ -n "$a" ] && [ "$a" = "$b" ]; then
        pass "metrics.jsonl: $k of every epoch as in the reference"
    else
        fail "metrics.jsonl: $k '$b', reference '$a'"
    fi
done

# ---- b. kill -9 at random moments ----

# 6400 samples, 8 epochs: 800 steps with a checkpoint after each.  Each
# round starts `--resume auto`, lets it write 1 to 20 checkpoints of its
# own (a random number), waits a random 0-20 ms more and kills it, so the
# kills fall anywhere in a step, checkpoint writing included, however
# fast the machine is.
config "$tmp/kref.ini" "$tmp/kref" 6400 8 "$mlp" "[model]
save = $tmp/kref/final.safetensors"
config "$tmp/kill.ini" "$tmp/kill" 6400 8 "$mlp" "[checkpoint]
every_steps = 1

[model]
save = $tmp/kill/final.safetensors"
ck="$tmp/kill/checkpoints"
newest() { ls "$ck"/ckpt-*.safetensors 2>/dev/null | LC_ALL=C sort | tail -n 1; }
# the step of the newest checkpoint, 0 without one
newest_step() {
    f=$(newest)
    if [ -n "$f" ]; then
        basename "$f" .safetensors | sed -e 's/^ckpt-0*//' -e 's/^$/0/'
    else
        echo 0
    fi
}
seed=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
echo "# kill -9 moments drawn with seed $seed"
# draw N: a number from the round's stream, N * uniform[0, 1)
draw() { awk -v s="$seed" -v r="$round" -v k="$1" -v n="$2" \
    'BEGIN { srand(s * 64 + r * 2 + k); printf "%.3f", n * rand() }'; }
kills=0
damaged=0
round=1
while [ $round -le 10 ]; do
    target=$(( $(newest_step) + 1 + $(draw 0 20 | cut -d. -f1) ))
    "$mltk" --config "$tmp/kill.ini" --resume auto --quiet \
        >"$tmp/kill-$round.out" 2>&1 </dev/null &
    bg=$!
    waited=0
    while [ "$(newest_step)" -lt $target ] && [ $waited -lt 2000 ] \
        && ! grep -q '"status": "f' "$tmp/kill/run.json" 2>/dev/null; do
        sleep 0.01
        waited=$((waited + 1))
    done
    sleep "$(draw 1 0.02)"
    kill -9 $bg 2>/dev/null
    { wait $bg; krc=$?; } 2>/dev/null
    bg=
    if [ $krc -eq 137 ]; then
        kills=$((kills + 1))
    elif [ $krc -ne 0 ]; then
        fail "kill round $round: the run failed by itself (exit $krc)"
        sed 's/^/    /' "$tmp/kill-$round.out"
    fi
    # every checkpoint there is whole
    for f in "$ck"/ckpt-*.safetensors; do
        [ -e "$f" ] || continue
        if ! "$mltk" inspect "$f" >"$tmp/kinspect.out" 2>&1; then
            damaged=$((damaged + 1))
            echo "  round $round: $f:"
            sed 's/^/    /' "$tmp/kinspect.out"
        fi
    done
    echo "# round $round: killed at step $(newest_step) or after (target $target)"
    round=$((round + 1))
done
latest=$(newest)
run kill_inspect inspect "$latest"
expect_rc 0 "inspect the newest checkpoint after the kills ($(basename "$latest"))"
if [ $damaged -eq 0 ]; then
    pass "kill -9 ($kills of 10 rounds killed a running mltk): no damaged ckpt-*.safetensors"
else
    fail "kill -9: $damaged damaged checkpoint(s)"
fi
if [ $kills -ge 8 ]; then
    pass "kill -9 landed in $kills rounds"
else
    fail "kill -9 landed in only $kills of 10 rounds"
fi
run kill_resume --config "$tmp/kill.ini" --resume auto --quiet
expect_rc 0 "--resume auto after the kills finishes the run"
run kref --config "$tmp/kref.ini" --quiet
expect_rc 0 "uninterrupted reference of the killed run"
check "killed $kills times and resumed: weights bit-identical to the reference" \
    same "$tmp/kref/final.safetensors" "$tmp/kill/final.safetensors"

# ---- d. mltk plot ----

# fontconfig, under cairo's text API, keeps its caches for the life of the
# process; under --enable-sanitizers LeakSanitizer would end `mltk plot`
# with status 1 for them (tests/check_plot.c suppresses the same).  Other
# leaks are still reported.
printf 'leak:libfontconfig.so\n' >"$tmp/lsan.supp"
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$tmp/lsan.supp:print_suppressions=0"
export LSAN_OPTIONS

width=$(sed -n 's/^#define MLTK_PLOT_CURVES_WIDTH *\([0-9]*\).*/\1/p' \
    "$top_srcdir/core/cli/plot.h")
height=$(sed -n 's/^#define MLTK_PLOT_CURVES_HEIGHT *\([0-9]*\).*/\1/p' \
    "$top_srcdir/core/cli/plot.h")
run plot plot "$tmp/ref" "$tmp/sig" -o "$tmp/curves.png"
expect_rc 0 "plot two run directories"
check "plot: a whole PNG of ${width}x$height" png "$tmp/curves.png" "$width" "$height"
run plot_cm plot --confusion "$tmp/ref" -o "$tmp/cm.png"
expect_rc 0 "plot --confusion of a run directory"
check "plot --confusion: a whole PNG" png "$tmp/cm.png"
run plot_noout plot "$tmp/ref"
expect_rc 2 "plot without -o"
run plot_nodir plot -o "$tmp/x.png"
expect_rc 2 "plot without a run directory"
run plot_cm2 plot --confusion "$tmp/ref" "$tmp/sig" -o "$tmp/x.png"
expect_rc 2 "plot --confusion of two runs"
run plot_opt plot --frobnicate "$tmp/ref" -o "$tmp/x.png"
expect_rc 2 "plot with an unknown option"
expect_in err 'frobnicate' "plot: the unknown option is named"
if [ -e "$tmp/x.png" ]; then
    fail "plot: a refused command wrote its output"
else
    pass "plot: refused commands write nothing"
fi

# ---- e. alerts ----

alert="[alert]
command = echo \"\$MLTK_EVENT \$MLTK_EPOCH \$MLTK_STEP\" >>$tmp/events"
config "$tmp/alert.ini" "$tmp/alert" 512 2 "$mlp" "$alert"
run alert --config "$tmp/alert.ini" --quiet
expect_rc 0 "a run with an alert"
check "alert: 'finished' after 2 epochs, 16 steps" \
    test "$(cat "$tmp/events" 2>/dev/null)" = "finished 2 16"

rm -f "$tmp/events"
config "$tmp/nan.ini" "$tmp/nan" 512 2 "[layer.flat]
type = flatten

[layer.fc1]
type = dense
units = 32
activation = relu

[layer.bomb]
type = nanbomb
at_step = 5

[layer.out]
type = dense
units = 10" "$alert"
run nan --config "$tmp/nan.ini" --quiet --plugin-dir "$tmp/plugins"
expect_rc 1 "a run whose loss turns NaN"
expect_in err "non-finite loss at step 5 .*layer 'bomb' \(nanbomb\)" \
    "NaN: the message names the step and the layer"
check "alert: 'nan' at step 5, and nothing else" \
    test "$(cat "$tmp/events" 2>/dev/null)" = "nan 1 5"
check "NaN: run.json says failed" grep -q '"status": "failed"' "$tmp/nan/run.json"

# ---- summary ----

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ] || exit 1
exit 0
