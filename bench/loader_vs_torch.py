#!/usr/bin/python3
"""Side-by-side benchmark: decoding and augmenting a JPEG image folder with
mltk's data loader and with PyTorch's DataLoader (torchvision + PIL).

The images: the first --images pictures of Fashion-MNIST's training set
(Debian's dataset-fashion-mnist IDX files, read with gzip and numpy),
upscaled with PIL (bicubic) to --size x --size, tinted into RGB by a
per-image colour drawn from a fixed seed, and written as baseline JPEGs of
quality 90 (PIL's default 4:2:0 chroma subsampling) in torchvision's
ImageFolder layout, ROOT/train/CLASS/NNNNN.jpg, plus 1000 more in
ROOT/test (mltk's config needs a test split; databench never reads it).
They are made once into a cache directory (--cache, default
~/.cache/mltk/loader-bench) and reused; both sides read the very same
files.

Both sides do the same work per image, training split only: decode the
JPEG to RGB, random resized crop to --crop x --crop (scale 0.08-1, ratio
3/4-4/3: torchvision's defaults), horizontal flip with probability 1/2,
convert to float and normalise per channel (ImageNet's mean and std), and
gather the images into batches of --batch, reshuffled every epoch, the
last batch kept (drop_last off), with --workers W worker processes or
threads:

- PyTorch: torchvision.datasets.ImageFolder (PIL loader) with
  transforms.Compose([RandomResizedCrop, RandomHorizontalFlip, ToTensor,
  Normalize]) in a torch.utils.data.DataLoader(batch_size, shuffle=True,
  num_workers=W, drop_last=False, persistent_workers=W > 0), its default
  prefetch_factor 2 (2 W batches in flight).  Persistent workers are not
  the default; they spare PyTorch the start of new worker processes every
  epoch, so they only make its side faster.
- mltk: `mltk databench --config FILE --epochs E`, which runs the
  training split's loader (the config's [data] and [transform.*] sections,
  its workers and prefetch) without training, and prints one line
  `databench: SAMPLES samples in SECONDS s: RATE samples/s (workers W,
  prefetch P, MODE)`.  The config: [data] type = imagefolder on ROOT, no
  resize or crop of its own, workers = W, prefetch = 2 W (PyTorch's
  in-flight batches; not written when W = 0: mltk's default 4), mode =
  stream (as auto chooses for a split with random transforms: every epoch
  decodes every file again, as PyTorch does); [transform.rrc]
  random_resized_crop, [transform.flip] flip, [transform.norm] normalize.
  Its model (flatten, dense) is built but never run.  The crop's output
  size is the images' own (--crop defaults to --size; mltk refuses another
  one): mltk evaluates the test split with the chain less its training-only
  transforms and wants both chains to end at the same shape, and has no
  transform for the test split only (torchvision's Resize + CenterCrop).

Rates: images/s = the samples of --epochs whole epochs over the time from
the start of the first epoch (PyTorch: creating the DataLoader iterator,
which starts the workers; mltk: as its databench line counts) to the last
batch of the last epoch, worker start-up INCLUDED (PyTorch's time to its
first batch is printed beside it).  Each (side, W) is measured --repeats
times (default 3), the sides alternating within each round, and the
median is reported; every measurement is printed as it runs, with the
1-minute load average at its start.  Every PyTorch build named with
--torch (an interpreter that imports torch and torchvision) runs in its
own process (bench/torchref.py's worker mode), seeded with --seed, its
main process limited to --threads intra-op threads (DataLoader workers
run one thread each).  The output starts with the machine and its load
and ends with each build's torch, torchvision and PIL versions and
torch.__config__.show().  Measure on a quiet machine.

usage: bench/loader_vs_torch.py [--mltk PATH] [--plugin-dir DIR]... [--no-mltk]
           [--torch PY]... [--workers 0,1,2] [--epochs N] [--repeats N] [--batch N]
           [--images N] [--size N] [--crop N] [--threads N] [--seed N]
           [--cache DIR]
Run from the build directory (default mltk: ./mltk).  --no-mltk measures
the PyTorch side only.  The images are made by the first --torch
interpreter (it has numpy and PIL).

What this is not: a test (nothing here runs in `make check`, no timing is
asserted), or a model's training time: no step runs.
"""
import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torchref  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
QUALITY = 90
TEST_IMAGES = 1000
DATABENCH = re.compile(r"databench: (\d+) samples in ([0-9.eE+-]+) s: ([0-9.eE+-]+) samples/s "
                       r"\(workers (\d+), prefetch (\d+)(?:, (\w+))?\)")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 8, path
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return dims, raw[4 + 4 * ndim:]


def write_split(root, split, images, labels, first, count, size, rng):
    """count images from index first on, as ROOT/split/CLASS/NNNNN.jpg"""
    import numpy as np
    from PIL import Image
    for c in CLASSES:
        os.makedirs(os.path.join(root, split, c), exist_ok=True)
    for i in range(first, first + count):
        grey = Image.fromarray(images[i]).resize((size, size), Image.BICUBIC)
        tint = rng.uniform(0.5, 1.0, size=3)
        rgb = (np.asarray(grey, dtype=np.float32)[:, :, None] * tint).round()
        img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
        img.save(os.path.join(root, split, CLASSES[labels[i]], f"{i:05d}.jpg"),
                 quality=QUALITY)


def make_images(cache, n, size):
    """the image folder for (n, size), made once: its root"""
    import numpy as np
    root = os.path.join(cache, f"fashion-mnist-{n}-{size}px-q{QUALITY}")
    if os.path.exists(os.path.join(root, "complete")):
        return root
    os.makedirs(cache, exist_ok=True)
    dims, xb = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"))
    _, yb = read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz"))
    if n + TEST_IMAGES > dims[0]:
        sys.exit(f"--images {n}: at most {dims[0] - TEST_IMAGES}")
    images = np.frombuffer(xb, dtype=np.uint8).reshape(dims[0], dims[1], dims[2])
    labels = np.frombuffer(yb, dtype=np.uint8)
    tmp = tempfile.mkdtemp(prefix=".making-", dir=cache)
    try:
        rng = np.random.default_rng(20261203)
        write_split(tmp, "train", images, labels, 0, n, size, rng)
        write_split(tmp, "test", images, labels, n, TEST_IMAGES, size, rng)
        with open(os.path.join(tmp, "complete"), "w") as f:
            f.write(f"{n} training and {TEST_IMAGES} test images of Fashion-MNIST, "
                    f"{size}x{size} RGB JPEG quality {QUALITY}\n")
        os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def folder_bytes(d):
    total = files = 0
    for dirpath, _, names in os.walk(d):
        for name in names:
            if name.endswith(".jpg"):
                total += os.path.getsize(os.path.join(dirpath, name))
                files += 1
    return files, total


def torch_run(root, crop, batch, workers, epochs, seed, threads):
    """--torch-worker: one measurement of PyTorch's DataLoader"""
    import PIL
    import torch
    import torchvision
    from torchvision import datasets, transforms
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tf = transforms.Compose([transforms.RandomResizedCrop(crop),
                             transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(),
                             transforms.Normalize(MEAN, STD)])
    ds = datasets.ImageFolder(os.path.join(root, "train"), transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                     drop_last=False, persistent_workers=workers > 0)
    n = 0
    first = None
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, y in dl:
            if first is None:
                first = time.perf_counter() - t0
                if tuple(x.shape[1:]) != (3, crop, crop) or x.dtype != torch.float32:
                    raise SystemExit(f"PyTorch batch {tuple(x.shape)} {x.dtype}")
            n += x.shape[0]
    dt = time.perf_counter() - t0
    if n != epochs * len(ds):
        raise SystemExit(f"PyTorch: {n} samples, not {epochs} x {len(ds)}")
    info = torchref.torch_info(torch)
    info.update({"torchvision": torchvision.__version__, "pil": PIL.__version__,
                 "image_backend": torchvision.get_image_backend(),
                 "samples": n, "seconds": dt, "first_batch_s": first})
    return [n / dt], None, info


def mltk_config(path, root, crop, batch, workers, epochs, seed, threads):
    prefetch = f"prefetch = {2 * workers}\n" if workers > 0 else ""
    with open(path, "w") as f:
        f.write(f"""[run]
seed = {seed}
backend = cpu
threads = {threads}
[train]
epochs = {epochs}
batch_size = {batch}
[data]
type = imagefolder
path = {root}/train
test_path = {root}/test
mode = stream
resize = 0
crop = 0
workers = {workers}
{prefetch}[transform.rrc]
type = random_resized_crop
size = {crop}
[transform.flip]
type = flip
[transform.norm]
type = normalize
mean = {", ".join(str(v) for v in MEAN)}
std = {", ".join(str(v) for v in STD)}
[layer.flat]
type = flatten
[layer.out]
type = dense
units = {len(CLASSES)}
[loss]
type = cross_entropy
[optimizer]
type = sgd
lr = 0.01
""")


def mltk_run(mltk, plugin_dirs, root, crop, batch, workers, epochs, seed, threads, expect):
    """one measurement of `mltk databench`: (rate, samples, seconds, prefetch)"""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "loader.ini")
        mltk_config(cfg, root, crop, batch, workers, epochs, seed, threads)
        pd = [arg for d in plugin_dirs for arg in ("--plugin-dir", d)]
        p = subprocess.run([mltk, "databench", "--config", cfg, "--epochs", str(epochs)] + pd,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        m = DATABENCH.search(p.stdout)
        if p.returncode != 0 or not m:
            sys.exit(f"mltk databench (exit {p.returncode}) printed no databench line:\n"
                     f"{p.stdout.rstrip()}\nits config:\n{open(cfg).read()}")
    samples, seconds, rate = int(m.group(1)), float(m.group(2)), float(m.group(3))
    if samples != expect:
        sys.exit(f"mltk databench: {samples} samples, not {expect} ({epochs} epochs)")
    if int(m.group(4)) != workers:
        sys.exit(f"mltk databench ran {m.group(4)} workers, not {workers}")
    if m.group(6) and m.group(6) != "stream":
        sys.exit(f"mltk databench: the training split is {m.group(6)}, not streamed")
    return rate, samples, seconds, int(m.group(5))


def main():
    if "--torch-worker" in sys.argv:
        return torchref.worker(torch_run)
    if "--make-images" in sys.argv:  # in an interpreter with numpy and PIL
        print(make_images(*json.loads(sys.argv[sys.argv.index("--make-images") + 1])))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--mltk", default="./mltk")
    ap.add_argument("--no-mltk", action="store_true", help="measure PyTorch only")
    ap.add_argument("--plugin-dir", action="append", default=[], metavar="DIR",
                    help="passed to mltk as --plugin-dir; repeatable")
    ap.add_argument("--torch", action="append", metavar="PY",
                    help="an interpreter with PyTorch and torchvision; repeatable "
                    "(default: /usr/bin/python3)")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per side and W")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--images", type=int, default=6000, help="training images")
    ap.add_argument("--size", type=int, default=96, help="the JPEGs' side in pixels")
    ap.add_argument("--crop", type=int, default=0,
                    help="random resized crop's output side (default: --size)")
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch main-process threads; mltk [run] threads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "mltk",
                                                    "loader-bench"))
    a = ap.parse_args()
    workers = [int(w) for w in a.workers.split(",")]
    a.crop = a.crop or a.size
    if a.crop != a.size and not a.no_mltk:
        sys.exit(f"--crop {a.crop} with --size {a.size}: mltk's test split would not have "
                 f"the training split's shape; use --crop {a.size} or --no-mltk")
    if a.epochs < 1 or a.repeats < 1 or min(workers) < 0:
        sys.exit("--epochs and --repeats: at least 1; --workers: 0 or more")
    pythons = a.torch or ["/usr/bin/python3"]
    script = os.path.abspath(__file__)

    print(f"machine: {os.uname().machine}, {os.cpu_count()} cpus, {torchref.cpu_model()}; "
          f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min)")
    t = time.perf_counter()
    root = subprocess.run([pythons[0], script, "--make-images",
                           json.dumps([a.cache, a.images, a.size])],
                          stdout=subprocess.PIPE, check=True, text=True).stdout.strip()
    files, size = folder_bytes(os.path.join(root, "train"))
    print(f"images: {root}/train: {files} RGB JPEGs {a.size}x{a.size} quality {QUALITY}, "
          f"{size / files / 1024:.1f} KiB each on average, {len(CLASSES)} classes "
          f"(ready in {time.perf_counter() - t:.1f} s)")
    print(f"work per image: decode, random resized crop to {a.crop}x{a.crop}, flip p=0.5, "
          f"normalise; batch {a.batch}, shuffled, last batch kept; {a.epochs} epochs per "
          f"measurement, seed {a.seed}, {a.threads} main-process thread(s)")
    print(f"rate: images/s over whole epochs, worker start-up included; the median of "
          f"{a.repeats} measurements per side and worker count", flush=True)

    expect = a.epochs * files
    res = {}  # (side, W) -> list of rates
    info = {}  # python -> the last worker's info
    for r in range(a.repeats):
        for w in workers:
            if not a.no_mltk:
                load = os.getloadavg()[0]
                rate, _, sec, pf = mltk_run(a.mltk, a.plugin_dir, root, a.crop, a.batch, w,
                                            a.epochs, a.seed, a.threads, expect)
                res.setdefault(("mltk", w), []).append(rate)
                print(f"  round {r + 1} W={w} {'mltk':24} {rate:8.0f} images/s  "
                      f"({sec:.2f} s, prefetch {pf}; load {load:.2f})", flush=True)
            for py in pythons:
                load = os.getloadavg()[0]
                b = torchref.run_builds(script, [py], {
                    "root": root, "crop": a.crop, "batch": a.batch, "workers": w,
                    "epochs": a.epochs, "seed": a.seed, "threads": a.threads})[0]
                i = b["info"]
                info[py] = b
                res.setdefault((py, w), []).append(b["rates"][0])
                name = f"PyTorch {i['version']}"
                print(f"  round {r + 1} W={w} {name:24} {b['rates'][0]:8.0f} images/s  "
                      f"({i['seconds']:.2f} s, first batch {i['first_batch_s']:.2f} s; "
                      f"load {load:.2f})", flush=True)

    print(f"\n{'images/s (median)':28}" + "".join(f"{'W=' + str(w):>10}" for w in workers))
    if not a.no_mltk:
        print(f"{'mltk':28}" + "".join(f"{statistics.median(res[('mltk', w)]):10.0f}"
                                       for w in workers))
    for py in pythons:
        i = info[py]["info"]
        print(f"{'PyTorch ' + i['version']:28}" + "".join(
            f"{statistics.median(res[(py, w)]):10.0f}" for w in workers))
    if not a.no_mltk:
        for py in pythons:
            i = info[py]["info"]
            print(f"{'mltk / ' + i['version']:28}" + "".join(
                f"{statistics.median(res[('mltk', w)]) / statistics.median(res[(py, w)]):9.2f}x"
                for w in workers))
    print(f"load at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    builds = [info[py] for py in pythons]
    for b in builds:
        i = b["info"]
        print(f"\n{b['python']}: torch {i['version']}, torchvision {i['torchvision']} "
              f"(image backend {i['image_backend']}), PIL {i['pil']}")
    torchref.print_builds(builds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
