"""Cost of :class:`taskrel.AffinityTracker` in a plain PyTorch training loop.

For each model, the same loop (fresh batches, Adam, every task's loss summed) is timed
without the tracker, with the tracker recording gradient cosines every 10 steps, and with
cosines + TAG lookahead every 10 steps; the variants run interleaved over repeats (so drifts in
machine load hit them alike) and the medians are compared. The goal is a ratio <= 1.3 for
the lookahead every 10 steps. Each row also checks that the tracked run ends with the same
parameters as the plain one (bit for bit).

Models (all CPU, one thread unless --threads):

* ``planted-8``: taskrel's all-shared network on the planted suite (8 tasks, 3 small stages),
  batch 32: a tiny model whose step is mostly Python overhead;
* ``mlp-dropout-8``: a 3-layer MLP encoder of width 256 with dropout, 8 tasks, batch 128;
* ``mlp-dropout-16``: the same with 16 tasks.

    python benchmarks/tracker.py [--quick] [--threads 1] [--out benchmarks/results/tracker.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from taskrel import AffinityTracker
from taskrel.layout import SharingLayout, build_model
from taskrel.suites import get_suite


class MLP(nn.Module):
    def __init__(self, n_tasks: int, d_in: int = 64, width: int = 256, dropout: float = 0.2):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(d_in, width), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.ReLU(),
        )
        self.heads = nn.ModuleDict({f"t{k}": nn.Linear(width, 1) for k in range(n_tasks)})

    def forward(self, x):
        h = self.encoder(x)
        return {t: head(h)[:, 0] for t, head in self.heads.items()}

    def shared_parameters(self):
        return list(self.encoder.parameters())


def planted_case(n_steps: int):
    suite = get_suite("planted", n_examples=1000)
    names = suite.task_names
    X, ys = suite.tensors("train", names)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(X), (32,), generator=g) for _ in range(n_steps)]

    def make():
        torch.manual_seed(0)
        return build_model(SharingLayout.shared(names, suite.n_stages), suite, seed=0)

    def loss_fn(model, k):
        idx = batches[k]
        out = model(X[idx])
        ls = {}
        for t in names:
            y = ys[t][idx]
            m = ~torch.isnan(y)
            ls[t] = ((out[t].reshape(-1) - torch.nan_to_num(y)) ** 2 * m).sum() / m.sum().clamp_min(1)
        return ls

    return names, make, loss_fn


def mlp_case(n_tasks: int, n_steps: int):
    g = torch.Generator().manual_seed(0)
    W = torch.randn(64, n_tasks, generator=g)
    xs = [torch.randn(128, 64, generator=g) for _ in range(n_steps)]
    names = [f"t{k}" for k in range(n_tasks)]

    def make():
        torch.manual_seed(0)
        return MLP(n_tasks)

    def loss_fn(model, k):
        out = model(xs[k])
        y = torch.tanh(xs[k] @ W)
        return {t: ((out[t] - y[:, j]) ** 2).mean() for j, t in enumerate(names)}

    return names, make, loss_fn


def loop(make: Callable, loss_fn: Callable, names: list[str], n_steps: int, tracker: str | None) -> tuple[float, list[torch.Tensor], int]:
    model = make()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tr = None
    if tracker is not None:
        tr = AffinityTracker(model.shared_parameters(), names, opt, every=10, lookahead=tracker == "lookahead", model=model)
    t0 = time.perf_counter()
    for k in range(n_steps):
        losses = loss_fn(model, k)
        if tr is not None:
            tr.step(losses, lambda k=k: loss_fn(model, k))
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()
    seconds = time.perf_counter() - t0
    return seconds, [p.detach().clone() for p in model.parameters()], len(tr.steps_) if tr else 0


def bench(name: str, case: tuple, n_steps: int, repeats: int) -> dict:
    names, make, loss_fn = case
    variants = (None, "cosine", "lookahead")
    times: dict[str, list[float]] = {str(v): [] for v in variants}
    finals, probes = {}, {}
    loop(make, loss_fn, names, 5, "lookahead")  # warm-up
    for _ in range(repeats):
        for v in variants:
            s, params, n_probe = loop(make, loss_fn, names, n_steps, v)
            times[str(v)].append(s)
            finals[str(v)], probes[str(v)] = params, n_probe
    med = {k: statistics.median(v) for k, v in times.items()}
    same = all(torch.equal(a, b) for v in ("cosine", "lookahead") for a, b in zip(finals["None"], finals[v]))
    return {
        "model": name,
        "tasks": len(names),
        "steps": n_steps,
        "probe_steps": probes["lookahead"],
        "plain_step_ms": 1000 * med["None"] / n_steps,
        "ratio_cosine_every10": med["cosine"] / med["None"],
        "ratio_lookahead_every10": med["lookahead"] / med["None"],
        "goal_lookahead_every10": "<= 1.3",
        "same_final_parameters": same,
        "seconds": {k: v for k, v in times.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke run)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_steps, repeats = (40, 1) if args.quick else (200, 5)
    load_before = os.getloadavg()
    rows = [
        bench("planted-8", planted_case(n_steps), n_steps, repeats),
        bench("mlp-dropout-8", mlp_case(8, n_steps), n_steps, repeats),
        bench("mlp-dropout-16", mlp_case(16, n_steps), n_steps, repeats),
    ]
    out = {
        "benchmark": "tracker",
        "command": "python benchmarks/tracker.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "results": rows,
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
