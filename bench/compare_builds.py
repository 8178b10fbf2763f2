#!/usr/bin/python3
"""Two builds of mltk side by side: the same examples, the same machine, in one run.

For a change that must not slow training down (a refactoring, an ABI
change), this trains each example with build A and build B in alternation
(A B A B ...) so that both see the same machine state, and reports the
median and the best over rounds of each run's median epoch samples/s
(evaluation excluded), the ratios B/A and both final test accuracies.  On
a machine shared with other work the best of many rounds is the steadier
figure.  The config is
rewritten as bench/cnn_vs_torch.py does (cpu backend, the given thread
count, no augmentation, a JSON-lines log).

usage: bench/compare_builds.py --a OLD/mltk --b NEW/mltk [--model mlp,cnn]
                               [--epochs N] [--rounds R] [--threads N] [--limit N]
Run from a build directory whose examples/ holds the configs (or --srcdir).
Each build finds its own plugins (the binary's build tree).
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn_vs_torch import mltk_run  # noqa: E402

MODELS = {
    "mlp": "examples/fashion-mnist-mlp.ini",
    "cnn": "examples/fashion-mnist-cnn.ini",
    "cnn-bn": "examples/fashion-mnist-cnn-bn.ini",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="the baseline mltk binary")
    ap.add_argument("--b", required=True, help="the mltk binary under test")
    ap.add_argument("--model", default="mlp,cnn")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N samples")
    ap.add_argument("--srcdir", default=".")
    a = ap.parse_args()
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    for name in a.model.split(","):
        ini = os.path.join(a.srcdir, MODELS[name])
        runs = {"A": [], "B": []}
        acc = {}
        for r in range(a.rounds):
            for key, exe in (("A", a.a), ("B", a.b)):
                rates, acc[key] = mltk_run(exe, ini, a.epochs, a.threads, a.limit)
                runs[key].append(statistics.median(rates))
                print(f"  {name} round {r + 1} {key}: {runs[key][-1]:9.0f} samples/s", flush=True)
        ma, mb = statistics.median(runs["A"]), statistics.median(runs["B"])
        xa, xb = max(runs["A"]), max(runs["B"])
        print(f"{name}: median A {ma:9.0f} B {mb:9.0f} samples/s, B/A {mb / ma:.3f};   "
              f"best A {xa:9.0f} B {xb:9.0f}, B/A {xb / xa:.3f}   "
              f"(test acc A {acc['A']:.4f}, B {acc['B']:.4f})")
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
