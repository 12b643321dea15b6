"""Gradient-feature probe: any group's losses from one trained model (in the spirit of Grad-TAG).

Li et al. (KDD 2024) estimate what fine-tuning on a subset of tasks would give without training
it. This probe does the same in four steps, for each seed:

1. **One base model.** Every task shares every encoder stage (``SharingLayout.shared``); the
   run goes through the store (weights kept), so a second fit trains nothing.
2. **Gradient features.** For a sample of training and validation examples, the gradient of
   each task's outputs with respect to the *shared* parameters ``theta`` (the encoder) comes
   from one vectorised pass (``torch.func.vmap`` of ``jacrev``), and is projected at random
   (Gaussian, ``dim`` columns, seeded) to ``phi_t(x)`` of ``dim`` numbers per output.
3. **A linearised fine-tune per group.** Near the base weights, moving the shared parameters by
   ``P delta`` changes task ``t``'s output to ``f_t(x) + phi_t(x) . delta``. For a group ``S``
   the fine-tune is ``delta_S = argmin sum_{t in S} L_t^train(f_t + phi_t delta) +
   (lambda / 2) |delta|^2``, solved by Newton steps (exact in one step for squared error;
   ``lambda`` is ``ridge`` times the mean curvature, so it is free of the loss's scale).
4. **Estimates.** Each member's validation loss under ``delta_S``, on the linearised model,
   is its estimated loss in the group. Nothing is trained for the group.

``affinity_`` is the relative drop of the target's estimated loss when the source joins it,
``(L(t | {t}) - L(t | {s, t})) / L(t | {t})`` (the pairwise probe's scale), and
:meth:`GradFeatureProbe.candidates` estimates every group for the grouping search. The cost
counts the base runs, plus the feature pass (examples differentiated) and the seconds spent
measuring.

Failed runs. A base run whose loss diverged on one task is trained again without that task
(:mod:`taskrel.probes.partial`; ``meta["replaced"]`` records it): the other tasks' features and
estimates come from that model, every entry of the task that diverged is NaN, marked missing,
and :meth:`GradFeatureProbe.candidates` estimates groups of the others (``tasks=``; a group
holding the task that diverged is an error naming it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from math import comb
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad, jacrev, vmap

from taskrel.affinity import Cost
from taskrel.base import check_is_fitted
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout, build_model
from taskrel.plans import Plan
from taskrel.probes.base import Probe, cost_of, register_probe
from taskrel.probes.linearised import gradfeature_model, pair_affinity, predict_groups
from taskrel.probes.partial import place, run_tasks, unmeasured, without_failed_task
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.tables import CandidateTable
from taskrel.tables.group_values import GroupValues
from taskrel.train import TrainConfig, task_loss, thread_limit

CHUNK = 64  # examples per vectorised Jacobian pass
MAX_GROUPS = 200_000


@dataclass
class TaskFeatures:
    """One task's projected gradient features on one split: ``phi`` (N, k, dim), base outputs
    ``f0`` (N, k), targets ``y`` and the labelled count."""

    phi: torch.Tensor
    f0: torch.Tensor
    y: torch.Tensor
    n_labelled: int


class FeatureModel:
    """Per-task features of one base model, and the linearised fine-tune of any group."""

    def __init__(self, tasks, train: dict[str, TaskFeatures], val: dict[str, TaskFeatures], ridge: float, newton_steps: int):
        self.tasks = tasks  # Task objects in probe order
        self.names = [t.name for t in tasks]
        self.train, self.val = train, val
        self.newton_steps = newton_steps
        self.stats0 = {t.name: _grad_hess(t, train[t.name], None) for t in tasks}
        dim = next(iter(train.values())).phi.shape[-1]
        curvature = float(np.mean([torch.diagonal(h).mean().item() for _, h in self.stats0.values()]))
        self.lam = ridge * max(curvature, 1e-12)
        self.eye = torch.eye(dim, dtype=torch.float64)

    def fine_tune(self, names: Sequence[str]) -> torch.Tensor:
        """``delta`` of the linearised fine-tune on these tasks' training examples."""
        delta = torch.zeros(self.eye.shape[0], dtype=torch.float64)
        for step in range(self.newton_steps):
            g = torch.zeros_like(delta)
            H = self.lam * self.eye
            for t in self.tasks:
                if t.name in names:
                    gt, ht = self.stats0[t.name] if step == 0 else _grad_hess(t, self.train[t.name], delta)
                    g, H = g + gt, H + ht
            g = g + self.lam * delta
            delta = delta - torch.linalg.solve(H, g)
        return delta

    def losses(self, names: Sequence[str]) -> dict[str, float]:
        """Estimated validation loss of each of ``names`` when fine-tuned together."""
        delta = self.fine_tune(names)
        out = {}
        for t in self.tasks:
            if t.name in names:
                f = self.val[t.name]
                o = f.f0 + torch.einsum("nkd,d->nk", f.phi, delta)
                out[t.name] = float(task_loss(t, _shape(t, o), f.y))
        return out


def _shape(task, o: torch.Tensor) -> torch.Tensor:
    return o if task.kind in ("multiclass", "multilabel") else o.reshape(-1, 1)


def _grad_hess(task, f: TaskFeatures, delta: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient and (Gauss-Newton) Hessian in ``delta`` of the task's mean training loss."""
    o = f.f0 if delta is None else f.f0 + torch.einsum("nkd,d->nk", f.phi, delta)

    def one(oi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return task_loss(task, _shape(task, oi[None]), yi[None], reduce=False)[0]

    l1 = vmap(grad(one))(o, f.y)  # (N, k)
    l2 = vmap(jacrev(grad(one)))(o, f.y)  # (N, k, k), reverse over reverse
    n = max(f.n_labelled, 1)
    g = torch.einsum("nk,nkd->d", l1, f.phi) / n
    H = torch.einsum("nkd,nkl,nle->de", f.phi, l2, f.phi) / n
    return g, H


# ---------------------------------------------------------------------- feature pass
def projection_matrix(n_params: int, dim: int, seed: int) -> torch.Tensor:
    """The random projection: (n_params, dim), entries N(0, 1/dim), drawn from ``seed``.

    >>> P = projection_matrix(1000, 50, seed=3)
    >>> P.shape, torch.equal(P, projection_matrix(1000, 50, seed=3))
    (torch.Size([1000, 50]), True)
    """
    gen = torch.Generator().manual_seed(int(seed) + 7)
    return torch.randn(n_params, dim, generator=gen) / np.sqrt(dim)


def gradient_features(model, suite: Suite, split: str, tasks, dim: int, n_examples: int, seed: int):
    """Projected per-example output gradients on the shared parameters, per task.

    Returns ``({task: TaskFeatures}, examples differentiated)``. The projection is
    :func:`projection_matrix` of ``seed`` over the shared parameters in the model's order (the
    same for every split); examples are a seeded sample of at most ``n_examples`` rows of ``split`` with a label for
    some task. The model is evaluated in eval mode (dropout off, batch-norm statistics fixed).
    """
    model.eval()
    names = [t.name for t in tasks]
    X, ys = suite.tensors(split, names)
    labelled = torch.zeros(len(X), dtype=torch.bool)
    for y in ys.values():
        labelled |= ~torch.isnan(y).reshape(len(X), -1).all(1)
    idx = torch.nonzero(labelled).reshape(-1)
    gen = torch.Generator().manual_seed(int(seed) * 3 + ("train", "val", "test").index(split))
    if len(idx) > n_examples:
        idx = idx[torch.randperm(len(idx), generator=gen)[:n_examples]].sort().values
    shared_ids = {id(p) for p in model.shared_parameters()}
    shared = {n: p.detach() for n, p in model.named_parameters() if id(p) in shared_ids}
    fixed = {n: p.detach() for n, p in model.named_parameters() if id(p) not in shared_ids}
    fixed.update({n: b.detach() for n, b in model.named_buffers()})
    if not shared:
        raise TaskrelError("gradient-feature probe: the base model has no shared parameters")
    proj = projection_matrix(sum(p.numel() for p in shared.values()), dim, seed)

    def outputs(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**fixed, **params}, (x[None],))
        return torch.cat([out[n].reshape(-1) for n in names])

    phis, f0s = [], []
    with torch.no_grad():
        for start in range(0, len(idx), CHUNK):
            xb = X[idx[start : start + CHUNK]]
            jac = vmap(jacrev(outputs), in_dims=(None, 0))(shared, xb)
            flat = torch.cat([jac[n].reshape(len(xb), -1, shared[n].numel()) for n in shared], dim=2)
            phis.append((flat @ proj).double())
            f0s.append(vmap(outputs, in_dims=(None, 0))(shared, xb).double())
    phi, f0 = torch.cat(phis), torch.cat(f0s)
    feats, off = {}, 0
    for t in tasks:
        k = t.n_outputs or 1
        y = ys[t.name][idx]
        y = y.double() if t.kind in ("regression", "binary", "multilabel") else y
        mask = ~torch.isnan(y).reshape(len(y), -1).all(1)
        feats[t.name] = TaskFeatures(phi[:, off : off + k], f0[:, off : off + k], y, int(mask.sum()))
        off += k
    return feats, len(idx)


# ---------------------------------------------------------------------- the probe
@register_probe("gradfeature")
class GradFeatureProbe(Probe):
    """Every group's losses from one multi-task model's projected gradients (Grad-TAG style).

    Parameters
    ----------
    tasks : tasks to probe (default: every task of the suite).
    dim : columns of the random projection of the gradients.
    n_examples : at most this many training and this many validation examples are
        differentiated (a seeded sample).
    ridge : the fine-tune's penalty, relative to the mean curvature of the tasks' losses.
    newton_steps : Newton steps of each fine-tune (one is exact for squared-error tasks).
    projection_seed : seed of the projection and the example sample (each training seed adds
        its own).
    config, seeds : the base model's training config and the seeds (one base model each).

    Attributes
    ----------
    affinity_ : relative drop of the target's estimated validation loss when the source joins
    it, mean over seeds. ``models_`` : one :class:`FeatureModel` per seed that trained.
    ``feature_examples_`` : examples differentiated; ``records_``, ``trained_``, ``failed_``.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.runner import Runner
    >>> from taskrel.suites import get_suite
    >>> suite = get_suite("planted", n_examples=200)
    >>> runner = Runner(tempfile.mkdtemp(), progress=False)
    >>> probe = GradFeatureProbe(["c0t0", "c0t1", "conflict"], dim=16, config=TrainConfig(epochs=2))
    >>> probe = probe.fit(suite, runner)
    >>> probe.trained_, probe.affinity_.cost.runs, len(probe.candidates())
    (1, 1, 7)
    >>> est = probe.estimate([["c0t1", "c0t0"]])
    >>> list(est), sorted(est["c0t0+c0t1"])
    (['c0t0+c0t1'], ['c0t0', 'c0t1'])
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        dim: int = 128,
        n_examples: int = 512,
        ridge: float = 1.0,
        newton_steps: int = 1,
        projection_seed: int = 0,
        config: TrainConfig | None = None,
        seeds: Sequence[int] = (0,),
    ):
        self.tasks = tasks
        self.dim = dim
        self.n_examples = n_examples
        self.ridge = ridge
        self.newton_steps = newton_steps
        self.projection_seed = projection_seed
        self.config = config
        self.seeds = seeds

    def check(self, suite: Suite) -> None:
        for name, lo in (("dim", 1), ("n_examples", 2), ("newton_steps", 1), ("projection_seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise TaskrelError(f"gradient-feature probe: {name} must be an integer >= {lo}, got {v!r}")
        if isinstance(self.ridge, bool) or not isinstance(self.ridge, (int, float)) or not self.ridge > 0:
            raise TaskrelError(f"gradient-feature probe: ridge must be a positive number, got {self.ridge!r}")
        own = [t.name for t in suite.tasks if t.loss is not None]
        if own:  # its per-example Hessians go through vmap, which a task's own loss need not support
            raise TaskrelError(f"gradient-feature probe: tasks {own} bring their own loss; this probe supports the built-in kinds only")

    def plan(self, suite: Suite) -> Plan:
        """One all-shared run per seed, weights kept (the base model); ``index``: the seeds."""
        tasks, cfg, seeds = self.task_names(suite), self.train_config(), self.seed_list()
        layout = SharingLayout.shared(tasks, suite.n_stages)
        return Plan([RunSpec(layout, cfg, seed, keep_weights=True, label=f"gradfeature base seed{seed}") for seed in seeds], seeds)

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, np.ndarray]:
        """Features of each seed's base model; per seed, the affinity of its estimates."""
        tasks, seeds = self.task_names(suite), self.seed_list()
        self.models_, self.feature_examples_ = {}, 0
        per_seed = np.full((len(seeds), len(tasks), len(tasks)), np.nan)
        with thread_limit(self.train_config().threads):
            for k, (seed, rec) in enumerate(zip(seeds, records)):
                if not rec.ok:
                    continue
                held = run_tasks(rec, tasks)  # fewer than tasks in a run replaced without a diverged task
                objs = [suite.task(t) for t in held]
                model = build_model(SharingLayout.shared(held, suite.n_stages), suite, seed)
                model.load_state_dict(store.load_weights(rec.key))
                fs = self.projection_seed * 1_000_003 + seed
                tr, n_tr = gradient_features(model, suite, "train", objs, self.dim, self.n_examples, fs)
                va, n_va = gradient_features(model, suite, "val", objs, self.dim, self.n_examples, fs)
                self.feature_examples_ += n_tr + n_va
                fm = FeatureModel(objs, tr, va, float(self.ridge), int(self.newton_steps))
                self.models_[seed] = fm
                per_seed[k] = place(pair_affinity(fm, held), held, tasks)
        return {"gradfeature": per_seed}

    def replacement(self, suite: Suite, spec: RunSpec, record: RunRecord) -> RunSpec | None:
        """The base run without the task whose loss diverged (see :mod:`taskrel.probes.partial`)."""
        return without_failed_task(spec, record)

    def cost(self, records: Sequence[RunRecord]) -> Cost:
        """The base runs, plus every example differentiated for the features."""
        return cost_of(records) + Cost(examples=int(getattr(self, "feature_examples_", 0)))

    def meta(self) -> dict[str, Any]:
        return {"split": "val", "scale": "relative", "estimator": "gradient-feature (linearised fine-tune)", "dim": self.dim, "n_examples": self.n_examples,
                "ridge": self.ridge, "newton_steps": self.newton_steps, "feature_examples": self.feature_examples_}

    # ------------------------------------------------------------------ group estimates
    def estimate(self, groups) -> dict[str, dict[str, tuple[float, float]]]:
        """``{"a+b": {task: (mean, std over seeds)}}``: estimated validation losses."""
        check_is_fitted(self, "models_", "fit(suite, runner)")
        out = {}
        for g in groups:
            names = [p.strip() for p in g.split("+")] if isinstance(g, str) else [str(t) for t in g]
            unknown = [t for t in names if t not in self.tasks_]
            if unknown or not names:
                raise TaskrelError(f"gradient-feature probe: unknown task(s) {unknown} in group {names}; tasks are {self.tasks_}")
            per = [fm.losses(names) for fm in self.models_.values() if set(names) <= set(fm.names)]
            if not per:
                raise unmeasured(names, [t for fm in self.models_.values() for t in fm.names], self.failed_,
                                 "gradient-feature probe") or TaskrelError(
                    f"gradient-feature probe: no base model holds all of {names}")
            key = "+".join(t for t in self.tasks_ if t in names)
            out[key] = {t: (float(np.mean([p[t] for p in per])), float(np.std([p[t] for p in per], ddof=1)) if len(per) > 1 else 0.0)
                        for t in names}
        return out

    def candidates(self, max_size: int | None = None, split: str = "val", cost=1.0, tasks: Sequence[str] | None = None):
        """Every group up to ``max_size`` with estimated per-task validation losses (mean over
        seeds), for the grouping search (``split``: ``"val"`` only, the split the features
        estimate). ``cost`` per network: a number, a dict size -> cost or
        a function of the group's task tuple. ``tasks``: groups of these tasks only (default
        all); a task no base model holds (its loss diverged) is an error naming it: pass the
        others."""
        check_is_fitted(self, "models_", "fit(suite, runner)")
        if split != "val":
            raise TaskrelError(f"gradient-feature probe: candidates estimate validation losses only; split must be 'val', got {split!r}")
        unknown = [t for t in (tasks or []) if t not in self.tasks_]
        if unknown:
            raise TaskrelError(f"gradient-feature probe: unknown task(s) {unknown}; tasks are {self.tasks_}")
        names = self.tasks_ if tasks is None else [t for t in self.tasks_ if t in set(tasks)]
        lost = unmeasured(names, [t for t in names if any(t in fm.names for fm in self.models_.values())],
                          self.failed_, "gradient-feature probe")
        if lost is not None:
            raise lost
        n = len(names)
        k_max = n if max_size is None else max_size
        if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or k_max < 1:
            raise TaskrelError(f"gradient-feature probe: max_size must be a positive integer, got {max_size!r}")
        k_max = min(int(k_max), n)
        total = sum(comb(n, k) for k in range(1, k_max + 1))
        if total > MAX_GROUPS:
            raise TaskrelError(f"gradient-feature probe: {total} groups of {n} tasks up to size {k_max} is too many to list "
                               f"(more than {MAX_GROUPS}); pass a smaller max_size, or give probe.group_model() to the "
                               "grouping search, which asks it for groups on demand (column generation)")
        sub = np.zeros((total, n), dtype=bool)
        row = 0
        for k in range(1, k_max + 1):
            for g in combinations(range(n), k):
                sub[row, list(g)] = True
                row += 1
        cols = [self.tasks_.index(t) for t in names]
        full = np.zeros((total, len(self.tasks_)), dtype=bool)
        full[:, cols] = sub
        values, _ = predict_groups(self.models_, self.tasks_, full)
        costs = [_cost(cost, tuple(names[i] for i in np.nonzero(r)[0])) for r in sub]
        return CandidateTable.from_arrays(list(names), sub, np.array(costs, dtype=float), values[:, cols],
                                          higher_is_better=False, check_duplicates=False)

    def predict_members(self, members) -> tuple[np.ndarray, np.ndarray]:
        """Group-value contract over ``tasks_``: estimated validation losses of any groups (a
        boolean (m, n) matrix), batched, with the standard error of the mean over seeds (NaN
        with one seed). Nothing is enumerated (:mod:`taskrel.probes.linearised`)."""
        return self.group_model().predict_members(members)

    def group_model(self) -> GroupValues:
        """The fitted estimates as a group-value model for the grouping search (no exact
        pricing: it prices by heuristic search), naming the estimator and its cost."""
        check_is_fitted(self, "models_", "fit(suite, runner)")
        return gradfeature_model(self.models_, self.tasks_, getattr(getattr(self, "affinity_", None), "cost", None),
                                 {"dim": self.dim, "n_examples": self.n_examples, "ridge": self.ridge,
                                  "newton_steps": self.newton_steps})


def _cost(cost, group: tuple[str, ...]) -> float:
    if callable(cost):
        return float(cost(group))
    if isinstance(cost, dict):
        if len(group) not in cost:
            raise TaskrelError(f"gradient-feature probe: cost has no entry for groups of size {len(group)}")
        return float(cost[len(group)])
    return float(cost)


__all__ = ["FeatureModel", "GradFeatureProbe", "TaskFeatures", "gradient_features", "projection_matrix"]
