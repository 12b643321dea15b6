"""Many groups' linearised fine-tunes at once: the gradient-feature estimate asked on demand.

The gradient-feature probe (:mod:`taskrel.probes.gradfeature`) estimates a group ``S`` by one
Newton step of the linearised fine-tune from the base weights::

    delta_S = -(lambda I + sum_{t in S} H_t)^-1 sum_{t in S} g_t

(``g_t``, ``H_t``: the gradient and Gauss-Newton Hessian of task ``t``'s training loss in the
projected parameters) and each member's validation loss under ``delta_S``. With one Newton
step (the default; exact for squared error) every group needs only sums of per-task ``g_t``
and ``H_t``, so :func:`predict_losses` batches the groups: one batched Cholesky solve per
chunk of groups and one matrix product per task for the outputs, with the same numbers as
:meth:`FeatureModel.losses` group by group. More Newton steps fall back to that loop.

:func:`seed_values` averages the base models of several seeds and gives the standard error of
that mean (NaN with one seed: one base model says nothing about its own spread).

>>> import numpy as np
>>> seed_values([np.array([[1.0, np.nan]]), np.array([[3.0, np.nan]])])[0].tolist()
[[2.0, nan]]
"""
from __future__ import annotations

import warnings
import weakref
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from taskrel.affinity import Cost
from taskrel.errors import TaskrelError
from taskrel.losses import task_loss
from taskrel.tables.group_values import GroupValues

CHUNK = 256  # groups per batched solve


def _per_group_loss(task, f, delta: torch.Tensor) -> torch.Tensor:
    """Mean validation loss of ``task`` under each row of ``delta`` (c, dim) -> (c,)."""
    c = len(delta)
    o = f.f0[None] + torch.einsum("nkd,cd->cnk", f.phi, delta)  # (c, N, k)
    N, k = f.f0.shape
    out = o.reshape(c * N, k)
    if task.kind not in ("multiclass", "multilabel"):
        out = out.reshape(-1, 1)
    y = f.y.repeat((c,) + (1,) * (f.y.dim() - 1))
    per = task_loss(task, out, y, reduce=False).reshape(c, N)
    labelled = ~torch.isnan(f.y)
    if labelled.dim() > 1:
        labelled = labelled.reshape(N, -1).any(1)
    return per.sum(1) / labelled.sum().clamp_min(1)


class _Stacked:
    """What every batch of one feature model needs, computed once: the tasks' gradients and
    Hessians stacked, and for squared-error tasks the validation loss as a quadratic in delta."""

    def __init__(self, fm):
        self.g = torch.stack([fm.stats0[t][0] for t in fm.names])  # (n, d)
        d = self.g.shape[1]
        self.H = torch.stack([fm.stats0[t][1] for t in fm.names]).reshape(len(fm.names), d * d)
        self.quad = {}
        for j, task in enumerate(fm.tasks):
            if task.kind == "regression" and task.loss is None:
                f = fm.val[task.name]
                y = f.y.reshape(-1)
                mask = (~torch.isnan(y)).to(torch.float64)
                r = (f.f0[:, 0] - torch.nan_to_num(y)) * mask
                phi = f.phi[:, 0, :] * mask[:, None]
                count = mask.sum().clamp_min(1)
                self.quad[j] = (float((r * r).sum() / count), 2 * (phi.T @ r) / count, (phi.T @ phi) / count)


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _stacked(fm) -> _Stacked:
    if fm not in _CACHE:
        _CACHE[fm] = _Stacked(fm)
    return _CACHE[fm]


def predict_losses(fm, members: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Estimated validation losses (m, n) of groups ``members`` (m, n) over ``fm.names``.

    ``fm`` is a :class:`~taskrel.probes.gradfeature.FeatureModel`; NaN outside each group.
    """
    members = np.asarray(members, dtype=bool)
    m, n = members.shape
    out = np.full((m, n), np.nan)
    if fm.newton_steps > 1:
        for r in range(m):
            names = [fm.names[j] for j in np.nonzero(members[r])[0]]
            for t, v in fm.losses(names).items():
                out[r, fm.names.index(t)] = v
        return out
    st = _stacked(fm)
    d = st.g.shape[1]
    for s in range(0, m, chunk):
        block = members[s : s + chunk]
        rows, cols = np.nonzero(block)
        M = torch.sparse_coo_tensor(np.vstack([rows, cols]), torch.ones(len(rows), dtype=torch.float64), block.shape,
                                    check_invariants=False)
        A = torch.sparse.mm(M, st.H).reshape(-1, d, d) + fm.lam * fm.eye
        L = torch.linalg.cholesky(A)  # A is positive definite (lambda > 0): two triangular solves
        half = torch.linalg.solve_triangular(L, torch.sparse.mm(M, st.g)[:, :, None], upper=False)
        delta = -torch.linalg.solve_triangular(L.transpose(1, 2), half, upper=True)[:, :, 0]
        for j, task in enumerate(fm.tasks):
            hold = block[:, j]
            if not hold.any():
                continue
            dj = delta[torch.as_tensor(hold)]
            if j in st.quad:
                c, b, Q = st.quad[j]
                vals = c + dj @ b + torch.einsum("cd,de,ce->c", dj, Q, dj)
            else:
                vals = _per_group_loss(task, fm.val[task.name], dj)
            out[s + np.nonzero(hold)[0], j] = vals.numpy()
    return out


def pair_affinity(fm, tasks: list[str]) -> np.ndarray:
    """Relative drop of each target's estimated loss when a source joins it (batched)."""
    n = len(tasks)
    order = [fm.names.index(t) for t in tasks]
    a, b = np.triu_indices(n, 1)
    members = np.zeros((n + len(a), len(fm.names)), dtype=bool)
    members[np.arange(n), order] = True
    members[n + np.arange(len(a)), np.asarray(order)[a]] = True
    members[n + np.arange(len(a)), np.asarray(order)[b]] = True
    est = predict_losses(fm, members)
    alone = est[np.arange(n), order]
    out = np.zeros((n, n))
    pair_a, pair_b = est[n + np.arange(len(a)), np.asarray(order)[a]], est[n + np.arange(len(a)), np.asarray(order)[b]]
    out[b, a] = (alone[a] - pair_a) / np.maximum(np.abs(alone[a]), 1e-12)
    out[a, b] = (alone[b] - pair_b) / np.maximum(np.abs(alone[b]), 1e-12)
    return out


def seed_values(per_seed: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds of (m, n) estimates and its standard error (NaN with one seed)."""
    stack = np.stack(list(per_seed))
    k = np.sum(np.isfinite(stack), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column no seed holds stays NaN
        mean = np.nanmean(stack, axis=0) if len(stack) > 1 else stack[0].copy()
        se = np.nanstd(stack, axis=0, ddof=1) / np.sqrt(k) if len(stack) > 1 else np.full_like(mean, np.nan)
    se[k < 2] = np.nan
    return mean, se


def predict_groups(models: Mapping[int, object], tasks: Sequence[str], members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every seed's base model on groups ``members`` (m, len(tasks)): mean and standard error.

    A seed whose base model lacks a member (it was retrained without a task that diverged) does
    not answer for that group; a group no base model holds is a TaskrelError naming it.
    """
    tasks = list(tasks)
    per_seed = []
    for fm in models.values():
        cols = [tasks.index(t) for t in fm.names]
        held = ~members[:, [j for j in range(len(tasks)) if tasks[j] not in set(fm.names)]].any(1)
        out = np.full(members.shape, np.nan)
        if held.any():
            out[np.ix_(np.nonzero(held)[0], cols)] = predict_losses(fm, members[held][:, cols])
        per_seed.append(out)
    mean, se = seed_values(per_seed)
    lost = np.nonzero((members & ~np.isfinite(mean)).any(1))[0]
    if len(lost):
        names = [t for t, m in zip(tasks, members[lost[0]]) if m]
        raise TaskrelError(f"gradient-feature probe: no base model holds every task of group {names} (a base run "
                           "was retrained without a task that diverged); ask for groups of the other tasks")
    return mean, se


def gradfeature_model(models: Mapping[int, object], tasks: Sequence[str], cost: Cost | None = None,
                      params: Mapping | None = None) -> GroupValues:
    """The gradient-feature estimates as a group-value model (estimated validation losses)."""
    if not models:
        raise TaskrelError("gradient-feature probe: no base model trained; call fit(suite, runner) first")
    tasks = [str(t) for t in tasks]
    seeds = sorted(models)
    return GroupValues(tasks, False, lambda members: predict_groups(models, tasks, members),
                       estimator=f"gradient-feature (linearised fine-tune, {len(seeds)} seed(s))", cost=cost,
                       meta={"seeds": seeds, **dict(params or {})})


__all__ = ["CHUNK", "gradfeature_model", "pair_affinity", "predict_groups", "predict_losses", "seed_values"]
