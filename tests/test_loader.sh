#!/bin/sh
# test_loader.sh - the data loader end to end (core/data.c, core/loader.c).
#
# With random transforms (a shifted crop and a flip) the training split
# streams through worker threads; the checks: 0, 1, 2 and 4 workers give
# bit-identical weights; a run stopped in the middle of an epoch and
# resumed ends bit-identical to the uninterrupted one; a split kept
# resident and the same split streamed train to the same weights; the
# validation split is stratified, counted in run.json and its figures
# replace the test's, which is evaluated once at the end; balance and mode
# refuse what cannot work; metrics.jsonl reports the data wait; databench
# runs the pipeline alone.
: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
tl_tmpdir loader
tl_need_fashion_mnist
command -v python3 >/dev/null || tl_skip "no python3 (compares weight files)"
mltk=$top_builddir/mltk
n_pass=0 n_fail=0

check() {
    what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# same A B: the two safetensors files hold the same tensors, bit for bit
# (the metadata, with its times and config path, may differ)
same() { python3 "$top_srcdir/tests/st_read.py" same "$1" "$2" >/dev/null; }

# config FILE DIR EXTRA_DATA EXTRA: a small MLP on 2000 training images
config() {
    cat >"$1" <<EOF
[run]
seed = 7
backend = cpu
threads = 1
dir = $2

[train]
epochs = 2
batch_size = 50
check_every = 4

[data]
type = idx
path = $data_dir
train_limit = 2000
test_limit = 500
$3

[layer.flat]
type = flatten

[layer.fc1]
type = dense
units = 32
activation = relu

[layer.out]
type = dense
units = 10

[loss]
type = cross_entropy

[optimizer]
type = adam
lr = 0.002

[model]
save = $2/final.safetensors

[log]
jsonl = $2/metrics.jsonl
$4
EOF
}

AUG="[transform.shift]
type = random_crop
padding = 2

[transform.flip]
type = flip"

# ---- any number of workers: the same batches ----
for w in 0 1 2 4; do
    config "$tmp/w$w.ini" "$tmp/w$w" "workers = $w
prefetch = 3" "$AUG"
    run w$w --config "$tmp/w$w.ini" --quiet
    expect_rc 0 "streamed training with $w workers"
done
for w in 1 2 4; do
    check "$w workers: weights bit-identical to 0 workers" \
        same "$tmp/w0/final.safetensors" "$tmp/w$w/final.safetensors"
done
check "the training split streams (run.json mode)" grep -q '"mode": "stream"' "$tmp/w2/run.json"
check "metrics.jsonl reports the data wait" grep -q '"data_wait": ' "$tmp/w2/metrics.jsonl"

# ---- stopped mid-epoch (step 27 of 40 per epoch), resumed ----
config "$tmp/r.ini" "$tmp/r" "workers = 2
prefetch = 3" "$AUG
[checkpoint]
every_steps = 9
keep_last = 5"
run r1 --config "$tmp/r.ini" --max-steps 27 --quiet
expect_rc 0 "--max-steps 27 stops in the middle of epoch 1"
run r2 --config "$tmp/r.ini" --resume auto --quiet
expect_rc 0 "resumed from the checkpoint at step 27"
check "resumed mid-epoch: weights bit-identical to the uninterrupted run" \
    same "$tmp/w2/final.safetensors" "$tmp/r/final.safetensors"

# ---- resident and streamed: the same training ----
config "$tmp/res.ini" "$tmp/res" "mode = resident" ""
config "$tmp/str.ini" "$tmp/str" "mode = stream
workers = 2" ""
run res --config "$tmp/res.ini" --quiet
expect_rc 0 "mode = resident"
run str --config "$tmp/str.ini" --quiet
expect_rc 0 "mode = stream"
check "resident and streamed splits train to bit-identical weights" \
    same "$tmp/res/final.safetensors" "$tmp/str/final.safetensors"
check "run.json says resident" grep -q '"mode": "resident"' "$tmp/res/run.json"

config "$tmp/bad.ini" "$tmp/bad" "mode = resident" "$AUG"
ln=$(grep -n '^mode = resident' "$tmp/bad.ini" | cut -d: -f1)
run badmode --config "$tmp/bad.ini"
expect_rc 3 "mode = resident with random transforms"
expect_in err "bad\.ini:$ln: \[data\] mode = resident, but the train split has random transforms" \
    "the message names the line and the reason"

# ---- the validation split ----
config "$tmp/v.ini" "$tmp/v" "val_fraction = 0.2" ""
run val --config "$tmp/v.ini"
expect_rc 0 "val_fraction = 0.2"
expect_in out '^test  loss [0-9.]+  acc 0\.[0-9]+  \(500 samples\)$' \
    "the test split is evaluated once at the end"
python3 - "$tmp/v/run.json" <<'EOF' >"$tmp/val.txt" 2>&1
import json, sys
d = json.load(open(sys.argv[1]))["data"]
tr, va = d["train"], d["validation"]
assert tr["samples"] + va["samples"] == 2000, (tr["samples"], va["samples"])
assert sum(tr["class_counts"]) == tr["samples"] and sum(va["class_counts"]) == va["samples"]
for t, v in zip(tr["class_counts"], va["class_counts"]):
    assert v == round(0.2 * (t + v)), (t, v)   # stratified per class
assert "acc" in d["test"] and "loss" in d["test"]
print("ok", tr["samples"], va["samples"], va["class_counts"])
EOF
if grep -q '^ok' "$tmp/val.txt"; then
    pass "run.json: validation stratified by class, counts add up, test figures"
else
    fail "run.json: validation split"
    sed 's/^/    /' "$tmp/val.txt"
fi

# ---- class balance ----
config "$tmp/o.ini" "$tmp/o" "balance = oversample" ""
run over --config "$tmp/o.ini" --quiet
expect_rc 0 "balance = oversample"
config "$tmp/bw.ini" "$tmp/bw" "balance = weights" ""
sed -i 's/^type = cross_entropy$/type = cross_entropy\nweights = 1, 2, 1, 1, 1, 1, 1, 1, 1, 1/' \
    "$tmp/bw.ini"
run bw --config "$tmp/bw.ini"
expect_rc 3 "balance = weights with [loss] weights as well"
expect_in err "balance = weights computes the class weights; \[loss\] weights \(line [0-9]+\) gives them as well" \
    "the message says to keep one"
config "$tmp/bw2.ini" "$tmp/bw2" "balance = weights" ""
run bw2 --config "$tmp/bw2.ini" --verbose
expect_rc 0 "balance = weights"
expect_in err "balance = weights: class weights [0-9.]+, " "the class weights are logged"

# ---- standardisation: statistics saved with the model ----
config "$tmp/sd.ini" "$tmp/sd" "standardize = true" ""
run sd --config "$tmp/sd.ini" --quiet
expect_rc 0 "standardize = true"
python3 - "$tmp/sd/final.safetensors" <<'EOF' >"$tmp/sd.txt" 2>&1
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
def vals(k):
    o = h[k]["data_offsets"]
    raw = b[8 + n + o[0]:8 + n + o[1]]
    return h[k]["shape"], struct.unpack("<%df" % (len(raw) // 4), raw)
ms, m = vals("data.mean")
ss, sd = vals("data.std")
assert ms == [1, 28, 28] and ss == [1, 28, 28], (ms, ss)
assert all(0 <= x <= 1 for x in m) and max(m) > 0.3, max(m)
assert all(x > 0 for x in sd) and max(sd) > 0.3, (min(sd), max(sd))
print("ok")
EOF
if grep -q '^ok' "$tmp/sd.txt"; then
    pass "data.mean and data.std (1, 28, 28) are in the saved model"
else
    fail "standardize statistics in the saved model"
    sed 's/^/    /' "$tmp/sd.txt"
fi

# ---- transform chains the other splits cannot follow ----
config "$tmp/crop.ini" "$tmp/crop" "" "[transform.c]
type = random_crop
size = 24"
run crop --config "$tmp/crop.ini"
expect_rc 3 "a training-only crop to 24x24 with nothing for the test split"
expect_in err "the training transforms make samples of shape .*24.*24.* but the other splits' are .*28.*28" \
    "the message names both shapes"

# ---- a crop for training, its counterpart for evaluation ----
config "$tmp/ev.ini" "$tmp/ev" "" "[transform.c]
type = random_crop
size = 24

[transform.cc]
type = center_crop
size = 24
splits = eval"
run ev --config "$tmp/ev.ini" --quiet
expect_rc 0 "random_crop 24 for training with center_crop 24 (splits = eval)"
config "$tmp/ev2.ini" "$tmp/ev2" "" "[transform.c]
type = random_crop
size = 24

[transform.f]
type = normalize
mean = 0.5
std = 0.5"
run ev2 --config "$tmp/ev2.ini"
expect_rc 3 "a transform for every split after a training-only crop"
expect_in err "transform 'f' applies to every split, but it gets samples of shape .*24.* on the training split and .*28.* on the others" \
    "the message names both shapes and the way out"

# ---- databench ----
config "$tmp/db.ini" "$tmp/db" "workers = 2" "$AUG"
run db databench --config "$tmp/db.ini" --epochs 1
expect_rc 0 "mltk databench"
expect_in out '^databench: 2000 samples in [0-9.]+ s: [0-9]+ samples/s \(workers 2, prefetch 4, stream\)$' \
    "databench prints the samples and the rate"

echo "$n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
