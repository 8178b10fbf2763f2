#!/bin/sh
# setup-torch-venv.sh - a current PyTorch from PyPI, for the benchmarks.
#
#   sh bench/setup-torch-venv.sh [DIR]
#
# What this is: makes a virtual environment (default
# ~/.cache/mltk/bench-torch-2.15.0, outside the source tree: it holds some
# GB) with Debian's /usr/bin/python3 (3.11) and installs into it the exact
# versions of bench/torch-pins.txt: torch 2.15.0 from PyPI and everything it
# pulls in.  PyPI's Linux x86-64 wheel is the CUDA build (hence the nvidia-*
# packages); without a GPU it runs its CPU kernels, the same as the
# CPU-only wheel's (oneDNN, and the CPU capability it picks at run time:
# AVX2 here, AVX-512 where the CPU has it).  Prints the interpreter to
# pass to the benchmarks as --torch.  Run again, it only checks that the
# pins are installed.  torchvision (and PIL) are for bench/loader_vs_torch.py.
# What this is not: part of the build or of `make check`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${HOME:?}/.cache/mltk/bench-torch-2.15.0}
[ -x "$dir/bin/python" ] || /usr/bin/python3 -m venv "$dir" >&2
"$dir/bin/python" -m pip install -q --disable-pip-version-check -c "$here/torch-pins.txt" \
    torch numpy torchvision >&2
"$dir/bin/python" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, file=__import__("sys").stderr)'
echo "$dir/bin/python"
