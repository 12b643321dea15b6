"""Checks a suite passes at construction: names, blocks, shapes, splits and targets.

Everything here runs before any training, and each error names the suite, the task or stage,
and the value at fault.

>>> module_key("y.1"), module_key("type"), module_key("age")
('~y~d1', '~type', 'age')
>>> check_task_name("a+b")
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: task name 'a+b' may not contain '+' (it joins task names in groups)
"""

from __future__ import annotations

import math
import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from taskrel.errors import TaskrelError

# characters that join or separate task names elsewhere (groups "a+b", CLI lists "a,b")
_RESERVED = {"+": "it joins task names in groups", ",": "it separates task names in lists"}


def check_task_name(name: Any) -> None:
    """A task name is a non-empty string without reserved or invisible characters."""
    if not isinstance(name, str) or not name.strip():
        raise TaskrelError(f"task name must be a non-empty string, got {name!r}")
    if name != name.strip():
        raise TaskrelError(f"task name {name!r} may not begin or end with white space")
    for ch, why in _RESERVED.items():
        if ch in name:
            raise TaskrelError(f"task name {name!r} may not contain {ch!r} ({why})")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise TaskrelError(f"task name {name!r} may not contain control characters")


def module_key(name: str) -> str:
    """The key of a task's head among a model's modules: the name itself where torch allows it.

    Names torch refuses as module names (with a ``.``, or equal to a module attribute such as
    ``type`` or ``forward``) are mapped one-to-one to keys starting with ``~``.
    """
    if "." not in name and not name.startswith("~") and not hasattr(nn.ModuleDict, name):
        return name
    return "~" + name.replace("~", "~~").replace(".", "~d")


def check_factories(where: str, stages: Sequence[Any], head: Any) -> None:
    """Stages and the head must be factories (callables returning a fresh module), not modules."""
    if isinstance(stages, nn.Module) or not isinstance(stages, Sequence) or isinstance(stages, str):
        raise TaskrelError(f"{where}: stages must be a list of stage factories, got {type(stages).__name__}")
    if not stages:
        raise TaskrelError(f"{where}: the encoder needs at least one stage")
    for k, f in enumerate(stages):
        if isinstance(f, nn.Module):
            raise TaskrelError(
                f"{where}: stage {k} is a module ({type(f).__name__}), not a factory; pass a function "
                f"that builds a fresh one, e.g. lambda: nn.Sequential(...), so every run starts anew"
            )
        if not callable(f):
            raise TaskrelError(f"{where}: stage {k} is not a factory (a callable returning an nn.Module), got {f!r}")
    if isinstance(head, nn.Module):
        raise TaskrelError(f"{where}: head is a module ({type(head).__name__}), not a factory head(task, in_features)")
    if not callable(head):
        raise TaskrelError(f"{where}: head is not a factory head(task, in_features) -> nn.Module, got {head!r}")


def expected_outputs(task: Any) -> int:
    """The number of outputs a head of ``task`` must give per example."""
    return int(task.n_outputs or 1)


def check_heads(where: str, tasks: Sequence[Any], head: Callable[..., Any], features: torch.Tensor) -> None:
    """Build each task's head on the last stage's features and check its output size."""
    in_features = int(np.prod(features.shape[1:]))
    seen: dict[tuple[str, int], None] = {}
    for t in tasks:
        sig = (t.kind, expected_outputs(t))
        if sig in seen:
            continue
        seen[sig] = None
        try:
            m = head(t, in_features)
        except Exception as e:
            raise TaskrelError(f"{where}, task {t.name!r}: the head factory failed: {type(e).__name__}: {e}") from None
        if not isinstance(m, nn.Module):
            raise TaskrelError(f"{where}, task {t.name!r}: the head factory returned {type(m).__name__}, not an nn.Module")
        try:
            with torch.no_grad():
                out = m.eval()(features)
        except Exception as e:
            raise TaskrelError(
                f"{where}, task {t.name!r}: the head fails on the last stage's output, shape "
                f"{tuple(features.shape)}: {type(e).__name__}: {e}"
            ) from None
        want = expected_outputs(t)
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        ok = got is not None and got[0] == features.shape[0] and int(np.prod(got[1:])) == want
        if not ok:
            raise TaskrelError(
                f"{where}, task {t.name!r}: the head gives outputs of shape {got}; a {t.kind} task "
                f"with {want} output(s) needs shape ({features.shape[0]}, {want})"
            )


def check_split(split: Mapping[str, np.ndarray], n: int) -> None:
    """Splits must be disjoint (an example in two would leak into evaluation), and list each row once."""
    names = list(split)
    for a in names:
        rows, counts = np.unique(split[a], return_counts=True)
        if (counts > 1).any():
            twice = rows[counts > 1]
            raise TaskrelError(f"split: {a!r} lists {twice.size} row(s) more than once (first: row {int(twice[0])}); "
                               "list each row once")
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = np.intersect1d(split[a], split[b])
            if shared.size:
                what = "are identical" if np.array_equal(np.unique(split[a]), np.unique(split[b])) else f"share {shared.size} examples"
                raise TaskrelError(f"split: {a!r} and {b!r} {what} (first shared row {int(shared[0])}); splits must not overlap")


def check_classes(where: str, kind: str, y: np.ndarray) -> None:
    """A target must vary: one class (or one constant value) cannot be learned or scored."""
    known = y[~np.isnan(y)]
    if known.size == 0:
        return
    values = np.unique(known)
    if values.size < 2:
        what = "has one class only" if kind != "regression" else "is constant"
        raise TaskrelError(f"{where}: the {kind} target {what} (every label is {values[0]:g}); a task needs at least two values")


def as_float32_inputs(where: str, inputs: Any) -> np.ndarray:
    """The inputs as a float32 array (what taskrel trains on), checked: numeric, finite, and
    within float32's range (a float64 value past 3.4e38 would silently become inf).

    >>> as_float32_inputs("suite 's'", np.array([[1.0, 1e39]]))
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: suite 's': inputs overflow float32: 1 value(s) beyond its largest, 3.4e+38 (first 1e+39 in row 0); taskrel trains in float32: rescale the inputs
    """
    X = np.asarray(inputs)
    if X.ndim < 2 or X.shape[0] == 0:
        raise TaskrelError(f"{where}: inputs must be an array (n_examples, ...) with n >= 1, got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise TaskrelError(f"{where}: inputs must be numeric, got dtype {X.dtype}")
    bad = ~np.isfinite(X)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise TaskrelError(f"{where}: inputs contain NaN or inf ({int(bad.sum())} values; first in row {row})")
    big = np.abs(X) > np.finfo(np.float32).max
    if big.any():
        first = tuple(np.argwhere(big)[0])
        raise TaskrelError(f"{where}: inputs overflow float32: {int(big.sum())} value(s) beyond its largest, "
                           f"{float(np.finfo(np.float32).max):.2g} (first {float(X[first]):.3g} in row {int(first[0])}); "
                           "taskrel trains in float32: rescale the inputs")
    return X.astype(np.float32)


def check_split_labels(where: str, tasks: Sequence[Any], targets: Mapping[str, np.ndarray], split: Mapping[str, np.ndarray]) -> None:
    """Every task has labels in every split, and a binary or multiclass task at least two
    classes among its training labels (one class cannot be learned)."""
    for t in tasks:
        for s, idx in split.items():
            y = targets[t.name][idx]
            labelled = ~np.isnan(y).reshape(len(y), -1).all(axis=1)
            if not labelled.any():
                raise TaskrelError(f"{where}, task {t.name!r}: no labels in the {s} split")
        if t.kind in ("binary", "multiclass"):
            y = targets[t.name][split["train"]]
            values = np.unique(y[~np.isnan(y)])
            if values.size < 2:
                raise TaskrelError(f"{where}, task {t.name!r}: its train split has one class only (every label is "
                                   f"{values[0]:g}); a {t.kind} task needs two classes among its training rows")


def _shapes(m: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in [*m.named_parameters(), *m.named_buffers()]]


def check_stage_module(where: str, module: nn.Module, again: Callable[[], Any] | None = None) -> None:
    """A stage must not be lazy (``nn.LazyLinear`` and kin: no shapes until a forward pass, so
    nothing can be checked, fingerprinted or copied before training), and its factory must give
    the same parameter shapes at every call (``again``: the factory, called once more)."""
    from torch.nn.modules.lazy import LazyModuleMixin

    lazy = [type(m).__name__ for m in module.modules() if isinstance(m, LazyModuleMixin)]
    if lazy:
        raise TaskrelError(f"{where}: uses {lazy[0]}, a lazy module (its shapes are unknown until a forward pass); "
                           f"give its input size instead (e.g. nn.Linear(in_features, out) for nn.LazyLinear(out))")
    if again is None:
        return
    try:
        second = again()
    except Exception as e:
        raise TaskrelError(f"{where}: its factory failed when called again: {type(e).__name__}: {e}") from None
    if isinstance(second, nn.Module) and _shapes(second) != _shapes(module):
        diff = next((a, b) for a, b in zip(_shapes(module) + [("-", ())], _shapes(second) + [("-", ())]) if a != b)
        raise TaskrelError(f"{where}: its factory gives modules of different shapes at each call ({diff[0][0]} "
                           f"{diff[0][1]} then {diff[1][0]} {diff[1][1]}); every run must build the same stage")


def check_number(where: str, name: str, value: Any, low: float | None = None, high: float | None = None,
                 integer: bool = False, none: bool = False) -> None:
    """A suite option that must be a finite number (an integer with ``integer``) in [low, high].

    >>> check_number("planted", "noise", float("nan"), low=0)
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: planted: option noise must be a finite number >= 0, got nan
    """
    if value is None and none:
        return
    kind = "an integer" if integer else "a finite number"
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    ok = ok and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f" in [{low}, {high}]" if low is not None and high is not None else (
            f" >= {low}" if low is not None else (f" <= {high}" if high is not None else ""))
        raise TaskrelError(f"{where}: option {name} must be {kind}{bounds}{' or None' if none else ''}, got {value!r}")


def check_memory(where: str, what: str, n_bytes: float) -> None:
    """Refuse, before allocating, an array larger than half of this machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 2**40
    if n_bytes > total / 2:
        raise TaskrelError(f"{where}: {what} would need {n_bytes / 2**30:,.0f} GiB, more than half of this machine's "
                           f"{total / 2**30:,.0f} GiB; ask for fewer")


def check_loss_gradients(where: str, tasks: Sequence[Any], head: Callable[..., Any], features: Callable[[np.ndarray], torch.Tensor],
                         targets: Mapping[str, np.ndarray], train: np.ndarray, batch: int = 8) -> None:
    """Each task's own loss, on one batch of its labelled training rows through a fresh head:
    a finite scalar tensor that requires grad (a constant such as ``torch.tensor(0.5)``, or a
    value detached from the output, would train nothing and is refused naming the task).
    ``features(rows)``: the last stage's output on those rows."""
    from taskrel.losses import own_loss

    for t in tasks:
        if t.loss is None:
            continue
        y = targets[t.name][train]
        rows = train[~np.isnan(y).reshape(len(y), -1).all(axis=1)][:batch]
        feats = features(rows)
        m = head(t, int(np.prod(feats.shape[1:])))
        try:
            value = own_loss(t, m.train()(feats), torch.from_numpy(targets[t.name][rows]))
        except TaskrelError:
            raise
        except Exception as e:
            raise TaskrelError(f"{where}, task {t.name!r}: its loss fails on a batch of training rows: {type(e).__name__}: {e}") from None
        if not value.requires_grad:
            raise TaskrelError(f"{where}, task {t.name!r}: its loss returns a tensor that does not depend on the model's output "
                               f"(got {float(value.detach()):g} without a gradient: a constant, or a value made with .detach(), "
                               ".item() or torch.tensor(...)); compute it from the output with torch operations")
        if not math.isfinite(float(value.detach())):
            raise TaskrelError(f"{where}, task {t.name!r}: its loss returns {float(value.detach())} on a batch of training rows")


__all__ = ["check_loss_gradients", "as_float32_inputs", "check_split_labels", "check_stage_module", "check_number", "check_memory", "check_task_name", "module_key", "check_factories", "check_heads", "check_split", "check_classes", "expected_outputs"]
