"""Claims on runs being trained, and workers that do not outlive their study.

A claim is a lease: the file ``claims/<key>.claim`` in the store, created atomically (a complete
temporary file hard-linked into place; the link fails when the claim exists), so of several
processes or Dask workers that reach for one run, exactly one trains it. The owner's heartbeat
thread refreshes the claim's time stamp every ``lease / 4`` seconds. A claim not refreshed for
``lease`` seconds (the lease its owner wrote into it) belongs to a worker that died (or hung)
and is taken over. A claim also names its owner (host, PID, the process's start time and the
machine's boot): a claim whose owner on this host is gone (killed, interrupted, or its PID now
belongs to another process) is taken over at once, without waiting for its lease. Taking over,
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
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.files import temp_prefix

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


def _boot_id() -> str | None:
    p = Path("/proc/sys/kernel/random/boot_id")
    return p.read_text().strip() or None if p.is_file() else None


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode() if len(fields) > 19 and fields[0] != b"Z" else None


def _pid_namespace() -> str | None:
    return os.readlink("/proc/self/ns/pid") if os.path.islink("/proc/self/ns/pid") else None


_HOST = socket.gethostname()
_BOOT = _boot_id()
_PIDNS = _pid_namespace()  # containers sharing a host name see other PIDs


def _this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": _HOST, "pid": pid, "start": _start_time(pid), "boot": _BOOT, "pidns": _PIDNS}


def owner_alive(info: dict[str, Any]) -> bool | None:
    """Whether the process that wrote a claim still runs: None when it cannot be told (another host).

    A claim's owner on this host is gone when its PID no longer exists, when that PID now
    belongs to a process started at another time (PID reuse), or when the machine rebooted
    since. A claim from another PID namespace (another container) cannot be told.

    >>> owner_alive(_this_process()), owner_alive({"host": "elsewhere.invalid", "pid": 1})
    (True, None)
    """
    if not isinstance(info, dict) or info.get("host") != _HOST or not isinstance(info.get("pid"), int):
        return None
    pid = info["pid"]
    if info.get("pidns") != _PIDNS:  # another container: its PIDs are not ours to check
        return None
    if info.get("boot") and _BOOT and info["boot"] != _BOOT:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    except (OverflowError, ValueError, OSError):
        return None
    start = _start_time(pid)
    if start is None:  # a zombie, or /proc unreadable
        return False if Path("/proc/self/stat").exists() else True
    return not info.get("start") or info["start"] == start


def _info(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def claim_holder(directory: str | Path, key: str) -> dict[str, Any] | None:
    """Who holds the claim on run ``key``: its owner, host, pid, ``age`` (seconds since its last
    heartbeat), ``held`` (seconds since it was made) and ``alive`` (:func:`owner_alive`); None
    when there is no claim.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> claim_holder(d, "abc123") is None
    True
    >>> with try_claim(d, "abc123") as c:
    ...     h = claim_holder(d, "abc123")
    >>> h["pid"] == os.getpid(), h["alive"]
    (True, True)
    """
    path = Path(directory) / f"{key}.claim"
    age = _age(path)
    if age is None:
        return None
    d = _info(path) or {}
    since = d.get("since")
    held = time.time() - since if isinstance(since, (int, float)) else age
    return {"owner": d.get("owner"), "host": d.get("host"), "pid": d.get("pid"), "age": age, "held": held, "alive": owner_alive(d)}


def describe_holder(holder: dict[str, Any] | None) -> str:
    """A few words on a claim's holder for a message: ``"process 123 on host h (alive)"``."""
    if not holder:
        return "no one"
    where = f"process {holder.get('pid')} on {holder.get('host')}" if holder.get("pid") else "an unknown worker"
    state = {True: "alive", False: "gone", None: "another host"}[holder.get("alive")]
    return f"{where} ({state}, last heartbeat {holder['age']:.0f} s ago)"


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

    Use it as a context manager: leaving the block (normally or by an exception, a
    ``KeyboardInterrupt`` included) releases it. A claim dropped without release (an interrupt
    between claiming and entering the block) is released when it is garbage collected: its
    heartbeat holds no reference to it. ``lost`` becomes True if another worker took the claim
    over (this one stalled too long).
    """

    def __init__(self, path: Path, owner: str, lease: float):
        self.path = path
        self.owner = owner
        self.lease = float(lease)
        self.lost = False
        self._released = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_beat, args=(weakref.ref(self), self._stop, self.lease / 4),
                                        name=f"taskrel-claim-{path.stem}", daemon=True)
        self._thread.start()

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
        if self._released:
            return
        self._released = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        with _locked(self.path.parent):
            if _owner_of(self.path) == self.owner:
                _remove(self.path)

    def __del__(self) -> None:
        if not getattr(self, "_released", True):
            with contextlib.suppress(Exception):
                self.release()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Claim({self.path.stem!r}, owner={self.owner!r}, lease={self.lease})"


def _beat(ref: weakref.ref, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        claim = ref()
        if claim is None or not claim.refresh():
            return
        del claim


def _new_owner() -> str:
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def check_claims_folder(directory: Path, create: bool = True) -> None:
    """Make (with ``create``) or check the claims folder: a :class:`TaskrelError` when it is a file."""
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        elif directory.exists() and not directory.is_dir():
            raise FileExistsError
    except (FileExistsError, NotADirectoryError):
        raise TaskrelError(f"store: {str(directory)!r} must be the folder of claims on runs being trained, "
                           "but it is a file; move it away (the store recreates the folder)") from None


def _link(tmp: str, path: Path, owner: str, lease: float) -> Claim | None:
    """Hard-link a complete claim into place: the claim, or None when one exists. An interrupt
    at any point leaves no claim of this owner behind."""
    try:
        os.link(tmp, path)
        return Claim(path, owner, lease)
    except FileExistsError:
        return None
    except BaseException:
        if _owner_of(path) == owner:
            _remove(path)
        raise


def _stale(path: Path, key: str, lease: float) -> bool:
    """True (with one log line) when the existing claim on ``key`` may be taken over."""
    age = _age(path)
    if age is None:
        return True
    info = _info(path) or {}
    who = describe_holder({"pid": info.get("pid"), "host": info.get("host"), "age": age, "alive": owner_alive(info)})
    if owner_alive(info) is False:
        log.warning("taskrel store: taking over the claim on run %s from %s", key, who)
        return True
    if age < _lease_of(path, lease):
        return False
    log.warning("taskrel store: taking over the claim on run %s from %s (no heartbeat for %.0f s)", key, who, age)
    return True


def try_claim(directory: str | Path, key: str, lease: float = DEFAULT_LEASE) -> Claim | None:
    """Claim run ``key`` in ``directory``; None while a live worker holds it.

    A claim whose owner on this host is gone is taken over at once; any other claim once it
    has expired (not refreshed for its lease), each with one log line.
    """
    directory = Path(directory)
    check_claims_folder(directory)
    path = directory / f"{key}.claim"
    owner = _new_owner()
    body = json.dumps({"owner": owner, **_this_process(), "lease": lease, "since": time.time()})
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(key), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        claim = _link(tmp, path, owner, lease)
        if claim is not None:
            return claim
        with _locked(directory):
            if not _stale(path, key, lease):
                return None
            if path.exists() or path.is_symlink():
                _remove(path)
            return _link(tmp, path, owner, lease)
    finally:
        os.unlink(tmp)


def is_claimed(directory: str | Path, key: str, lease: float = DEFAULT_LEASE) -> bool:
    """True while a live claim on ``key`` exists (not expired, its owner not known to be gone)."""
    path = Path(directory) / f"{key}.claim"
    age = _age(path)
    return age is not None and age < _lease_of(path, lease) and owner_alive(_info(path) or {}) is not False


WAIT_NOTICE = 4.0
"""Seconds a run may wait for another worker's claim before the wait is said (then every
:data:`WAIT_EVERY` seconds)."""
WAIT_EVERY = 30.0


class ClaimWaits:
    """Runs waiting for other workers' claims: each wait is said after :data:`WAIT_NOTICE`
    seconds (which run, whose claim, for how long), then every :data:`WAIT_EVERY` seconds.

    ``directory``: the claims folder; ``names``: run key -> name to show; ``say``: prints a line.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> held = try_claim(d, "abc123")
    >>> waits = ClaimWaits(d, {"abc123": "pair a+b"}, print)
    >>> waits.begin("abc123"); waits.since["abc123"] -= 5  # it has waited 5 s
    >>> waits.say()  # doctest: +ELLIPSIS
    taskrel: waiting 5 s so far for run pair a+b (abc123): another worker trains it: process ... (alive, ...
    >>> held.release()
    """

    def __init__(self, directory: str | Path, names: dict[str, str], say: Callable[[str], None]):
        self.directory, self.names, self.print = Path(directory), names, say
        self.since: dict[str, float] = {}
        self.said: dict[str, float] = {}

    def begin(self, key: str) -> None:
        """Run ``key`` found claimed by another worker (the wait starts now, if not already)."""
        self.since.setdefault(key, time.monotonic())

    def end(self, key: str) -> None:
        """Run ``key`` has its record; a wait that was said is said to be over."""
        if self.since.pop(key, None) is not None and key in self.said:
            self.print(f"taskrel: run {self.names.get(key, key)} is done (another worker trained it)")
        self.said.pop(key, None)

    def say(self) -> None:
        """Say each wait (begun, not ended) that is due to be said."""
        now = time.monotonic()
        for key in list(self.since):
            waited = now - self.since.get(key, now)
            if waited < WAIT_NOTICE or now - self.said.get(key, -WAIT_EVERY) < WAIT_EVERY:
                continue
            self.said[key] = now
            holder = claim_holder(self.directory, key)
            held = f", claimed {holder['held']:.0f} s ago" if holder else ""
            self.print(f"taskrel: waiting {waited:.0f} s so far for run {self.names.get(key, key)} ({key}): "
                       f"another worker trains it: {describe_holder(holder)}{held}")
