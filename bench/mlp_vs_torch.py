#!/usr/bin/python3
"""Side-by-side benchmark: the Fashion-MNIST MLP in mltk and in PyTorch (CPU).

Same model (784-256-128-10, ReLU), same initialisation scheme (PyTorch's
nn.Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
biases), same optimizer (Adam, lr 1e-3), batch 128, same number of epochs,
same data (Debian's dataset-fashion-mnist, pixels / 255), same thread count.
Both keep the whole data set in memory and shuffle every epoch; PyTorch
indexes tensors directly (no DataLoader), which is its fastest path.

Every PyTorch build named with --torch (an interpreter that imports
torch: Debian's /usr/bin/python3, the venv of bench/setup-torch-venv.sh)
trains in its own process; both sides use the same seed (--seed: mltk's
[run] seed, torch.manual_seed), and the output records each build's
torch.__config__.show() and thread settings.  Reports each side's median
training samples/s over the epochs after one warm-up epoch (at least 3;
evaluation excluded; bench/torchref.py says how each side counts), the
ratios, and the final test accuracies.

usage: bench/mlp_vs_torch.py [--mltk PATH] [--epochs N] [--threads N]
                             [--torch PY]... [--seed N] [--limit N]
(--limit N trains on the first N samples only: a quick look, not a result)
Run from the build directory (default mltk: ./mltk).
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torchref  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 8, path
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return dims, raw[4 + 4 * ndim:]


def torch_run(epochs, threads, batch, seed, limit):
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)

    def load(images, labels):
        dims, xb = read_idx(os.path.join(DATA, images))
        _, yb = read_idx(os.path.join(DATA, labels))
        x = torch.from_numpy(np.frombuffer(xb, dtype=np.uint8).reshape(dims[0], -1)
                             .astype(np.float32) / 255.0)
        y = torch.from_numpy(np.frombuffer(yb, dtype=np.uint8).astype(np.int64))
        return x, y

    xtr, ytr = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    xte, yte = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()
    n = xtr.shape[0]
    rates = []
    acc = 0.0
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        for off in range(0, n, batch):
            idx = perm[off:off + batch]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        rates.append(n / (time.perf_counter() - t0))
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
    return rates, acc, torchref.torch_info(torch)


def mltk_run(mltk, epochs, threads, batch, seed, limit):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "mlp.ini")
        log = os.path.join(tmp, "log.jsonl")
        with open(cfg, "w") as f:
            f.write(f"""[run]
seed = {seed}
backend = cpu
threads = {threads}
[train]
epochs = {epochs}
batch_size = {batch}
[data]
type = idx
train_limit = {limit}
[layer.flat]
type = flatten
[layer.fc1]
type = dense
units = 256
activation = relu
[layer.fc2]
type = dense
units = 128
activation = relu
[layer.out]
type = dense
units = 10
[loss]
type = cross_entropy
[optimizer]
type = adam
lr = 0.001
[log]
jsonl = {log}
""")
        subprocess.run([mltk, "--config", cfg, "--quiet"], check=True)
        rows = [json.loads(line) for line in open(log)]
    torchref.mltk_rows_check(rows, epochs)
    return [r["samples_per_s"] for r in rows], rows[-1]["val_acc"]


def main():
    if "--torch-worker" in sys.argv:
        return torchref.worker(torch_run)
    ap = argparse.ArgumentParser()
    ap.add_argument("--mltk", default="./mltk")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N samples")
    ap.add_argument("--torch", action="append", metavar="PY",
                    help="an interpreter with a PyTorch build; repeatable "
                    "(default: /usr/bin/python3)")
    a = ap.parse_args()
    torchref.check_epochs(a.epochs)
    pythons = a.torch or ["/usr/bin/python3"]
    torchref.print_header(a.threads)
    print(f"model: MLP 784-256-128-10 relu, adam lr 1e-3, batch {a.batch}, {a.epochs} epochs, "
          f"seed {a.seed}" + (f", first {a.limit} samples (not a result)" if a.limit else ""),
          flush=True)
    m_rates, m_acc = mltk_run(a.mltk, a.epochs, a.threads, a.batch, a.seed, a.limit)
    builds = torchref.run_builds(os.path.abspath(__file__), pythons,
                                 {"epochs": a.epochs, "threads": a.threads, "batch": a.batch,
                                  "seed": a.seed, "limit": a.limit})
    m, m_meas = torchref.measured(m_rates)
    print(f"{'':24} {'samples/s':>10} {'mltk/this':>10} {'test acc':>9}   epochs measured")
    print(f"{'mltk':24} {m:10.0f} {'':>10} {m_acc:9.4f}   {torchref.fmt_rates(m_meas)}")
    for b in builds:
        t, t_meas = torchref.measured(b["rates"])
        name = f"PyTorch {b['info']['version']}"
        print(f"{name:24} {t:10.0f} {m / t:9.2f}x {b['acc']:9.4f}   {torchref.fmt_rates(t_meas)}")
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    torchref.print_builds(builds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
