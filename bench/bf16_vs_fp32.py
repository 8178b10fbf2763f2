#!/usr/bin/env python3
"""bf16 against fp32 training on the cpu backend, same build, one run.

Trains the Fashion-MNIST MLP and CNN examples (examples/fashion-mnist-mlp.ini,
examples/fashion-mnist-cnn.ini) for a short fixed number of epochs with
[run] precision = fp32 and = bf16, alternating the two (fp32, bf16, fp32,
bf16, ... for --repeats rounds) so that both see the same load on a shared
machine, and prints for each model the median training samples/s of each
precision (evaluation excluded, as the run's own samples_per_s), the ratio
bf16 / fp32, the test accuracy after the last epoch, and the machine: CPU
model, threads, and whether the CPU has avx512_bf16 (the instruction that
multiplies bf16: vdpbf16ps), avx512f, amx_bf16 and avx2.

The roof.  Where the CPU has AVX-512 BF16, the bf16 roof is threads x GHz x
64 flop/cycle (one 512-bit vdpbf16ps per cycle: 16 lanes x 2 products x 2
flop) and the script prints the fraction of it that training reaches, from
the model's flop per training sample (below).  Where it has not, no
instruction multiplies bf16: the cpu backend widens the bf16 operands to
float32 and runs its float32 kernels, so there is no bf16 roof to compare
with; the script says so and prints instead the GFLOP/s reached and the
fraction of the float32 FMA roof (threads x GHz x 32 flop/cycle: two
256-bit FMAs per cycle) that both precisions run under.  GHz is the
nominal clock /proc/cpuinfo reports (or --ghz), so the fractions are
approximate; bench/bf16_gemm.c measures the clock and the kernels' roofs.

Flop per training sample: 2 MNK per product, for the forward product and
the weight gradient of every dense and conv2d layer, and the input gradient
of every such layer but the first (whose input is the data and needs
none).  The MLP: 1.007 MFLOP; the CNN: 25.0 MFLOP.

usage: bench/bf16_vs_fp32.py [--mltk PATH] [--srcdir DIR] [--threads N]
                             [--mlp-epochs N] [--cnn-epochs N]
                             [--cnn-limit N] [--repeats N] [--ghz F]
Run from the build directory (default mltk: ./mltk).  Not part of make
check; timings are never asserted.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

MODELS = {
    "mlp": "examples/fashion-mnist-mlp.ini",
    "cnn": "examples/fashion-mnist-cnn.ini",
}


def cpu_info():
    model, flags, mhz = "?", set(), None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name" and model == "?":
                    model = v
                elif k == "flags" and not flags:
                    flags = set(v.split())
                elif k == "cpu MHz" and mhz is None:
                    try:
                        mhz = float(v)
                    except ValueError:
                        pass
    except OSError:
        pass
    return model, flags, mhz


def read_ini(path):
    """[(section, {key: value})] in file order"""
    secs, cur = [], None
    for raw in open(path):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            cur = (line[1:-1], {})
            secs.append(cur)
        elif cur is not None and "=" in line:
            k, _, v = line.partition("=")
            cur[1][k.strip()] = v.strip()
    return secs


def pair(v, default):
    if v is None:
        return default, default
    parts = [int(p) for p in v.split(",")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def flop_per_sample(path):
    """forward + weight gradient of every dense/conv2d layer, + the input
    gradient of every such layer but the first (see the docstring)"""
    shape = (1, 28, 28)  # Fashion-MNIST samples
    total, first = 0.0, True
    for name, kv in read_ini(path):
        if not name.startswith("layer."):
            continue
        t = kv.get("type")
        if t == "flatten":
            n = 1
            for d in shape:
                n *= d
            shape = (n,)
        elif t == "dense":
            n_in = 1
            for d in shape:
                n_in *= d
            units = int(kv["units"])
            mac = n_in * units
            total += 2 * mac * (2 if first else 3)
            first = False
            shape = (units,)
        elif t == "conv2d":
            C, H, W = shape
            K = int(kv["filters"])
            R, S = pair(kv.get("kernel"), 1)
            sh, sw = pair(kv.get("stride"), 1)
            pad = kv.get("padding", "0")
            if pad == "same":
                ph, pw = (R - 1) // 2, (S - 1) // 2
            elif pad == "valid":
                ph, pw = 0, 0
            else:
                ph, pw = pair(pad, 0)
            P = (H + 2 * ph - R) // sh + 1
            Q = (W + 2 * pw - S) // sw + 1
            mac = P * Q * K * C * R * S
            total += 2 * mac * (2 if first else 3)
            first = False
            shape = (K, P, Q)
        elif t in ("maxpool2d", "avgpool2d"):
            C, H, W = shape
            R, S = pair(kv.get("kernel"), 1)
            sh, sw = pair(kv.get("stride"), None) if kv.get("stride") else (R, S)
            shape = (C, (H - R) // sh + 1, (W - S) // sw + 1)
        # element-wise layers keep the shape
    return total


def run(mltk, ini, prec, epochs, threads, limit):
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        cfg = os.path.join(tmp, "model.ini")
        out, sec = [], None
        for line in open(ini).read().splitlines():
            s = line.strip()
            if s.startswith("["):
                sec = s
            if sec == "[run]" and re.match(r"(backend|threads|precision)\b", s):
                continue
            if sec == "[data]" and s.startswith("train_limit"):
                continue
            if sec == "[log]":
                continue
            out.append(line)
            if s == "[run]":
                out += ["backend = cpu", f"threads = {threads}", f"precision = {prec}"]
            if s == "[data]" and limit:
                out.append(f"train_limit = {limit}")
        with open(cfg, "w") as f:
            f.write("\n".join(out) + f"\n[log]\njsonl = {log}\n")
        subprocess.run([mltk, "--config", cfg, "--quiet", "--epochs", str(epochs)], check=True)
        rows = [json.loads(line) for line in open(log)]
    return [r["samples_per_s"] for r in rows], rows[-1]["val_acc"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mltk", default="./mltk")
    ap.add_argument("--srcdir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     ".."))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--mlp-epochs", type=int, default=3)
    ap.add_argument("--cnn-epochs", type=int, default=1)
    ap.add_argument("--cnn-limit", type=int, default=0,
                    help="train the CNN on the first N samples only (0: all 60000)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--ghz", type=float, default=None,
                    help="clock for the roofs (default: /proc/cpuinfo's cpu MHz)")
    ap.add_argument("--models", default="mlp,cnn")
    a = ap.parse_args()

    model, flags, mhz = cpu_info()
    ghz = a.ghz if a.ghz else (mhz / 1000.0 if mhz else None)
    has = {f: f in flags for f in ("avx512_bf16", "avx512f", "amx_bf16", "avx2")}
    print(f"machine: {model}, {os.cpu_count()} cpus, {a.threads} threads; "
          + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in has.items())
          + (f"; nominal clock {ghz:.2f} GHz" if ghz else ""))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    native = has["avx512_bf16"]
    for name in a.models.split(","):
        ini = os.path.join(a.srcdir, MODELS[name])
        epochs = a.mlp_epochs if name == "mlp" else a.cnn_epochs
        limit = a.cnn_limit if name == "cnn" else 0
        flop = flop_per_sample(ini)
        rates = {"fp32": [], "bf16": []}
        acc = {}
        t0 = time.time()
        for _ in range(a.repeats):
            for prec in ("fp32", "bf16"):
                r, acc[prec] = run(a.mltk, ini, prec, epochs, a.threads, limit)
                rates[prec] += r
        med = {p: statistics.median(v) for p, v in rates.items()}
        print(f"\n{name} ({MODELS[name]}), {epochs} epoch(s)"
              + (f" on {limit} samples" if limit else "")
              + f" x {a.repeats} per precision, {time.time() - t0:.0f} s; "
              f"{flop / 1e6:.3f} MFLOP per training sample")
        for p in ("fp32", "bf16"):
            gf = med[p] * flop / 1e9
            print(f"  {p}: {med[p]:10.0f} samples/s ({gf:6.1f} GFLOP/s), "
                  f"test acc {acc[p]:.4f}")
        print(f"  ratio bf16/fp32: {med['bf16'] / med['fp32']:.2f}x")
        if ghz:
            if native:
                roof = a.threads * ghz * 64
                print(f"  bf16 roof {roof:.0f} GFLOP/s (threads x GHz x 64): bf16 reaches "
                      f"{100 * med['bf16'] * flop / 1e9 / roof:.1f}%")
            else:
                roof = a.threads * ghz * 32
                print("  bf16 roof: not applicable (no avx512_bf16: nothing multiplies bf16; "
                      "the backend widens to f32)")
                print(f"  instead, the fp32 FMA roof {roof:.0f} GFLOP/s (threads x GHz x 32): "
                      f"fp32 reaches {100 * med['fp32'] * flop / 1e9 / roof:.1f}%, "
                      f"bf16 {100 * med['bf16'] * flop / 1e9 / roof:.1f}%")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
