#!/usr/bin/env python3
"""tb_read.py - read a TensorBoard event file with nothing but Python.

What this is: an independent reader of the files core/tbevents.c writes,
used by tests/test_tb_interop.sh.  It walks the TFRecord framing, checks
every length against the file size and both masked CRC-32Cs (its own
CRC-32C, bit by bit), decodes the protobuf wire format generically into
(field, wire type, value) triples, and then reads the Event, Summary,
HistogramProto and TensorProto fields out of them.  Prints one JSON line
per event:

  {"file_version": "brain.Event:2", "wall_time": ...}
  {"step": 3, "tag": "loss", "value": 0.10000000149011612, "wall_time": ...}
  {"histo": {"min": ..., "bucket": [...], ...}, "step": 1, "tag": ..., ...}
  {"plugin": "text", "shape": [], "step": 0, "tag": ..., "text": ..., ...}

with keys sorted; --no-wall-time leaves wall_time out.

What this is not: a general protobuf decoder (it knows no schema beyond
the few fields above, and rejects what it cannot account for) nor a
TensorBoard replacement; it uses no TensorFlow, TensorBoard or protobuf.
Exit status 0 when the file is well formed, 1 with a message otherwise.

Usage: tb_read.py [--no-wall-time] EVENTFILE
"""
import json
import struct
import sys


class Malformed(Exception):
    pass


# ---- CRC-32C ----------------------------------------------------------------

def crc32c(data):
    """CRC-32C, reflected polynomial 0x82F63B78, one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ---- TFRecord framing --------------------------------------------------------

def records(blob):
    """Yield (offset, data) of each record; verify lengths and CRCs."""
    off = 0
    while off < len(blob):
        if len(blob) - off < 12:
            raise Malformed("offset %d: truncated record header (%d bytes left)"
                            % (off, len(blob) - off))
        header = blob[off:off + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", blob[off + 8:off + 12])
        if hcrc != masked_crc32c(header):
            raise Malformed("offset %d: length CRC 0x%08x, expected 0x%08x"
                            % (off, hcrc, masked_crc32c(header)))
        if length > len(blob) - off - 16:
            raise Malformed("offset %d: record of %d bytes, only %d left"
                            % (off, length, len(blob) - off - 16))
        data = blob[off + 12:off + 12 + length]
        (dcrc,) = struct.unpack("<I", blob[off + 12 + length:off + 16 + length])
        if dcrc != masked_crc32c(data):
            raise Malformed("offset %d: data CRC 0x%08x, expected 0x%08x"
                            % (off, dcrc, masked_crc32c(data)))
        yield off, data
        off += 16 + length


# ---- protobuf wire format -------------------------------------------------------

def varint(buf, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise Malformed("varint longer than 10 bytes")


def fields(buf):
    """Decode one message into a list of (field, wire type, value): ints
    for varints, raw bytes for fixed64/fixed32 and length-delimited."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise Malformed("field number 0")
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise Malformed("truncated fixed%d field %d" % (size * 8, field))
            value, pos = bytes(buf[pos:pos + size]), pos + size
        elif wire == 2:
            size, pos = varint(buf, pos)
            if pos + size > len(buf):
                raise Malformed("field %d: %d bytes, only %d left"
                                % (field, size, len(buf) - pos))
            value, pos = bytes(buf[pos:pos + size]), pos + size
        else:
            raise Malformed("field %d: unsupported wire type %d" % (field, wire))
        out.append((field, wire, value))
    return out


def by_field(buf, known):
    """Fields of one message as {field: [values]}; `known` maps each field
    number the schema has to its wire type."""
    got = {}
    for field, wire, value in fields(buf):
        if field not in known:
            raise Malformed("unexpected field %d" % field)
        if wire != known[field]:
            raise Malformed("field %d: wire type %d, expected %d"
                            % (field, wire, known[field]))
        got.setdefault(field, []).append(value)
    return got


def one(got, field, default=None):
    values = got.get(field, [])
    if len(values) > 1:
        raise Malformed("field %d repeated" % field)
    return values[0] if values else default


def f64(raw, default=0.0):
    return struct.unpack("<d", raw)[0] if raw is not None else default


def packed_f64(got, field):
    out = []
    for raw in got.get(field, []):
        if len(raw) % 8:
            raise Malformed("packed doubles of %d bytes" % len(raw))
        out.extend(struct.unpack("<%dd" % (len(raw) // 8), raw))
    return out


def signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


# ---- messages --------------------------------------------------------------------

def histogram(buf):
    h = by_field(buf, {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 2, 7: 2})
    names = ["min", "max", "num", "sum", "sum_squares"]
    out = {name: f64(one(h, i + 1)) for i, name in enumerate(names)}
    out["bucket_limit"] = packed_f64(h, 6)
    out["bucket"] = packed_f64(h, 7)
    if len(out["bucket_limit"]) != len(out["bucket"]):
        raise Malformed("%d bucket limits, %d buckets"
                        % (len(out["bucket_limit"]), len(out["bucket"])))
    return out


def tensor(buf):
    t = by_field(buf, {1: 0, 2: 2, 8: 2})
    dtype = one(t, 1, 0)
    if dtype != 7:
        raise Malformed("tensor of dtype %d, expected DT_STRING (7)" % dtype)
    shape = []
    for dim in by_field(one(t, 2, b""), {2: 2}).get(2, []):
        shape.append(signed64(one(by_field(dim, {1: 0}), 1, 0)))
    strings = [s.decode("utf-8") for s in t.get(8, [])]
    return shape, strings


def plugin_name(buf):
    meta = by_field(buf, {1: 2})
    data = by_field(one(meta, 1, b""), {1: 2, 2: 2})
    return one(data, 1, b"").decode("utf-8")


def value(buf):
    v = by_field(buf, {1: 2, 2: 5, 5: 2, 8: 2, 9: 2})
    out = {"tag": one(v, 1, b"").decode("utf-8")}
    kinds = [f for f in (2, 5, 8) if f in v]
    if len(kinds) != 1:
        raise Malformed("value '%s' holds %d of simple_value, histo, tensor"
                        % (out["tag"], len(kinds)))
    if 2 in v:
        out["value"] = struct.unpack("<f", one(v, 2))[0]
    elif 5 in v:
        out["histo"] = histogram(one(v, 5))
    else:
        shape, strings = tensor(one(v, 8))
        out["shape"] = shape
        out["text"] = strings[0] if len(strings) == 1 else strings
    if 9 in v:
        out["plugin"] = plugin_name(one(v, 9))
    return out


def events(blob):
    for off, data in records(blob):
        try:
            e = by_field(data, {1: 1, 2: 0, 3: 2, 5: 2})
            head = {"wall_time": f64(one(e, 1)),
                    "step": signed64(one(e, 2, 0))}
            if 3 in e:
                yield {"wall_time": head["wall_time"],
                       "file_version": one(e, 3).decode("utf-8")}
            if 5 in e:
                for v in by_field(one(e, 5), {1: 2}).get(1, []):
                    out = dict(head)
                    out.update(value(v))
                    yield out
        except Malformed as ex:
            raise Malformed("record at offset %d: %s" % (off, ex))


def main(argv):
    args = argv[1:]
    wall = True
    if args and args[0] == "--no-wall-time":
        wall = False
        args = args[1:]
    if len(args) != 1:
        sys.stderr.write("usage: tb_read.py [--no-wall-time] EVENTFILE\n")
        return 2
    try:
        with open(args[0], "rb") as f:
            blob = f.read()
        for ev in events(blob):
            if not wall:
                del ev["wall_time"]
            print(json.dumps(ev, sort_keys=True))
    except (OSError, Malformed, UnicodeDecodeError) as ex:
        sys.stderr.write("tb_read.py: %s: %s\n" % (args[0], ex))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
