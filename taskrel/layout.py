"""Sharing layouts: which tasks share which encoder stage; and the model a layout builds.

A :class:`SharingLayout` gives, for each encoder stage, a partition of the tasks into blocks;
the tasks of a block share that stage's weights. Partitions may only get finer with depth, so
a layout is a tree: a single-task model, a pair trained jointly, flat groups, a fully shared
network and a branched network are all layouts, built by :func:`build_model` and trained by the
one training loop. A layout may give each top-stage group a width (``with_widths``): that
group's blocks are built at the width (:mod:`taskrel.widths`), so one model can hold networks
of several sizes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.task import module_key

SCHEMA_VERSION = 1
Block = tuple[str, ...]


class SharingLayout:
    """Per-stage partitions of the tasks, each finer than (or equal to) the one above.

    Parameters
    ----------
    tasks : the tasks the model predicts.
    partitions : one partition per encoder stage; a partition is a list of blocks (lists of
        task names) that together hold every task exactly once.
    widths : optional ``{task: width}``: the width multiplier of each task's network (default
        1); the tasks of a top-stage block share one width.

    Examples
    --------
    >>> lay = SharingLayout(["a", "b", "c"], [[["a", "b", "c"]], [["a", "b"], ["c"]]])
    >>> lay.n_stages, lay.blocks(1)
    (2, [('a', 'b'), ('c',)])
    >>> SharingLayout.from_json(lay.to_json()) == lay
    True
    >>> SharingLayout.shared(["a", "b"], 3).describe()
    'stage0: a+b | stage1: a+b | stage2: a+b'
    >>> SharingLayout(["a", "b"], [[["a"], ["b"]], [["a", "b"]]])
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: layout: block ('a', 'b') at stage 1 merges tasks that are apart at stage 0 (partitions may only get finer with depth)
    """

    def __init__(self, tasks: Sequence[str], partitions: Sequence[Sequence[Sequence[str]]],
                 widths: Mapping[str, float] | None = None):
        tasks = [str(t) for t in tasks]
        if not tasks:
            raise TaskrelError("layout: no tasks")
        dup = sorted({t for t in tasks if tasks.count(t) > 1})
        if dup:
            raise TaskrelError(f"layout: tasks listed twice: {dup}")
        if not partitions:
            raise TaskrelError("layout: needs at least one stage")
        order = {t: i for i, t in enumerate(tasks)}
        parts: list[list[Block]] = []
        for k, part in enumerate(partitions):
            seen: dict[str, int] = {}
            blocks = []
            for b, block in enumerate(part):
                block = [str(t) for t in block]
                if not block:
                    raise TaskrelError(f"layout: empty block at stage {k}")
                for t in block:
                    if t not in order:
                        raise TaskrelError(f"layout: unknown task {t!r} at stage {k} (tasks are {tasks})")
                    if t in seen:
                        raise TaskrelError(f"layout: task {t!r} is in two blocks at stage {k}")
                    seen[t] = b
                blocks.append(tuple(sorted(block, key=order.__getitem__)))
            missing = [t for t in tasks if t not in seen]
            if missing:
                raise TaskrelError(f"layout: stage {k} leaves out tasks {missing}")
            blocks.sort(key=lambda bl: order[bl[0]])
            parts.append(blocks)
        for k in range(1, len(parts)):
            above = {t: b for b, block in enumerate(parts[k - 1]) for t in block}
            for block in parts[k]:
                if len({above[t] for t in block}) > 1:
                    raise TaskrelError(
                        f"layout: block {block} at stage {k} merges tasks that are apart at "
                        f"stage {k - 1} (partitions may only get finer with depth)"
                    )
        self.tasks = tasks
        self.partitions = parts
        self.widths = self._check_widths(widths or {})

    def _check_widths(self, widths: Mapping[str, float]) -> dict[str, float]:
        """The widths other than 1, checked: known tasks, positive numbers, one per top block."""
        out: dict[str, float] = {}
        for t, w in widths.items():
            if t not in self.tasks:
                raise TaskrelError(f"layout: widths name unknown task {t!r} (tasks are {self.tasks})")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
                raise TaskrelError(f"layout: width of task {t!r} must be a positive number, got {w!r}")
            if float(w) != 1.0:
                out[t] = float(w)
        for block in self.partitions[0]:
            if len({out.get(t, 1.0) for t in block}) > 1:
                raise TaskrelError(f"layout: tasks of block {block} have different widths "
                                   f"{[out.get(t, 1.0) for t in block]}; a network has one width")
        return {t: out[t] for t in self.tasks if t in out}

    # ---------------------------------------------------------------- constructors
    @classmethod
    def separate(cls, tasks: Sequence[str], n_stages: int) -> SharingLayout:
        """Every task its own network."""
        return cls(tasks, [[[t] for t in tasks] for _ in range(n_stages)])

    @classmethod
    def shared(cls, tasks: Sequence[str], n_stages: int) -> SharingLayout:
        """One encoder shared by every task (hard parameter sharing)."""
        return cls(tasks, [[list(tasks)] for _ in range(n_stages)])

    @classmethod
    def groups(cls, groups: Iterable[Sequence[str]], n_stages: int) -> SharingLayout:
        """Flat groups: the tasks of a group share the whole encoder; groups share nothing.

        >>> SharingLayout.groups([["a", "c"], ["b"]], 2).blocks(0)
        [('a', 'c'), ('b',)]
        """
        groups = [list(g) for g in groups]
        tasks = [t for g in groups for t in g]
        return cls(tasks, [groups for _ in range(n_stages)])

    @classmethod
    def from_groups(cls, groups: Iterable[Sequence[str]], n_stages: int, order: Sequence[str] | None = None) -> SharingLayout:
        """Flat groups as a layout, in a canonical order: the one place a grouping becomes a layout.

        Tasks within a group, and groups by their first task, follow ``order`` (default: the
        order the tasks first appear in), so the same grouping always gives the same layout.

        >>> SharingLayout.from_groups([["c", "b"], ["a"]], 1, order=["a", "b", "c"]).blocks(0)
        [('a',), ('b', 'c')]
        """
        groups = [list(g) for g in groups]
        order = list(order) if order is not None else [t for g in groups for t in g]
        rank = {t: i for i, t in enumerate(order)}
        missing = sorted({t for g in groups for t in g} - set(rank))
        if missing:
            raise TaskrelError(f"layout: tasks {missing} are not in the order {order}")
        blocks = sorted((sorted(g, key=rank.__getitem__) for g in groups if g), key=lambda g: rank[g[0]])
        return cls.groups(blocks, n_stages)

    @classmethod
    def branched(cls, tasks: Sequence[str], split_at: dict[int, Sequence[Sequence[str]]], n_stages: int) -> SharingLayout:
        """A tree given by where it branches: ``split_at[k]`` is the partition from stage k on.

        Stages before the first key are shared by all tasks.

        >>> SharingLayout.branched(["a", "b", "c"], {1: [["a", "b"], ["c"]], 2: [["a"], ["b"], ["c"]]}, 3).describe()
        'stage0: a+b+c | stage1: a+b c | stage2: a b c'
        """
        current: list[list[str]] = [list(tasks)]
        parts = []
        for k in range(n_stages):
            if k in split_at:
                current = [list(b) for b in split_at[k]]
            parts.append(current)
        bad = [k for k in split_at if not 0 <= k < n_stages]
        if bad:
            raise TaskrelError(f"layout: split stages {bad} outside 0..{n_stages - 1}")
        return cls(tasks, parts)

    # ---------------------------------------------------------------- access
    @property
    def n_stages(self) -> int:
        return len(self.partitions)

    def blocks(self, k: int) -> list[Block]:
        return list(self.partitions[k])

    def block_of(self, task: str, k: int) -> Block:
        for block in self.partitions[k]:
            if task in block:
                return block
        raise TaskrelError(f"layout: unknown task {task!r}")

    def width_of(self, task: str) -> float:
        """The width multiplier of ``task``'s network (1 unless the layout says otherwise)."""
        return self.widths.get(task, 1.0)

    def with_widths(self, widths: Mapping[str, float] | float) -> SharingLayout:
        """The same partitions with these widths: ``{task: width}``, or one width for all.

        >>> SharingLayout.groups([["a", "b"], ["c"]], 2).with_widths({"a": .5, "b": .5}).describe()
        'stage0: a+b@0.5 c | stage1: a+b@0.5 c'
        """
        if not isinstance(widths, Mapping):
            widths = {t: widths for t in self.tasks}
        return SharingLayout(self.tasks, self.partitions, widths)

    def shared_blocks(self) -> list[tuple[int, Block]]:
        """(stage, block) pairs that more than one task shares."""
        return [(k, b) for k, p in enumerate(self.partitions) for b in p if len(b) > 1]

    def with_stages(self, n_stages: int) -> SharingLayout:
        if n_stages != self.n_stages:
            raise TaskrelError(f"layout has {self.n_stages} stages, the suite's encoder has {n_stages}")
        return self

    # ---------------------------------------------------------------- identity and files
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "kind": "taskrel.SharingLayout",
            "tasks": list(self.tasks),
            "partitions": [[list(b) for b in p] for p in self.partitions],
        } | ({"widths": dict(self.widths)} if self.widths else {})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SharingLayout:
        if not isinstance(d, dict) or d.get("kind") != "taskrel.SharingLayout":
            raise TaskrelError("layout: not a taskrel layout (missing kind 'taskrel.SharingLayout')")
        if d.get("schema") != SCHEMA_VERSION:
            raise TaskrelError(f"layout: schema {d.get('schema')!r} is not supported (this taskrel reads {SCHEMA_VERSION})")
        for key in ("tasks", "partitions"):
            if key not in d:
                raise TaskrelError(f"layout: field {key!r} is missing")
        return cls(d["tasks"], d["partitions"], d.get("widths"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> SharingLayout:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise TaskrelError(f"layout: not valid JSON ({e})") from None
        return cls.from_dict(d)

    def canonical(self) -> str:
        """An order-free description: equal for layouts that build the same model."""
        parts = [sorted(sorted(b) for b in p) for p in self.partitions]
        widths = {"widths": dict(sorted(self.widths.items()))} if self.widths else {}
        return json.dumps({"tasks": sorted(self.tasks), "partitions": parts, **widths}, separators=(",", ":"))

    def key(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SharingLayout) and self.canonical() == other.canonical()

    def __hash__(self) -> int:
        return hash(self.canonical())

    def describe(self) -> str:
        return " | ".join(f"stage{k}: " + " ".join(self.label(b) for b in p) for k, p in enumerate(self.partitions))

    def label(self, block: Sequence[str]) -> str:
        """``a+b``, with ``@width`` where the block's network is not at width 1."""
        w = self.width_of(block[0])
        return "+".join(block) + ("" if w == 1.0 else f"@{w:g}")

    def __repr__(self) -> str:
        return f"SharingLayout({self.describe()})"


# ==================================================================== the model
def _block_name(k: int, block: Block) -> str:
    return f"s{k}_" + hashlib.sha256("\x1f".join(sorted(block)).encode()).hexdigest()[:10]


def _seeded(seed: int, *key: Any) -> None:
    digest = hashlib.sha256(repr((seed, *key)).encode()).digest()
    torch.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


class MultiTaskNet(nn.Module):
    """The network a layout builds; ``forward(x)`` returns ``{task: output}`` for every task.

    Every copy of stage k starts from the same initial weights for a given seed, and every head
    of a given shape too, whatever layout it sits in: comparisons between layouts then differ by
    the sharing, not by the draw of the initial weights.
    """

    def __init__(self, layout: SharingLayout, suite: Any, seed: int = 0):
        super().__init__()
        suite.check_tasks(layout.tasks)
        layout.with_stages(suite.n_stages)
        self.layout = layout
        self.task_names = list(layout.tasks)
        # a layout with widths builds each network at its width (suite.at_width); else on suite
        at = {t: suite.at_width(layout.width_of(t)) if layout.widths else suite for t in layout.tasks}
        in_features = {t: int(np.prod(at[t].feature_shapes()[-1])) for t in layout.tasks}  # before any seeding
        state = torch.random.get_rng_state()
        try:
            self.blocks = nn.ModuleDict()
            self._plan: list[list[tuple[str, str | None]]] = []  # per stage: (block, parent)
            for k in range(layout.n_stages):
                row = []
                for block in layout.blocks(k):
                    name = _block_name(k, block)
                    _seeded(seed, "stage", k)
                    self.blocks[name] = at[block[0]].build_stage(k)
                    parent = None if k == 0 else _block_name(k - 1, layout.block_of(block[0], k - 1))
                    row.append((name, parent))
                self._plan.append(row)
            self.heads = nn.ModuleDict()
            for t in self.task_names:
                task = suite.task(t)
                _seeded(seed, "head", task.n_outputs)
                self.heads[module_key(t)] = suite.head(task, in_features[t])
        finally:
            torch.random.set_rng_state(state)
        self._last = {t: _block_name(layout.n_stages - 1, layout.block_of(t, layout.n_stages - 1)) for t in self.task_names}

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output of every block, by block name."""
        out: dict[str, torch.Tensor] = {}
        for row in self._plan:
            for name, parent in row:
                out[name] = self.blocks[name](x if parent is None else out[parent])
        return out

    def task_features(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Per stage, each task's representation (the output of its block at that stage)."""
        feats = self.features(x)
        return [
            {t: feats[_block_name(k, self.layout.block_of(t, k))] for t in self.task_names}
            for k in range(self.layout.n_stages)
        ]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(x)
        return {t: self.heads[module_key(t)](feats[self._last[t]]) for t in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of blocks that more than one task uses."""
        names = {_block_name(k, b) for k, b in self.layout.shared_blocks()}
        return [p for n, m in self.blocks.items() if n in names for p in m.parameters() if p.requires_grad]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.blocks.parameters())

    def encoder_state(self, task: str) -> list[dict[str, torch.Tensor]]:
        """The weights of every stage on ``task``'s path (to warm-start another model)."""
        return [
            {k: v.detach().clone() for k, v in self.blocks[_block_name(s, self.layout.block_of(task, s))].state_dict().items()}
            for s in range(self.layout.n_stages)
        ]

    def load_encoder(self, stage_states: Sequence[dict[str, torch.Tensor]]) -> None:
        """Load per-stage weights into every block of each stage."""
        if len(stage_states) != self.layout.n_stages:
            raise TaskrelError(f"warm start: {len(stage_states)} stage states for {self.layout.n_stages} stages")
        for k, row in enumerate(self._plan):
            for name, _ in row:
                self.blocks[name].load_state_dict(stage_states[k])

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(layout: SharingLayout, suite: Any, seed: int = 0) -> MultiTaskNet:
    """Build the ``nn.Module`` of a layout on a suite's blocks.

    >>> from taskrel.suites import get_suite
    >>> suite = get_suite("planted", n_examples=200)
    >>> a, b = suite.task_names[:2]
    >>> model = build_model(SharingLayout.shared([a, b], suite.n_stages), suite)
    >>> sorted(model(torch.zeros(4, suite.inputs.shape[1])))  == sorted([a, b])
    True
    >>> model.n_parameters() < build_model(SharingLayout.separate([a, b], suite.n_stages), suite).n_parameters()
    True
    """
    return MultiTaskNet(layout, suite, seed)
