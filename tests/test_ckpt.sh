#!/bin/sh
# test_ckpt.sh - checkpoints that are damaged, old or unusable, and the
# outputs of a run, as the `mltk` command meets them.
#
# What this is: runs the built ./mltk (the libtool wrapper in
# $top_builddir) on small runs and checks that every reader of a
# checkpoint or weights file (inspect, --resume, init_from) verifies each
# tensor's CRC-32C and the metadata's types and ranges, naming the file
# and the tensor or key (exit 5); that a checkpoint from before checksums
# is accepted with a warning; that --resume auto goes back to the newest
# good checkpoint, still bit-identical to an uninterrupted run; that the
# temporary files of a killed writer are removed and a live one's are not;
# that unusable output paths are config errors (exit 3, file:line and key)
# before training, and weights a failed final write would lose are
# written elsewhere; exit codes and messages of a missing --resume or
# init_from file; the run's clock, first start and resume times across a
# resume; and epoch numbers counted from 1 everywhere.
# What this is not: the signals and kill -9 tests (tests/test_ops_cli.sh)
# or the session-level checks (tests/check_ops.c).
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk),
# Fashion-MNIST in $FASHION_MNIST_DIR (default
# /usr/share/datasets/fashion-mnist; skipped, 77, without it) and python3
# (standard library only) to edit safetensors files.

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
data_dir=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
mltk="$top_builddir/mltk"

tl_need_fashion_mnist
if ! command -v python3 >/dev/null 2>&1; then
    tl_skip "python3 is needed to edit safetensors files"
fi

tl_tmpdir ckpt

# ---- helpers ----

n_pass=0
n_fail=0

# expect_not_in out|err PATTERN WHAT
expect_not_in() {
    if grep -Eq -- "$2" "$tmp/$name.$1"; then
        fail "$3: /$2/ in std$1"
        sed 's/^/    /' "$tmp/$name.$1"
    else
        pass "$3"
    fi
}

# expect_one_line WHAT: the last run's stderr is one line
expect_one_line() {
    if [ "$(wc -l <"$tmp/$name.err")" -eq 1 ]; then
        pass "$1: one line on stderr"
    else
        fail "$1: stderr is not one line"
        sed 's/^/    /' "$tmp/$name.err"
    fi
}

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

# line_of FILE TEXT: the number of the first line of FILE that is TEXT
line_of() { grep -nxF -- "$2" "$1" | head -n 1 | cut -d: -f1; }

# Standard-library editing of safetensors files.
cat >"$tmp/st.py" <<'EOF'
import json, struct, sys

def load(path):
    with open(path, 'rb') as f:
        b = f.read()
    n, = struct.unpack('<Q', b[:8])
    return json.loads(b[8:8 + n].decode('utf-8')), b[8 + n:]

def save(path, header, data):
    h = json.dumps(header).encode('utf-8')
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + data)

what, src, dst = sys.argv[1:4]
header, data = load(src)
meta = header.setdefault('__metadata__', {})
if what == 'flip':          # flip TENSOR: one bit of the tensor's first byte
    lo, hi = header[sys.argv[4]]['data_offsets']
    data = data[:lo] + bytes([data[lo] ^ 0x10]) + data[lo + 1:]
elif what == 'set':         # set KEY VALUE
    meta[sys.argv[4]] = sys.argv[5]
elif what == 'drop':        # drop KEY
    del meta[sys.argv[4]]
elif what == 'nocrc':       # the file as an mltk without checksums wrote it
    for k in [k for k in meta if k.startswith('crc32c.')]:
        del meta[k]
elif what == 'meta':        # meta KEY: print the value
    print(meta.get(sys.argv[4], ''))
    sys.exit(0)
save(dst, header, data)
EOF
st() { python3 "$tmp/st.py" "$@"; }

# config FILE RUNDIR EPOCHS [SECTIONS]: a small classifier on 256 samples,
# 4 steps an epoch
config() {
    cat >"$1" <<EOF
# written by test_ckpt.sh
[run]
seed = 3
backend = cpu
threads = 2
dir = $2

[train]
epochs = $3
batch_size = 64

[data]
type = idx
path = $data_dir
train_limit = 256
test_limit = 64

[layer.flat]
type = flatten

[layer.fc1]
type = dense
units = 16
activation = relu

[layer.out]
type = dense
units = 10

[loss]
type = cross_entropy

[optimizer]
type = adam
lr = 0.003

${4:-}
EOF
}

# ---- a reference run, and one that writes a checkpoint every 2 steps ----

config "$tmp/ref.ini" "$tmp/ref" 3 "[model]
save = $tmp/ref/final.safetensors"
run ref --config "$tmp/ref.ini" --quiet
expect_rc 0 "reference run"

ckpt_sections="[checkpoint]
every_steps = 2
keep_last = 10

[model]
save = $tmp/a/final.safetensors"
config "$tmp/a.ini" "$tmp/a" 2 "$ckpt_sections"
run a --config "$tmp/a.ini"
expect_rc 0 "a run with checkpoints"
ck="$tmp/a/checkpoints"
c2="$ck/ckpt-000000000002.safetensors"
c4="$ck/ckpt-000000000004.safetensors"
c6="$ck/ckpt-000000000006.safetensors"
c8="$ck/ckpt-000000000008.safetensors"
for f in "$c2" "$c4" "$c6" "$c8"; do
    [ -f "$f" ] || fail "no checkpoint $f: $(ls "$ck" 2>&1 | tr '\n' ' ')"
done
# the epoch lines count from 1
expect_in out '^epoch 1/2 ' "epoch lines start at 1"
expect_in out '^epoch 2/2 ' "the last epoch line is 2/2"
check "metrics.jsonl counts epochs from 1" \
    test "$(sed -n 's/^{"epoch": \([0-9]*\),.*/\1/p' "$tmp/a/metrics.jsonl" | tr '\n' ' ')" \
    = "1 2 "

# ---- inspect: checksums, readable numbers, epochs from 1 ----

run inspect_mid inspect "$c6"
expect_rc 0 "inspect a checkpoint"
expect_in out '^checksums: +12 tensors verified \(CRC-32C\)$' \
    "inspect: every tensor's checksum verified"
expect_in out '^lr_factor: +1$' "inspect: lr_factor as a number, not 0x1p+0"
expect_not_in out '0x[0-9a-f.]*p[-+]' "inspect: no hexadecimal floats"
expect_in out '^epoch: +2 \(in progress: 2 batches done\)$' \
    "inspect: a checkpoint inside epoch 2 says epoch 2"
expect_in out '^step: +6$' "inspect: step 6"
expect_in out '^started: +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "inspect: the run's start"
run inspect_end inspect "$c4"
expect_in out '^epoch: +1 \(completed\)$' "inspect: the checkpoint at the end of epoch 1"
run inspect_w inspect "$tmp/a/final.safetensors"
expect_rc 0 "inspect a weights file"
expect_in out '^checksums: +4 tensors verified' "inspect: a weights file's checksums"
expect_in out '^epoch: +2 \(completed\)$' "inspect: the weights after epoch 2"

# ---- a flipped bit in tensor data ----

st flip "$c6" "$tmp/flip.safetensors" fc1.weight
run inspect_flip inspect "$tmp/flip.safetensors"
expect_rc 5 "inspect a checkpoint with a flipped bit"
expect_in err "^mltk: error: $tmp/flip\.safetensors: tensor 'fc1\.weight' is damaged: its data's CRC-32C is [0-9a-f]{8}, the file recorded [0-9a-f]{8}$" \
    "inspect: the damaged tensor and the file are named"
expect_one_line "inspect of a flipped bit"

run resume_flip --config "$tmp/a.ini" --resume "$tmp/flip.safetensors"
expect_rc 5 "--resume from a checkpoint with a flipped bit"
expect_in err "$tmp/flip\.safetensors: tensor 'fc1\.weight' is damaged" \
    "--resume: the damaged tensor and the file are named"
expect_not_in out '^epoch ' "--resume of a damaged file trains nothing"

st flip "$tmp/a/final.safetensors" "$tmp/wflip.safetensors" out.bias
config "$tmp/init.ini" "$tmp/init" 1 "[model]
init_from = $tmp/wflip.safetensors"
ln=$(line_of "$tmp/init.ini" "init_from = $tmp/wflip.safetensors")
run init_flip --config "$tmp/init.ini"
expect_rc 5 "init_from a weights file with a flipped bit"
expect_in err "^mltk: error: $tmp/init\.ini:$ln: \[model\] init_from: $tmp/wflip\.safetensors: tensor 'out\.bias' is damaged" \
    "init_from: config line, file and tensor named"

# ---- metadata values: type and range ----

st set "$c6" "$tmp/seed.safetensors" seed "$(printf '\303\251\001')"
run seed inspect "$tmp/seed.safetensors"
expect_rc 5 "a seed that is not a number"
expect_in err "$tmp/seed\.safetensors: metadata 'seed' is not a whole number from 0 to 18446744073709551615: '\\\\xc3\\\\xa9\\\\x01'" \
    "the seed: file, key and the value escaped"
run seed_resume --config "$tmp/a.ini" --resume "$tmp/seed.safetensors"
expect_rc 5 "--resume refuses the seed too"

st drop "$c6" "$tmp/slots.safetensors" optimizer_slots
run slots --config "$tmp/a.ini" --resume "$tmp/slots.safetensors"
expect_rc 5 "a checkpoint without optimizer_slots"
expect_in err "$tmp/slots\.safetensors: not a whole mltk checkpoint: no 'optimizer_slots' in its metadata" \
    "the missing key is named"

st set "$c6" "$tmp/loss.safetensors" loss_sum 1e308
run loss --config "$tmp/a.ini" --resume "$tmp/loss.safetensors"
expect_rc 5 "loss_sum = 1e308"
expect_in err "$tmp/loss\.safetensors: metadata 'loss_sum' is not a number from .*: '1e308'" \
    "loss_sum out of range is named"

st set "$c6" "$tmp/lrf.safetensors" lr_factor 2
run lrf inspect "$tmp/lrf.safetensors"
expect_rc 5 "lr_factor above 1"
expect_in err "metadata 'lr_factor' is not a number from 0 to 1: '2'" "lr_factor's range"

st set "$c6" "$tmp/batch.safetensors" batch " 2"
run batch inspect "$tmp/batch.safetensors"
expect_rc 5 "a batch position with a space"
# the components' own state: plain decimal digits, in range
st set "$c6" "$tmp/skips.safetensors" nan_skips "+5"
run skips --config "$tmp/a.ini" --resume "$tmp/skips.safetensors"
expect_rc 5 "nan_skips with a sign"
expect_in err "$tmp/skips\.safetensors: metadata 'nan_skips' is not a whole number from 0 to [0-9]*: '\\+5'" \
    "a component's key is named with its range"
st set "$c6" "$tmp/skips2.safetensors" nan_skips "99999999999999999999"
run skips2 --config "$tmp/a.ini" --resume "$tmp/skips2.safetensors"
expect_rc 5 "nan_skips past int64"

st set "$c6" "$tmp/crc.safetensors" crc32c.out.bias "xyz"
run crc inspect "$tmp/crc.safetensors"
expect_rc 5 "a checksum that is not hex"
expect_in err "metadata 'crc32c\.out\.bias' is not a CRC-32C" "the bad checksum key is named"
st drop "$c6" "$tmp/crc1.safetensors" crc32c.fc1.bias
run crc1 inspect "$tmp/crc1.safetensors"
expect_rc 5 "one tensor without its checksum"
expect_in err "tensor 'fc1\.bias' has no checksum" "the tensor without a checksum is named"

# ---- a checkpoint from before checksums: accepted, with a warning ----

st nocrc "$c6" "$tmp/old.safetensors"
run old inspect "$tmp/old.safetensors"
expect_rc 0 "inspect a checkpoint without checksums"
expect_in out '^checksums: +none in the file' "inspect says it has none"
expect_in err "$tmp/old\.safetensors: written without tensor checksums" \
    "a warning names the file"

# ---- exit codes of missing files ----

run none --config "$tmp/a.ini" --resume "$tmp/none.safetensors"
expect_rc 5 "--resume of a file that is not there (a data problem)"
expect_in err "$tmp/none\.safetensors" "the missing file is named"
config "$tmp/init2.ini" "$tmp/init2" 1 "[model]
init_from = $tmp/none.safetensors"
ln=$(line_of "$tmp/init2.ini" "init_from = $tmp/none.safetensors")
run init_none --config "$tmp/init2.ini"
expect_rc 5 "init_from a file that is not there"
expect_in err "^mltk: error: $tmp/init2\.ini:$ln: \[model\] init_from: $tmp/none\.safetensors" \
    "init_from: the config line and the file are named"
run inspect_none inspect "$tmp/none.safetensors"
expect_rc 5 "inspect a file that is not there"

# ---- --resume auto past a damaged newest checkpoint; a resume's times ----

# b: the run of a.ini stopped after step 6 (--max-steps), its newest
# checkpoint then damaged; --resume auto goes back to step 4 and ends
# bit-identical to the reference of the same length
config "$tmp/b.ini" "$tmp/b" 3 "[checkpoint]
every_steps = 2
keep_last = 10

[model]
save = $tmp/b/final.safetensors"
run b1 --config "$tmp/b.ini" --max-steps 6 --quiet
expect_rc 0 "--max-steps 6 stops the run"
bck="$tmp/b/checkpoints"
started=$(sed -n 's/^  "started": "\(.*\)",$/\1/p' "$tmp/b/run.json")
st flip "$bck/ckpt-000000000006.safetensors" "$bck/ckpt-000000000006.safetensors" out.weight
# a killed writer's temporary files, and one of a live process (this shell)
sh -c 'exit 0' &
dead=$!
wait $dead
: >"$bck/ckpt-000000000008.safetensors.tmp.$dead"
: >"$tmp/b/run.json.tmp.$dead.0"
: >"$tmp/b/notes.tmp.$dead"
: >"$bck/ckpt-000000000010.safetensors.tmp.$$"
sleep 1
run b2 --config "$tmp/b.ini" --resume auto --verbose
expect_rc 0 "--resume auto with a damaged newest checkpoint"
expect_in err "skipping a damaged checkpoint: $bck/ckpt-000000000006\.safetensors: tensor 'out\.weight' is damaged.*resuming from the one before it, $bck/ckpt-000000000004\.safetensors" \
    "the warning names the damaged file and the one used"
expect_in err "resumed from $bck/ckpt-000000000004\.safetensors: step 4, after epoch 1" \
    "the resume message counts epochs as the epoch lines do"
check "resumed from step 4: weights bit-identical to the reference" \
    python3 "$top_srcdir/tests/st_read.py" same "$tmp/ref/final.safetensors" \
        "$tmp/b/final.safetensors"
if [ -e "$bck/ckpt-000000000008.safetensors.tmp.$dead" ] || [ -e "$tmp/b/run.json.tmp.$dead.0" ]; then
    fail "a gone writer's temporary files were left: $(ls "$bck" "$tmp/b" | tr '\n' ' ')"
else
    pass "a gone writer's temporary files are removed"
fi
expect_in err "removed $bck/ckpt-000000000008\.safetensors\.tmp\.$dead, left by a writer that is gone" \
    "the removal is logged"
if [ -e "$tmp/b/notes.tmp.$dead" ]; then
    pass "a file mltk does not write is kept, whatever its name"
else
    fail "notes.tmp.$dead, not a file of mltk's, was removed"
fi
if [ -e "$bck/ckpt-000000000010.safetensors.tmp.$$" ]; then
    pass "a live process's temporary file is kept"
else
    fail "a live process's temporary file was removed"
fi
check "run.json keeps the first start ($started)" \
    grep -q "^  \"started\": \"$started\",\$" "$tmp/b/run.json"
check "run.json lists the resume" \
    grep -Eq '^  "resumed": \[$' "$tmp/b/run.json"
# the clock goes on: the first epoch line of the resumed run shows at
# least the time the checkpoint had run
el=$(st meta "$bck/ckpt-000000000004.safetensors" x elapsed_s)
t1=$(sed -n 's/^epoch 2\/3 .*time \([0-9.]*\)s$/\1/p' "$tmp/b2.out")
check "the resumed run's clock continues ($t1 s after $el)" \
    python3 -c "import sys; sys.exit(0 if float('$t1') + 0.05 >= float.fromhex('$el') > 0 else 1)"
for f in "$tmp/b"/.mltk-write-test* "$bck"/.mltk-write-test*; do
    [ -e "$f" ] && fail "a write test file was left: $f"
done
rm -f "$bck/ckpt-000000000010.safetensors.tmp.$$"

# a resume of the resumed run's checkpoint carries both times
run inspect_b inspect "$bck/ckpt-000000000012.safetensors"
expect_in out "^started: +$started\$" "the checkpoint keeps the first start"
expect_in out '^resumed: +[0-9T:Z-]{20}$' "the checkpoint lists the resume"

# every checkpoint damaged: no fallback left
for f in "$bck"/ckpt-*.safetensors; do st flip "$f" "$f" fc1.bias; done
run b3 --config "$tmp/b.ini" --resume auto
expect_rc 5 "--resume auto with every checkpoint damaged"
expect_in err "no good checkpoint in $bck" "says that none is good"

# ---- outputs checked before training ----

: >"$tmp/afile"
config "$tmp/save.ini" "$tmp/save" 1 "[model]
save = $tmp/afile/w.safetensors"
ln=$(line_of "$tmp/save.ini" "save = $tmp/afile/w.safetensors")
run save --config "$tmp/save.ini"
expect_rc 3 "[model] save under a file"
expect_in err "^mltk: error: $tmp/save\.ini:$ln: \[model\] save: cannot use $tmp/afile as a directory" \
    "[model] save: file, line and key named"
expect_not_in out '^epoch ' "no training before the error"

config "$tmp/cm.ini" "$tmp/cm" 1 "[metrics]
confusion_csv = $tmp/afile/cm.csv"
ln=$(line_of "$tmp/cm.ini" "confusion_csv = $tmp/afile/cm.csv")
run cm --config "$tmp/cm.ini"
expect_rc 3 "[metrics] confusion_csv under a file"
expect_in err "^mltk: error: $tmp/cm\.ini:$ln: \[metrics\] confusion_csv: " \
    "[metrics] confusion_csv: file, line and key named"

config "$tmp/ckd.ini" "$tmp/ckd" 1 "[checkpoint]
dir = $tmp/afile/ck"
ln=$(line_of "$tmp/ckd.ini" "dir = $tmp/afile/ck")
run ckd --config "$tmp/ckd.ini"
expect_rc 3 "[checkpoint] dir under a file"
expect_in err "^mltk: error: $tmp/ckd\.ini:$ln: \[checkpoint\] dir: " \
    "[checkpoint] dir: file, line and key named"

mkdir "$tmp/savedir"
config "$tmp/sd.ini" "$tmp/sd" 1 "[model]
save = $tmp/savedir"
run sd --config "$tmp/sd.ini"
expect_rc 3 "[model] save naming a directory"
expect_in err "\[model\] save: $tmp/savedir is a directory" "says it is a directory"

config "$tmp/rd.ini" "$tmp/afile/run" 1
ln=$(line_of "$tmp/rd.ini" "dir = $tmp/afile/run")
run rd --config "$tmp/rd.ini"
expect_rc 3 "[run] dir under a file"
expect_in err "^mltk: error: $tmp/rd\.ini:$ln: \[run\] dir: " "[run] dir: file, line and key"

# ---- a final write that fails anyway: the weights are rescued ----

# the alert after the last checkpoint replaces the directory of [model]
# save by a file, so the save at the end fails
config "$tmp/late.ini" "$tmp/late" 1 "[checkpoint]
every_epochs = 1

[alert]
on = checkpoint
command = rm -rf $tmp/lateout && : >$tmp/lateout

[model]
save = $tmp/lateout/w.safetensors"
run late --config "$tmp/late.ini"
expect_rc 1 "[model] save failing at the end"
rescued="$tmp/late/rescued-weights-000000000004.safetensors"
expect_in err "$tmp/lateout/w\.safetensors.*; the trained weights \(step 4\) are in $rescued\$" \
    "the message says where the weights are"
expect_one_line "a failed final save"
run late_inspect inspect "$rescued"
expect_rc 0 "the rescued weights are a whole weights file"
expect_in out '^format: +mltk\.weights$' "the rescued file holds weights"

# ---- summary ----

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
