#!/bin/sh
# test_tb_interop.sh - our TensorBoard event files, read by others.
#
# What this is: tests/tb_write_demo writes an event file of known scalars,
# histograms and a text (see tests/tb_write_demo.c).  First
# tests/tb_read.py, a reader on the Python standard library alone with its
# own CRC-32C, must read back exactly the values written, and must refuse
# a copy with a flipped byte or cut short.  Then TensorBoard itself (from
# the test virtual environment, tests/pyvenv.sh) must load the file with
# its EventAccumulator and find the same steps and values; protobuf must
# decode every record and encode it again to the very same bytes.
# What this is not: a test of the writer's internals (check_tbevents).
#
# Needs: top_builddir and top_srcdir (exported by tests/local.mk).
# Exits 77 (skipped) without python3, and after the standard-library part
# when TensorBoard cannot be installed (no network); under CI=true both are
# failures (tests/pyvenv.sh).

set -u

: "${top_srcdir:?top_srcdir must be set (run through make check)}"
. "$top_srcdir/tests/testlib.sh"
# shellcheck source=tests/pyvenv.sh
. "$top_srcdir/tests/pyvenv.sh"

tl_tmpdir tb

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

command -v python3 >/dev/null 2>&1 || mltk_unavailable "no python3"

# ---- write ----

before=$(date +%s)
file=$("$top_builddir/tests/tb_write_demo" "$tmp/logs/run1") \
    || die "tests/tb_write_demo $tmp/logs/run1"
after=$(date +%s)
[ -f "$file" ] || die "tb_write_demo printed '$file', which is no file"
case "$(basename "$file")" in
    events.out.tfevents.*.demo-host.*.mltk) ;;
    *) die "event file name $(basename "$file")" ;;
esac
ok "wrote $file"

# ---- the standard-library reader ----

cat >"$tmp/expected" <<'EOF'
{"file_version": "brain.Event:2"}
{"step": 0, "tag": "loss", "value": 1.5}
{"step": 1, "tag": "loss", "value": 0.75}
{"step": 2, "tag": "loss", "value": 0.375}
{"step": 3, "tag": "loss", "value": 0.10000000149011612}
{"step": 1099511627776, "tag": "lr", "value": -2.5}
{"histo": {"bucket": [1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0], "bucket_limit": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0], "max": 30.0, "min": 0.0, "num": 33.0, "sum": 470.0, "sum_squares": 9467.5}, "step": 1, "tag": "weights/fc1"}
{"histo": {"bucket": [0.0], "bucket_limit": [0.0], "max": 0.0, "min": 0.0, "num": 0.0, "sum": 0.0, "sum_squares": 0.0}, "step": 2, "tag": "empty"}
{"histo": {"bucket": [3.0], "bucket_limit": [4.0], "max": 4.0, "min": 4.0, "num": 3.0, "sum": 12.0, "sum_squares": 48.0}, "step": 2, "tag": "const"}
{"plugin": "text", "shape": [], "step": 0, "tag": "notes", "text": "**mltk** run: lr = 0.1 \u2014 \u00fcn\u00efcode\nsecond line"}
EOF
reader="$top_srcdir/tests/tb_read.py"
python3 "$reader" --no-wall-time "$file" >"$tmp/got" 2>"$tmp/err" \
    || { cat "$tmp/err"; die "tb_read.py $file"; }
diff -u "$tmp/expected" "$tmp/got" || die "tb_read.py reads other values than were written"
ok "tb_read.py: every record's CRCs hold and the values are those written"

python3 "$reader" "$file" >"$tmp/got-wall" || die "tb_read.py $file (with wall times)"
python3 - "$tmp/got-wall" "$before" "$after" <<'EOF' || die "wall times out of order or range"
import json, sys
times = [json.loads(line)["wall_time"] for line in open(sys.argv[1])]
lo, hi = float(sys.argv[2]), float(sys.argv[3]) + 1
assert all(lo <= t <= hi for t in times), (times, lo, hi)
assert times == sorted(times), times
EOF
ok "wall times lie between $before and $after and never decrease"

# a flipped byte in the last record's data, and a file cut short
python3 - "$file" "$tmp/flipped" "$tmp/short" <<'EOF' || die "making the broken copies"
import sys
blob = bytearray(open(sys.argv[1], "rb").read())
open(sys.argv[3], "wb").write(blob[:-3])
blob[-10] ^= 0x01
open(sys.argv[2], "wb").write(blob)
EOF
if python3 "$reader" "$tmp/flipped" >/dev/null 2>"$tmp/err.flipped"; then
    die "tb_read.py accepts a file with a flipped byte"
fi
grep "data CRC" "$tmp/err.flipped" >/dev/null \
    || { cat "$tmp/err.flipped"; die "flipped byte: no CRC message"; }
if python3 "$reader" "$tmp/short" >/dev/null 2>"$tmp/err.short"; then
    die "tb_read.py accepts a truncated file"
fi
grep "only" "$tmp/err.short" >/dev/null \
    || { cat "$tmp/err.short"; die "truncated file: no length message"; }
ok "tb_read.py refuses a flipped byte and a short file"

# ---- TensorBoard ----

PY=$(mltk_pyvenv tensorboard) || mltk_unavailable "no TensorBoard ($n_pass passed)"
"$PY" -c 'from tensorboard.backend.event_processing.event_accumulator import EventAccumulator' \
    || die "importing TensorBoard's EventAccumulator"

"$PY" - "$tmp/logs/run1" "$file" <<'EOF' || die "TensorBoard reads other values than were written"
import struct, sys
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.util import tensor_util

run, path = sys.argv[1], sys.argv[2]
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]

# protobuf decodes every record and encodes it to the same bytes
raws = list(event_file_loader.RawEventFileLoader(path).Load())
assert len(raws) == 10, len(raws)
for raw in raws:
    ev = event_pb2.Event.FromString(raw)
    assert ev.SerializeToString() == raw, ev
assert event_pb2.Event.FromString(raws[0]).file_version == "brain.Event:2"

acc = EventAccumulator(run, size_guidance={
    "scalars": 0, "histograms": 0, "compressedHistograms": 0,
    "tensors": 0, "images": 0, "audio": 0})
acc.Reload()
tags = acc.Tags()
assert sorted(tags["scalars"]) == ["loss", "lr"], tags
assert sorted(tags["histograms"]) == ["const", "empty", "weights/fc1"], tags
assert tags["tensors"] == ["notes"], tags

loss = [(e.step, e.value) for e in acc.Scalars("loss")]
assert loss == [(0, 1.5), (1, 0.75), (2, 0.375), (3, f32(0.1))], loss
lr = [(e.step, e.value) for e in acc.Scalars("lr")]
assert lr == [(1 << 40, -2.5)], lr

(h,) = acc.Histograms("weights/fc1")
hv = h.histogram_value
assert h.step == 1 and hv.num == 33 and hv.min == 0 and hv.max == 30, h
assert hv.sum == 470 and hv.sum_squares == 9467.5, hv
assert list(hv.bucket_limit) == [float(i) for i in range(1, 31)], hv
assert list(hv.bucket) == [1, 1, 3] + [1] * 26 + [2], hv
(c,) = acc.Histograms("const")
assert (c.step, c.histogram_value.num, c.histogram_value.min,
        c.histogram_value.max) == (2, 3, 4, 4), c
(e,) = acc.Histograms("empty")
assert e.histogram_value.num == 0, e

(t,) = acc.Tensors("notes")
text = "**mltk** run: lr = 0.1 \u2014 \u00fcn\u00efcode\nsecond line"
assert t.step == 0, t
assert list(t.tensor_proto.string_val) == [text.encode("utf-8")], t
assert "notes" in acc.PluginTagToContent("text"), acc.PluginTagToContent("text")

# the path the plugins read: summaries migrated to tensors
pacc = plugin_event_accumulator.EventAccumulator(run, size_guidance={"tensors": 0})
pacc.Reload()
assert sorted(pacc.PluginTagToContent("scalars")) == ["loss", "lr"]
assert sorted(pacc.PluginTagToContent("histograms")) == ["const", "empty", "weights/fc1"]
assert list(pacc.PluginTagToContent("text")) == ["notes"]
loss = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
        for e in pacc.Tensors("loss")]
assert loss == [(0, 1.5), (1, 0.75), (2, 0.375), (3, f32(0.1))], loss
buckets = tensor_util.make_ndarray(pacc.Tensors("weights/fc1")[0].tensor_proto)
assert buckets.shape == (30, 3), buckets.shape
assert buckets[:, 2].sum() == 33 and buckets[0, 0] == 0 and buckets[-1, 1] == 30, buckets
notes = tensor_util.make_ndarray(pacc.Tensors("notes")[0].tensor_proto)
assert notes.shape == () and notes.item() == text.encode("utf-8"), notes
EOF
ok "TensorBoard's EventAccumulator reads the same steps, values, histograms and text"

echo "$n_pass passed, 0 failed"
exit 0
