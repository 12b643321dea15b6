"""Linear and debiased CKA: taskrel against its PyPI peers, side by side. Prints JSON.

    python benchmarks/cka.py            # sizes 2000x512, 10000x512, 10000x2048 + all pairs
    python benchmarks/cka.py --quick    # small sizes, a few seconds

Peers are needed only here. Install them without letting any of them replace torch:

    pip install --no-deps ckatorch torch-cka pytorch-cka cka-pytorch repsim

(``repsim`` builds a C++ extension; ``cka-pytorch`` imports ``lightning`` at package import,
so only its ``hsic.py`` file is loaded, straight from its installed path.) A peer that is not
installed, or fails, is reported as such.

What is measured, per size ``n x d`` (X: float32 features with mean offset 1; Y: a noisy linear
map of X, so CKA is about 0.4 to 0.6):

Every implementation runs with the same thread count (``--threads``, default 1: on a small,
shared machine, oversubscribed BLAS threads make timings meaningless); the load average is
recorded. A peer whose call is projected (from its time at a smaller size and its leading
operation count) to take more than 60 s is reported as skipped, with the projection.

* ``seconds``: median wall time of one call from float32 tensors to a number (conversions the
  peer needs are included). Every (implementation, size) runs in its own subprocess: one
  warm-up call (skipped when a call is slow), then timed repeats; this is done in two rounds,
  implementations interleaved, and the median over all repeats is reported. ``ratio`` is
  peer seconds / taskrel seconds for the same measure.
* ``peak_mb``: peak resident memory during the call minus resident memory just before it, in
  MiB: the kernel's peak counter (VmHWM) is reset through ``/proc/self/clear_refs`` after the
  inputs exist and the warm-up ran, and read after the calls. This sees torch, numpy and C++
  allocations alike (tracemalloc would not). Linux only.
* ``rel_err``: |value - reference| / |reference|, the reference computed in float64 from the
  same inputs (feature-space formulas; tests/probes/test_cka.py checks them against n x n Gram
  formulas).

Peers' estimators: ckatorch ``cka_base`` (linear; ``unbiased=True``: debiased), repsim ``cka``
(``"gretton"``: linear, ``"song"``: debiased), pytorch-cka ``cka_from_features`` (unbiased HSIC,
clamped to [0, 1]), torch-cka ``CKA._HSIC`` (unbiased HSIC on ``X X^T`` with zeroed diagonal, as
its ``compare`` does), cka-pytorch ``hsic1`` (unbiased HSIC, batched Grams). Only ckatorch and
repsim offer linear (biased) CKA.

* ``vs_numpy`` (per size and measure): taskrel against a plain float32 NumPy feature-space
  computation (centre, ``X^T Y``, ``X^T X``, ``Y^T Y``, Frobenius norms; for debiased also the
  float32 squared row norms and the unbiased-HSIC formula), timed alternately in one
  subprocess, ``PAIRS`` calls each: ``ratio`` is the median over pairs of taskrel / NumPy
  (the goal is <= 1.3), with both medians and both absolute errors against the float64
  reference. taskrel promises an absolute error below ``FLOAT32_ABS_ERROR`` (1e-7); NumPy's
  plain float32 has none.

Also: ``all_pairs`` times the (16 x 16) matrix of 16 models at 10000 x 512 with taskrel's
prepared split (``cka_matrix``) against calling ``linear_cka`` / ``debiased_cka`` per pair; and
``matmul`` gives this machine's float32 matrix-product rate (median, a 4096^3 product and the
``(d x n) @ (n x d)`` shape CKA uses) and the fraction of it that taskrel's linear CKA reaches
for the FLOPs the feature-space form needs (``3 * 2 n d^2``: two self products, one cross).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLOW_CALL_S = 8.0  # a call this slow gets no second round
TIME_BUDGET_S = 3.0  # timed repeats per subprocess stop after this many seconds
SKIP_ABOVE_S = 60.0  # a peer whose call is projected slower than this at a size is skipped
PAIRS = 7  # alternating (taskrel, NumPy) calls per size and measure
GOAL_RATIO = 1.3  # taskrel within this factor of the plain float32 NumPy computation

IMPLS = {
    "linear": ["taskrel", "ckatorch", "repsim"],
    "debiased": ["taskrel", "ckatorch", "repsim", "pytorch-cka", "torch-cka", "cka-pytorch"],
}


# ----------------------------------------------------------------- data and reference
def make_data(n: int, d: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed * 100003 + n * 7 + d)
    x = torch.randn(n, d, generator=g) + 1.0
    w = torch.randn(d, d, generator=g) / d**0.5
    y = torch.relu(x @ w) + 0.8 * torch.randn(n, d, generator=g)
    return x, y


def reference(x, y) -> dict[str, float]:
    import torch

    x, y = x.double(), y.double()
    x, y = x - x.mean(0), y - y.mean(0)
    n = x.shape[0]
    sxy, sxx, syy = (((a.T @ b) ** 2).sum().item() for a, b in ((x, y), (x, x), (y, y)))
    a, b = (x * x).sum(1), (y * y).sum(1)

    def hu(s, u, v):
        return (s + u.sum() * v.sum() / ((n - 1) * (n - 2)) - n / (n - 2) * torch.dot(u, v)) / (
            n * (n - 3)
        )

    deb = hu(sxy, a, b) / torch.sqrt(hu(sxx, a, a) * hu(syy, b, b))
    return {"linear": sxy / (sxx * syy) ** 0.5, "debiased": float(deb)}


# ----------------------------------------------------------------- one call per implementation
def make_call(impl: str, measure: str):
    """A function (x, y) -> float for one implementation, or raise ImportError."""
    import torch

    if impl == "taskrel":
        from taskrel.probes.cka import debiased_cka, linear_cka

        return linear_cka if measure == "linear" else debiased_cka
    if impl == "ckatorch":
        from ckatorch import cka_base

        return lambda x, y: float(cka_base(x, y, kernel="linear", unbiased=measure == "debiased"))
    if impl == "repsim":
        import repsim

        est = "gretton" if measure == "linear" else "song"
        return lambda x, y: float(repsim.cka([x.numpy(), y.numpy()], "linear", est)[0, 1])
    if impl == "pytorch-cka":
        from cka import cka_from_features

        return lambda x, y: float(cka_from_features(x, y).reshape(-1)[0])
    if impl == "torch-cka":
        from types import SimpleNamespace

        from torch_cka import CKA

        me = SimpleNamespace(device="cpu")

        def call(x, y):
            k, m = x @ x.T, y @ y.T
            k.fill_diagonal_(0.0)
            m.fill_diagonal_(0.0)
            kl, kk, ll = CKA._HSIC(me, k, m), CKA._HSIC(me, k, k), CKA._HSIC(me, m, m)
            return kl / (kk**0.5 * ll**0.5)

        return call
    if impl == "cka-pytorch":
        import importlib.util

        spec = importlib.util.find_spec("cka_pytorch")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("No module named 'cka_pytorch'")
        path = Path(list(spec.submodule_search_locations)[0]) / "hsic.py"
        mod_spec = importlib.util.spec_from_file_location("_cka_pytorch_hsic", path)
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)

        def call(x, y):
            k, m = (x @ x.T)[None], (y @ y.T)[None]
            kl, kk, ll = mod.hsic1(k, m), mod.hsic1(k, k), mod.hsic1(m, m)
            return float(kl / torch.sqrt(kk * ll + 1e-6))  # its epsilon, as in the package

        return call
    raise ValueError(impl)


def numpy_float32(measure: str):
    """The plain float32 NumPy feature-space computation, (x, y) -> float."""
    import numpy as np

    def centred(x, y):
        x, y = x.numpy(), y.numpy()
        return x - x.mean(axis=0), y - y.mean(axis=0)

    def linear(x, y):
        xc, yc = centred(x, y)
        sxy, sxx, syy = (np.sum((a.T @ b) ** 2) for a, b in ((xc, yc), (xc, xc), (yc, yc)))
        return float(sxy / np.sqrt(sxx * syy))

    def debiased(x, y):
        xc, yc = centred(x, y)
        n = xc.shape[0]
        a, b = np.einsum("ij,ij->i", xc, xc), np.einsum("ij,ij->i", yc, yc)
        sxy, sxx, syy = (np.sum((p.T @ q) ** 2) for p, q in ((xc, yc), (xc, xc), (yc, yc)))

        def hu(s, u, v):
            return (s + u.sum() * v.sum() / ((n - 1) * (n - 2)) - n / (n - 2) * np.dot(u, v)) / (n * (n - 3))

        return float(hu(sxy, a, b) / np.sqrt(hu(sxx, a, a) * hu(syy, b, b)))

    return linear if measure == "linear" else debiased


def paired_worker(measure: str, n: int, d: int, pairs: int = PAIRS) -> dict:
    """Runs in a subprocess: taskrel and the NumPy computation, called alternately."""
    calls = {"taskrel": make_call("taskrel", measure), "numpy": numpy_float32(measure)}
    x, y = make_data(n, d)
    times: dict[str, list[float]] = {k: [] for k in calls}
    values = {k: f(x, y) for k, f in calls.items()}  # warm-up
    for _ in range(int(pairs)):
        for k, f in calls.items():
            t0 = time.perf_counter()
            f(x, y)
            times[k].append(time.perf_counter() - t0)
    return {"times": times, "values": values}


def vs_numpy(measure: str, n: int, d: int, ref: float, pairs: int = PAIRS) -> dict:
    r = run_worker("paired", measure, n, d, pairs)
    if "times" not in r:
        return {"status": r.get("status", "error")}
    t, v = r["times"], r["values"]
    ratios = [a / b for a, b in zip(t["taskrel"], t["numpy"])]
    ratio = statistics.median(ratios)
    return {
        "status": "ok",
        "taskrel_s": round(statistics.median(t["taskrel"]), 4),
        "numpy_s": round(statistics.median(t["numpy"]), 4),
        "pairs": len(ratios),
        "ratio": round(ratio, 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "goal_ratio": GOAL_RATIO,
        "met": ratio <= GOAL_RATIO,
        "taskrel_value": v["taskrel"],
        "taskrel_abs_err": float(f"{abs(v['taskrel'] - ref):.3g}"),
        "numpy_abs_err": float(f"{abs(v['numpy'] - ref):.3g}"),
    }


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def worker(impl: str, measure: str, n: int, d: int, warm: bool) -> dict:
    """Runs in a subprocess: timings, peak memory and value of one implementation."""
    try:
        call = make_call(impl, measure)
    except ImportError as e:
        return {"status": f"not installed ({e})"}
    x, y = make_data(n, d)
    try:
        if warm:
            call(x, y)
        base = _vm("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS)
        times, value, start = [], None, time.perf_counter()
        while not times or (time.perf_counter() - start < TIME_BUDGET_S and len(times) < 5):
            t0 = time.perf_counter()
            value = call(x, y)
            times.append(time.perf_counter() - t0)
            if times[-1] > SLOW_CALL_S:
                break
        peak = _vm("VmHWM") - base
    except Exception as e:  # a peer that fails is reported, not fatal
        return {"status": f"error: {type(e).__name__}: {str(e)[:200]}"}
    return {"status": "ok", "times": times, "peak_mb": peak / 2**20, "value": float(value)}


def run_worker(impl: str, measure: str, n: int, d: int, warm: bool) -> dict:
    args = [sys.executable, __file__, "--worker", json.dumps([impl, measure, n, d, warm])]
    args += ["--threads", os.environ.get("OMP_NUM_THREADS", "1")]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    except subprocess.TimeoutExpired:
        return {"status": "error: timed out after 300 s"}
    if out.returncode != 0:
        return {"status": f"error: exit {out.returncode}: {out.stderr.strip()[-300:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- side by side
def _cost(impl: str, n: int, d: int) -> float:
    """Leading operation count, used only to project a peer's time to a larger size."""
    if impl == "taskrel":
        return n * d * d
    if impl in ("torch-cka", "cka-pytorch"):
        return n * n * (n + d)
    return n * n * d


def compare_size(n: int, d: int, last: dict, peers: bool = True, pairs: int = PAIRS) -> dict:
    """All implementations at one size. ``last``: (measure, impl) -> (n, d, seconds) so far."""
    x, y = make_data(n, d)
    ref = reference(x, y)
    del x, y
    results: dict[str, dict[str, dict]] = {m: {} for m in IMPLS}
    for measure, impls in IMPLS.items():
        for impl in impls:
            if impl != "taskrel" and not peers:
                results[measure][impl] = {"status": "skipped: run without peers (--no-peers)"}
            elif (measure, impl) in last:
                n0, d0, t0 = last[(measure, impl)]
                proj = t0 * _cost(impl, n, d) / _cost(impl, n0, d0)
                if proj > SKIP_ABOVE_S:
                    results[measure][impl] = {
                        "status": f"skipped: projected {proj:.0f} s per call from {n0}x{d0}"
                    }
    for _rnd in range(2 if peers else 0):  # without peers, taskrel's time is the paired one
        for measure, impls in IMPLS.items():
            for impl in impls:
                prev = results[measure].get(impl)
                if prev is not None and (
                    prev["status"] != "ok" or max(prev["times"]) > SLOW_CALL_S
                ):
                    continue  # failed, missing or slow: one round is enough
                cubic = impl in ("torch-cka", "cka-pytorch") and n >= 5000  # n^3: no warm-up
                res = run_worker(impl, measure, n, d, warm=not cubic)
                if prev is None or res["status"] != "ok":
                    results[measure][impl] = res
                else:
                    prev["times"] += res["times"]
                    prev["peak_mb"] = max(prev["peak_mb"], res["peak_mb"])
    out: dict[str, dict] = {}
    for measure, per in results.items():
        base = per.get("taskrel", {})
        t0 = statistics.median(base["times"]) if base.get("status") == "ok" else None
        rows = {}
        for impl, r in per.items():
            if r["status"] != "ok":
                rows[impl] = {"status": r["status"]}
                continue
            sec = statistics.median(r["times"])
            last[(measure, impl)] = (n, d, sec)
            rows[impl] = {
                "status": "ok",
                "seconds": round(sec, 4),
                "repeats": len(r["times"]),
                "ratio": round(sec / t0, 2) if t0 else None,
                "peak_mb": round(r["peak_mb"], 1),
                "value": r["value"],
                "rel_err": float(f"{abs(r['value'] - ref[measure]) / abs(ref[measure]):.3g}"),
            }
        paired = vs_numpy(measure, n, d, ref[measure], pairs)
        if "taskrel" not in per and paired["status"] == "ok":
            rows["taskrel"] = {"status": "ok", "seconds": paired["taskrel_s"], "repeats": paired["pairs"],
                               "ratio": 1.0, "peak_mb": None, "value": paired["taskrel_value"],
                               "rel_err": float(f"{paired['taskrel_abs_err'] / abs(ref[measure]):.3g}")}
        out[measure] = {"reference": ref[measure], "impls": rows, "vs_numpy": paired}
    return out


def median_time(fn, repeats: int = 5, warm: bool = True) -> float:
    if warm:
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def matmul_rate(n: int, d: int) -> dict:
    import torch

    a = torch.randn(4096, 4096)
    square = 2 * 4096**3 / median_time(lambda: a @ a, 3)
    x, y = make_data(n, d)
    shaped = 2 * n * d * d / median_time(lambda: x.T @ y)
    return {
        "square_4096_gflops": round(square / 1e9, 1),
        f"xty_{n}x{d}_gflops": round(shaped / 1e9, 1),
    }


def all_pairs(m: int, n: int, d: int, repeats: int) -> dict:
    from taskrel.probes.cka import cka_matrix, debiased_cka, linear_cka

    feats = [make_data(n, d, seed=s)[s % 2] for s in range(m)]
    out = {"models": m, "n": n, "d": d}
    for kind, fn in (("linear", linear_cka), ("debiased", debiased_cka)):

        def naive(fn=fn):  # each unordered pair once, as a careful user would
            return [fn(feats[i], feats[j]) for i in range(m) for j in range(i, m)]

        t_split = median_time(lambda kind=kind: cka_matrix(feats, kind), repeats, warm=False)
        t_pair = median_time(naive, max(1, repeats // 2), warm=False)
        out[kind] = {
            "prepared_split_s": round(t_split, 3),
            "pairwise_calls_s": round(t_pair, 3),
            "speedup": round(t_pair / t_split, 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    ap.add_argument(
        "--threads", type=int, default=1, help="threads for every implementation (default 1)"
    )
    ap.add_argument("--no-peers", action="store_true",
                    help="time taskrel and the NumPy computation only (peers reported as skipped)")
    ap.add_argument("--pairs", type=int, default=PAIRS, help=f"alternating taskrel/NumPy calls (default {PAIRS})")
    ap.add_argument("--models", type=int, default=16, help="models in the all-pairs timing (default 16)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # inherited by the worker subprocesses
    import torch

    torch.set_num_threads(args.threads)
    here = Path(__file__).resolve().parent  # this file is cka.py: keep it from shadowing peers
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    if args.worker:
        impl, *rest = json.loads(args.worker)
        res = paired_worker(*rest) if impl == "paired" else worker(impl, *rest)
        print(json.dumps(res))
        return

    from taskrel.probes.cka import FLOAT32_ABS_ERROR

    sizes = [(500, 64), (1000, 128)] if args.quick else [(2000, 512), (10000, 512), (10000, 2048)]
    report: dict = {
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "peers": not args.no_peers,
        "pairs": args.pairs,
        "sizes": {},
    }
    last: dict = {}
    for n, d in sizes:
        report["sizes"][f"{n}x{d}"] = compare_size(n, d, last, not args.no_peers, args.pairs)
    n, d = sizes[-1] if args.quick else (10000, 512)
    rate = matmul_rate(n, d)
    peak = rate["square_4096_gflops"] * 1e9
    frac = {}
    for key, res in report["sizes"].items():
        tr = res["linear"]["impls"].get("taskrel", {})
        if tr.get("status") == "ok":
            nn_, dd = (int(v) for v in key.split("x"))
            flops = 3 * 2 * nn_ * dd * dd
            frac[key] = round(flops / tr["seconds"] / peak, 3)
    rate["linear_cka_fraction_of_square_rate"] = frac
    report["matmul"] = rate
    report["all_pairs"] = all_pairs(4 if args.quick else args.models, n, d, 2)
    paired = [m["vs_numpy"] for res in report["sizes"].values() for m in res.values()]
    report["goal"] = {
        "goal": f"linear and debiased CKA within {GOAL_RATIO}x of plain float32 NumPy, one thread",
        "ratio": GOAL_RATIO,
        "worst_ratio": max((p["ratio"] for p in paired if p["status"] == "ok"), default=None),
        "met": bool(paired) and all(p["status"] == "ok" and p["met"] for p in paired),
        "promised_abs_error": FLOAT32_ABS_ERROR,
        "worst_taskrel_abs_err": max((p["taskrel_abs_err"] for p in paired if p["status"] == "ok"), default=None),
    }
    report["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
