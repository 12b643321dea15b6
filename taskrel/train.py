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
import torch.nn.functional as F

from taskrel.errors import RunFailed, TaskrelError
from taskrel.layout import MultiTaskNet, SharingLayout, build_model
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

    def __post_init__(self) -> None:
        check_config(self)

    def with_(self, **changes: Any) -> TrainConfig:
        d = asdict(self)
        d.update(changes)
        return TrainConfig(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loss_weights"] = [list(p) for p in self.loss_weights]
        d.pop("device")  # where a run trains, and on how many threads, does not change what it is
        d.pop("threads")
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


_INT_FIELDS = {"epochs": 1, "batch_size": 1, "patience": 1, "threads": 0}
# field -> (lowest, lowest allowed?, highest)
_REAL_FIELDS = {
    "lr": (0.0, False, math.inf),
    "weight_decay": (0.0, True, math.inf),
    "momentum": (0.0, True, 1.0),
    "min_delta": (0.0, True, math.inf),
    "data_fraction": (0.0, False, 1.0),
}
_CHOICES = {"optimizer": ("adam", "adamw", "sgd"), "schedule": ("constant", "cosine")}


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def check_config(cfg: TrainConfig) -> None:
    """Check every field of a :class:`TrainConfig` (type and range); numbers become plain.

    Each error names the field and the value.

    >>> TrainConfig(epochs=2.5)
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: train config: epochs must be an integer >= 1, got 2.5
    >>> TrainConfig(lr="0.01")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: train config: lr must be a number > 0, got '0.01' (str)
    """

    def bad(msg: str) -> None:
        raise TaskrelError(f"train config: {msg}")

    def put(name: str, value: Any) -> None:
        object.__setattr__(cfg, name, value)

    for name, choices in _CHOICES.items():
        v = getattr(cfg, name)
        if not isinstance(v, str) or v not in choices:
            bad(f"unknown {name} {v!r}; use {', '.join(choices[:-1])} or {choices[-1]}")
    for name, low in _INT_FIELDS.items():
        v = getattr(cfg, name)
        if not _is_int(v) or v < low:
            bad(f"{name} must be an integer >= {low}, got {v!r}" + (" (0: torch's default)" if name == "threads" else ""))
        put(name, int(v))
    for name, (low, closed, high) in _REAL_FIELDS.items():
        v = getattr(cfg, name)
        rng = f"{'>=' if closed else '>'} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
        if not _is_real(v):
            bad(f"{name} must be a number {rng}, got {v!r} ({type(v).__name__})")
        if not (math.isfinite(v) and (v >= low if closed else v > low) and v <= high):
            bad(f"{name} must be a finite number {rng}, got {v!r}")
        put(name, float(v))
    if not isinstance(cfg.freeze_encoder, (bool, np.bool_)):
        bad(f"freeze_encoder must be true or false, got {cfg.freeze_encoder!r}")
    put("freeze_encoder", bool(cfg.freeze_encoder))
    if cfg.grad_clip is not None:
        if not _is_real(cfg.grad_clip) or not (math.isfinite(cfg.grad_clip) and cfg.grad_clip > 0):
            bad(f"grad_clip must be a finite number > 0 (or None: no clipping), got {cfg.grad_clip!r}")
        put("grad_clip", float(cfg.grad_clip))
    put("loss_weights", _check_loss_weights(cfg.loss_weights, bad))
    _check_device(cfg.device, bad)


def _check_loss_weights(lw: Any, bad: Callable[[str], None]) -> tuple[tuple[str, float], ...]:
    if isinstance(lw, dict):
        lw = list(lw.items())
    try:
        pairs = [tuple(p) for p in lw]
    except TypeError:
        bad(f"loss_weights must map task names to weights, got {lw!r}")
    out: dict[str, float] = {}
    for p in pairs:
        if len(p) != 2 or not isinstance(p[0], str):
            bad(f"loss_weights must map task names to weights, got the entry {p!r}")
        name, w = p
        if not _is_real(w) or not (math.isfinite(w) and w >= 0):
            bad(f"loss weight of task {name!r} must be a finite number >= 0, got {w!r}")
        if name in out:
            bad(f"loss weight of task {name!r} is given twice")
        out[name] = float(w)
    return tuple(sorted(out.items()))


def _check_device(device: Any, bad: Callable[[str], None]) -> None:
    if not isinstance(device, str):
        bad(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        bad(f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            bad(f"device {device!r} is not available: this machine has no CUDA GPU")
        if dev.index is not None and dev.index >= n:
            bad(f"device {device!r} is not available: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1})")
        return
    if dev.type == "mps" and torch.backends.mps.is_available():
        return
    backend = getattr(torch, dev.type, None)
    if dev.type != "mps" and backend is not None and getattr(backend, "is_available", lambda: False)():
        return
    bad(f"device {device!r} is not available on this machine")


def check_loss_weights(cfg: TrainConfig, task_names: Sequence[str]) -> None:
    """Refuse loss weights for tasks the suite does not have.

    >>> check_loss_weights(TrainConfig(loss_weights={"b": 2.0}), ["a"])
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: train config: loss weight for unknown task 'b'; tasks are ['a']
    """
    for name, _ in cfg.loss_weights:
        if name not in task_names:
            raise TaskrelError(f"train config: loss weight for unknown task {name!r}; tasks are {list(task_names)}")


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


# ------------------------------------------------------------------ losses and metrics
def task_loss(task: Task, out: torch.Tensor, y: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """Masked loss of one task (missing labels, NaN, are left out). Mean over labelled rows."""
    if task.kind == "multilabel":
        mask = ~torch.isnan(y)
        per = F.binary_cross_entropy_with_logits(out, torch.nan_to_num(y), reduction="none")
        per = (per * mask).sum(1) / mask.sum(1).clamp_min(1)
        mask = mask.any(1)
    else:
        mask = ~torch.isnan(y)
        yy = torch.nan_to_num(y)
        if task.kind == "multiclass":
            per = F.cross_entropy(out, yy.long(), reduction="none")
        elif task.kind == "binary":
            per = F.binary_cross_entropy_with_logits(out.reshape(-1), yy.to(out.dtype), reduction="none")
        else:
            per = (out.reshape(-1) - yy.to(out.dtype)) ** 2
    per = per * mask
    if not reduce:
        return per
    return per.sum() / mask.sum().clamp_min(1)


def task_metric(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    """The task's metric on labelled rows."""
    y = y.detach().cpu().double()
    out = out.detach().cpu().double()
    if task.kind == "multilabel":
        mask = ~torch.isnan(y)
        pred = (out > 0).double()
        return float(((pred == y) & mask).sum() / mask.sum().clamp_min(1))
    mask = ~torch.isnan(y)
    y = y[mask]
    if task.kind == "multiclass":
        return float((out[mask].argmax(1) == y.long()).double().mean())
    o = out.reshape(-1)[mask]
    if task.kind == "binary":
        if task.metric == "auc":
            from sklearn.metrics import roc_auc_score

            return float(roc_auc_score(y.numpy(), o.numpy())) if y.unique().numel() > 1 else 0.5
        return float(((o > 0).double() == y).double().mean())
    if task.metric == "mae":
        return float((o - y).abs().mean())
    if task.metric == "r2":
        return float(1 - ((o - y) ** 2).sum() / ((y - y.mean()) ** 2).sum().clamp_min(1e-12))
    return float(((o - y) ** 2).mean())


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
def evaluate(model: MultiTaskNet, suite: Suite, split: str, device: str = "cpu", batch_size: int = 1024) -> dict[str, dict[str, float]]:
    """Per-task loss and metric of ``model`` on one split."""
    model.eval()
    tasks = [suite.task(t) for t in model.task_names]
    X, ys = suite.tensors(split, model.task_names, device)
    outs: dict[str, list[torch.Tensor]] = {t.name: [] for t in tasks}
    for i in range(0, len(X), batch_size):
        o = model(X[i : i + batch_size])
        for t in tasks:
            outs[t.name].append(o[t.name])
    res = {}
    for t in tasks:
        out = torch.cat(outs[t.name])
        res[t.name] = {"loss": float(task_loss(t, out, ys[t.name])), "metric": task_metric(t, out, ys[t.name])}
    return res


def _optimizer(params: Sequence[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(
    suite: Suite,
    layout: SharingLayout,
    config: TrainConfig | None = None,
    seed: int = 0,
    callbacks: Sequence[Callback] = (),
    warm_start: Sequence[dict[str, torch.Tensor]] | None = None,
    keep_state: bool = False,
) -> TrainResult:
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


def _train(
    suite: Suite,
    layout: SharingLayout,
    cfg: TrainConfig,
    seed: int,
    callbacks: Sequence[Callback],
    warm_start: Sequence[dict[str, torch.Tensor]] | None,
    keep_state: bool,
) -> TrainResult:
    layout.with_stages(suite.n_stages)
    names = suite.check_tasks(layout.tasks)
    tasks = [suite.task(t) for t in names]
    lw = {t: 1.0 for t in names}
    for name, w in cfg.loss_weights:
        if name in lw:
            lw[name] = float(w)
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
    # timed from here: a process's first optimizer pays a one-off import that is not the run's
    t0 = time.perf_counter()

    gen = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    train_idx = torch.arange(len(suite.split["train"]))
    if cfg.data_fraction < 1:
        keep = max(int(round(cfg.data_fraction * len(train_idx))), 1)
        train_idx = torch.randperm(len(train_idx), generator=gen)[:keep].sort().values
    X, ys = suite.tensors("train", names, device)
    n_train = len(train_idx)
    steps_per_epoch = max(math.ceil(n_train / cfg.batch_size), 1)
    sched = None
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)

    history: list[dict[str, Any]] = []
    best = (math.inf, 0, None)
    bad_epochs = 0
    step = examples = 0
    torch.manual_seed(seed)
    for epoch in range(cfg.epochs):
        model.train()
        perm = train_idx[torch.randperm(n_train, generator=gen)]
        run_loss = 0.0
        for i in range(0, n_train, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size].to(device)
            xb = X[idx]
            yb = {t: ys[t][idx] for t in names}
            if callbacks:
                state = StepState(step, epoch, model, opt, xb, yb, tasks, lw)
                for cb in callbacks:
                    if step % max(cb.every, 1) == 0:
                        cb.on_step(state)
                model.train()
            out = model(xb)
            loss = sum(lw[t.name] * task_loss(t, out[t.name], yb[t.name]) for t in tasks)
            if not torch.isfinite(loss):
                raise RunFailed(f"training loss became {float(loss.detach())}", step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            run_loss += float(loss.detach()) * len(idx)
            step += 1
            examples += len(idx)
        val = evaluate(model, suite, "val", device)
        val_loss = sum(lw[t] * val[t]["loss"] for t in names)
        if not math.isfinite(val_loss):
            raise RunFailed(f"validation loss became {val_loss}", step)
        history.append({"epoch": epoch, "train_loss": run_loss / n_train, "val_loss": val_loss, "val": {t: v["loss"] for t, v in val.items()}})
        if val_loss < best[0] - cfg.min_delta:
            best = (val_loss, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    if best[2] is not None:
        model.load_state_dict(best[2])
    metrics = {s: evaluate(model, suite, s, device) for s in ("val", "test")}
    extras = {}
    for cb in callbacks:
        r = cb.result()
        if r is not None:
            extras[getattr(cb, "name", type(cb).__name__)] = r
    return TrainResult(
        metrics=metrics,
        history=history,
        steps=step,
        examples=examples,
        seconds=time.perf_counter() - t0,
        best_epoch=best[1],
        n_parameters=model.n_parameters(),
        extras=extras,
        state={k: v.cpu() for k, v in model.state_dict().items()} if keep_state else None,
    )


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's legacy global generator (tests and scripts)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
