#!/bin/sh
# test_run_interop.sh - the files of a training run, read by other tools.
#
# What this is: mltk trains a small convolutional model with batch norm
# for two epochs with [run] dir, TensorBoard events, metrics and
# [model] save; then
#   - the standard-library reader tests/tb_read.py decodes the run's event
#     file (framing, CRCs, protobufs) and finds one value per epoch of each
#     epoch scalar, equal to the JSON-lines log, the weight and gradient
#     histograms and the config text;
#   - in the Python environment of tests/pyvenv.sh, TensorBoard's own
#     EventAccumulator loads the run directory and sees the same scalars,
#     and Hugging Face's safetensors.numpy loads the saved weights with
#     PyTorch's names and shapes (conv1.weight (4, 1, 3, 3),
#     bn1.running_mean (4,), ...) and the values of mltk's own reader:
#     every tensor's bytes equal those of mltk's safetensors reader
#     (check_safetensors --dump), its min, max and mean those `mltk
#     inspect` prints (to their 5 digits), and its min, max, sum and count
#     those of the last weight histogram of the run's event file, which
#     mltk took from the model in memory at the end of the last epoch.
# What this is not: the format tests of each writer (test_tb_interop.sh,
# test_st_interop.sh), which use fixtures rather than a real run.
#
# Needs top_builddir and top_srcdir (tests/local.mk exports them).  Exits 77
# without the Fashion-MNIST data, python3 or the Check-built
# check_safetensors; the TensorBoard and safetensors checks are skipped
# (77) when their packages cannot be installed, after the standard-library
# checks have passed.  Under CI=true each of these is a failure
# (tests/pyvenv.sh).

set -u
: "${top_srcdir:?}"
. "$top_srcdir/tests/testlib.sh"
. "$top_srcdir/tests/pyvenv.sh"
mltk="$top_builddir/mltk"
st_drv="$top_builddir/tests/check_safetensors"
data=/usr/share/datasets/fashion-mnist
[ -r "$data/train-images-idx3-ubyte.gz" ] || [ -r "$data/train-images-idx3-ubyte" ] \
    || mltk_unavailable "no Fashion-MNIST in $data"
command -v python3 >/dev/null 2>&1 || mltk_unavailable "no python3"
[ -x "$st_drv" ] || mltk_unavailable "$st_drv not built (no Check)"

tl_tmpdir run
fail() { echo "FAIL: $*"; exit 1; }

cat > "$tmp/train.ini" <<EOF
[run]
seed = 5
dir = $tmp/run
[train]
epochs = 2
batch_size = 64
[data]
type = idx
train_limit = 640
test_limit = 256
[layer.conv1]
type = conv2d
filters = 4
kernel = 3
bias = false
[layer.bn1]
type = batchnorm
[layer.relu1]
type = relu
[layer.pool]
type = maxpool2d
kernel = 2
[layer.flat]
type = flatten
[layer.fc]
type = dense
units = 10
[loss]
type = cross_entropy
[optimizer]
type = adam
lr = 0.01
[metrics]
list = accuracy, top3, f1_macro
[log]
scalars_every = 5
progress = off
[model]
save = $tmp/run/weights.safetensors
EOF
"$mltk" --quiet --config "$tmp/train.ini" || fail "training exited with $?"
ev=$(ls "$tmp"/run/tb/events.out.tfevents.* 2>/dev/null | head -n 1)
[ -n "$ev" ] || fail "no event file in $tmp/run/tb"

# ---- the standard-library reader ----
python3 "$top_srcdir/tests/tb_read.py" --no-wall-time "$ev" > "$tmp/events.jsonl" \
    || fail "tb_read.py rejected $ev"
python3 - "$tmp/events.jsonl" "$tmp/run/metrics.jsonl" <<'EOF' || fail "event contents"
import json, struct, sys
events = [json.loads(l) for l in open(sys.argv[1])]
epochs = [json.loads(l) for l in open(sys.argv[2])]
assert len(epochs) == 2, epochs
def scalars(tag):
    return [(e["step"] if "step" in e else 0, e["value"]) for e in events if e.get("tag") == tag]
for key in ("train_loss", "val_loss", "val_acc", "val_top3", "val_f1_macro"):
    got = scalars("epoch/" + key)
    assert len(got) == 2, (key, got)
    for (step, v), rec in zip(got, epochs):
        assert step == rec["step"], (key, step, rec["step"])
        # the event holds a float32 of the logged double
        want = struct.unpack("<f", struct.pack("<f", rec[key]))[0]
        assert v == want, (key, v, want)
steps = [s for s, _ in scalars("step/loss")]
assert steps == [5, 10, 15, 20], steps
histos = {e["tag"] for e in events if "histo" in e}
for t in ("weights/conv1.weight", "grads/conv1.weight", "weights/fc.bias",
          "state/bn1.running_mean", "state/bn1.running_var"):
    assert t in histos, (t, sorted(histos))
h = [e for e in events if e.get("tag") == "weights/conv1.weight"][-1]["histo"]
assert h["num"] == 36 and sum(h["bucket"]) == 36, h
text = [e for e in events if e.get("tag") == "config"]
assert text and "[layer.conv1]" in text[0]["text"], text
print("events: %d scalars per epoch tag, %d histogram tags, config text" % (2, len(histos)))
EOF
echo "ok - the run's event file read by the standard-library reader"

# ---- mltk's own readers of the saved weights ----
"$st_drv" --dump "$tmp/run/weights.safetensors" > "$tmp/weights.dump" \
    || fail "check_safetensors --dump $tmp/run/weights.safetensors"
"$mltk" inspect "$tmp/run/weights.safetensors" > "$tmp/weights.inspect" \
    || fail "mltk inspect $tmp/run/weights.safetensors"

# ---- TensorBoard and safetensors themselves ----
PY=$(mltk_pyvenv numpy safetensors tensorboard) || mltk_unavailable "no Python packages"
"$PY" - "$tmp/run" "$tmp/run/metrics.jsonl" "$tmp/run/weights.safetensors" \
    "$tmp/weights.dump" "$tmp/weights.inspect" "$tmp/events.jsonl" <<'EOF' || fail "interop"
import json, struct, sys
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
import safetensors.numpy
from safetensors import safe_open

run, log, weights, dump, inspect, events = sys.argv[1:7]
epochs = [json.loads(l) for l in open(log)]
acc = EventAccumulator(run + "/tb", size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
acc.Reload()
vals = [(s.step, s.value) for s in acc.Scalars("epoch/val_acc")]
assert vals == [(e["step"], struct.unpack("<f", struct.pack("<f", e["val_acc"]))[0])
                for e in epochs], vals
assert "weights/fc.weight" in acc.Tags()["histograms"]

t = safetensors.numpy.load_file(weights)
shapes = {k: v.shape for k, v in t.items()}
want = {"conv1.weight": (4, 1, 3, 3), "bn1.weight": (4,), "bn1.bias": (4,),
        "bn1.running_mean": (4,), "bn1.running_var": (4,),
        "fc.weight": (10, 4 * 13 * 13), "fc.bias": (10,)}
assert shapes == want, shapes
assert all(v.dtype.name == "float32" for v in t.values())
# training moved the running statistics away from their start values
assert abs(t["bn1.running_var"] - 1).max() > 1e-3
with safe_open(weights, "np") as f:
    meta = f.metadata()
assert meta["format"] == "mltk.weights" and meta["epoch"] == "2", meta
assert "[layer.bn1]" in meta["config"]

# the values: mltk's reader (check_safetensors --dump) sees the same bytes
seen = {}
for line in open(dump):
    w = line.split()
    if w[0] != "tensor":
        continue
    name, ndim = bytes.fromhex(w[1]).decode(), int(w[3])
    seen[name] = (w[2], tuple(int(x) for x in w[4:4 + ndim]), bytes.fromhex(w[4 + ndim]))
assert sorted(seen) == sorted(t), sorted(seen)
for name, a in t.items():
    assert seen[name] == ("F32", a.shape, a.tobytes()), (name, seen[name][:2])

# `mltk inspect`: min, max and mean of each tensor, to 5 significant digits
rows = {}
for line in open(inspect):
    w = line.split()
    if len(w) >= 6 and w[0] in t and w[1] == "F32":
        rows[w[0]] = [float(x) for x in w[-3:]]
assert sorted(rows) == sorted(t), sorted(rows)
for name, a in t.items():
    want = (float(a.min()), float(a.max()), float(a.astype(np.float64).mean()))
    for got, w in zip(rows[name], want):
        assert abs(got - w) <= 5.1e-5 * abs(w), (name, rows[name], want)

# the model in memory: the last histogram of each tensor, written at the
# end of epoch 2, has the file's min, max, sum and count
ev = [json.loads(l) for l in open(events)]
for name, a in t.items():
    tag = ("state/" if "running" in name else "weights/") + name
    hs = [e for e in ev if e.get("tag") == tag and "histo" in e]
    assert hs, tag
    h = hs[-1]["histo"]
    assert hs[-1]["step"] == epochs[-1]["step"], (tag, hs[-1]["step"])
    assert h["num"] == a.size, (tag, h["num"])
    assert h["min"] == float(a.min()) and h["max"] == float(a.max()), (tag, h["min"], h["max"])
    s = float(a.astype(np.float64).sum())
    assert abs(h["sum"] - s) <= 1e-9 * float(np.abs(a).astype(np.float64).sum()), (tag, h["sum"], s)
print("tensorboard and safetensors: ok; %d tensors, %d values equal to mltk's reader, "
      "inspect and the last histograms" % (len(t), sum(a.size for a in t.values())))
EOF
echo "ok - TensorBoard loads the events, safetensors.numpy the weights with mltk's values"
echo "2 passed, 0 failed"
