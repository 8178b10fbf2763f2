#!/usr/bin/python3
"""Side-by-side benchmark: the Fashion-MNIST CNN examples in mltk and in PyTorch (CPU).

The PyTorch model is built from the very INI file mltk trains: its
[layer.*] sections are read with configparser and translated one by one
(conv2d, maxpool2d, avgpool2d, global_avgpool, batchnorm, dropout, the
activation layers, flatten, dense, add with named inputs), with the same
fused activations, the same initialisers (mltk's `default` is PyTorch's
own), the same optimizer (adam/adamw/sgd with their keys), cosine
schedule, batch size, epochs, data (pixels / 255) and thread count.  Both
keep the whole data set in memory and reshuffle every epoch; PyTorch
indexes tensors directly (no DataLoader), which is its fastest path.

Every PyTorch build named with --torch (an interpreter that imports
torch: Debian's /usr/bin/python3, the venv of bench/setup-torch-venv.sh)
trains in its own process; both sides use the same seed (--seed replaces
the example's [run] seed and is torch.manual_seed), and the output
records each build's torch.__config__.show() and thread settings.
Reports each side's median training samples/s over the epochs after one
warm-up epoch (at least 3; evaluation excluded; bench/torchref.py says how
each side counts), the ratios and the final test accuracies.  For the
`cnn` model it also builds and runs bench/conv_roof.c: each conv layer's
forward and backward time at batch 128 against the sgemm roof.

usage: bench/cnn_vs_torch.py [--model cnn|cnn-bn|resnet|all] [--mltk PATH]
                             [--epochs N] [--threads N] [--torch PY]...
                             [--seed N] [--limit N] [--srcdir DIR] [--no-roof]
(--limit N trains on the first N samples only: a quick look, not a result)
Run from the build directory (default mltk: ./mltk).
"""
import argparse
import configparser
import gzip
import json
import math
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
MODELS = {
    "cnn": "examples/fashion-mnist-cnn.ini",
    "cnn-bn": "examples/fashion-mnist-cnn-bn.ini",
    "resnet": "examples/fashion-mnist-resnet.ini",
}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 8, path
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return dims, raw[4 + 4 * ndim:]


def read_ini(path):
    cp = configparser.ConfigParser(inline_comment_prefixes=("#", ";"),
                                   interpolation=None)
    cp.optionxform = str
    with open(path) as f:
        cp.read_file(f)
    return cp


def pair(text, default=None):
    if text is None:
        return default
    v = [int(t) for t in str(text).split(",")]
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


# ---- the PyTorch model, translated from the INI ---------------------------

def build_torch(cp, torch):
    nn = torch.nn
    layers = [s for s in cp.sections() if s.startswith("layer.")]
    shapes = {"": (1, 28, 28)}  # the data
    mods, plan, prev = nn.ModuleDict(), [], ""

    def act_module(name, slope):
        return {"none": None, "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(slope),
                "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}[name]

    def init_weight(w, kind, std, fan_in, fan_out):
        with torch.no_grad():
            if kind == "he_normal":
                w.normal_(0.0, math.sqrt(2.0 / fan_in))
            elif kind == "he_uniform":
                b = math.sqrt(6.0 / fan_in)
                w.uniform_(-b, b)
            elif kind == "xavier_normal":
                w.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)))
            elif kind == "xavier_uniform":
                b = math.sqrt(6.0 / (fan_in + fan_out))
                w.uniform_(-b, b)
            elif kind == "normal":
                w.normal_(0.0, std)
            elif kind == "zeros":
                w.zero_()
            # "default": PyTorch's own initialisation, as mltk's

    for sec in layers:
        name = sec[len("layer."):]
        s = cp[sec]
        typ = s.get("type")
        inputs = [t.strip() for t in s.get("input", prev).split(",")] if s.get("input") \
            else [prev]
        ins = [shapes[i] for i in inputs]
        shp = ins[0]
        if typ == "conv2d":
            C, H, W = shp
            K = int(s["filters"])
            R, S = pair(s["kernel"])
            st = pair(s.get("stride"), (1, 1))
            dil = pair(s.get("dilation"), (1, 1))
            g = int(s.get("groups", "1"))
            pad = s.get("padding", "0")
            if pad == "same":
                pad = (dil[0] * (R - 1) // 2, dil[1] * (S - 1) // 2)
            elif pad == "valid":
                pad = (0, 0)
            else:
                pad = pair(pad)
            bias = s.get("bias", "true") == "true"
            m = nn.Conv2d(C, K, (R, S), st, pad, dil, g, bias=bias)
            init_weight(m.weight, s.get("init", "default"), float(s.get("init_std", "0.01")),
                        C // g * R * S, K * R * S)
            if bias and s.get("bias_init", "default") == "zeros":
                nn.init.zeros_(m.bias)
            act = act_module(s.get("activation", "none"), float(s.get("negative_slope", "0.01")))
            m = nn.Sequential(m, act) if act else m
            P = (H + 2 * pad[0] - dil[0] * (R - 1) - 1) // st[0] + 1
            Q = (W + 2 * pad[1] - dil[1] * (S - 1) - 1) // st[1] + 1
            out = (K, P, Q)
        elif typ in ("maxpool2d", "avgpool2d"):
            C, H, W = shp
            R, S = pair(s["kernel"])
            st = pair(s.get("stride"), (R, S))
            pad = pair(s.get("padding"), (0, 0))
            m = (nn.MaxPool2d if typ == "maxpool2d" else nn.AvgPool2d)((R, S), st, pad)
            out = (C, (H + 2 * pad[0] - R) // st[0] + 1, (W + 2 * pad[1] - S) // st[1] + 1)
        elif typ == "global_avgpool":
            m = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            out = (shp[0],)
        elif typ == "batchnorm":
            cls = nn.BatchNorm2d if len(shp) == 3 else nn.BatchNorm1d
            m = cls(shp[0], eps=float(s.get("eps", "1e-5")),
                    momentum=float(s.get("momentum", "0.1")),
                    affine=s.get("affine", "true") == "true")
            out = shp
        elif typ == "dropout":
            m = nn.Dropout(float(s.get("rate", "0.5")))
            out = shp
        elif typ in ("relu", "leaky_relu", "sigmoid", "tanh"):
            m = act_module(typ, float(s.get("negative_slope", "0.01")))
            out = shp
        elif typ == "flatten":
            m = nn.Flatten()
            out = (math.prod(shp),)
        elif typ == "dense":
            fin = math.prod(shp)
            U = int(s["units"])
            bias = s.get("bias", "true") == "true"
            lin = nn.Linear(fin, U, bias=bias)
            init_weight(lin.weight, s.get("init", "default"), float(s.get("init_std", "0.01")),
                        fin, U)
            seq = [nn.Flatten()] if len(shp) > 1 else []
            seq.append(lin)
            act = act_module(s.get("activation", "none"), float(s.get("negative_slope", "0.01")))
            if act:
                seq.append(act)
            m = nn.Sequential(*seq)
            out = (U,)
        elif typ == "add":
            m = None
            out = shp
        else:
            raise SystemExit(f"cnn_vs_torch: layer type '{typ}' ({sec}) is not translated")
        if m is not None:
            mods[name] = m
        plan.append((name, typ, inputs))
        shapes[name] = out
        prev = name

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = mods

        def forward(self, x):
            vals = {"": x}
            for name, typ, inputs in plan:
                if typ == "add":
                    v = vals[inputs[0]]
                    for i in inputs[1:]:
                        v = v + vals[i]
                    vals[name] = v
                else:
                    vals[name] = self.mods[name](vals[inputs[0]])
            return vals[plan[-1][0]]

    return Graph()


def torch_run(cp, epochs, threads, seed, limit):
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    batch = int(cp["train"].get("batch_size", "128"))

    def load(images, labels):
        dims, xb = read_idx(os.path.join(DATA, images))
        _, yb = read_idx(os.path.join(DATA, labels))
        x = torch.from_numpy(np.frombuffer(xb, dtype=np.uint8).reshape(dims[0], 1, 28, 28)
                             .astype(np.float32) / 255.0)
        y = torch.from_numpy(np.frombuffer(yb, dtype=np.uint8).astype(np.int64))
        return x, y

    xtr, ytr = load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    xte, yte = load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    model = build_torch(cp, torch)
    o = cp["optimizer"]
    lr = float(o.get("lr", "0.001"))
    wd = float(o.get("weight_decay", "0"))
    typ = o.get("type", "adam")
    if typ == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=float(o.get("momentum", "0")),
                              weight_decay=wd, nesterov=o.get("nesterov", "false") == "true")
    elif typ == "adamw" or (typ == "adam" and o.get("decoupled", "false") == "true"):
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    sched = None
    if cp.has_section("schedule") and cp["schedule"].get("type") == "cosine":
        tmax = int(cp["schedule"].get("T_max", "0")) or epochs
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=tmax, eta_min=float(cp["schedule"].get("eta_min", "0")))
    lossf = torch.nn.CrossEntropyLoss(
        label_smoothing=float(cp["loss"].get("label_smoothing", "0")))
    n = xtr.shape[0]
    rates, acc = [], 0.0
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
        if sched:
            sched.step()
        model.eval()
        with torch.no_grad():
            correct = 0
            for off in range(0, xte.shape[0], 1000):
                correct += (model(xte[off:off + 1000]).argmax(1) == yte[off:off + 1000]).sum().item()
            acc = correct / xte.shape[0]
    return rates, acc, torchref.torch_info(torch)


def torch_worker_run(ini, epochs, threads, seed, limit):
    return torch_run(read_ini(ini), epochs, threads, seed, limit)


# ---- mltk ------------------------------------------------------------------

def mltk_run(mltk, ini, epochs, threads, limit, seed=None):
    """per-epoch samples/s and the final test accuracy of mltk training
    ini on the cpu backend (no augmentation, no checkpoints; seed, when
    given, replaces the example's)"""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        cfg = os.path.join(tmp, "model.ini")
        text = open(ini).read()
        extra = f"\n[log]\njsonl = {log}\n"
        # the benchmark's backend and threads replace the example's
        lines, out, sec = text.splitlines(), [], None
        for line in lines:
            s = line.strip()
            if s.startswith("["):
                sec = s
            if sec == "[run]" and (s.startswith("backend") or s.startswith("threads")):
                continue
            if sec == "[run]" and seed is not None and s.startswith("seed"):
                continue
            # never a checkpoint: no resume, no writes in the timed epochs
            if sec == "[checkpoint]":
                continue
            if sec == "[data]" and s.startswith("train_limit"):
                continue
            # the PyTorch side does not augment: neither does this one
            if sec == "[data]" and s.startswith("augment_"):
                continue
            if sec == "[log]":
                continue
            out.append(line)
            if s == "[run]":
                out.append("backend = cpu")
                out.append(f"threads = {threads}")
                if seed is not None:
                    out.append(f"seed = {seed}")
            if s == "[data]" and limit:
                out.append(f"train_limit = {limit}")
        with open(cfg, "w") as f:
            f.write("\n".join(out) + extra)
        subprocess.run([mltk, "--config", cfg, "--quiet", "--epochs", str(epochs)], check=True)
        rows = [json.loads(line) for line in open(log)]
    torchref.mltk_rows_check(rows, epochs)
    return [r["samples_per_s"] for r in rows], rows[-1]["val_acc"]


def conv_roof(srcdir, threads):
    exe = os.path.join(tempfile.gettempdir(), f"conv_roof.{os.getpid()}")
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-I" + os.path.join(srcdir, "include"),
                    os.path.join(srcdir, "bench", "conv_roof.c"), "-o", exe,
                    ".libs/libmltk.so", "-Wl,-rpath," + os.path.abspath(".libs"), "-ldl"],
                   check=True)
    try:
        subprocess.run([exe, str(threads), "."], check=True)
    finally:
        os.unlink(exe)


def main():
    if "--torch-worker" in sys.argv:
        return torchref.worker(torch_worker_run)
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn", choices=list(MODELS) + ["all"])
    ap.add_argument("--mltk", default="./mltk")
    ap.add_argument("--epochs", type=int, default=0, help="0: the example's own")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N samples")
    ap.add_argument("--srcdir", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--torch", action="append", metavar="PY",
                    help="an interpreter with a PyTorch build; repeatable "
                    "(default: /usr/bin/python3)")
    ap.add_argument("--no-roof", action="store_true", help="skip bench/conv_roof.c")
    a = ap.parse_args()
    names = list(MODELS) if a.model == "all" else [a.model]
    pythons = a.torch or ["/usr/bin/python3"]
    torchref.print_header(a.threads)
    results = []
    for name in names:
        ini = os.path.join(a.srcdir, MODELS[name])
        if not os.path.exists(ini):
            print(f"{name}: {ini} not present, skipped")
            continue
        cp = read_ini(ini)
        epochs = a.epochs or int(cp["train"].get("epochs", "10"))
        torchref.check_epochs(epochs)
        print(f"\nmodel {name} ({MODELS[name]}), {epochs} epochs, batch "
              f"{cp['train'].get('batch_size', '128')}, seed {a.seed}"
              + (f", first {a.limit} samples (not a result)" if a.limit else ""), flush=True)
        m_rates, m_acc = mltk_run(a.mltk, ini, epochs, a.threads, a.limit, a.seed)
        builds = torchref.run_builds(os.path.abspath(__file__), pythons,
                                     {"ini": ini, "epochs": epochs, "threads": a.threads,
                                      "seed": a.seed, "limit": a.limit})
        results += builds
        m, m_meas = torchref.measured(m_rates)
        print(f"  {'':24} {'samples/s':>10} {'mltk/this':>10} {'test acc':>9}   "
              "epochs measured")
        print(f"  {'mltk':24} {m:10.0f} {'':>10} {m_acc:9.4f}   {torchref.fmt_rates(m_meas)}")
        for b in builds:
            t, t_meas = torchref.measured(b["rates"])
            tname = f"PyTorch {b['info']['version']}"
            print(f"  {tname:24} {t:10.0f} {m / t:9.2f}x {b['acc']:9.4f}   "
                  f"{torchref.fmt_rates(t_meas)}", flush=True)
        if name == "cnn" and not a.no_roof:
            conv_roof(a.srcdir, a.threads)
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    # one build's settings do not change from model to model
    torchref.print_builds(results[:len(pythons)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
