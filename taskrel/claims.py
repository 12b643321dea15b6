"""Claims on runs being trained, and workers that do not outlive their study.

A claim is a lease: the file ``claims/<key>.claim`` in the store, created atomically (a complete
temporary file hard-linked into place; the link fails when the claim exists), so of several
processes or Dask workers that reach for one run, exactly one trains it. The owner's heartbeat
thread refreshes the claim's time stamp every ``lease / 4`` seconds. A claim not refreshed for
``lease`` seconds (the lease its owner wrote into it) belongs to a worker that died (or hung)
and is taken over. Taking over,
refreshing and releasing happen under an advisory lock (``claims/.lock``), so a live claim is
never removed by mistake; creating a claim needs no lock.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> first = try_claim(d, "abc123", lease=30)
>>> second = try_claim(d, "abc123", lease=30)
>>> first is not None, second is None
(True, True)
>>> first.release()
>>> third = try_claim(d, "abc123", lease=30)
>>> third is not None
True
>>> third.release()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere takeovers rely on the lease alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("taskrel.store")

DEFAULT_LEASE = 60.0


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _owner_of(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_bytes().decode("utf-8"))["owner"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _lease_of(path: Path, default: float) -> float:
    """The lease its owner declared in a claim (it heartbeats within a quarter of it)."""
    try:
        lease = float(json.loads(path.read_bytes().decode("utf-8"))["lease"])
    except (OSError, ValueError, KeyError, TypeError):
        return default
    return lease if 0 < lease < float("inf") else default


def _age(path: Path) -> float | None:
    try:
        return time.time() - os.lstat(path).st_mtime
    except FileNotFoundError:
        return None


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # a directory (or worse) named like a claim: move it out of the way
        os.replace(path, path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.stale"))


class Claim:
    """A held claim on one run; a heartbeat thread keeps it fresh until :meth:`release`.

    Use it as a context manager: leaving the block (normally or by an exception) releases it.
    ``lost`` becomes True if another worker took the claim over (this one stalled too long).
    """

    def __init__(self, path: Path, owner: str, lease: float):
        self.path = path
        self.owner = owner
        self.lease = float(lease)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"taskrel-claim-{path.stem}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease / 4):
            if not self.refresh():
                return

    def refresh(self) -> bool:
        """Renew the lease; False (and ``lost``) when the claim is no longer this owner's."""
        with _locked(self.path.parent):
            if _owner_of(self.path) != self.owner:
                self.lost = True
                return False
            os.utime(self.path)
        return True

    def release(self) -> None:
        """Stop the heartbeat and remove the claim (if it is still this owner's)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        with _locked(self.path.parent):
            if _owner_of(self.path) == self.owner:
                _remove(self.path)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Claim({self.path.stem!r}, owner={self.owner!r}, lease={self.lease})"


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def try_claim(directory: str | Path, key: str, lease: float = DEFAULT_LEASE) -> Claim | None:
    """Claim run ``key`` in ``directory``; None when a live worker holds it.

    An expired claim (not refreshed for ``lease`` seconds) is taken over, with one log line.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.claim"
    owner = _new_owner()
    body = json.dumps({"owner": owner, "pid": os.getpid(), "host": socket.gethostname(), "lease": lease, "since": time.time()})
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        try:
            os.link(tmp, path)
            return Claim(path, owner, lease)
        except FileExistsError:
            pass
        with _locked(directory):
            age = _age(path)
            if age is not None:
                if age < _lease_of(path, lease):
                    return None
                log.warning("taskrel store: taking over the claim on run %s from %s (no heartbeat for %.0f s)", key, _owner_of(path) or "an unknown worker", age)
                _remove(path)
            try:
                os.link(tmp, path)
            except FileExistsError:  # pragma: no cover - a creator slipped in between
                return None
        return Claim(path, owner, lease)
    finally:
        os.unlink(tmp)


def is_claimed(directory: str | Path, key: str, lease: float = DEFAULT_LEASE) -> bool:
    """True while a live (not expired) claim on ``key`` exists."""
    path = Path(directory) / f"{key}.claim"
    age = _age(path)
    return age is not None and age < _lease_of(path, lease)


# ------------------------------------------------------------------ worker lifetime
_watching: set[int] = set()


def exit_with_parent(pid: int, host: str | None = None, every: float = 1.0) -> None:
    """In a worker process: exit as soon as process ``pid`` (the study) is gone.

    Does nothing in the study's own process or on another host. Idempotent per ``pid``. A
    study killed with SIGKILL otherwise leaves its pool's workers running for minutes.
    """
    if pid == os.getpid() or pid in _watching or (host is not None and host != socket.gethostname()):
        return
    _watching.add(pid)

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - alive, owned by someone else
                pass

    threading.Thread(target=watch, name="taskrel-parent-watch", daemon=True).start()
