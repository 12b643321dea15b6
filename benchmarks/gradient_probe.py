"""Speed of the gradient probe: batched vs looped per-task gradients, and probing overhead.

Prints one JSON document:

* ``per_task_gradients``: for 4, 8 and 16 tasks (planted suites), median seconds of one call
  of :func:`taskrel.probes.per_task_gradients` with ``method="batched"`` (one vmapped
  backward) and ``"loop"`` (a backward per task) on a batch of the all-shared model, their
  speed-up, and the largest difference between the two results; the same for a whole probe
  step of the callback (gradients + cosines + TAG lookahead, plain step, one vmapped forward).
  The tracker's cost inside a plain PyTorch loop is ``benchmarks/tracker.py``.
* ``training``: median wall time of training the all-shared model without a callback, with
  the gradient callback every 10 steps (cosines only) and with cosines + lookahead, run side
  by side (interleaved) over repeats, and the ratios to the plain run.

    python benchmarks/gradient_probe.py [--quick] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from taskrel.gradients import per_task_gradients
from taskrel.layout import SharingLayout, build_model
from taskrel.probes.gradient import GradientCallback
from taskrel.suites import get_suite
from taskrel.train import StepState, TrainConfig, task_loss, train

CLUSTERS = {4: 1, 8: 3, 16: 7}  # planted: 2 tasks per cluster + unrelated + conflict


def suite_with(n_tasks: int, n_examples: int):
    return get_suite("planted", n_clusters=CLUSTERS[n_tasks], tasks_per_cluster=2, n_examples=n_examples)


def timed(fn, repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the mean seconds of ``inner`` calls (after a warm-up)."""
    for _ in range(2):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t0) / inner)
    return statistics.median(out)


def bench_gradients(n_tasks: int, repeats: int, inner: int, device: str) -> dict:
    suite = suite_with(n_tasks, 600)
    names = suite.task_names
    model = build_model(SharingLayout.shared(names, suite.n_stages), suite).to(device)
    X, ys = suite.tensors("train", names, device)
    x, y = X[:32], {t: ys[t][:32] for t in names}
    tasks = [suite.task(t) for t in names]
    params = model.shared_parameters()

    def losses() -> torch.Tensor:
        out = model(x)
        return torch.stack([task_loss(t, out[t.name], y[t.name]) for t in tasks])

    res: dict = {"tasks": n_tasks, "shared_parameters": sum(p.numel() for p in params)}
    grads = {m: per_task_gradients(losses(), params, m) for m in ("batched", "loop")}
    res["max_abs_difference"] = float((grads["batched"] - grads["loop"]).abs().max())
    for m in ("batched", "loop"):
        res[f"gradients_{m}_s"] = timed(lambda m=m: per_task_gradients(losses(), params, m), repeats, inner)
    res["gradients_speedup"] = res["gradients_loop_s"] / res["gradients_batched_s"]
    # a whole probe step (losses, gradients, cosines, lookahead), optimizer with some state
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    out = model(x)
    sum(task_loss(t, out[t.name], y[t.name]) for t in tasks).backward()
    opt.step()
    state = StepState(1, 0, model, opt, x, y, tasks, {t: 1.0 for t in names})
    for m in ("batched", "loop"):
        cb = GradientCallback(every=1, lookahead=True, method=m)
        res[f"probe_step_{m}_s"] = timed(lambda cb=cb: cb.on_step(state), repeats, inner)
    res["probe_step_speedup"] = res["probe_step_loop_s"] / res["probe_step_batched_s"]
    return res


def bench_training(n_tasks: int, epochs: int, repeats: int, device: str) -> dict:
    suite = suite_with(n_tasks, 1000)
    layout = SharingLayout.shared(suite.task_names, suite.n_stages)
    cfg = TrainConfig(epochs=epochs, lr=3e-3, batch_size=32, patience=epochs, device=device)
    variants = {
        "plain": lambda: [],
        "cosine_every10": lambda: [GradientCallback(every=10, lookahead=False)],
        "cosine_lookahead_every10": lambda: [GradientCallback(every=10, lookahead=True)],
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    steps = 0
    for _ in range(repeats):  # interleaved, so drifts in machine load hit every variant alike
        for name, cbs in variants.items():
            t0 = time.perf_counter()
            r = train(suite, layout, cfg, seed=0, callbacks=cbs())
            times[name].append(time.perf_counter() - t0)
            steps = r.steps
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "tasks": n_tasks,
        "epochs": epochs,
        "steps": steps,
        **{f"{k}_s": v for k, v in med.items()},
        "ratio_cosine": med["cosine_every10"] / med["plain"],
        "ratio_cosine_lookahead": med["cosine_lookahead_every10"] / med["plain"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and epochs (a smoke run)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats, inner, epochs, train_repeats = (3, 5, 3, 1) if args.quick else (7, 20, 10, 5)
    out = {
        "benchmark": "gradient_probe",
        "quick": args.quick,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "per_task_gradients": [bench_gradients(n, repeats, inner, args.device) for n in (4, 8, 16)],
        "training": [bench_training(n, epochs, train_repeats, args.device) for n in (8, 16)],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
