"""Suites backed by ``torch.utils.data.Dataset``: data that need not fit in memory.

Each item of a dataset is ``(input, {task: target})``. A target may be missing: give ``None``
(or NaN, or a target full of NaN), and the task's loss leaves that example (or element) out.
A task absent from an item's mapping is an error naming the item and the task: missing labels
must be said, not forgotten.

Training streams batches through a :class:`torch.utils.data.DataLoader` (``workers``,
``collate``, ``pin_memory``); ``train_transform`` is applied to training inputs only. The
in-memory :class:`~taskrel.suite.Suite` stays the fast special case. Reading ``.inputs`` or
``tensors(split)`` of a dataset-backed suite loads those inputs into memory (evaluation and the
similarity and gradient-feature probes do so, one split at a time).

Fingerprint (what a run's key hashes): with ``data_version`` given, that string, the split sizes
and indices stand for the data, and you promise to change it when the data change. Without it,
the length of the data, the split indices, and the content of ``sample`` items spread evenly
over the data (inputs and every target): cheap, and it catches any change to those items or the
length, but not a change confined to items outside the sample. The training transform and the
collate function count by their code.

>>> import torch
>>> from torch import nn
>>> from taskrel.suite import Task
>>> class Pairs(torch.utils.data.Dataset):
...     def __len__(self):
...         return 50
...     def __getitem__(self, i):
...         x = torch.tensor([float(i % 7), float(i % 3)])
...         return x, {"big": float(i % 7 > 3), "mod": None if i % 5 == 0 else float(i % 3)}
>>> s = DatasetSuite("pairs", Pairs(), [Task("big", "binary"), Task("mod", "regression")],
...                  stages=[lambda: nn.Linear(2, 4)], split=(0.6, 0.2, 0.2))
>>> len(s.split["train"]), s.feature_shapes()[-1]
(30, (4,))
>>> X, ys = s.tensors("val", ["mod"])
>>> X.shape, int(torch.isnan(ys["mod"]).sum()) > 0
(torch.Size([10, 2]), True)
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from taskrel.blocks import check_factories, check_heads, check_loss_gradients
from taskrel.digest import function_digest, module_digest
from taskrel.errors import TaskrelError
from taskrel.splits import SPLITS, check_split, make_split
from taskrel.suite import Suite, Task, default_head


def _target(value: Any) -> np.ndarray:
    if value is None:
        return np.array(np.nan)
    return np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)


class ItemCollate:
    """Stack items ``(x, {task: y})`` into ``(x_batch, {task: y_batch})``, NaN for a missing target."""

    def __init__(self, tasks: Sequence[str], shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.tasks, self.shapes = list(tasks), dict(shapes)

    def __call__(self, items: Sequence[Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        xs, ys = [], {t: [] for t in self.tasks}
        for x, targets in items:
            xs.append(torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float())
            for t in self.tasks:
                if not isinstance(targets, Mapping) or t not in targets:
                    raise TaskrelError(f"dataset item without a target for task {t!r} (give None for a missing label); "
                                       f"the item's targets are {sorted(targets) if isinstance(targets, Mapping) else targets!r}")
                y = _target(targets[t])
                ys[t].append(np.full(self.shapes[t], np.nan) if y.ndim == 0 and np.isnan(y) and self.shapes[t] else y)
        return torch.stack(xs), {t: torch.from_numpy(np.stack(v)) for t, v in ys.items()}


class Transformed(Dataset):
    """A dataset whose inputs pass through ``transform`` (training only)."""

    def __init__(self, data: Dataset, transform: Callable[[Any], Any]) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Any:
        x, y = self.data[i]
        return self.transform(x), y


class DatasetSuite(Suite):
    """A suite whose examples come from torch Datasets (see the module's docstring).

    Parameters
    ----------
    data : one Dataset (with ``split``: fractions of a seeded split, or a mapping of split name
        to indices) or a mapping ``{"train": ds, "val": ds, "test": ds}``.
    tasks, stages, head, stage_names, description : as for :class:`~taskrel.suite.Suite`.
        A multiclass task needs ``n_outputs``; other shapes are read from the first item.
    workers, collate, pin_memory : DataLoader options (``collate(items) -> (x, {task: y})``).
    train_transform : applied to training inputs only (e.g. augmentation).
    data_version : a string standing for the data in the fingerprint (see the module docstring).
    sample : how many items the fingerprint and the target checks read when there is no version.
    """

    streams = True

    def __init__(self, name: str, data: Dataset | Mapping[str, Dataset], tasks: Sequence[Task], stages: Sequence[Callable],
                 head: Callable | None = None, split: Any = (0.6, 0.2, 0.2), split_seed: int = 0,
                 workers: int = 0, collate: Callable | None = None, pin_memory: bool = False,
                 train_transform: Callable | None = None, data_version: str | None = None, sample: int = 32,
                 stage_names: Sequence[str] | None = None, description: str = "") -> None:
        self.name, self.description, self.truth = str(name), description, {}
        self.head = head or default_head
        where = f"suite {self.name!r}"
        if isinstance(data, Mapping):
            missing = [s for s in SPLITS if s not in data]
            if missing:
                raise TaskrelError(f"{where}: data must give every split {list(SPLITS)}; missing {missing}")
            sizes = [len(data[s]) for s in SPLITS]
            self.data = ConcatDataset([data[s] for s in SPLITS])
            cut = np.cumsum([0, *sizes])
            self.split = {s: np.arange(cut[k], cut[k + 1]) for k, s in enumerate(SPLITS)}
        else:
            self.data = data
            self.split = make_split(split, split_seed, len(data))
        check_split(self.split, len(self.data))
        self.split_seed, self.sample, self.data_version = split_seed, int(sample), data_version
        self.workers, self.collate, self.pin_memory, self.train_transform = int(workers), collate, bool(pin_memory), train_transform
        self.tasks = self._resolve_tasks(where, list(tasks))
        self.targets: dict[str, np.ndarray] = {}
        check_factories(where, stages, self.head)
        self.stages = list(stages)
        self.stage_names = list(stage_names) if stage_names else [f"stage{k}" for k in range(len(stages))]
        self._feature_shapes = None
        self._fingerprint = None
        self._inputs: np.ndarray | None = None
        with torch.random.fork_rng(devices=[]):
            check_heads(where, self.tasks, self.head, self._stage_outputs()[-1])
            if any(t.loss is not None for t in self.tasks):  # own losses, on a sample of training items
                x, ys = self.tensors_of(self.split["train"][: self.sample])
                check_loss_gradients(where, self.tasks, self.head, lambda r: self._stage_outputs(x[r])[-1],
                                     {t: y.numpy() for t, y in ys.items()}, np.arange(len(x)))

    def _resolve_tasks(self, where: str, tasks: list[Task]) -> list[Task]:
        if not tasks:
            raise TaskrelError(f"{where}: no tasks (a suite needs at least one task)")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise TaskrelError(f"{where}: duplicate task names {sorted({n for n in names if names.count(n) > 1})}")
        _, first = self.data[int(self.split["train"][0])]
        out = []
        for t in tasks:
            if not isinstance(first, Mapping) or t.name not in first:
                raise TaskrelError(f"{where}: dataset item without a target for task {t.name!r} (give None for a missing label)")
            shape = _target(first[t.name]).shape
            if t.kind == "multiclass" and t.n_outputs is None:
                raise TaskrelError(f"{where}, task {t.name!r}: a dataset-backed multiclass task needs n_outputs (the number of classes)")
            if t.kind in ("custom", "multilabel"):
                t = replace(t, n_outputs=int(np.prod(shape)) if shape else 1)
            elif t.kind != "multiclass":
                t = replace(t, n_outputs=1)
            out.append(t)
        self._shapes = {t.name: _target(first[t.name]).shape for t in out}
        return out

    # ------------------------------------------------------------------ batches
    def loader(self, indices: Sequence[int], tasks: Sequence[str], batch_size: int, train: bool = False) -> DataLoader:
        """A DataLoader over ``indices`` (in that order) yielding ``(x, {task: y})``."""
        data = Transformed(self.data, self.train_transform) if train and self.train_transform else self.data
        collate = self.collate or ItemCollate(tasks, {t: self._shapes[t] for t in tasks})
        return DataLoader(Subset(data, [int(i) for i in indices]), batch_size=batch_size, shuffle=False,
                          num_workers=self.workers, collate_fn=collate, pin_memory=self.pin_memory)

    def batches(self, split: str, tasks: Sequence[str], device: Any, batch_size: int, order: Sequence[int] | None = None,
                train: bool = False) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """Batches of one split on ``device``; ``order``: positions within the split."""
        idx = self.split[split] if order is None else self.split[split][np.asarray(order, dtype=np.int64)]
        for x, ys in self.loader(idx, tasks, batch_size, train):
            yield x.to(device), {t: y.to(device) for t, y in ys.items()}

    def tensors(self, split: str, tasks: Sequence[str], device: Any = "cpu"):
        """One whole split in memory: ``(X, {task: y})`` (loads it)."""
        parts = list(self.batches(split, tasks, device, 256))
        return torch.cat([p[0] for p in parts]), {t: torch.cat([p[1][t] for p in parts]) for t in tasks}

    @property
    def inputs(self) -> np.ndarray:
        """Every input in memory (loaded on first use)."""
        if self._inputs is None:
            X, _ = self.tensors_of(np.arange(len(self.data)))
            self._inputs = X.numpy()
        return self._inputs

    def tensors_of(self, indices: Sequence[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = list(self.loader(indices, self.task_names, 256))
        return torch.cat([p[0] for p in parts]), {t: torch.cat([p[1][t] for p in parts]) for t in self.task_names}

    def example_inputs(self, n: int) -> torch.Tensor:
        return self.tensors_of(self.split["train"][:n])[0]

    # ------------------------------------------------------------------ identity
    def _part(self, what: str) -> str:
        cache = self.__dict__.setdefault("_parts", {})
        if what in cache or what == "stages":
            return cache.get(what) or Suite._part(self, what)
        rows = np.unique(np.linspace(0, len(self.data) - 1, min(self.sample, len(self.data))).round().astype(np.int64))
        h = hashlib.sha256()
        if what == "data":
            h.update(json.dumps([len(self.data), self.data_version, describe_fn(self.train_transform), describe_fn(self.collate)]).encode())
            for s in SPLITS:
                h.update(self.split[s].tobytes())
            if self.data_version is None:
                h.update(np.ascontiguousarray(self.tensors_of(rows)[0].numpy()).tobytes())
        else:
            t = self.task(what[len("task:"):])
            h.update(json.dumps(t.to_dict(), sort_keys=True).encode())
            if self.data_version is None:
                h.update(np.ascontiguousarray(self.tensors_of(rows)[1][t.name].numpy()).tobytes())
            state = torch.random.get_rng_state()
            torch.manual_seed(0)
            h.update(module_digest(self.head(t, int(np.prod(self.feature_shapes()[-1])))).encode())
            torch.random.set_rng_state(state)
        cache[what] = h.hexdigest()
        return cache[what]

    def subset(self, tasks: Sequence[str]) -> DatasetSuite:
        """The same data restricted to some tasks."""
        out = copy.copy(self)
        out.tasks = [self.task(n) for n in self.check_tasks(tasks)]
        out._fingerprint = None
        return out

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "examples": len(self.data),
                "dataset": type(self.data).__name__, "data_version": self.data_version,
                "split": {s: int(len(v)) for s, v in self.split.items()}, "stages": self.stage_names,
                "tasks": [t.to_dict() for t in self.tasks]}

    def __repr__(self) -> str:
        return f"DatasetSuite({self.name!r}, examples={len(self.data)}, tasks={len(self.tasks)}, stages={self.n_stages})"


def describe_fn(fn: Any) -> str | None:
    return None if fn is None else f"{getattr(fn, '__qualname__', type(fn).__qualname__)}@{function_digest(fn)[:16]}"


__all__ = ["DatasetSuite", "ItemCollate", "Transformed"]
