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
#     bn1.running_mean (4,), ...) and the values of mltk's own reader.
# What this is not: the format tests of each writer (test_tb_interop.sh,
# test_st_interop.sh), which use fixtures rather than a real run.
#
# Needs top_builddir and top_srcdir (tests/local.mk exports them).  Exits 77
# without the Fashion-MNIST data or python3; the TensorBoard and
# safetensors checks are skipped (77) when their packages cannot be
# installed, after the standard-library checks have passed.

set -u
: "${top_srcdir:?}"
. "$top_srcdir/tests/testlib.sh"
mltk="$top_builddir/mltk"
data=/usr/share/datasets/fashion-mnist
[ -r "$data/train-images-idx3-ubyte.gz" ] || [ -r "$data/train-images-idx3-ubyte" ] \
    || { echo "skip: no Fashion-MNIST in $data"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "skip: no python3"; exit 77; }

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

# ---- TensorBoard and safetensors themselves ----
. "$top_srcdir/tests/pyvenv.sh"
PY=$(mltk_pyvenv numpy safetensors tensorboard) || { echo "skip: no Python packages"; exit 77; }
"$PY" - "$tmp/run" "$tmp/run/metrics.jsonl" "$tmp/run/weights.safetensors" <<'EOF' || fail "interop"
import json, struct, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
import safetensors.numpy
from safetensors import safe_open

run, log, weights = sys.argv[1:4]
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
print("tensorboard and safetensors: ok")
EOF
echo "ok - TensorBoard loads the events, safetensors.numpy the weights"
