"""Suites: the data, the targets and the network blocks every run is built from (:class:`Task`,
in :mod:`taskrel.task`, is re-exported here)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from taskrel.blocks import check_factories, check_heads, check_loss_gradients, check_stage_module
from taskrel.digest import digest_of, module_digest
from taskrel.errors import TaskrelError
from taskrel.splits import SPLITS, check_split, check_split_labels, make_split
from taskrel.task import KINDS, METRICS, Task, check_classes, check_targets
from taskrel.widths import WidthStages, suite_at_width


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


def default_head(task: Task, in_features: int) -> nn.Module:
    """A linear head on the flattened output of the last encoder stage."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, task.n_outputs or 1))


StageFactory = Callable[[], nn.Module]
HeadFactory = Callable[[Task, int], nn.Module]


class Suite:
    """Inputs, one target per task, a fixed split, and the network blocks.

    Parameters
    ----------
    name : suite name.
    inputs : array (n_examples, ...) of finite floats.
    tasks : the tasks, unique names.
    targets : task name -> array of length n_examples; NaN marks a missing label. Binary targets
        are 0/1, multiclass targets are class indices, multilabel targets are (n, labels) 0/1.
    stages : the encoder as an ordered list of stage factories (each returns a fresh
        ``nn.Module``); stage k's output is stage k+1's input.
    head : factory ``head(task, in_features) -> nn.Module`` for the task heads.
    split : fractions (train, val, test) of a seeded random split, or a mapping of split name
        to index arrays.
    split_seed : seed of the random split.
    truth : optional ground truth of a planted problem (plain data).
    stages_at_width : optional ``fn(width) -> stage factories``: the encoder at a width
        multiplier, ``fn(1.0)`` giving ``stages`` (:meth:`at_width`, :mod:`taskrel.widths`).

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5)).astype("float32")
    >>> suite = Suite("toy", X, [Task("pos", "binary"), Task("sum", "regression")],
    ...               {"pos": (X[:, 0] > 0).astype(float), "sum": X.sum(1)},
    ...               stages=[lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU())])
    >>> suite.task_names, len(suite.split["train"])
    (['pos', 'sum'], 60)
    >>> Suite("bad", X, [Task("pos", "binary")], {"pos": np.ones(99)}, stages=[nn.Identity])
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: suite 'bad', task 'pos': targets have 99 rows, inputs have 100
    """

    width = 1.0  # the encoder's width multiplier (see at_width)
    stages_at_width: WidthStages | None = None

    def __init__(
        self,
        name: str,
        inputs: Any,
        tasks: Sequence[Task],
        targets: Mapping[str, Any],
        stages: Sequence[StageFactory],
        head: HeadFactory | None = None,
        split: tuple[float, float, float] | Mapping[str, Any] = (0.6, 0.2, 0.2),
        split_seed: int = 0,
        stage_names: Sequence[str] | None = None,
        truth: dict[str, Any] | None = None,
        description: str = "",
        stages_at_width: WidthStages | None = None,
    ) -> None:
        self.name, self.stages_at_width = str(name), stages_at_width
        self.description = description
        self.truth = truth or {}
        self.head = head or default_head
        where = f"suite {self.name!r}"
        tasks = list(tasks)
        if not tasks:
            raise TaskrelError(f"{where}: no tasks (a suite needs at least one task)")
        for t in tasks:
            if not isinstance(t, Task):
                raise TaskrelError(f"{where}: {t!r} is not a taskrel.Task")
        names = [t.name for t in tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise TaskrelError(f"{where}: duplicate task names {dup}")
        self.inputs = X = as_float32_inputs(where, inputs)
        n = X.shape[0]
        if not isinstance(targets, Mapping):
            shape = getattr(targets, "shape", None)
            raise TaskrelError(
                f"{where}: targets must be a dict {{task name: array}}, got {type(targets).__name__}"
                + (f" of shape {tuple(shape)}" if shape is not None else "")
                + (f"; for one column per task pass {{t: Y[:, i] for i, t in enumerate({names!r})}}"
                   if shape is not None and len(shape) == 2 and shape[1] == len(names) else ""))
        extra = sorted(set(targets) - set(names))
        if extra:
            raise TaskrelError(f"{where}: targets given for unknown tasks {extra}")
        self.targets: dict[str, np.ndarray] = {}
        self.tasks: list[Task] = []
        for t in tasks:
            if t.name not in targets:
                raise TaskrelError(f"{where}, task {t.name!r}: no targets given")
            y, t = check_targets(f"{where}, task {t.name!r}", t, targets[t.name], n)
            check_classes(f"{where}, task {t.name!r}", t.kind, y)
            self.targets[t.name] = y
            self.tasks.append(t)
        self.split = make_split(split, split_seed, n)
        check_split(self.split, n)
        self.split_seed = split_seed
        check_split_labels(where, self.tasks, self.targets, self.split)
        check_factories(where, stages, self.head)
        self.stages = list(stages)
        self.stage_names = list(stage_names) if stage_names else [f"stage{k}" for k in range(len(stages))]
        if len(self.stage_names) != len(self.stages):
            raise TaskrelError(f"{where}: {len(self.stage_names)} stage names for {len(self.stages)} stages")
        self._feature_shapes: list[tuple[int, ...]] | None = None
        self._fingerprint: str | None = None
        # shapes chain and heads fit, checked now rather than deep inside the first run
        with torch.random.fork_rng(devices=[]):  # building blocks must not move the caller's seed
            check_heads(where, self.tasks, self.head, self._stage_outputs()[-1])
            check_loss_gradients(where, self.tasks, self.head, lambda r: self._stage_outputs(torch.from_numpy(self.inputs[r]))[-1], self.targets, self.split["train"])

    # ------------------------------------------------------------------ access
    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise TaskrelError(f"suite {self.name!r}: unknown task {name!r}; tasks are {self.task_names}")

    def check_tasks(self, names: Sequence[str]) -> list[str]:
        """Validate a list of task names against this suite (raises on unknown or duplicate)."""
        names = list(names)
        for n in names:
            self.task(n)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise TaskrelError(f"suite {self.name!r}: tasks listed twice: {dup}")
        return names

    def build_stage(self, k: int) -> nn.Module:
        m = self.stages[k]()
        if not isinstance(m, nn.Module):
            raise TaskrelError(f"suite {self.name!r}: stage {k} factory returned {type(m).__name__}, not an nn.Module")
        return m

    def feature_shapes(self) -> list[tuple[int, ...]]:
        """Output shape (without batch) of every encoder stage."""
        if self._feature_shapes is None:
            self._feature_shapes = [tuple(h.shape[1:]) for h in self._stage_outputs()]
        return self._feature_shapes

    def _stage_outputs(self, x: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every stage's output on two examples, or on inputs ``x`` (checks that the stages chain)."""
        outs = []
        with torch.no_grad():
            h = self.example_inputs(2) if x is None else x
            for k in range(self.n_stages):
                where = f"suite {self.name!r}: stage {k} ({self.stage_names[k]})"
                try:
                    m = self.stages[k]()
                except Exception as e:
                    raise TaskrelError(f"{where}: its factory failed: {type(e).__name__}: {e}") from None
                if not isinstance(m, nn.Module):
                    raise TaskrelError(f"{where}: its factory returned {type(m).__name__}, not an nn.Module")
                check_stage_module(where, m, self.stages[k])
                try:
                    h = m.eval()(h)
                except Exception as e:
                    raise TaskrelError(f"{where} fails on the output of the previous stage, shape {tuple(h.shape)}: {e}") from None
                if not isinstance(h, torch.Tensor):
                    raise TaskrelError(f"{where} returns {type(h).__name__}, not a tensor")
                outs.append(h)
        return outs

    def example_inputs(self, n: int) -> torch.Tensor:
        """The first ``n`` inputs as a tensor (what the shape checks run on)."""
        return torch.from_numpy(self.inputs[:n])

    def tensors(self, split: str, tasks: Sequence[str], device: str | torch.device = "cpu"):
        """Inputs and targets of one split as tensors: ``(X, {task: y})``."""
        idx = self.split[split]
        X = torch.from_numpy(self.inputs[idx]).to(device)
        ys = {t: torch.from_numpy(self.targets[t][idx]).to(device) for t in tasks}
        return X, ys

    def fingerprint(self, tasks: Sequence[str] | None = None) -> str:
        """A stable hash of what a run on ``tasks`` depends on; of the whole suite by default.

        With ``tasks``: the inputs and split, the stages, and each named task's definition,
        targets and head, nothing else (a run of ``suite.subset(...)`` keeps its key). A block
        counts by its structure, initial values and code (:func:`taskrel.digest.module_digest`):
        a changed ``forward`` gives new run keys. Without ``tasks``: the name and every task.

        >>> from taskrel.suites import get_suite
        >>> suite = get_suite("planted", n_examples=100)
        >>> sub = suite.subset(["c0t0"])
        >>> sub.fingerprint(["c0t0"]) == suite.fingerprint(["c0t0"]) != suite.fingerprint(["c0t1"])
        True
        """
        if tasks is not None:
            names = sorted(set(self.check_tasks(tasks)))
            return digest_of([self._part("data"), self._part("stages"), *(self._part(f"task:{n}") for n in names)])
        if self._fingerprint is None:
            self._fingerprint = digest_of([self.name, self.fingerprint(self.task_names)])
        return self._fingerprint

    def _part(self, what: str) -> str:
        """Digest of one part of the suite (cached; a subset shares its parent's parts)."""
        cache = self.__dict__.setdefault("_parts", {})
        if what not in cache:
            h = hashlib.sha256()
            torch_state = torch.random.get_rng_state()
            try:
                if what == "data":
                    for part in (str(self.inputs.shape).encode(), np.ascontiguousarray(self.inputs), *(self.split[s] for s in SPLITS)):
                        h.update(part if isinstance(part, bytes) else part.tobytes())
                elif what == "stages":
                    self.feature_shapes()
                    for k in range(self.n_stages):
                        torch.manual_seed(0)
                        h.update(module_digest(self.build_stage(k)).encode())
                else:
                    t = self.task(what[len("task:"):])
                    h.update(json.dumps(t.to_dict(), sort_keys=True).encode())
                    h.update(np.ascontiguousarray(self.targets[t.name]).tobytes())
                    torch.manual_seed(0)
                    h.update(module_digest(self.head(t, int(np.prod(self.feature_shapes()[-1])))).encode())
            finally:
                torch.random.set_rng_state(torch_state)
            cache[what] = h.hexdigest()
        return cache[what]

    def at_width(self, width: float) -> Suite:
        """This suite with its encoder built at ``width`` (:func:`taskrel.widths.suite_at_width`)."""
        return suite_at_width(self, width)

    def subset(self, tasks: Sequence[str]) -> Suite:
        """The same suite restricted to some tasks (same data, split and blocks)."""
        names = self.check_tasks(tasks)
        out = copy.copy(self)
        out.tasks = [self.task(n) for n in names]
        out.targets = {n: self.targets[n] for n in names}
        out._fingerprint = None
        return out

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "examples": int(self.inputs.shape[0]),
                "input_shape": list(self.inputs.shape[1:]), "split": {s: int(len(v)) for s, v in self.split.items()},
                "stages": self.stage_names, "tasks": [t.to_dict() for t in self.tasks]}

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, examples={self.inputs.shape[0]}, tasks={len(self.tasks)}, stages={self.n_stages})"


__all__ = ["Task", "Suite", "KINDS", "METRICS", "default_head"]
