"""Gradient probe: per-task gradients on the shared parameters of one all-shared run.

One multi-task model (every task shares every encoder stage) is trained per seed with the
``"gradient"`` callback attached. Every ``every`` steps, before the update, the callback takes
each task's loss on the current batch and its gradient ``g_i`` on the shared parameters and
records the cosine of every pair, the norms and, when asked, the TAG lookahead of
:mod:`taskrel.probes.lookahead` (on the same gradients). The record of the run holds the whole
trajectory as JSON, so :class:`GradientProbe` and :class:`~taskrel.probes.LookaheadProbe` with
the same settings share one stored run.

Per-task gradients come from one batched backward (``method="batched"``:
``autograd.grad(losses, params, grad_outputs=I, is_grads_batched=True)``, a vmap over the
rows of the identity) or from one backward per task (``method="loop"``); both give the same
numbers and ``benchmarks/gradient_probe.py`` times them.

The callback leaves training as it would be without it: it runs under a forked random state
and restores the model's buffers (batch-norm statistics) afterwards.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from taskrel.affinity import Affinity, Cost
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.probes.base import ProbeSettings, check_probe_tasks
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import Callback, StepState, register_callback

METHODS = ("batched", "loop")
CALLBACK = "gradient"


# ------------------------------------------------------------------ per-task gradients
def per_task_gradients(
    losses: torch.Tensor, params: Sequence[torch.Tensor], method: str = "batched"
) -> torch.Tensor:
    """Gradient of each loss on ``params``, flattened: a tensor (n_losses, n_parameters).

    ``losses`` is a 1-d tensor with a graph. ``"batched"`` does one vmapped backward over the
    rows of the identity; ``"loop"`` one ``autograd.grad`` per loss. A parameter a loss does
    not reach gets zeros.

    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> L = torch.stack([(w ** 2).sum(), 3 * w[0]])
    >>> per_task_gradients(L, [w]).tolist()
    [[2.0, 4.0], [3.0, 0.0]]
    >>> torch.equal(per_task_gradients(L, [w], "loop"), per_task_gradients(L, [w]))
    True
    """
    if method not in METHODS:
        raise TaskrelError(f"gradient probe: unknown method {method!r}; use one of {', '.join(METHODS)}")
    params = list(params)
    n = int(losses.shape[0])
    if method == "batched":
        eye = torch.eye(n, dtype=losses.dtype, device=losses.device)
        try:
            grads = torch.autograd.grad(
                losses, params, grad_outputs=eye, retain_graph=True, allow_unused=True,
                is_grads_batched=True,
            )
        except RuntimeError as e:  # an op of the user's stages without a vmap rule
            warnings.warn(f"taskrel gradient probe: batched backward failed ({e}); using one backward per task", stacklevel=2)
            return per_task_gradients(losses, params, "loop")
        return torch.cat(
            [(torch.zeros(n, p.numel(), dtype=p.dtype, device=p.device) if g is None else g.reshape(n, -1))
             for g, p in zip(grads, params)],
            dim=1,
        )
    rows = []
    for i in range(n):
        grads = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]))
    return torch.stack(rows)


def cosine_matrix(grads: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of every pair of rows and the row norms; NaN where a row is zero.

    >>> cos, norms = cosine_matrix(torch.tensor([[1.0, 0.0], [-2.0, 0.0], [0.0, 0.0]]))
    >>> cos[0, 1], norms.tolist(), bool(np.isnan(cos[2, 0]))
    (np.float64(-1.0), [1.0, 2.0, 0.0], True)
    """
    g = grads.detach().to(torch.float64)
    norms = g.norm(dim=1)
    dots = g @ g.T
    denom = norms[:, None] * norms[None, :]
    cos = torch.where(denom > 0, dots / denom.clamp_min(1e-300), torch.full_like(dots, math.nan))
    return cos.clamp(-1.0, 1.0).cpu().numpy(), norms.cpu().numpy()


# ------------------------------------------------------------------ the callback
@contextlib.contextmanager
def _untouched(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """Run a block without changing the random state or the model's buffers and mode."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    mode = model.training
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            model.train(mode)


def _clean(a: np.ndarray) -> list:
    """JSON-safe nested lists: NaN becomes None, 7 significant digits."""
    return [_clean(r) for r in a] if a.ndim > 1 else [None if not np.isfinite(v) else float(f"{v:.7g}") for v in a]


@register_callback(CALLBACK)
class GradientCallback(Callback):
    """Every ``every`` steps: per-task gradient cosines and norms (and TAG lookahead).

    ``result()`` is plain JSON: ``tasks``, ``steps``, per step ``cosine`` (n x n), ``norms``
    (n) and, with ``lookahead=True``, ``lookahead`` (n x n, source -> target); ``seconds`` and
    ``examples`` spent by each part (``gradient``, ``lookahead``), and ``batch``.
    """

    def __init__(self, every: int = 10, lookahead: bool = True, method: str = "batched"):
        if int(every) < 1:
            raise TaskrelError(f"gradient probe: every must be >= 1, got {every}")
        if method not in METHODS:
            raise TaskrelError(f"gradient probe: unknown method {method!r}; use one of {', '.join(METHODS)}")
        self.every = int(every)
        self.lookahead = bool(lookahead)
        self.method = method
        self.tasks: list[str] = []
        self.steps: list[int] = []
        self.cosine: list[list] = []
        self.norms: list[list] = []
        self.looks: list[list] = []
        self.seconds = {"gradient": 0.0, "lookahead": 0.0}
        self.examples = {"gradient": 0, "lookahead": 0}

    def on_step(self, state: StepState) -> None:
        from taskrel.probes.lookahead import lookahead_matrix

        model = state.model
        params = model.shared_parameters()
        if not params:
            raise TaskrelError("gradient probe: the model has no shared parameters (use a shared layout)")
        names = [t.name for t in state.tasks]
        self.tasks = names
        with _untouched(model, state.x.device):
            t0 = time.perf_counter()
            per = state.losses()
            losses = torch.stack([per[t] for t in names])
            grads = per_task_gradients(losses, params, self.method)
            cos, norms = cosine_matrix(grads)
            t1 = time.perf_counter()
            self.seconds["gradient"] += t1 - t0
            self.examples["gradient"] += len(state.x)
            if self.lookahead:
                weights = torch.tensor([state.loss_weights.get(t, 1.0) for t in names], dtype=grads.dtype, device=grads.device)
                z = lookahead_matrix(state, params, grads * weights[:, None], losses.detach(), self.method)
                self.looks.append(_clean(z))
                self.seconds["lookahead"] += time.perf_counter() - t1
                self.examples["lookahead"] += len(state.x) * len(names)
        self.steps.append(int(state.step))
        self.cosine.append(_clean(cos))
        self.norms.append(_clean(norms[None])[0])

    def result(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "every": self.every,
            "method": self.method,
            "steps": self.steps,
            "cosine": self.cosine,
            "norms": self.norms,
            "lookahead": self.looks if self.lookahead else None,
            "seconds": self.seconds,
            "examples": self.examples,
        }


# ------------------------------------------------------------------ runs and summaries
def gradient_run_specs(
    suite: Suite, tasks: Sequence[str], every: int, settings: ProbeSettings, method: str = "batched", lookahead: bool = True
) -> list[RunSpec]:
    """One all-shared run per seed with the gradient callback (shared by both probes)."""
    params = RunSpec.probe_params(every=int(every), lookahead=bool(lookahead), method=method)
    return [
        RunSpec(SharingLayout.shared(list(tasks), suite.n_stages), settings.config, seed, probes=((CALLBACK, params),), label=f"gradient probe seed{seed}")
        for seed in settings.seeds
    ]


def _array(rows: list, n_shape: tuple[int, ...]) -> np.ndarray:
    a = np.array([[np.nan if v is None else v for v in _flat(r)] for r in rows], dtype=np.float64)
    return a.reshape((len(rows), *n_shape)) if rows else np.zeros((0, *n_shape))


def _flat(r: Any) -> list:
    return [v for row in r for v in row] if r and isinstance(r[0], list) else list(r)


def trajectory_arrays(rec: RunRecord, tasks: Sequence[str]) -> dict[str, np.ndarray]:
    """Per probe step arrays of one stored run, reordered to ``tasks``."""
    ex = rec.extras.get(CALLBACK)
    if not ex or not ex.get("steps"):
        raise TaskrelError(f"gradient probe: run {rec.key} has no gradient trajectory (no probe step ran)")
    n = len(ex["tasks"])
    idx = [ex["tasks"].index(t) for t in tasks]
    sl = np.ix_(idx, idx)
    out = {
        "steps": np.asarray(ex["steps"], dtype=np.int64),
        "cosine": _array(ex["cosine"], (n, n))[:, sl[0], sl[1]],
        "norms": _array(ex["norms"], (n,))[:, idx],
    }
    if ex.get("lookahead") is not None:
        out["lookahead"] = _array(ex["lookahead"], (n, n))[:, sl[0], sl[1]]
    return out


def in_window(tr: dict[str, np.ndarray], window: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """The probe steps of a trajectory with ``start <= step < stop`` (all when window is None)."""
    if window is None:
        return tr
    start, stop = (int(v) for v in window)
    keep = (tr["steps"] >= start) & (tr["steps"] < stop)
    if not keep.any():
        raise TaskrelError(f"gradient probe: no probe step in window {window}; probe steps run {tr['steps'].min()}..{tr['steps'].max()}")
    return {k: v[keep] for k, v in tr.items()}


def long_table(seed: int, steps: np.ndarray, names: Sequence[str], values: np.ndarray, column: str):
    """A long DataFrame (seed, step, source, target, column) of per-step (n, n) values."""
    import pandas as pd

    n, m = len(names), len(steps)
    return pd.DataFrame({
        "seed": np.full(m * n * n, seed),
        "step": np.repeat(steps, n * n),
        "source": np.tile(np.repeat(np.asarray(names, dtype=object), n), m),
        "target": np.tile(np.asarray(names, dtype=object), m * n),
        column: values.reshape(-1),
    })


def nanmean0(a: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; 0 where every value is NaN."""
    count = np.sum(np.isfinite(a), axis=0)
    total = np.nansum(a, axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def fit_runs(suite: Suite, store: RunStore, tasks: Sequence[str] | None, every: int, settings: ProbeSettings, method: str, lookahead: bool, desc: str):
    """Train (or reuse) the probe runs; return task names and the good records, one per seed."""
    from taskrel.execute import execute

    if method not in METHODS:
        raise TaskrelError(f"{desc}: unknown method {method!r}; use one of {', '.join(METHODS)}")
    names = check_probe_tasks(suite, tasks)
    specs = gradient_run_specs(suite, names, every, settings, method, lookahead)
    plan = execute(suite, specs, store, desc=desc, **settings.execute_kwargs())
    recs = [plan.records[k] for k in plan.keys]
    bad = [r for r in recs if not r.ok]
    if len(bad) == len(recs):
        raise TaskrelError(f"{desc}: every run failed; first reason: {bad[0].error}")
    return names, [r for r in recs if r.ok], plan


def run_cost(rec: RunRecord, parts: Sequence[str]) -> Cost:
    """Cost of one probe run counting the training and the named callback parts only."""
    ex = rec.extras[CALLBACK]
    probe_s = sum(ex["seconds"].values())
    seconds = rec.seconds - probe_s + sum(ex["seconds"][p] for p in parts)
    examples = rec.examples + sum(ex["examples"][p] for p in parts)
    return Cost(rec.steps, examples, seconds, 1)


def cost_meta(recs: Sequence[RunRecord]) -> dict[str, Any]:
    ex = [r.extras[CALLBACK] for r in recs]
    return {
        "probe_steps": int(sum(len(e["steps"]) for e in ex)),
        "train_seconds": float(sum(r.seconds - sum(e["seconds"].values()) for r, e in zip(recs, ex))),
        "gradient_seconds": float(sum(e["seconds"]["gradient"] for e in ex)),
        "lookahead_seconds": float(sum(e["seconds"]["lookahead"] for e in ex)),
        "run_keys": [r.key for r in recs],
    }


class GradientProbe:
    """Gradient cosine between tasks on the shared encoder, averaged over one multi-task run.

    Parameters
    ----------
    tasks : tasks to probe (default: all of the suite's).
    every : probe every this many training steps.
    method : ``"batched"`` (one vmapped backward, default) or ``"loop"`` (a backward per task).
    lookahead : also compute the TAG lookahead in the same run (default True), so that
        :class:`~taskrel.probes.LookaheadProbe` with the same settings reuses the stored run.
        Its extra compute is not counted in this probe's cost (see ``meta``).
    window : ``(start, stop)``: average only the probe steps with ``start <= step < stop``
        (for example the first epochs, where a conflict shows most); None: the whole run.
        Analysis only: it does not change the stored run.
    settings : training config, seeds and parallelism.

    Attributes
    ----------
    affinity_ : mean gradient cosine over probe steps (symmetric), then mean/std over seeds.
    conflict_ : share of probe steps with a negative cosine (higher = more conflict: the
        opposite of the usual direction).
    magnitude_ : geometric mean over probe steps of ``||g_source|| / ||g_target||``.
    trajectory_ : DataFrame with columns seed, step, source, target, cosine.
    records_ : the stored runs used.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> probe = GradientProbe(suite.task_names[:3], every=5,
    ...     settings=ProbeSettings(TrainConfig(epochs=2, lr=3e-3, batch_size=32), progress=False))
    >>> probe = probe.fit(suite, RunStore(tempfile.mkdtemp()))
    >>> probe.affinity_.values.shape, round(probe.affinity_.value(suite.task_names[0], suite.task_names[0]), 5)
    ((3, 3), 1.0)
    >>> bool(np.allclose(probe.affinity_.values, probe.affinity_.values.T))
    True
    >>> sorted(probe.trajectory_.columns)
    ['cosine', 'seed', 'source', 'step', 'target']
    """

    def __init__(self, tasks: Sequence[str] | None = None, every: int = 10, method: str = "batched", lookahead: bool = True, window: tuple[int, int] | None = None, settings: ProbeSettings | None = None):
        self.tasks = tasks
        self.window = window
        self.every = every
        self.method = method
        self.lookahead = lookahead
        self.settings = settings

    def fit(self, suite: Suite, store: RunStore) -> GradientProbe:
        import pandas as pd

        settings = self.settings or ProbeSettings()
        names, recs, _ = fit_runs(suite, store, self.tasks, self.every, settings, self.method, self.lookahead, "gradient probe")
        cos_s, conf_s, mag_s, rows = [], [], [], []
        for rec in recs:
            tr = trajectory_arrays(rec, names)
            rows.append(long_table(int(rec.spec["seed"]), tr["steps"], names, tr["cosine"], "cosine"))
            tr = in_window(tr, self.window)
            cos = tr["cosine"]
            cos_s.append(nanmean0(cos))
            neg = np.where(np.isfinite(cos), (cos < 0).astype(float), np.nan)
            conf_s.append(nanmean0(neg))
            with np.errstate(divide="ignore", invalid="ignore"):
                logn = np.log(tr["norms"])
                logr = logn[:, :, None] - logn[:, None, :]
            logr[~np.isfinite(logr)] = np.nan
            mag_s.append(np.exp(nanmean0(logr)))
        cost = sum((run_cost(r, ["gradient"]) for r in recs), Cost())
        meta = {**cost_meta(recs), "every": self.every, "method": self.method, "window": self.window, "shared_run_with_lookahead": self.lookahead}
        self.affinity_ = Affinity.from_seeds(names, cos_s, measure="gradient-cosine", cost=cost, meta=meta)
        self.conflict_ = Affinity.from_seeds(names, conf_s, measure="gradient-conflict-frequency", cost=cost, meta={**meta, "direction": "higher = more conflict"})
        self.magnitude_ = Affinity.from_seeds(names, mag_s, measure="gradient-magnitude-ratio", cost=cost, meta={**meta, "direction": "||g_source|| / ||g_target||"})
        self.trajectory_ = pd.concat(rows, ignore_index=True)
        self.records_ = recs
        return self
