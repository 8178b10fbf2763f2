"""torchref.py - what the benchmarks share: PyTorch builds as references.

What this is: the plumbing of bench/mlp_vs_torch.py and
bench/cnn_vs_torch.py.  Each PyTorch build runs in its own interpreter
(`--torch PY`, e.g. Debian's /usr/bin/python3 with python3-torch and the
venv that bench/setup-torch-venv.sh makes from PyPI), as a worker
subprocess of the benchmark script: the script runs itself with
`--torch-worker JSON`, the worker trains and prints one JSON object (the
epoch rates, the test accuracy, and the build: torch.__version__,
torch.__config__.show(), torch.__config__.parallel_info(), the thread
counts and the CPU capability it dispatches to).

Rates: every epoch's training samples/s (samples trained in the epoch /
its training time, evaluation excluded).  The first epoch is a warm-up
and is left out; the result is the median of the others, of which there
must be at least 3.  mltk's rate is its JSON-lines log's samples_per_s,
which counts the samples the epoch really trained (after a resume, only
those after the resume point); the benchmarks never resume and drop any
[checkpoint] section, and check that the log has epochs 1..N in order.

What this is not: a harness that runs in `make check`, or a timing
assertion.
"""
import json
import os
import platform
import statistics
import subprocess
import sys

WARMUP = 1
MIN_MEASURED = 3


def check_epochs(epochs):
    """exit with a message unless epochs leaves MIN_MEASURED after the warm-up"""
    if epochs < WARMUP + MIN_MEASURED:
        sys.exit(f"epochs {epochs}: need at least {WARMUP + MIN_MEASURED} "
                 f"({WARMUP} warm-up + {MIN_MEASURED} measured)")


def measured(rates):
    """(median, the measured rates) of a run's per-epoch rates"""
    m = rates[WARMUP:]
    if len(m) < MIN_MEASURED:
        raise SystemExit(f"{len(rates)} epoch rates: fewer than {MIN_MEASURED} after the warm-up")
    return statistics.median(m), m


def torch_info(torch):
    """the build and thread settings of the torch module in this process"""
    info = {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "version": torch.__version__,
        "config": torch.__config__.show(),
        "parallel_info": torch.__config__.parallel_info(),
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                "OPENBLAS_NUM_THREADS", "ATEN_CPU_CAPABILITY")},
    }
    try:
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        info["cpu_capability"] = "? (torch.backends.cpu.get_cpu_capability missing)"
    info["mkldnn"] = bool(torch.backends.mkldnn.is_available())
    info["mkl"] = bool(torch.backends.mkl.is_available())
    return info


def worker(run):
    """the --torch-worker side: run(**args) -> (rates, acc, info); print JSON"""
    args = json.loads(sys.argv[sys.argv.index("--torch-worker") + 1])
    rates, acc, info = run(**args)
    sys.stdout.write(json.dumps({"rates": rates, "acc": acc, "info": info}) + "\n")
    return 0


def run_builds(script, pythons, args):
    """each interpreter in pythons runs `script --torch-worker args`; a list
    of the workers' results, each with its interpreter added"""
    out = []
    for py in pythons:
        p = subprocess.run([py, script, "--torch-worker", json.dumps(args)],
                           stdout=subprocess.PIPE, check=True, text=True)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["python"] = py
        out.append(r)
    return out


def mltk_rows_check(rows, epochs):
    """the JSON-lines log of a run that neither resumed nor rolled back"""
    got = [r["epoch"] for r in rows]
    if got != list(range(1, epochs + 1)):
        raise SystemExit(f"mltk's log has epochs {got}, not 1..{epochs}: a resumed or "
                         "rolled-back run is no benchmark")


def print_header(threads):
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "MKL_NUM_THREADS") if k in os.environ}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, {cpu_model()}; "
          f"load {os.getloadavg()[0]:.2f}; thread environment {env or 'unset'}")
    print(f"threads: mltk [run] threads = {threads}; PyTorch torch.set_num_threads({threads})")
    print(f"rates: median of the epochs after {WARMUP} warm-up epoch "
          f"(at least {MIN_MEASURED}), training samples/s, evaluation excluded")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def print_builds(results):
    """each PyTorch build's settings, in full, after the table"""
    for r in results:
        i = r["info"]
        print(f"\n---- PyTorch {i['version']} ({r['python']}, Python {i['python_version']}) ----")
        print(f"threads: {i['num_threads']} intra-op, {i['num_interop_threads']} inter-op; "
              f"cpu capability {i['cpu_capability']}; mkldnn {i['mkldnn']}, mkl {i['mkl']}; "
              f"environment {i['env']}")
        print("torch.__config__.show():")
        print(i["config"].rstrip())
        print("torch.__config__.parallel_info():")
        print(i["parallel_info"].rstrip())


def fmt_rates(v):
    return ", ".join(f"{x:.0f}" for x in v)
