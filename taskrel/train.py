"""The one training loop. Every model taskrel trains is a layout trained here."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from taskrel.config_checks import check_config, check_loss_weights, check_rows
from taskrel.errors import TaskrelError
from taskrel.layout import MultiTaskNet, SharingLayout, build_model
from taskrel.losses import task_loss, task_metric
from taskrel.step import Stepper, autocast, check_first_batch, diverged
from taskrel.suite import Suite, Task


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, schedule, stopping, loss weights, device.

    ``data_fraction`` < 1 trains on a seeded subsample of the training split, and ``epochs``
    caps the epochs: together they give the cheap (early-stopping) approximations of a run.
    ``freeze_encoder`` trains only the heads (with a warm start: a frozen transfer).

    ``threads`` is the number of intra-op threads torch may use while this run trains (and
    evaluates). The default, 1, is the right choice for the small networks taskrel trains on a
    CPU: torch's default (one thread per core) slows small models 10-15x as soon as another
    process competes for the cores. Parallelism comes from training runs side by side
    (``n_jobs``). Give more threads for a big model, or ``threads=0`` for torch's own choice.
    Like ``device``, it does not change what a run is, so it is not part of the run's key.

    ``aggregator`` (e.g. ``"upgrad"``, ``"pcgrad"``, ``"mgda"``; see
    :data:`taskrel.aggregators.AGGREGATORS`) combines the per-task gradients with a TorchJD
    aggregator instead of summing the losses (the ``conflict`` extra). ``precision`` ``"bf16"``
    or ``"fp16"`` trains and evaluates under torch autocast (losses in float32; fp16 uses a
    gradient scaler on CUDA). Both change results, so both are part of the run's key.

    ``rows``: the training rows an epoch steps through. ``"all"`` (default): every row, even
    one with no label for the run's tasks (no loss, but a place in a batch). ``"labelled"``:
    the rows labelled (non-NaN) for at least one of the run's tasks, so on sparse labels a
    single-task run steps through its own rows only; ``data_fraction`` then subsamples those.
    It is part of the run's key, left out at ``"all"`` (older keys stay). Streaming suites
    (``Dataset``-backed) support ``"all"`` only.

    >>> TrainConfig(rows="labelled").to_dict()["rows"], "rows" in TrainConfig().to_dict()
    ('labelled', False)
    >>> TrainConfig(epochs=5).with_(lr=0.01).lr
    0.01
    >>> TrainConfig(optimizer="lbfgs")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: train config: unknown optimizer 'lbfgs'; use adam, adamw or sgd
    """

    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "constant"
    patience: int = 10
    min_delta: float = 0.0
    loss_weights: tuple[tuple[str, float], ...] = ()
    data_fraction: float = 1.0
    freeze_encoder: bool = False
    grad_clip: float | None = None
    device: str = "cpu"
    threads: int = 1
    aggregator: str | None = None
    precision: str = "fp32"
    rows: str = "all"

    def __post_init__(self) -> None:
        check_config(self)

    def with_(self, **changes: Any) -> TrainConfig:
        return TrainConfig(**(asdict(self) | changes))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loss_weights"] = [list(p) for p in self.loss_weights]
        d.pop("device")  # where a run trains, and on how many threads, does not change what it is
        d.pop("threads")
        for name, plain in (("aggregator", None), ("precision", "fp32"), ("rows", "all")):  # keys of older runs stay as they were
            if d[name] == plain:
                d.pop(name)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TaskrelError(f"train config: unknown fields {unknown}; known are {sorted(known)}")
        d = dict(d)
        if "loss_weights" in d:
            lw = d["loss_weights"]
            d["loss_weights"] = tuple(sorted(lw.items())) if isinstance(lw, dict) else tuple(tuple(p) for p in lw)
        return cls(**d)


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Let torch use ``threads`` intra-op threads inside the block, then restore the old count.

    ``None`` or 0 leaves torch's setting alone.

    >>> before = torch.get_num_threads()
    >>> with thread_limit(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if not threads:
        yield
        return
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


# ------------------------------------------------------------------ callbacks
@dataclass
class StepState:
    """What a callback sees at the start of a training step (before the update)."""

    step: int
    epoch: int
    model: MultiTaskNet
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: dict[str, torch.Tensor]
    tasks: list[Task]
    loss_weights: dict[str, float]

    def losses(self, model: MultiTaskNet | None = None) -> dict[str, torch.Tensor]:
        """Per-task losses of this batch (with a graph, for gradients)."""
        m = model or self.model
        out = m(self.x)
        return {t.name: task_loss(t, out[t.name], self.y[t.name]) for t in self.tasks}


class Callback:
    """Hook into training: ``on_step`` is called every ``every`` steps, before the update.

    A callback registered by name in :data:`CALLBACKS` can be asked for by a run spec; its
    ``result()`` (plain JSON data) is stored with the run.
    """

    every: int = 1

    def on_step(self, state: StepState) -> None:  # pragma: no cover - interface
        pass

    def result(self) -> Any:
        return None


CALLBACKS: dict[str, Callable[..., Callback]] = {}


def register_callback(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        CALLBACKS[name] = cls
        return cls

    return deco


# ------------------------------------------------------------------ training
@dataclass
class TrainResult:
    """What a run produced: per-split, per-task loss and metric; history; cost."""

    metrics: dict[str, dict[str, dict[str, float]]]
    history: list[dict[str, Any]]
    steps: int
    examples: int
    seconds: float
    best_epoch: int
    n_parameters: int
    extras: dict[str, Any] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None

    def loss(self, task: str, split: str = "val") -> float:
        return self.metrics[split][task]["loss"]

    def metric(self, task: str, split: str = "val") -> float:
        return self.metrics[split][task]["metric"]


@torch.no_grad()
def evaluate(model: MultiTaskNet, suite: Suite, split: str, device: str = "cpu", batch_size: int = 1024,
             precision: str = "fp32") -> dict[str, dict[str, float]]:
    """Per-task loss and metric of ``model`` on one split."""
    model.eval()
    tasks = [suite.task(t) for t in model.task_names]
    outs: dict[str, list[torch.Tensor]] = {t.name: [] for t in tasks}
    ys: dict[str, list[torch.Tensor]] = {t.name: [] for t in tasks}
    for xb, yb in batches(suite, split, model.task_names, device, batch_size):
        with autocast(precision, xb.device):
            o = model(xb)
        for t in tasks:
            outs[t.name].append(o[t.name].float())
            ys[t.name].append(yb[t.name])
    cat = {t.name: (torch.cat(outs[t.name]), torch.cat(ys[t.name])) for t in tasks}
    return {t.name: {"loss": float(task_loss(t, *cat[t.name])), "metric": task_metric(t, *cat[t.name])} for t in tasks}


def batches(suite: Suite, split: str, tasks: Sequence[str], device: Any, batch_size: int,
            order: torch.Tensor | None = None, train: bool = False, data: tuple | None = None) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Batches ``(x, {task: y})`` of one split, in ``order`` (positions within the split).

    An in-memory suite slices the split's tensors (``data``: :meth:`Suite.tensors`, made once by
    a caller that asks for many epochs); a dataset-backed suite streams through its loader.
    """
    if getattr(suite, "streams", False):
        yield from suite.batches(split, tasks, device, batch_size, None if order is None else order.tolist(), train)
        return
    X, ys = data if data is not None else suite.tensors(split, tasks, device)
    order = torch.arange(len(X)) if order is None else order
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size].to(X.device)
        yield X[idx], {t: y[idx] for t, y in ys.items()}


def _optimizer(params: Sequence[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(suite: Suite, layout: SharingLayout, config: TrainConfig | None = None, seed: int = 0,
          callbacks: Sequence[Callback] = (), warm_start: Sequence[dict[str, torch.Tensor]] | None = None,
          keep_state: bool = False) -> TrainResult:
    """Train ``layout`` on ``suite`` and evaluate it on val and test.

    Seeded and deterministic on CPU: the same suite, layout, config and seed give the same
    numbers. Early stopping watches the weighted sum of per-task validation losses and restores
    the best epoch. A non-finite loss raises :class:`~taskrel.errors.RunFailed`.

    >>> from taskrel.suites import get_suite
    >>> suite = get_suite("planted", n_examples=300)
    >>> lay = SharingLayout.shared(suite.task_names[:2], suite.n_stages)
    >>> r1 = train(suite, lay, TrainConfig(epochs=3), seed=1)
    >>> r2 = train(suite, lay, TrainConfig(epochs=3), seed=1)
    >>> r1.metrics == r2.metrics and r1.steps > 0
    True
    """
    cfg = config or TrainConfig()
    with thread_limit(cfg.threads):
        return _train(suite, layout, cfg, seed, callbacks, warm_start, keep_state)


def _train(suite: Suite, layout: SharingLayout, cfg: TrainConfig, seed: int, callbacks: Sequence[Callback],
           warm_start: Sequence[dict[str, torch.Tensor]] | None, keep_state: bool) -> TrainResult:
    layout.with_stages(suite.n_stages)
    names = suite.check_tasks(layout.tasks)
    tasks = [suite.task(t) for t in names]
    check_loss_weights(cfg, suite.task_names)
    lw = {t: 1.0 for t in names} | {t: float(w) for t, w in cfg.loss_weights if t in names}
    device = torch.device(cfg.device)
    model = build_model(layout, suite, seed)
    if warm_start is not None:
        model.load_encoder(warm_start)
    model.to(device)
    if cfg.freeze_encoder:
        for p in model.encoder_parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(params, cfg)
    stepper = Stepper(cfg, opt, params, lw, device)
    # timed from here: a process's first optimizer pays a one-off import that is not the run's
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    data = None if getattr(suite, "streams", False) else suite.tensors("train", names, device)  # once per run
    train_idx = _training_rows(suite, names, cfg, gen, data)
    loop = _Loop(suite, names, tasks, lw, device, cfg, model, opt, stepper, callbacks, data, train_idx)
    torch.manual_seed(seed)
    history, best_epoch = loop.fit(gen)
    metrics = {s: evaluate(model, suite, s, device, precision=cfg.precision) for s in ("val", "test")}
    extras = {getattr(cb, "name", type(cb).__name__): r for cb in callbacks if (r := cb.result()) is not None}
    return TrainResult(metrics, history, loop.step, loop.examples, time.perf_counter() - t0, best_epoch,
                       model.n_parameters(), extras, {k: v.cpu() for k, v in model.state_dict().items()} if keep_state else None)


def labelled_rows(ys: dict[str, torch.Tensor]) -> torch.Tensor:
    """Which rows carry a label (a non-NaN target, or any non-NaN element) for at least one task.

    >>> nan = float("nan")
    >>> labelled_rows({"a": torch.tensor([1.0, nan, nan]), "b": torch.tensor([[nan, nan], [nan, 2.0], [nan, nan]])})
    tensor([ True,  True, False])
    """
    n = len(next(iter(ys.values())))
    if not all(y.is_floating_point() for y in ys.values()):
        return torch.ones(n, dtype=torch.bool)  # an integer target cannot be missing
    return torch.stack([(~torch.isnan(y)).reshape(n, -1).any(1).cpu() for y in ys.values()]).any(0)


def _training_rows(suite: Suite, names: Sequence[str], cfg: TrainConfig, gen: torch.Generator,
                   data: tuple | None) -> torch.Tensor:
    """Positions in the training split that an epoch steps through (sorted): every row, or with
    ``cfg.rows == "labelled"`` those labelled for one of ``names`` (``data``: the split's
    tensors, None for a streaming suite); then a ``cfg.data_fraction`` of them, drawn from ``gen``."""
    check_rows(cfg, suite)
    train_idx = torch.arange(len(suite.split["train"]))
    if cfg.rows == "labelled":
        train_idx = torch.nonzero(labelled_rows(data[1])).flatten()
    if len(train_idx) == 0:
        raise TaskrelError(f"train config: rows='labelled', but no training row of suite {suite.name!r} carries a label "
                           f"for the run's tasks {list(names)}; give these tasks labels or use rows='all'")
    if cfg.data_fraction < 1:
        keep = max(int(round(cfg.data_fraction * len(train_idx))), 1)
        train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)[:keep].sort().values]
    return train_idx


class _Loop:
    """The epochs of one run: steps, validation, early stopping (the best epoch restored)."""

    def __init__(self, suite: Suite, names: list[str], tasks: list[Task], lw: dict[str, float], device: torch.device,
                 cfg: TrainConfig, model: MultiTaskNet, opt: torch.optim.Optimizer, stepper: Stepper,
                 callbacks: Sequence[Callback], data: tuple | None, train_idx: torch.Tensor) -> None:
        self.suite, self.names, self.tasks, self.lw, self.device, self.cfg = suite, names, tasks, lw, device, cfg
        self.model, self.opt, self.stepper, self.callbacks = model, opt, stepper, callbacks
        self.data, self.train_idx = data, train_idx
        self.step = self.examples = 0
        steps = cfg.epochs * max(math.ceil(len(train_idx) / cfg.batch_size), 1)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if cfg.schedule == "cosine" else None

    def fit(self, gen: torch.Generator) -> tuple[list[dict[str, Any]], int]:
        """Train up to ``cfg.epochs`` epochs; the history and the best epoch (whose weights are restored)."""
        cfg, names, lw = self.cfg, self.names, self.lw
        history: list[dict[str, Any]] = []
        best = (math.inf, 0, None)
        bad_epochs = 0
        for epoch in range(cfg.epochs):
            run_loss = self.epoch(epoch, gen)
            val = evaluate(self.model, self.suite, "val", self.device, precision=cfg.precision)
            val_loss = sum(lw[t] * val[t]["loss"] for t in names)
            if not math.isfinite(val_loss):
                raise diverged("validation", {t: v["loss"] for t, v in val.items()}, val_loss, self.step)
            history.append({"epoch": epoch, "train_loss": run_loss / len(self.train_idx), "val_loss": val_loss, "val": {t: v["loss"] for t, v in val.items()}})
            if val_loss < best[0] - cfg.min_delta:
                best = (val_loss, epoch, {k: v.detach().clone() for k, v in self.model.state_dict().items()})
                bad_epochs = 0
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.patience:
                    break
        if best[2] is not None:
            self.model.load_state_dict(best[2])
        return history, best[1]

    def epoch(self, epoch: int, gen: torch.Generator) -> float:
        """One pass over the training rows in a seeded order; the summed (example-weighted) loss."""
        model, cfg = self.model, self.cfg
        model.train()
        perm = self.train_idx[torch.randperm(len(self.train_idx), generator=gen)]
        run_loss = 0.0
        for xb, yb in batches(self.suite, "train", self.names, self.device, cfg.batch_size, perm, train=True, data=self.data):
            if self.callbacks:
                state = StepState(self.step, epoch, model, self.opt, xb, yb, self.tasks, self.lw)
                for cb in self.callbacks:
                    if self.step % max(cb.every, 1) == 0:
                        cb.on_step(state)
                model.train()
            if self.step == 0:
                check_first_batch(model, self.tasks, xb, yb)
            loss = self.stepper.step(model, self.tasks, xb, yb, self.step)
            if self.sched is not None:
                self.sched.step()
            run_loss += float(loss) * len(xb)
            self.step += 1
            self.examples += len(xb)
        return run_loss


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's legacy global generator (tests and scripts)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
