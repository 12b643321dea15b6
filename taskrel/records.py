"""Run records: what a finished run stored, its schema version and how older ones migrate.

Schema 2 added the checksum of a run's weights (``weights_sha256``) and the task whose loss
diverged (``failed_task``); records of schema 1 are read and migrated in memory. A record of a
newer schema is refused clearly, never misread.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from taskrel.errors import TaskrelError

RECORD_SCHEMA = 2


@dataclass
class RunRecord:
    """A stored run: its spec (as data), status, result and cost.

    ``status`` is ``"ok"``, ``"failed"`` (a result: the run diverged, ``failed_task`` names the
    task whose loss did) or ``"error"`` (the environment failed: never stored, trained again).
    ``weights_sha256`` is the checksum of the run's stored weights (when it keeps them).
    """

    key: str
    spec: dict[str, Any]
    status: str  # "ok", "failed" or "error"
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
    failed_task: str | None = None
    weights_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retryable(self) -> bool:
        """True for a failure of the environment (not the run's result; train it again)."""
        return self.status == "error"

    @property
    def tasks(self) -> list[str]:
        return list(self.spec["layout"]["tasks"])

    def loss(self, task: str, split: str = "val") -> float:
        return self.metrics[split][task]["loss"]

    def metric(self, task: str, split: str = "val") -> float:
        return self.metrics[split][task]["metric"]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": RECORD_SCHEMA, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """A record from its dict: older schemas are migrated, unknown fields are ignored.

        >>> RunRecord.from_dict({"schema": 1, "key": "ab", "spec": {}, "status": "ok", "new": 1}).weights_sha256 is None
        True
        >>> RunRecord.from_dict({"schema": 99, "key": "ab", "spec": {}, "status": "ok"})
        Traceback (most recent call last):
        ...
        taskrel.errors.TaskrelError: store: run record ab has schema 99, newer than this taskrel reads (2); upgrade taskrel or use another store
        """
        d = migrate_record(dict(d))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def migrate_record(d: dict[str, Any]) -> dict[str, Any]:
    """Bring a record's dict to the current schema (refusing, clearly, a newer one)."""
    schema = d.pop("schema", 1)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise DamagedRecord(f"has schema {schema!r}")
    if schema > RECORD_SCHEMA:
        raise TaskrelError(
            f"store: run record {d.get('key')} has schema {schema}, newer than this taskrel reads "
            f"({RECORD_SCHEMA}); upgrade taskrel or use another store"
        )
    if schema < 2:  # 1 -> 2: weights checksum and the task that diverged
        d.setdefault("weights_sha256", None)
        d.setdefault("failed_task", None)
    return d


class DamagedRecord(Exception):
    """A record file that cannot be used (the reason is the message)."""


def check_record_shape(d: dict[str, Any]) -> None:
    if d.get("status") not in ("ok", "failed"):
        raise DamagedRecord(f"has status {d.get('status')!r}")
    spec = d.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("layout", {}).get("tasks"), list):
        raise DamagedRecord("has no spec with a layout")
    if not isinstance(d.get("metrics", {}), dict) or not isinstance(d.get("history", []), list):
        raise DamagedRecord("has malformed metrics")


__all__ = ["RECORD_SCHEMA", "RunRecord", "DamagedRecord", "migrate_record", "check_record_shape"]
