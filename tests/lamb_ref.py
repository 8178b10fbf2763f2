#!/usr/bin/env python3
"""lamb_ref.py - mltk's LAMB against optax's, step by step.

What this is: the Python half of tests/test_lamb_interop.sh.  `write DIR`
writes the inputs of each case (DIR/case-K.in.safetensors: parameters,
per-step gradients and rates, tensor boundaries, the lamb plugin's keys)
for tests/opt_steps, which runs mltk's lamb plugin on the cpu backend and
writes DIR/case-K.out.safetensors.  `compare DIR` runs optax.lamb (Google
DeepMind's optax, an independent implementation) in float32 on the same
inputs and compares, after every step, the parameters and both moments
(optax's ScaleByAdamState mu and nu; mltk's state slots 0 and 1).

optax.lamb is the same algorithm as mltk's (man/mltk.ini.5, lamb):
Adam's moments with bias correction, eps added to sqrt(v_hat) (eps_root =
0), decoupled weight decay added to the update direction, one trust ratio
||p|| / ||r|| per parameter tensor (optax: per pytree leaf), 1 when either
norm is 0, and no clipping of the ratio.

Tolerance, per step and tensor: |mltk - optax| <= rtol |optax| + 1e-6
max|optax|, with rtol = 1e-5 for the parameters and 2e-6 + 2^-24 / (1 -
beta) for the moments (beta1 for the first, beta2 for the second).  Both
sides compute in float32, but mltk rounds beta to a float and then
subtracts it from 1, where optax (and PyTorch) round 1 - beta computed in
double: the factors (1 - beta) differ by up to 2^-24 / (1 - beta) of
themselves, 6e-5 for beta2 = 0.999.  As a control, the eps = 1e-3 case
must miss the parameters' tolerance many times over against optax with
eps under the square root (eps_root), so the comparison can tell where
eps goes.

What this is not: a test of the other optimizers, or of LAMB's per-layer
rate factor (lr_mult), which optax does not have.

usage: lamb_ref.py write DIR
       lamb_ref.py compare DIR
"""
import os
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

# tensors of mixed sizes, some crossing the cpu backend's chunk
# boundaries; "zero_p" starts at zero (trust 1 from ||p|| = 0), "zero_g"
# never gets a gradient (with weight decay 0, trust 1 from ||r|| = 0)
SEGMENTS = [("a", 5), ("big", 40000), ("c", 17), ("zero_p", 300), ("one", 1),
            ("zero_g", 7), ("d", 9001)]

# beta1, beta2, eps, weight_decay, rates of the steps
CASES = [
    (0.9, 0.999, 1e-6, 0.0, [1e-3] * 5),
    (0.8, 0.99, 1e-3, 0.01, [0.01, 0.008, 0.006, 0.004, 0.002, 0.001]),
    (0.5, 0.6, 1e-8, 0.1, [0.05, 0.05, 0.02, 0.1]),
]
EPS_CONTROL = 1  # the case whose eps placement the control tells apart

RTOL_PARAM = 1e-5


def rtol_moment(beta):
    return 2e-6 + 2.0 ** -24 / (1.0 - beta)

ATOL_SCALE = 1e-6


def inputs(k):
    """p0 (n), g (steps, n), lr (steps), seg_off (n_seg + 1), float32"""
    rng = np.random.default_rng(1234 + k)
    _, _, _, _, lrs = CASES[k]
    p0, g = [], []
    for s, (name, size) in enumerate(SEGMENTS):
        scale = 0.1 + 0.3 * s
        p = rng.uniform(-scale, scale, size)
        if name == "zero_p":
            p[:] = 0.0
        p0.append(p)
        gs = rng.uniform(-0.01, 0.01, (len(lrs), size)) * (1.0 + s)
        if name == "zero_g":
            gs[:] = 0.0
        if name == "c":
            gs[2] = 0.0  # one step without a gradient
        g.append(gs)
    off = np.cumsum([0] + [size for _, size in SEGMENTS]).astype(np.int64)
    return (np.concatenate(p0).astype(np.float32), np.concatenate(g, axis=1).astype(np.float32),
            np.array(lrs, dtype=np.float32), off)


def write(d):
    for k, (b1, b2, eps, wd, _) in enumerate(CASES):
        p0, g, lr, off = inputs(k)
        keys = "beta1 = %r\nbeta2 = %r\neps = %r\nweight_decay = %r\n" % (b1, b2, eps, wd)
        save_file({"p0": p0, "g": g, "lr": lr, "seg_off": off},
                  os.path.join(d, "case-%d.in.safetensors" % k),
                  metadata={"optimizer": "lamb", "keys": keys})
    print("wrote %d cases of %d tensors, %d parameters"
          % (len(CASES), len(SEGMENTS), int(off[-1])))


def optax_run(k, eps_root_control=False):
    """[(p, mu, nu) after each step], each a list of per-tensor arrays"""
    import jax.numpy as jnp
    import optax
    b1, b2, eps, wd, _ = CASES[k]
    p0, g, lr, off = inputs(k)
    split = lambda flat: [jnp.asarray(flat[off[s]:off[s + 1]]) for s in range(len(SEGMENTS))]
    rates = [float(x) for x in lr]
    # the rate of each step, as a schedule of optax's step count
    schedule = lambda count: jnp.asarray(rates, jnp.float32)[count]
    if eps_root_control:
        opt = optax.lamb(schedule, b1=b1, b2=b2, eps=0.0, eps_root=eps, weight_decay=wd)
    else:
        opt = optax.lamb(schedule, b1=b1, b2=b2, eps=eps, weight_decay=wd)
    params = split(p0)
    state = opt.init(params)
    out = []
    for t in range(len(rates)):
        updates, state = opt.update(split(g[t]), state, params)
        params = optax.apply_updates(params, updates)
        (adam,) = [s for s in state if hasattr(s, "mu")]
        out.append(([np.asarray(x) for x in params], [np.asarray(x) for x in adam.mu],
                    [np.asarray(x) for x in adam.nu]))
    for arrays in out[-1]:
        assert all(a.dtype == np.float32 for a in arrays), [a.dtype for a in arrays]
    return out


def worst(got, want, rtol):
    """the largest ratio of error to allowed error of got against want (one
    tensor); 0 where both are exactly equal"""
    want = want.astype(np.float64)
    err = np.abs(got.astype(np.float64) - want)
    allowed = rtol * np.abs(want) + ATOL_SCALE * float(np.max(np.abs(want)))
    if not err.any():
        return 0.0
    return float(np.max(np.where(err > 0, err / np.maximum(allowed, 1e-300), 0.0)))


def compare_case(d, k, ref):
    """largest ratio of error to tolerance over steps, tensors and the three
    quantities; prints a line per quantity"""
    got = load_file(os.path.join(d, "case-%d.out.safetensors" % k))
    _, _, _, off = inputs(k)
    names = ("p", "state.0", "state.1")
    b1, b2 = CASES[k][:2]
    rtols = (RTOL_PARAM, rtol_moment(b1), rtol_moment(b2))
    steps = len(ref)
    for q in names:
        if got[q].shape != (steps, int(off[-1])):
            raise AssertionError("case %d: %s has shape %s" % (k, q, got[q].shape))
    ratios = {}
    for q, (name, rtol) in enumerate(zip(names, rtols)):
        r_max, where = 0.0, None
        for t in range(steps):
            for s, (seg, _) in enumerate(SEGMENTS):
                mine = got[name][t, off[s]:off[s + 1]]
                ratio = worst(mine, ref[t][q][s], rtol)
                if ratio > r_max:
                    r_max, where = ratio, (t + 1, seg)
        ratios[name] = (r_max, where)
    return ratios


def compare(d):
    failed = 0
    what = {"p": "parameters", "state.0": "first moment", "state.1": "second moment"}
    for k, case in enumerate(CASES):
        ref = optax_run(k)
        ratios = compare_case(d, k, ref)
        for name, (r, where) in ratios.items():
            ok = r <= 1.0
            failed += not ok
            print("%s - case %d (beta1 %g, beta2 %g, eps %g, weight_decay %g, %d steps): "
                  "%s: largest error %.3g times the tolerance%s"
                  % ("ok  " if ok else "FAIL", k, case[0], case[1], case[2], case[3],
                     len(case[4]), what[name], r,
                     "" if where is None else " (worst: step %d, tensor %s)" % where))
    # the control: eps under the square root is told apart
    ratios = compare_case(d, EPS_CONTROL, optax_run(EPS_CONTROL, eps_root_control=True))
    r, where = ratios["p"]
    ok = r > 10.0
    failed += not ok
    print("%s - control: against optax with eps under the square root the parameters "
          "miss the tolerance %.3g times over" % ("ok  " if ok else "FAIL", r))
    return failed


def main(argv):
    if len(argv) == 3 and argv[1] == "write":
        write(argv[2])
        return 0
    if len(argv) == 3 and argv[1] == "compare":
        return 1 if compare(argv[2]) else 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
