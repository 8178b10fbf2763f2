#!/usr/bin/env python3
"""st_read.py - an independent reader of safetensors files, for the tests.

What this is: the Python half of tests/test_st_interop.sh.  `verify`
reads a file with nothing but the standard library (json and struct) and
compares it, value by value and byte by byte, with the fixture that
`check_safetensors --write` writes, which this script builds on its own
from the same definitions.  With numpy and Hugging Face's safetensors
package, `verify-numpy` loads mltk's file with safetensors.numpy,
`write-numpy` writes a file with it, and `check-dump` compares mltk's
dump of that file (`check_safetensors --dump`) with what was written.
What this is not: a general tool; it stops at the first mismatch with a
message and exit status 1.

usage: st_read.py verify FILE [nobf16]
       st_read.py verify-numpy FILE
       st_read.py write-numpy FILE
       st_read.py check-dump FILE DUMP
       st_read.py same FILE OTHER
`same` says whether two files hold the same tensors, bit for bit (names,
dtypes, shapes and bytes; the metadata, with its times, may differ), as
the tests that compare a resumed or differently run training with a
reference use it.
"""
import json
import struct
import sys

SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2,
         "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
         "F64": 8, "I64": 8, "U64": 8}


class Mismatch(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Mismatch(what)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def bf16_bits(x):
    """The upper half of a float32 (exact for the values used here)."""
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16


# ---- the fixture of check_safetensors --write --------------------------------

def fixture(bf16=True):
    """([(name, dtype, shape, bytes)] in write order, {metadata})"""
    t = [
        ("layer.0/weight", "F32", [2, 3],
         struct.pack("<6f", *[0.5 * i - 1.0 for i in range(6)])),
        # -0, +inf, -inf, the smallest subnormal, a NaN with a payload
        ("special", "F32", [5],
         struct.pack("<5I", 0x80000000, 0x7F800000, 0xFF800000, 1, 0x7FC00001)),
        ("d", "F64", [3], struct.pack("<3d", 1.0 / 3.0, -2.5, 1e300)),
        ("i32", "I32", [4], struct.pack("<4i", -2**31, -1, 0, 2**31 - 1)),
        ("i64", "I64", [3], struct.pack("<3q", -2**63, 1234567890123, 2**63 - 1)),
        ("u8", "U8", [2, 2, 2], bytes(i * 37 % 256 for i in range(8))),
        ("h", "F16", [3], struct.pack("<3e", 1.0, -2.0, 65504.0)),
        ("bf", "BF16", [2], struct.pack("<2H", bf16_bits(1.0), bf16_bits(-3.0))),
        ("mask", "BOOL", [3], bytes([1, 0, 1])),
        ("scalar", "F64", [], struct.pack("<d", 42.0)),
        ("empty \"q\" na\u00efve", "F32", [0, 4], b""),
    ]
    if not bf16:
        t = [x for x in t if x[1] != "BF16"]
    meta = {
        "format": "mltk",
        "config": "[run]\nepochs = 3\nname = \"demo\"\tpath = C:\\tmp\n\n[layer.fc1]\n",
        "unicode": "na\u00efve \u2014 \u65e5\u672c \U0001F600",
        "ctrl": "\x01\x1f\x7f end",
    }
    return t, meta


# ---- a standard-library reader ------------------------------------------------

def read(path):
    """(header length, [(name, dtype, shape, bytes, begin, end)] in header
    order, {metadata}); raises Mismatch on anything malformed."""
    with open(path, "rb") as f:
        raw = f.read()
    expect(len(raw) >= 8, "%s: shorter than 8 bytes" % path)
    (n,) = struct.unpack_from("<Q", raw)
    expect(8 + n <= len(raw), "%s: header length %d beyond the file" % (path, n))
    text = raw[8:8 + n].decode("utf-8")

    def no_duplicates(pairs):
        d = {}
        for k, v in pairs:
            expect(k not in d, "%s: key %r given twice" % (path, k))
            d[k] = v
        return d

    header = json.loads(text, object_pairs_hook=no_duplicates)
    meta = header.pop("__metadata__", {})
    expect(all(isinstance(v, str) for v in meta.values()),
           "%s: metadata values must be strings" % path)
    data = raw[8 + n:]
    tensors = []
    for name, info in header.items():
        expect(sorted(info) == ["data_offsets", "dtype", "shape"],
               "%s: %r: keys %s" % (path, name, sorted(info)))
        dtype, shape = info["dtype"], info["shape"]
        b, e = info["data_offsets"]
        expect(dtype in SIZES, "%s: %r: dtype %r" % (path, name, dtype))
        expect(e - b == numel(shape) * SIZES[dtype],
               "%s: %r: %d bytes for shape %s" % (path, name, e - b, shape))
        tensors.append((name, dtype, shape, data[b:e], b, e))
    end = 0
    for t in sorted(tensors, key=lambda t: (t[4], t[5])):
        expect(t[4] == end, "%s: %r begins at %d, not %d" % (path, t[0], t[4], end))
        end = t[5]
    expect(end == len(data), "%s: %d bytes of data, tensors cover %d"
           % (path, len(data), end))
    return n, tensors, meta


def verify(path, bf16):
    """mltk's file holds the fixture, in the writer's order and layout."""
    n, tensors, meta = read(path)
    want, want_meta = fixture(bf16)
    expect(n % 8 == 0, "header length %d is not a multiple of 8" % n)
    with open(path, "rb") as f:
        text = f.read(8 + n)[8:].decode("utf-8")
    expect(text.rstrip(" ").endswith("}"), "header padding is not spaces")
    expect([t[0] for t in tensors] == [w[0] for w in want],
           "tensor order %s" % [t[0] for t in tensors])
    end = 0
    for t, w in zip(tensors, want):
        expect(t[1:4] == w[1:4], "%r: got %s, want %s" % (w[0], t[1:4], w[1:4]))
        expect(t[4] == end, "%r: data begins at %d, not %d" % (w[0], t[4], end))
        end = t[5]
    expect(meta == want_meta, "metadata %r" % meta)
    expect(list(meta) == list(want_meta), "metadata order %s" % list(meta))
    print("ok   - stdlib reader: %d tensors and %d metadata entries bit-exact"
          % (len(tensors), len(meta)))


# ---- with numpy and safetensors ------------------------------------------------

def np_dtypes():
    import numpy as np
    return {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16,
            "U16": np.uint16, "F16": np.float16, "I32": np.int32,
            "U32": np.uint32, "F32": np.float32, "F64": np.float64,
            "I64": np.int64, "U64": np.uint64}


def verify_numpy(path):
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
    got = load_file(path)
    want, want_meta = fixture(bf16=False)
    expect(sorted(got) == sorted(w[0] for w in want), "names %s" % sorted(got))
    for name, dtype, shape, raw in want:
        a = got[name]
        expect(a.dtype == np.dtype(np_dtypes()[dtype]), "%r: dtype %s" % (name, a.dtype))
        expect(list(a.shape) == shape, "%r: shape %s" % (name, a.shape))
        expect(a.tobytes() == raw, "%r: values %s" % (name, a))
    with safe_open(path, framework="numpy") as f:
        expect(f.metadata() == want_meta, "metadata %r" % f.metadata())
        expect(sorted(f.keys()) == sorted(got), "keys %s" % f.keys())
    print("ok   - safetensors.numpy loads mltk's file: %d tensors, metadata equal"
          % len(got))


def py_fixture():
    import numpy as np
    t = {
        "z.last": (np.arange(12, dtype=np.float32).reshape(3, 4) / 8 - 0.75)
        .astype(np.float32),
        "a.first": np.array([-2**63, 0, 2**63 - 1], dtype=np.int64),
        "m16": np.array([[1, 65535]], dtype=np.uint16),
        "i16": np.array([-32768, 12345], dtype=np.int16),
        "u32": np.array([4294967295, 7], dtype=np.uint32),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "i8": np.array([-128, 127, 5], dtype=np.int8),
        "flags": np.array([True, False, True], dtype=np.bool_),
        "half": np.array([0.5, -65504.0], dtype=np.float16),
        "one": np.array(3.25, dtype=np.float64),
        "nothing": np.zeros((0, 2), dtype=np.int32),
        "\u00fcn\u00ef \"quoted\"\\": np.array([7, 8, 9], dtype=np.uint8),
    }
    meta = {"framework": "numpy", "note": "line 1\nline \"2\"\t\\ end",
            "emoji": "\U0001F600 \u00e9"}
    return t, meta


def write_numpy(path):
    from safetensors.numpy import save_file
    t, meta = py_fixture()
    save_file(t, path, metadata=meta)
    print("ok   - safetensors.numpy wrote %d tensors" % len(t))


def check_dump(path, dump):
    """mltk's dump of the file Python wrote matches what was written and
    what the standard-library reader sees."""
    names = {v: k for k, v in np_dtypes().items()}
    import numpy as np
    want, want_meta = py_fixture()
    _, tensors, meta = read(path)
    got, got_meta, order = {}, {}, []
    with open(dump, encoding="ascii") as f:
        for line in f:
            w = line.split()
            if w[0] == "meta":
                got_meta[bytes.fromhex(w[1]).decode()] = bytes.fromhex(w[2]).decode()
                continue
            expect(w[0] == "tensor", "dump line %r" % line)
            name, ndim = bytes.fromhex(w[1]).decode(), int(w[3])
            shape = [int(x) for x in w[4:4 + ndim]]
            data = b"" if w[4 + ndim] == "-" else bytes.fromhex(w[4 + ndim])
            got[name] = (w[2], shape, data)
            order.append(name)
    expect(order == [t[0] for t in tensors], "mltk's order %s is not the header's"
           % order)
    expect(sorted(got) == sorted(want), "names %s" % sorted(got))
    for name, a in want.items():
        dtype = names[np.dtype(a.dtype).type]
        expect(got[name] == (dtype, list(a.shape), a.tobytes()),
               "%r: mltk read %s, Python wrote %s %s %s"
               % (name, got[name], dtype, list(a.shape), a.tobytes().hex()))
    for t in tensors:
        expect(got[t[0]] == (t[1], t[2], t[3]), "%r differs from the stdlib reader"
               % t[0])
    expect(got_meta == want_meta == meta, "metadata %r" % got_meta)
    print("ok   - mltk reads safetensors.numpy's file: %d tensors, metadata equal"
          % len(got))


def same(path, other):
    a = {t[0]: t[1:4] for t in read(path)[1]}
    b = {t[0]: t[1:4] for t in read(other)[1]}
    bad = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    print("%d tensors, %d differ %s" % (len(a), len(bad), bad))
    expect(a and not bad, "%s and %s differ" % (path, other))


def main(argv):
    try:
        if len(argv) in (3, 4) and argv[1] == "verify":
            verify(argv[2], bf16=not (len(argv) == 4 and argv[3] == "nobf16"))
        elif len(argv) == 3 and argv[1] == "verify-numpy":
            verify_numpy(argv[2])
        elif len(argv) == 3 and argv[1] == "write-numpy":
            write_numpy(argv[2])
        elif len(argv) == 4 and argv[1] == "check-dump":
            check_dump(argv[2], argv[3])
        elif len(argv) == 4 and argv[1] == "same":
            same(argv[2], argv[3])
        else:
            sys.stderr.write(__doc__)
            return 2
    except (Mismatch, ValueError, KeyError, UnicodeDecodeError) as e:
        print("FAIL - %s: %s" % (argv[1], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
