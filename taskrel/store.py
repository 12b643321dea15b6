"""The run store: every trained run, keyed by what it is, so that nothing trains twice.

A run is ``(suite fingerprint, layout, config, seed, warm start, probes)``; its key is a hash of
that content. Each finished run is one small JSON record ``runs/<key>.json`` holding the
per-task metrics, history and cost, its schema version and a checksum of the record; weights
(optional) are in ``weights/<key>.pt``, checksummed in the record, verified and loaded with
``weights_only=True``. Records are written to a temporary file and renamed into place, so a
process killed mid-write leaves no half record, and two processes writing into one store at
once lose nothing. A run being trained is claimed (``claims/<key>.claim``, a lease kept alive
by a heartbeat: see :mod:`taskrel.claims`), so workers sharing a store never train it twice.

Damage never stops a study: a record that cannot be read, decoded, parsed or verified, or whose
weights are missing or damaged, is moved to ``corrupt/``, reported in one log line, and treated
as missing (the run is trained again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskrel.claims import DEFAULT_LEASE, Claim, check_claims_folder, is_claimed, try_claim
from taskrel.errors import MissingWeights, TaskrelError
from taskrel.files import (
    atomic_savefig,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
    sha256_file,
)
from taskrel.layout import SharingLayout
from taskrel.records import (
    RECORD_SCHEMA,
    DamagedRecord,
    RunRecord,
    check_record_shape,
    migrate_record,
)
from taskrel.train import TrainConfig
from taskrel.widths import widths_fingerprint

# what a run key hashes; 2: the run's own tasks' data and its blocks' code and initial values
IDENTITY_VERSION = 2
log = logging.getLogger("taskrel.store")


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
    warm_start : ``(source, task)``: start the encoder from the weights of the source run (its
        spec, or its key) on the path of that task (transfer). The source must keep weights.
    probes : callbacks to attach, by registered name, with parameters (``{"gradient": {...}}``).
    keep_weights : store the trained weights (needed by similarity and transfer probes).
    label : free text for progress and reports (not part of the key).

    >>> from taskrel.layout import SharingLayout
    >>> from taskrel.suites import get_suite
    >>> suite = get_suite("planted", n_examples=100)
    >>> c = RunSpec(SharingLayout.shared(["c0t0", "c0t1"], 3), seed=1)
    >>> d = RunSpec(SharingLayout.shared(["c0t1", "c0t0"], 3), seed=1, label="pair")
    >>> c.key(suite) == d.key(suite) == d.key(suite.subset(["c0t0", "c0t1"]))
    True
    """

    layout: SharingLayout
    config: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    warm_start: tuple[RunSpec | str, str] | None = None
    probes: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    keep_weights: bool = False
    label: str = ""

    def identity(self, suite: Any) -> dict[str, Any]:
        """Everything that determines the run's result, as plain data (hashed into its key).

        ``suite`` is the :class:`~taskrel.suite.Suite` it trains on: the run depends on the
        data, targets and blocks of its own tasks only (``suite.fingerprint(tasks)``), so a
        subset of the suite shares the run.
        """
        fingerprint = getattr(suite, "fingerprint", None)
        if not callable(fingerprint):
            raise TaskrelError(
                f"run spec: a run's key needs the Suite it trains on (its tasks' data and blocks), got {type(suite).__name__}"
            )
        return {
            "identity": IDENTITY_VERSION,
            "suite": fingerprint(self.layout.tasks),
            "layout": json.loads(self.layout.canonical()),
            "config": self.config.to_dict(),
            "seed": int(self.seed),
            "warm_start": [self.source_key(suite), self.warm_start[1]] if self.warm_start else None,
            "probes": [[n, [list(p) for p in params]] for n, params in self.probes],
            "keep_weights": bool(self.keep_weights),
        } | ({"widths": widths_fingerprint(suite, self.layout)} if self.layout.widths else {})

    def source_key(self, suite: Any) -> str | None:
        """The key of the run this one warm-starts from (None without a warm start)."""
        if not self.warm_start:
            return None
        src = self.warm_start[0]
        return src.key(suite) if isinstance(src, RunSpec) else str(src)

    def key(self, suite: Any) -> str:
        """The run's store key on ``suite`` (a hash of :meth:`identity`)."""
        return hashlib.sha256(_canonical(self.identity(suite)).encode()).hexdigest()[:24]

    @staticmethod
    def probe_params(**params: Any) -> tuple[tuple[str, Any], ...]:
        return tuple(sorted(params.items()))


def is_run_key(name: str) -> bool:
    """True when ``name`` can be a run key (lower-case hex, 8 to 128 characters).

    >>> is_run_key("0123abcd"), is_run_key("._notes"), is_run_key("0123ABCD")
    (True, False, False)
    """
    return 8 <= len(name) <= 128 and all(c in "0123456789abcdef" for c in name)


class RunStore:
    """A directory of run records. Opening an existing directory resumes it.

    No damaged file stops a study: a record that cannot be read, decoded, parsed or verified
    (or whose weights are missing or fail their checksum) is moved to ``corrupt/`` with one log
    line and treated as missing, so its run is trained again. Files that are not records (a
    stray ``._x.json``, an upper-case copy) are ignored with one log line. ``lease`` is how long
    (seconds) a claim on a run being trained lives without a heartbeat; ``sweep``: remove the
    temporary files that killed writers left (:meth:`sweep`) on opening.

    >>> import tempfile
    >>> store = RunStore(tempfile.mkdtemp())
    >>> len(store), store.get("0" * 24) is None
    (0, True)
    """

    def __init__(self, path: str | Path, lease: float = DEFAULT_LEASE, sweep: bool = True):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise TaskrelError(f"store: {str(self.path)!r} exists and is not a directory")
        if not (isinstance(lease, (int, float)) and not isinstance(lease, bool) and 0 < lease < math.inf):
            raise TaskrelError(f"store: lease must be a positive number of seconds, got {lease!r}")
        self.lease = float(lease)
        try:
            (self.path / "runs").mkdir(parents=True, exist_ok=True)
            (self.path / "weights").mkdir(exist_ok=True)
        except OSError as e:
            raise TaskrelError(f"store: cannot use {str(self.path)!r} as a run store: {e.strerror or e}") from None
        check_claims_folder(self.path / "claims", create=False)
        self._said: set[str] = set()
        self._verified: dict[str, tuple[tuple[int, ...], str]] = {}
        if sweep:
            self.sweep()

    def sweep(self) -> list[Path]:
        """Remove temporaries killed writers left (:func:`~taskrel.files.remove_stale_temporaries`)."""
        if removed := [p for d in ("runs", "weights", "claims") for p in remove_stale_temporaries(self.path / d)]:
            log.info("taskrel store: removed %d temporary file(s) left by killed writers", len(removed))
        return removed

    def _record_path(self, key: str) -> Path:
        if not isinstance(key, str) or not is_run_key(key):
            raise TaskrelError(f"store: bad run key {key!r}")
        return self.path / "runs" / f"{key}.json"

    def weights_path(self, key: str) -> Path:
        self._record_path(key)
        return self.path / "weights" / f"{key}.pt"

    # ------------------------------------------------------------------ reading
    def get(self, key: str) -> RunRecord | None:
        """The stored record of ``key``, or None: absent, or damaged (then moved to ``corrupt/``).

        A record written by a newer taskrel is refused with a :class:`TaskrelError`.
        """
        p = self._record_path(key)
        try:
            d = self._read(p, key)
        except DamagedRecord as e:
            self._quarantine(key, f"{p.parent.name}/{p.name} {e}")
            return None
        if d is None:
            return None
        rec = RunRecord.from_dict(d)
        problem = self._weights_problem(rec)
        if problem:
            self._quarantine(key, f"run {key}: {problem}")
            return None
        return rec

    def _read(self, p: Path, key: str) -> dict[str, Any] | None:
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:  # a directory, a symlink loop, no permission, an I/O error
            raise DamagedRecord(f"cannot be read ({e.strerror or e})") from None
        try:
            d = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise DamagedRecord("is not UTF-8 text") from None
        except ValueError:
            raise DamagedRecord("is not valid JSON") from None
        if not isinstance(d, dict):
            raise DamagedRecord("is not a JSON object")
        checksum = d.pop("checksum", None)
        if hashlib.sha256(_canonical(d).encode()).hexdigest() != checksum:
            raise DamagedRecord("failed its checksum")
        if d.get("key") != key:
            raise DamagedRecord(f"holds the record of another run ({d.get('key')!r})")
        migrate_record(dict(d))  # a newer schema raises TaskrelError here, before any use
        check_record_shape(d)
        return d

    def _weights_problem(self, rec: RunRecord) -> str | None:
        if not rec.ok or not rec.spec.get("keep_weights"):
            return None
        p = self.path / "weights" / f"{rec.key}.pt"
        try:
            st = os.stat(p)
        except OSError:
            return "its weights are missing"
        if rec.weights_sha256 is None:  # migrated from schema 1: nothing to check against
            return None
        # ctime too: a write in place that restores size and mtime (utime) still moves ctime
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_dev)
        seen = self._verified.get(rec.key)
        if seen and seen[0] == stamp and seen[1] == rec.weights_sha256:
            return None
        try:
            digest = sha256_file(p)
        except OSError as e:
            return f"its weights cannot be read ({e.strerror or e})"
        if digest != rec.weights_sha256:
            return "its weights fail their checksum"
        self._verified[rec.key] = (stamp, digest)
        return None

    def _say(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            log.warning(message)

    def _quarantine(self, key: str, reason: str, weights: bool = True) -> None:
        """Move a run's record (and weights) to ``corrupt/`` (its run is then trained again)."""
        dest = self.path / "corrupt"
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        moved = []
        paths = [self.path / "runs" / f"{key}.json"] + ([self.path / "weights" / f"{key}.pt"] if weights else [])
        for src in paths:
            try:
                dest.mkdir(exist_ok=True)
                os.replace(src, dest / f"{src.name}.{stamp}")
                moved.append(src.name)
            except FileNotFoundError:
                pass
            except OSError as e:
                self._say(f"taskrel store: could not move {src.name} aside ({e.strerror or e})")
        self._verified.pop(key, None)
        where = f"moved to corrupt/ ({', '.join(moved)})" if moved else "already gone"
        log.warning("taskrel store: %s; %s; the run will be trained again", reason, where)

    def load_weights(self, key: str) -> dict[str, Any]:
        """Stored weights of a run, verified (loaded with ``weights_only=True``: tensors only).

        Missing, damaged or never-kept weights raise :class:`~taskrel.errors.MissingWeights`
        (the record is moved aside, so the next plan trains the run again).
        """
        import torch

        rec = self.get(key)
        p = self.weights_path(key)
        if rec is None or not rec.ok or not rec.spec.get("keep_weights"):
            raise MissingWeights(f"store: weights of run {key} are missing (run absent, failed or trained without keep_weights=True); it will be trained again")
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated or damaged beyond what a checksum of schema 1 catches
            self._quarantine(key, f"run {key}: its weights cannot be loaded ({type(e).__name__})")
            raise MissingWeights(f"store: weights of run {key} are missing (damaged); it will be trained again") from None

    def keys(self) -> list[str]:
        """Keys of the records present (not yet verified); other files are ignored, said once."""
        out = []
        try:
            entries = list(os.scandir(self.path / "runs"))
        except FileNotFoundError:
            return []
        for e in entries:
            stem, dot, ext = e.name.rpartition(".")
            if dot and ext == "json" and is_run_key(stem):
                out.append(stem)
            elif not (e.name.startswith(".") and e.name.endswith(".tmp")):  # in-flight writes are silent
                self._say(f"taskrel store: ignoring runs/{e.name} (not a run record)")
        return sorted(out)

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

    # ------------------------------------------------------------------ writing
    def put(self, record: RunRecord) -> None:
        """Store a finished run (atomically). A failure of the environment is never stored."""
        if record.retryable:
            raise TaskrelError(f"store: run {record.key} failed in its environment ({record.error}); such failures are not stored")
        p = self._record_path(record.key)
        if p.is_dir() or p.is_symlink():
            self._quarantine(record.key, f"runs/{p.name} is not a regular file", weights=False)
        d = record.to_dict()
        d["checksum"] = hashlib.sha256(_canonical(d).encode()).hexdigest()
        atomic_write_text(p, json.dumps(d))

    def save_weights(self, key: str, state: dict[str, Any]) -> str:
        """Write a run's weights atomically; returns their sha256 (for the run's record)."""
        import torch

        p = self.weights_path(key)
        atomic_write(p, lambda f: torch.save(state, f))
        return sha256_file(p)

    # ------------------------------------------------------------------ claims
    def claim(self, key: str) -> Claim | None:
        """Claim run ``key`` for training; None while a live worker holds it.

        Use the claim as a context manager; a heartbeat keeps it alive until the block ends. A
        claim whose owner on this host is gone is taken over at once; others after ``lease`` s.
        >>> import tempfile
        >>> store = RunStore(tempfile.mkdtemp())
        >>> with store.claim("ab" * 12) as c:
        ...     store.claim("ab" * 12) is None, store.is_claimed("ab" * 12)
        (True, True)
        >>> store.is_claimed("ab" * 12)
        False
        """
        self._record_path(key)
        return try_claim(self.path / "claims", key, self.lease)

    def is_claimed(self, key: str) -> bool:
        return is_claimed(self.path / "claims", key, self.lease)

    def train_once(self, key: str, train: Callable[[], RunRecord], reuse: Callable[[RunRecord], bool] = lambda r: True) -> tuple[RunRecord | None, bool]:
        """Train run ``key`` unless another worker is training it or has stored it.

        Claims the run, looks for its record again (another worker may have just stored it:
        reused when ``reuse(record)``), else calls ``train()`` and stores what it returns (a
        failure of the environment, status ``"error"``, is returned but not stored). Returns
        ``(record, trained)``; ``(None, False)`` when a live worker holds the claim.
        """
        claim = self.claim(key)
        if claim is None:
            return None, False
        with claim:
            rec = self.get(key)
            if rec is not None and reuse(rec):
                return rec, False
            rec = train()
            if not rec.retryable:
                self.put(rec)
            return rec, True


__all__ = ["RunSpec", "RunRecord", "RunStore", "RECORD_SCHEMA", "is_run_key",
           "atomic_write", "atomic_write_text", "atomic_write_bytes", "atomic_savefig"]
