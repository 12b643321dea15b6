"""Conflict-aware aggregation of per-task gradients, from TorchJD (the ``conflict`` extra).

With ``TrainConfig(aggregator="upgrad")`` a training step does not sum the task losses: it
computes the Jacobian of the (weighted) per-task losses with respect to every trained
parameter, one row per task, and lets a TorchJD aggregator turn it into the update direction
(UPGrad, PCGrad, CAGrad, MGDA, ...). This works for any layout: a task's row is zero on the
parameters its loss does not reach (other tasks' heads and branches). TorchJD is imported only
when an aggregator is used.

>>> sorted(AGGREGATORS)[:4]
['aligned-mtl', 'cagrad', 'config', 'dualproj']
>>> check_aggregator("pcgrad2")
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: train config: unknown aggregator 'pcgrad2'; use one of aligned-mtl, cagrad, config, dualproj, graddrop, imtl-g, mean, mgda, pcgrad, upgrad
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from taskrel.errors import TaskrelError

# name -> (TorchJD aggregation class, keyword arguments)
AGGREGATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "upgrad": ("UPGrad", {}),
    "pcgrad": ("PCGrad", {}),
    "cagrad": ("CAGrad", {"c": 0.5}),
    "mgda": ("MGDA", {}),
    "dualproj": ("DualProj", {}),
    "aligned-mtl": ("AlignedMTL", {}),
    "imtl-g": ("IMTLG", {}),
    "config": ("ConFIG", {}),
    "graddrop": ("GradDrop", {}),
    "mean": ("Mean", {}),
}
INSTALL = "pip install 'taskrel[conflict]' (or: pip install torchjd quadprog qpsolvers)"


def check_aggregator(name: Any) -> None:
    """None (plain summed losses) or a known aggregator name, else an error naming the value."""
    if name is not None and (not isinstance(name, str) or name not in AGGREGATORS):
        raise TaskrelError(f"train config: unknown aggregator {name!r}; use one of {', '.join(sorted(AGGREGATORS))}")


def make_aggregator(name: str) -> Any:
    """A fresh TorchJD aggregator for ``name``; a clear error if TorchJD is not installed."""
    check_aggregator(name)
    try:
        import torchjd.aggregation as agg
    except ImportError as e:
        raise ImportError(f"aggregator {name!r} needs TorchJD: {INSTALL} ({e})") from e
    cls, kwargs = AGGREGATORS[name]
    try:
        return getattr(agg, cls)(**kwargs)
    except ImportError as e:  # TorchJD's optional solvers (quadprog for UPGrad, cvxpy for CAGrad)
        raise ImportError(f"aggregator {name!r}: {e}") from e


def aggregated_backward(losses: Sequence[torch.Tensor], params: Sequence[torch.nn.Parameter], aggregator: Any) -> None:
    """Fill ``p.grad`` of every parameter with the aggregate of the per-task gradients.

    >>> import importlib.util, pytest
    >>> if importlib.util.find_spec("torchjd") is None:
    ...     pytest.skip("needs the optional extra: pip install 'taskrel[conflict]'")
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    >>> l1, l2 = (w * torch.tensor([1.0, 0.0])).sum(), (w * torch.tensor([-1.0, 1.0])).sum()
    >>> aggregated_backward([l1, l2], [w], make_aggregator("upgrad"))
    >>> bool(w.grad @ torch.tensor([1.0, 0.0]) >= 0 and w.grad @ torch.tensor([-1.0, 1.0]) >= 0)
    True
    """
    from torchjd.autojac import backward, jac_to_grad

    params = list(params)
    backward(list(losses), inputs=params)  # a loss that does not reach a parameter gives a zero row there
    jac_to_grad(params, aggregator)


__all__ = ["AGGREGATORS", "INSTALL", "aggregated_backward", "check_aggregator", "make_aggregator"]
