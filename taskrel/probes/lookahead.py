"""TAG lookahead affinity (Fifty et al. 2021): how a step on one task changes another's loss.

At a probe step with shared parameters ``theta`` and batch ``B``, for every source task ``i``
the shared parameters take the step the optimizer *would* take on task ``i``'s gradient alone,
``theta_i = theta - delta_i``, and every target's loss is measured again on the same batch:

    Z(i -> j) = 1 - L_j(theta_i, B) / L_j(theta, B)

positive when a step on ``i`` lowers ``j``'s loss. Task heads and every other parameter stay as
they are. ``delta_i`` follows the optimizer's own update rule with its current state and
hyper-parameters (learning rate of the schedule at that step, betas, eps, weight decay,
momentum), computed on copies: the optimizer's state is never changed. Task ``i``'s gradient
is scaled by its loss weight, as in the training step.

* SGD: ``d = g + wd * theta``; with momentum ``buf' = m * buf + (1 - dampening) * d`` (``d``
  when there is no buffer yet), ``d = buf'`` (or ``d + m * buf'`` with Nesterov);
  ``delta = lr * d``.
* Adam / AdamW: ``m' = b1 m + (1 - b1) g``, ``v' = b2 v + (1 - b2) g^2`` at step ``t + 1``
  (zero moments before the first step), ``delta = lr m' / (1 - b1^t+1) / (sqrt(v' / (1 -
  b2^t+1)) + eps)``, with L2 decay added to ``g`` (Adam) or ``lr * wd * theta`` added to
  ``delta`` (AdamW); AMSGrad uses ``max(v_max, v')``.

``values[i, j]`` of :class:`LookaheadProbe` is ``Z(i -> j)`` averaged over probe steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from taskrel.affinity import Affinity, Cost
from taskrel.errors import TaskrelError
from taskrel.probes.base import ProbeSettings
from taskrel.probes.gradient import (
    cost_meta,
    fit_runs,
    in_window,
    long_table,
    nanmean0,
    run_cost,
    trajectory_arrays,
)
from taskrel.store import RunStore
from taskrel.suite import Suite
from taskrel.train import StepState, task_loss


def _flat_state(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], key: str) -> torch.Tensor | None:
    parts = []
    for p in params:
        st = opt.state.get(p, {})
        if key not in st:
            return None
        parts.append(st[key].detach().reshape(-1))
    return torch.cat(parts)


def _group_of(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> dict[str, Any]:
    ids = {id(p) for p in params}
    groups = [g for g in opt.param_groups if ids & {id(p) for p in g["params"]}]
    if not groups:
        raise TaskrelError("lookahead: the shared parameters are not in the optimizer")
    keys = ("lr", "weight_decay", "betas", "eps", "momentum", "dampening", "nesterov", "amsgrad", "maximize")
    first = {k: groups[0].get(k) for k in keys}
    for g in groups[1:]:
        if any(g.get(k) != first[k] for k in keys):
            raise TaskrelError("lookahead: shared parameters sit in optimizer groups with different settings")
    return groups[0]


def proposed_update(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], grads: torch.Tensor) -> torch.Tensor:
    """The step ``delta`` (``theta_new = theta - delta``) ``opt`` would take for each row of grads.

    ``grads`` is (n, P) over the flattened ``params``; the result has the same shape. Reads the
    optimizer's state without changing it.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    >>> sgd = torch.optim.SGD([w], lr=0.1)
    >>> proposed_update(sgd, [w], torch.tensor([[1.0, 2.0]])).tolist()
    [[0.10000000149011612, 0.20000000298023224]]
    >>> adam = torch.optim.Adam([w], lr=0.01)
    >>> [round(v, 6) for v in proposed_update(adam, [w], torch.tensor([[3.0, -0.5]]))[0].tolist()]
    [0.01, -0.01]
    """
    group = _group_of(opt, params)
    theta = torch.cat([p.detach().reshape(-1) for p in params])[None]
    g = -grads if group.get("maximize") else grads
    lr = float(group["lr"])
    wd = float(group.get("weight_decay") or 0.0)
    if isinstance(opt, torch.optim.SGD):
        d = g + wd * theta if wd else g
        mom = float(group.get("momentum") or 0.0)
        if mom:
            buf = _flat_state(opt, params, "momentum_buffer")
            buf = d if buf is None else mom * buf[None] + (1 - float(group.get("dampening") or 0.0)) * d
            d = d + mom * buf if group.get("nesterov") else buf
        return lr * d
    if isinstance(opt, torch.optim.Adam | torch.optim.AdamW):
        decoupled = isinstance(opt, torch.optim.AdamW) or bool(group.get("decoupled_weight_decay"))
        b1, b2 = group["betas"]
        eps = float(group["eps"])
        if wd and not decoupled:
            g = g + wd * theta
        m = _flat_state(opt, params, "exp_avg")
        v = _flat_state(opt, params, "exp_avg_sq")
        steps = [opt.state.get(p, {}).get("step") for p in params]
        t = float(steps[0]) + 1 if steps[0] is not None and m is not None else 1.0
        m = (1 - b1) * g if m is None else b1 * m[None] + (1 - b1) * g
        v = (1 - b2) * g * g if v is None else b2 * v[None] + (1 - b2) * g * g
        if group.get("amsgrad"):
            vmax = _flat_state(opt, params, "max_exp_avg_sq")
            if vmax is not None:
                v = torch.maximum(vmax[None], v)
        delta = (lr / (1 - b1**t)) * m / ((v / (1 - b2**t)).sqrt() + eps)
        if wd and decoupled:
            delta = delta + lr * wd * theta
        return delta
    raise TaskrelError(f"lookahead: optimizer {type(opt).__name__} is not supported (use sgd, adam or adamw)")


def lookahead_matrix(
    state: StepState, params: Sequence[torch.Tensor], grads: torch.Tensor, base: torch.Tensor, method: str = "batched"
) -> np.ndarray:
    """``Z[i, j] = 1 - L_j(theta - delta_i) / L_j(theta)`` on the step's batch (NaN where L_j = 0).

    ``grads`` (n, P) are the source tasks' gradients on the flattened shared ``params``;
    ``base`` the current losses (n,). ``"batched"`` evaluates the n shifted models in one
    vmapped forward, ``"loop"`` one at a time.
    """
    from torch.func import functional_call, vmap

    model = state.model
    names = {id(p): k for k, p in model.named_parameters()}
    keys = [names[id(p)] for p in params]
    delta = proposed_update(state.optimizer, params, grads.detach())
    n = delta.shape[0]
    shifted, start = [], 0
    for p in params:
        shifted.append(p.detach()[None] - delta[:, start : start + p.numel()].reshape(n, *p.shape))
        start += p.numel()

    def losses(*ps: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, dict(zip(keys, ps)), (state.x,))
        return torch.stack([task_loss(t, out[t.name], state.y[t.name]) for t in state.tasks])

    with torch.no_grad():
        if method == "batched":
            after = vmap(losses)(*shifted)
        else:
            after = torch.stack([losses(*[s[i] for s in shifted]) for i in range(n)])
    base = base.detach().to(torch.float64)
    after = after.to(torch.float64)
    z = torch.where(base[None] > 0, 1.0 - after / base.clamp_min(1e-300)[None], torch.full_like(after, float("nan")))
    return z.cpu().numpy()


class LookaheadProbe:
    """TAG inter-task affinity: ``values[i, j]`` = mean of ``Z(i -> j)`` over probe steps.

    Uses the same stored all-shared run as :class:`~taskrel.probes.GradientProbe` with the same
    ``every``, ``method`` and settings (the run computes both).

    Parameters
    ----------
    tasks, every, method, window, settings : as for :class:`~taskrel.probes.GradientProbe`.

    Attributes
    ----------
    affinity_ : the lookahead affinity (mean over probe steps; mean/std over seeds).
    trajectory_ : DataFrame with columns seed, step, source, target, lookahead.
    records_ : the stored runs used.

    The cost counts the training, the per-task gradients and the shifted forward passes
    (``n`` per probe step); ``meta`` splits the seconds.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> probe = LookaheadProbe(suite.task_names[:3], every=5,
    ...     settings=ProbeSettings(TrainConfig(epochs=2, lr=3e-3, batch_size=32), progress=False))
    >>> probe = probe.fit(suite, RunStore(tempfile.mkdtemp()))
    >>> probe.affinity_.measure, probe.affinity_.values.shape
    ('lookahead', (3, 3))
    >>> bool(probe.affinity_.values[0, 0] > 0)   # a step on a task lowers its own loss
    True
    """

    def __init__(self, tasks: Sequence[str] | None = None, every: int = 10, method: str = "batched", window: tuple[int, int] | None = None, settings: ProbeSettings | None = None):
        self.tasks = tasks
        self.window = window
        self.every = every
        self.method = method
        self.settings = settings

    def fit(self, suite: Suite, store: RunStore) -> LookaheadProbe:
        import pandas as pd

        settings = self.settings or ProbeSettings()
        names, recs, _ = fit_runs(suite, store, self.tasks, self.every, settings, self.method, True, "lookahead probe")
        per_seed, rows = [], []
        for rec in recs:
            tr = trajectory_arrays(rec, names)
            rows.append(long_table(int(rec.spec["seed"]), tr["steps"], names, tr["lookahead"], "lookahead"))
            per_seed.append(nanmean0(in_window(tr, self.window)["lookahead"]))
        cost = sum((run_cost(r, ["gradient", "lookahead"]) for r in recs), Cost())
        meta = {**cost_meta(recs), "every": self.every, "method": self.method, "window": self.window}
        self.affinity_ = Affinity.from_seeds(names, per_seed, measure="lookahead", cost=cost, meta=meta)
        self.trajectory_ = pd.concat(rows, ignore_index=True)
        self.records_ = recs
        return self
