#!/usr/bin/python3
"""gen_image_ref.py - tests/image_ref.h: tiny images and PIL's pixels of them.

What this is: the reference values of tests/check_image.c.  Each case is a
tiny image file written by PIL (its bytes go into the header, so no binary
file is committed) and the pixels that torchvision's ImageFolder loader
would give for it: PIL's decode, convert('L') for 1 channel or
convert('RGB') for 3, then Resize(resize) (PIL's bilinear with its
antialiasing) and CenterCrop(crop) when those are set, in (C, H, W) order.
One deliberate difference: a 16-bit grey PNG, which PIL reads as 32-bit
integers and clips to 255 when converting, is expected as its high bytes
(what the imagefolder data set documents).

    /usr/bin/python3 tests/gen_image_ref.py > tests/image_ref.h

What this is not: a test; it needs Pillow (Debian: python3-pil) and NumPy.
"""
import io
import struct
import zlib

import numpy as np
from PIL import Image


def pattern(w, h, c, seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    # smooth part plus noise, so that JPEG keeps some structure
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = ((xx * 31 + yy * 17) % 256).astype(np.uint8)[..., None]
    return ((base.astype(int) // 4 + ramp.astype(int) * 3 // 4) % 256).astype(np.uint8)


def encode(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def png_chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))


def png_adam7(a):
    """An interlaced (Adam7) 8-bit RGB PNG of a (h, w, 3), which PIL does
    not write."""
    h, w, _ = a.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\0" + row.tobytes()
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def png_grey2(a):
    """A 2-bit grey PNG of a (h, w) with values 0..3."""
    h, w = a.shape
    raw = b""
    for row in a:
        packed = bytearray((w * 2 + 7) // 8)
        for x, v in enumerate(row):
            packed[x // 4] |= int(v) << (6 - 2 * (x % 4))
        raw += b"\0" + bytes(packed)
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 2, 0, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def center_crop(img, n):
    """torchvision.transforms.functional.center_crop on a PIL image."""
    w, h = img.size
    if n > w or n > h:
        pl = (n - w) // 2 if n > w else 0
        pt = (n - h) // 2 if n > h else 0
        canvas = Image.new(img.mode, (max(w, n), max(h, n)), 0)
        canvas.paste(img, (pl, pt))
        img = canvas
        w, h = img.size
        if (w, h) == (n, n):
            return img
    top = int(round((h - n) / 2.0))
    left = int(round((w - n) / 2.0))
    return img.crop((left, top, left + n, top + n))


def resize_short(img, n):
    """torchvision Resize(n) on a PIL image."""
    w, h = img.size
    if w <= h:
        ow, oh = n, int(n * h / w)
    else:
        oh, ow = n, int(n * w / h)
    return img.resize((ow, oh), Image.BILINEAR)


def expect(data, channels, resize=0, crop=0, high16=False):
    img = Image.open(io.BytesIO(data))
    img.load()
    if high16:
        a = (np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)
        img = Image.fromarray(a, "L")
    img = img.convert("L" if channels == 1 else "RGB")
    if resize:
        img = resize_short(img, resize)
    if crop:
        img = center_crop(img, crop)
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[None]
    else:
        a = a.transpose(2, 0, 1)
    return a


def cases():
    rgb = Image.fromarray(pattern(7, 5, 3, 1), "RGB")
    grey = Image.fromarray(pattern(7, 5, 1, 2)[..., 0], "L")
    big = Image.fromarray(pattern(9, 6, 3, 3), "RGB")
    out = []
    out.append(("jpeg_rgb", "a.jpg", encode(rgb, "JPEG", quality=90), 0, 0, False))
    out.append(("jpeg_grey", "a.jpg", encode(grey, "JPEG", quality=90), 0, 0, False))
    out.append(("jpeg_cmyk", "a.jpeg", encode(rgb.convert("CMYK"), "JPEG", quality=90),
                0, 0, False))
    out.append(("png_rgb", "a.png", encode(rgb, "PNG"), 0, 0, False))
    out.append(("png_grey", "a.png", encode(grey, "PNG"), 0, 0, False))
    out.append(("png_rgba", "a.png", encode(rgb.convert("RGBA").copy(), "PNG"), 0, 0, False))
    la = Image.merge("LA", (grey, grey.point(lambda v: 255 - v)))
    out.append(("png_la", "a.png", encode(la, "PNG"), 0, 0, False))
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=5)
    out.append(("png_palette", "a.png", encode(pal, "PNG", transparency=0), 0, 0, False))
    bw = grey.point(lambda v: 255 if v > 128 else 0).convert("1")
    out.append(("png_1bit", "a.png", encode(bw, "PNG"), 0, 0, False))
    g16 = Image.fromarray((pattern(7, 5, 1, 4)[..., 0].astype(np.uint16) * 257 + 3), "I;16")
    out.append(("png_grey16", "a.png", encode(g16, "PNG"), 0, 0, True))
    out.append(("png_interlaced", "a.png", png_adam7(pattern(7, 5, 3, 6)), 0, 0, False))
    out.append(("png_grey2", "a.png", png_grey2(pattern(7, 5, 1, 8)[..., 0] % 4), 0, 0, False))
    # resizing and cropping (PNG, so the decode is exact)
    bigpng = encode(big, "PNG")
    out.append(("resize_down", "a.png", bigpng, 4, 0, False))
    out.append(("resize_crop", "a.png", bigpng, 4, 3, False))
    out.append(("resize_up", "a.png", bigpng, 10, 0, False))
    out.append(("crop_only", "a.png", bigpng, 0, 5, False))
    out.append(("crop_pad", "a.png", bigpng, 0, 8, False))
    out.append(("resize_big_down", "a.png", encode(
        Image.fromarray(pattern(40, 23, 3, 5), "RGB"), "PNG"), 7, 6, False))
    return out


def carr(name, data, per_line=16):
    s = "static const uint8_t %s[%d] = {\n" % (name, len(data))
    for i in range(0, len(data), per_line):
        s += "    " + ", ".join("%d" % b for b in data[i:i + per_line]) + ",\n"
    return s + "};\n"


def main():
    print("/* image_ref.h - tiny images and the pixels PIL decodes from them.")
    print(" * Generated by tests/gen_image_ref.py (Pillow %s); do not edit. */"
          % Image.__version__ if hasattr(Image, "__version__") else "")
    print("#ifndef MLTK_TESTS_IMAGE_REF_H\n#define MLTK_TESTS_IMAGE_REF_H\n")
    print("#include <stddef.h>\n#include <stdint.h>\n")
    rows = []
    for name, fname, data, resize, crop, high16 in cases():
        print(carr("ref_%s_file" % name, data))
        ent = ['"%s"' % name, '"%s"' % fname, "ref_%s_file" % name, "sizeof(ref_%s_file)" % name,
               str(resize), str(crop)]
        for ch in (1, 3):
            a = expect(data, ch, resize, crop, high16)
            print(carr("ref_%s_c%d" % (name, ch), a.tobytes()))
            ent += [str(a.shape[2]), str(a.shape[1]), "ref_%s_c%d" % (name, ch)]
        rows.append(ent)
    print("typedef struct image_ref {")
    print("    const char *name, *file;   /* case, file name */")
    print("    const uint8_t *data;       /* the file's bytes */")
    print("    size_t size;")
    print("    int resize, crop;          /* the data set's keys */")
    print("    int w1, h1; const uint8_t *c1;  /* 1 channel: (1, h1, w1) */")
    print("    int w3, h3; const uint8_t *c3;  /* 3 channels: (3, h3, w3) */")
    print("} image_ref;\n")
    print("static const image_ref image_refs[] = {")
    for e in rows:
        print("    { " + ", ".join(e) + " },")
    print("};\n\n#endif")


if __name__ == "__main__":
    main()
