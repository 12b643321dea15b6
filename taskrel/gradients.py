"""Per-task gradients on shared parameters, their cosines, and TAG's lookahead: the maths only.

One place for what the gradient probe, the lookahead probe and :class:`taskrel.AffinityTracker`
compute. Nothing here knows about suites, runs or training loops: it takes a 1-d tensor of
per-task losses (with a graph), a list of parameters, and for the lookahead a closure that
recomputes the per-task losses.

TAG's lookahead (Fifty et al. 2021). With shared parameters ``theta`` and a step ``delta_i`` on
source task ``i``, every target's loss is measured again::

    Z(i -> j) = 1 - L_j(theta - delta_i) / L_j(theta)

positive when a step on ``i`` lowers ``j``'s loss. :func:`lookahead_steps` gives ``delta_i``:

* ``step="plain"`` (TAG's definition, the default): ``delta_i = eta * g_i``, ``eta`` given or
  the optimizer's learning rate;
* ``step="optimizer"``: the step the optimizer itself would take on ``g_i`` alone, with its
  current state (Adam's moments, SGD's momentum buffer): :func:`proposed_update`. With Adam the
  stored moments make up most of every source's step, so this mostly measures the shared
  momentum; it is kept for comparison.

:func:`lookahead_matrix` evaluates ``L(theta)`` and every ``L(theta - delta_i)`` under the
*same* random state (common random numbers), so dropout or any other stochastic layer draws the
same masks for the base and for every shifted model and ``Z`` measures the step, not the noise.
It shifts the parameters by swapping their ``.data`` (no in-place write, so an autograd graph
built before stays valid) and puts the original tensors back, bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from taskrel.errors import TaskrelError

METHODS = ("batched", "loop")
STEPS = ("plain", "optimizer")


# ------------------------------------------------------------------ per-task gradients
def per_task_gradients(
    losses: torch.Tensor, params: Sequence[torch.Tensor], method: str = "batched", strict: bool = False
) -> torch.Tensor:
    """Gradient of each loss on ``params``, flattened: a tensor (n_losses, n_parameters).

    ``losses`` is a 1-d tensor with a graph, which is kept (``retain_graph``): the caller can
    still call ``backward`` on it. ``"batched"`` does one vmapped backward over the rows of the
    identity; ``"loop"`` one ``autograd.grad`` per loss. A parameter a loss does not reach gets
    zeros; with ``strict=True`` a parameter that *no* loss reaches raises a
    :class:`~taskrel.errors.TaskrelError` naming its position and shape.

    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> L = torch.stack([(w ** 2).sum(), 3 * w[0]])
    >>> per_task_gradients(L, [w]).tolist()
    [[2.0, 4.0], [3.0, 0.0]]
    >>> torch.equal(per_task_gradients(L, [w], "loop"), per_task_gradients(L, [w]))
    True
    >>> per_task_gradients(L, [w, torch.zeros(3, requires_grad=True)], strict=True)
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: gradients: no loss reaches parameter 1 (shape (3,)); pass only parameters the losses depend on
    """
    if method not in METHODS:
        raise TaskrelError(f"gradients: unknown method {method!r}; use one of {', '.join(METHODS)}")
    params = list(params)
    if losses.dim() != 1:
        raise TaskrelError(f"gradients: losses must be a 1-d tensor (one loss per task), got shape {tuple(losses.shape)}")
    n = int(losses.shape[0])
    if method == "batched":
        eye = torch.eye(n, dtype=losses.dtype, device=losses.device)
        try:
            grads = torch.autograd.grad(
                losses, params, grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True
            )
        except RuntimeError as e:  # an op without a vmap rule
            warnings.warn(f"taskrel gradients: batched backward failed ({e}); using one backward per task", stacklevel=2)
            return per_task_gradients(losses, params, "loop", strict)
        reached = [g is not None for g in grads]
        rows = [(torch.zeros(n, p.numel(), dtype=p.dtype, device=p.device) if g is None else g.reshape(n, -1)) for g, p in zip(grads, params)]
        out = torch.cat(rows, dim=1)
    else:
        reached = [False] * len(params)
        per = []
        for i in range(n):
            grads = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
            reached = [r or g is not None for r, g in zip(reached, grads)]
            per.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]))
        out = torch.stack(per)
    if strict and not all(reached):
        k = reached.index(False)
        raise TaskrelError(
            f"gradients: no loss reaches parameter {k} (shape {tuple(params[k].shape)}); pass only parameters the losses depend on"
        )
    return out


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


# ------------------------------------------------------------------ the optimizer's own step
def _flat_state(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], key: str) -> torch.Tensor | None:
    parts = []
    for p in params:
        st = opt.state.get(p, {})
        if key not in st:
            return None
        parts.append(st[key].detach().reshape(-1))
    return torch.cat(parts)


def optimizer_group(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> dict[str, Any]:
    """The optimizer's parameter group holding ``params`` (they must share one setting)."""
    ids = {id(p) for p in params}
    groups = [g for g in opt.param_groups if ids & {id(p) for p in g["params"]}]
    if not groups:
        raise TaskrelError("lookahead: the shared parameters are not in the optimizer")
    missing = ids - {id(p) for g in groups for p in g["params"]}
    if missing:
        raise TaskrelError(f"lookahead: {len(missing)} of the shared parameters are not in the optimizer")
    keys = ("lr", "weight_decay", "betas", "eps", "momentum", "dampening", "nesterov", "amsgrad", "maximize")
    first = {k: groups[0].get(k) for k in keys}
    for g in groups[1:]:
        if any(g.get(k) != first[k] for k in keys):
            raise TaskrelError("lookahead: shared parameters sit in optimizer groups with different settings")
    return groups[0]


def proposed_update(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], grads: torch.Tensor) -> torch.Tensor:
    """The step ``delta`` (``theta_new = theta - delta``) ``opt`` would take for each row of grads.

    ``grads`` is (n, P) over the flattened ``params``; the result has the same shape. Reads the
    optimizer's state without changing it. SGD (momentum, dampening, Nesterov, weight decay),
    Adam and AdamW (L2 or decoupled decay, AMSGrad), with zero moments before the first step.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    >>> sgd = torch.optim.SGD([w], lr=0.1)
    >>> proposed_update(sgd, [w], torch.tensor([[1.0, 2.0]])).tolist()
    [[0.10000000149011612, 0.20000000298023224]]
    >>> adam = torch.optim.Adam([w], lr=0.01)
    >>> [round(v, 6) for v in proposed_update(adam, [w], torch.tensor([[3.0, -0.5]]))[0].tolist()]
    [0.01, -0.01]
    """
    group = optimizer_group(opt, params)
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
    raise TaskrelError(f"lookahead: optimizer {type(opt).__name__} is not supported by step='optimizer' (use sgd, adam or adamw, or step='plain')")


def lookahead_steps(
    grads: torch.Tensor,
    params: Sequence[torch.Tensor],
    step: str = "plain",
    eta: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> torch.Tensor:
    """The step ``delta_i`` of every source (rows of ``grads``): ``theta_i = theta - delta_i``.

    ``"plain"``: ``eta * g_i`` (``eta`` given, else the optimizer's learning rate now);
    ``"optimizer"``: :func:`proposed_update`.

    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> lookahead_steps(torch.tensor([[1.0, -2.0]]), [w], eta=0.5).tolist()
    [[0.5, -1.0]]
    >>> lookahead_steps(torch.tensor([[1.0, -2.0]]), [w], optimizer=torch.optim.SGD([w], lr=0.1)).tolist()
    [[0.10000000149011612, -0.20000000298023224]]
    >>> lookahead_steps(torch.tensor([[1.0, -2.0]]), [w])
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: lookahead: step='plain' needs eta or an optimizer (to use its learning rate)
    """
    if step not in STEPS:
        raise TaskrelError(f"lookahead: step must be one of {STEPS}, got {step!r}")
    grads = grads.detach()
    if step == "optimizer":
        if optimizer is None:
            raise TaskrelError("lookahead: step='optimizer' needs the optimizer")
        return proposed_update(optimizer, params, grads)
    if eta is None:
        if optimizer is None:
            raise TaskrelError("lookahead: step='plain' needs eta or an optimizer (to use its learning rate)")
        eta = float(optimizer_group(optimizer, params)["lr"])
    if not (float(eta) > 0 and math.isfinite(float(eta))):
        raise TaskrelError(f"lookahead: eta must be a positive number, got {eta}")
    return float(eta) * grads


# ------------------------------------------------------------------ the lookahead
@contextlib.contextmanager
def same_randomness(devices: Sequence[torch.device] = ()) -> Iterator[Callable[[], None]]:
    """A block whose random state is restored on exit; ``reset()`` rewinds it to the entry state.

    >>> with same_randomness() as reset:
    ...     a = torch.rand(2)
    ...     reset()
    ...     b = torch.rand(2)
    >>> torch.equal(a, b)
    True
    """
    cuda = sorted({d.index or 0 for d in devices if d.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        cpu = torch.get_rng_state()
        gpu = [torch.cuda.get_rng_state(i) for i in cuda]

        def reset() -> None:
            torch.set_rng_state(cpu)
            for i, s in zip(cuda, gpu):
                torch.cuda.set_rng_state(s, i)

        yield reset


def lookahead_losses(
    evaluate: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], deltas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses before and after each step: ``base`` (m,) and ``after`` (n, m).

    ``evaluate()`` returns the m target losses with the parameters as they are; it is called
    once as is and once with the parameters shifted to ``theta - deltas[i]`` for every row,
    each time from the same random state (restored on return). The parameters are put back
    exactly, and autograd graphs built before stay valid (no in-place write).

    >>> w = torch.nn.Parameter(torch.tensor([2.0]))
    >>> base, after = lookahead_losses(lambda: torch.stack([w[0] ** 2]), [w], torch.tensor([[1.0], [-1.0]]))
    >>> base.tolist(), after.tolist(), w.item()
    ([4.0], [[1.0], [9.0]], 2.0)
    """
    params = list(params)
    devices = list({p.device for p in params})
    sizes = [p.numel() for p in params]
    with torch.no_grad(), same_randomness(devices) as reset:
        base = torch.as_tensor(evaluate()).detach().reshape(-1)
        after = []
        originals = [p.data for p in params]
        try:
            for row in deltas:
                for p, d, orig in zip(params, torch.split(row, sizes), originals):
                    p.data = orig - d.reshape(p.shape).to(orig.dtype)
                reset()
                after.append(torch.as_tensor(evaluate()).detach().reshape(-1))
        finally:
            for p, orig in zip(params, originals):
                p.data = orig
    return base, torch.stack(after) if after else base.new_zeros((0, base.numel()))


class _Call(torch.nn.Module):
    """A module whose forward is a closure over ``module`` (for ``functional_call``)."""

    def __init__(self, module: torch.nn.Module, fn: Callable[[], torch.Tensor]):
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self) -> torch.Tensor:
        return self.fn()


def lookahead_losses_vmapped(
    module: torch.nn.Module, evaluate: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], deltas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lookahead_losses` in one vectorised call: the base and every shifted model at once.

    ``params`` must be parameters of ``module``, which ``evaluate`` runs. The base is row 0 of
    one ``vmap`` with ``randomness="same"``, so every row draws the same random numbers. Raises
    ``RuntimeError`` when an operation of the closure cannot be vectorised (batch norm in
    training mode, data-dependent control flow): call :func:`lookahead_losses` then.

    >>> lin = torch.nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = lin.weight.fill_(2.0)
    >>> ev = lambda: torch.stack([lin(torch.ones(1, 1))[0, 0] ** 2])
    >>> base, after = lookahead_losses_vmapped(lin, ev, [lin.weight], torch.tensor([[1.0], [-1.0]]))
    >>> base.tolist(), after.tolist()
    ([4.0], [[1.0], [9.0]])
    """
    from torch.func import functional_call, vmap

    names = {id(p): k for k, p in module.named_parameters()}
    missing = [k for k, p in enumerate(params) if id(p) not in names]
    if missing:
        raise TaskrelError(f"lookahead: parameter {missing[0]} is not a parameter of the module")
    keys = [f"module.{names[id(p)]}" for p in params]
    rows = torch.cat([deltas.new_zeros((1, deltas.shape[1])), deltas])
    shifted, start = [], 0
    for p in params:
        shifted.append(p.detach()[None] - rows[:, start : start + p.numel()].reshape(len(rows), *p.shape).to(p.dtype))
        start += p.numel()
    call = _Call(module, lambda: torch.as_tensor(evaluate()).reshape(-1))

    def losses(*ps: torch.Tensor) -> torch.Tensor:
        return functional_call(call, dict(zip(keys, ps)), ())

    with torch.no_grad(), same_randomness(list({p.device for p in params})):
        out = vmap(losses, randomness="same")(*shifted)
    return out[0], out[1:]


def lookahead_ratio(base: torch.Tensor, after: torch.Tensor) -> np.ndarray:
    """``Z[i, j] = 1 - after[i, j] / base[j]``; NaN where ``base[j]`` is not positive.

    >>> lookahead_ratio(torch.tensor([2.0, 0.0]), torch.tensor([[1.0, 1.0]])).tolist()
    [[0.5, nan]]
    """
    b = base.detach().to(torch.float64)
    a = after.detach().to(torch.float64)
    z = torch.where(b[None] > 0, 1.0 - a / b.clamp_min(1e-300)[None], torch.full_like(a, math.nan))
    return z.cpu().numpy()


def lookahead_matrix(
    evaluate: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    deltas: torch.Tensor,
    module: torch.nn.Module | None = None,
) -> np.ndarray:
    """TAG's ``Z[i, j]`` for steps ``deltas`` (n, P): :func:`lookahead_losses` then the ratio.

    With ``module`` (holding ``params``) the losses come from one vectorised call
    (:func:`lookahead_losses_vmapped`), falling back to one call per source when the closure
    cannot be vectorised; without it, one call per source.

    >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    >>> ev = lambda: torch.stack([(w[0] - 2) ** 2, (w[0] + w[1]) ** 2])
    >>> z = lookahead_matrix(ev, [w], 0.1 * torch.tensor([[-2.0, 0.0], [4.0, 4.0]]))
    >>> bool(z[0, 0] > 0 and z[1, 1] > 0 and z[1, 0] < 0)
    True
    """
    if module is not None:
        try:
            return lookahead_ratio(*lookahead_losses_vmapped(module, evaluate, params, deltas))
        except RuntimeError:
            pass  # an operation without a vmap rule, or batch norm updating its statistics
    return lookahead_ratio(*lookahead_losses(evaluate, params, deltas))


__all__ = [
    "METHODS",
    "STEPS",
    "cosine_matrix",
    "lookahead_losses",
    "lookahead_losses_vmapped",
    "lookahead_matrix",
    "lookahead_ratio",
    "lookahead_steps",
    "optimizer_group",
    "per_task_gradients",
    "proposed_update",
    "same_randomness",
]
