"""The run store: every trained run, keyed by what it is, so that nothing trains twice.

A run is ``(suite fingerprint, layout, config, seed, warm start, probes)``; its key is a hash of
that content. Each finished run is one small JSON record ``runs/<key>.json`` holding the
per-task metrics, history and cost, plus a checksum of the record; weights (optional) are in
``weights/<key>.pt`` and load with ``weights_only=True``. Records are written to a temporary
file and renamed into place, so a process killed mid-write leaves no half record, and two
processes writing into one store at once lose nothing. A record whose checksum fails is moved
to ``corrupt/``, reported, and treated as missing (the run is trained again).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.train import TrainConfig

RECORD_SCHEMA = 1


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class RunSpec:
    """What a run is. Two equal specs on the same suite are the same run.

    Parameters
    ----------
    layout : the model's sharing layout (its tasks are the tasks trained).
    config : training configuration.
    seed : the seed.
    warm_start : ``(run key, task)``: start the encoder from that stored run's weights on the
        path of that task (transfer). The source run must store weights.
    probes : callbacks to attach, by registered name, with parameters (``{"gradient": {...}}``).
    keep_weights : store the trained weights (needed by similarity and transfer probes).
    label : free text for progress and reports (not part of the key).

    >>> from taskrel.layout import SharingLayout
    >>> a = RunSpec(SharingLayout.shared(["x", "y"], 2), TrainConfig(epochs=3), seed=1)
    >>> b = RunSpec(SharingLayout.shared(["y", "x"], 2), TrainConfig(epochs=3), seed=1, label="pair")
    >>> a.key("suitefp") == b.key("suitefp")
    True
    """

    layout: SharingLayout
    config: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    warm_start: tuple[str, str] | None = None
    probes: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    keep_weights: bool = False
    label: str = ""

    def identity(self, suite_fingerprint: str) -> dict[str, Any]:
        return {
            "suite": suite_fingerprint,
            "layout": json.loads(self.layout.canonical()),
            "config": self.config.to_dict(),
            "seed": int(self.seed),
            "warm_start": list(self.warm_start) if self.warm_start else None,
            "probes": [[n, [list(p) for p in params]] for n, params in self.probes],
            "keep_weights": bool(self.keep_weights),
        }

    def key(self, suite_fingerprint: str) -> str:
        return hashlib.sha256(_canonical(self.identity(suite_fingerprint)).encode()).hexdigest()[:24]

    @staticmethod
    def probe_params(**params: Any) -> tuple[tuple[str, Any], ...]:
        return tuple(sorted(params.items()))


@dataclass
class RunRecord:
    """A stored run: its spec (as data), status, result and cost."""

    key: str
    spec: dict[str, Any]
    status: str  # "ok" or "failed"
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    n_parameters: int = 0
    best_epoch: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failed_step: int | None = None
    label: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tasks(self) -> list[str]:
        return list(self.spec["layout"]["tasks"])

    def loss(self, task: str, split: str = "val") -> float:
        return self.metrics[split][task]["loss"]

    def metric(self, task: str, split: str = "val") -> float:
        return self.metrics[split][task]["metric"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RECORD_SCHEMA,
            "key": self.key,
            "spec": self.spec,
            "status": self.status,
            "metrics": self.metrics,
            "history": self.history,
            "steps": self.steps,
            "examples": self.examples,
            "seconds": self.seconds,
            "n_parameters": self.n_parameters,
            "best_epoch": self.best_epoch,
            "extras": self.extras,
            "error": self.error,
            "failed_step": self.failed_step,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        d = dict(d)
        d.pop("schema", None)
        return cls(**d)


class RunStore:
    """A directory of run records. Opening an existing directory resumes it.

    >>> import tempfile
    >>> store = RunStore(tempfile.mkdtemp())
    >>> len(store), store.get("0" * 24) is None
    (0, True)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise TaskrelError(f"store: {str(self.path)!r} exists and is not a directory")
        (self.path / "runs").mkdir(parents=True, exist_ok=True)
        (self.path / "weights").mkdir(exist_ok=True)

    def _record_path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise TaskrelError(f"store: bad run key {key!r}")
        return self.path / "runs" / f"{key}.json"

    def weights_path(self, key: str) -> Path:
        self._record_path(key)
        return self.path / "weights" / f"{key}.pt"

    def get(self, key: str) -> RunRecord | None:
        """The stored record of ``key``, or None (also when its checksum fails)."""
        p = self._record_path(key)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            d = json.loads(text)
            checksum = d.pop("checksum")
            good = hashlib.sha256(_canonical(d).encode()).hexdigest() == checksum and d.get("key") == key
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
            good = False
        if not good:
            self._quarantine(p)
            return None
        return RunRecord.from_dict(d)

    def _quarantine(self, p: Path) -> None:
        dest = self.path / "corrupt"
        dest.mkdir(exist_ok=True)
        warnings.warn(f"taskrel store: record {p.name} failed its checksum; moved to corrupt/ and will be re-run", stacklevel=3)
        try:
            os.replace(p, dest / p.name)
        except FileNotFoundError:
            pass

    def put(self, record: RunRecord) -> None:
        d = record.to_dict()
        d["checksum"] = hashlib.sha256(_canonical(d).encode()).hexdigest()
        atomic_write_text(self._record_path(record.key), json.dumps(d))

    def save_weights(self, key: str, state: dict[str, Any]) -> None:
        import torch

        p = self.weights_path(key)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.replace(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load_weights(self, key: str) -> dict[str, Any]:
        """Stored weights of a run (loaded with ``weights_only=True``: tensors only, no code)."""
        import torch

        p = self.weights_path(key)
        if not p.exists():
            raise TaskrelError(f"store: run {key} has no stored weights (train it with keep_weights=True)")
        return torch.load(p, map_location="cpu", weights_only=True)

    def has_weights(self, key: str) -> bool:
        return self.weights_path(key).exists()

    def keys(self) -> list[str]:
        return sorted(p.stem for p in (self.path / "runs").glob("*.json"))

    def records(self) -> Iterator[RunRecord]:
        for k in self.keys():
            r = self.get(k)
            if r is not None:
                yield r

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}, runs={len(self)})"
