"""Files written so that a process killed at any moment leaves the old file or the new one,
and files read so that a damaged one gives a clear error, never a traceback.

Every record, report and figure taskrel writes goes through :func:`atomic_write`; every file a
user hands to taskrel (a study, a result, an affinity, a table) is read by :func:`read_text`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from taskrel.errors import TaskrelError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()

STALE_AFTER = 24 * 3600.0
"""Seconds after which a temporary file whose writer cannot be checked is removed as stale."""

_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def temp_prefix(name: str) -> str:
    """The prefix of a temporary file written on the way to ``name``: it names its writer (a
    tag of this host and this process's PID), so that :func:`remove_stale_temporaries` can tell
    a killed writer's leftover from a write in progress.

    >>> temp_prefix("a.json").startswith(".a.json.~")
    True
    """
    return f".{name}.~{_HOST_TAG}-{os.getpid()}~"


def _writer_gone(entry: os.DirEntry, now: float) -> bool:
    """True when a temporary file's writer is known to be gone, or the file is stale."""
    head, tag, rest = entry.name.partition(".~")
    host, dash, pid = rest.partition("~")[0].partition("-")
    if tag and dash and host == _HOST_TAG and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError, OSError):
            pass
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER
    except OSError:
        return False


def remove_stale_temporaries(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Remove the temporary files (``.<name>.*.tmp``) that killed writers left in ``folder``.

    A temporary file is removed when the process that wrote it on this host is gone, or when it
    is older than :data:`STALE_AFTER` (a writer on another host, or from an older taskrel). Writes
    in progress are left alone; a folder that is missing or read-only is left as it is. Returns
    what was removed. Call it when opening a folder that taskrel writes into (a store, a study's
    output, a figures folder).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / ".r.json.~000000-1~x.tmp").write_text("")   # another host: kept until stale
    >>> _ = (d / (temp_prefix("r.json") + "y.tmp")).write_text("")  # this process: writing
    >>> remove_stale_temporaries(d), len(list(d.iterdir()))
    ([], 2)
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if recursive and not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
            removed += remove_stale_temporaries(e.path, recursive)
        elif e.name.startswith(".") and e.name.endswith(".tmp") and e.is_file(follow_symlinks=False) and _writer_gone(e, now):
            try:
                os.unlink(e.path)
                removed.append(Path(e.path))
            except OSError:
                pass
    return removed


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a temporary binary file, then rename it to ``path``.

    A process killed at any moment leaves either the old file or the complete new one, never
    a truncated one. Use it for figures: ``atomic_write(p, lambda f: fig.savefig(f, format="png"))``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> atomic_write(p, lambda f: f.write(b"xyz"))
    >>> p.read_bytes()
    b'xyz'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file renamed into place."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place."""
    atomic_write(path, lambda f: f.write(data))


def atomic_savefig(fig: Any, path: str | Path, **kwargs: Any) -> None:
    """Save a matplotlib figure atomically (its format from the file's suffix)."""
    fmt = kwargs.pop("format", None) or Path(path).suffix.lstrip(".") or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, **kwargs))


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of a user's file; a :class:`TaskrelError` naming ``what`` and the path
    when it is missing, a directory, unreadable or not UTF-8 text.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.toml"
    >>> _ = p.write_bytes(bytes([110, 61, 255]))
    >>> read_text(p, "study")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: study: file ... is not UTF-8 text (byte 0xff at position 2)
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise TaskrelError(f"{what}: file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise TaskrelError(f"{what}: {str(p)!r} is a directory, not a file") from None
    except OSError as e:
        raise TaskrelError(f"{what}: file {str(p)!r} cannot be read ({e.strerror or e})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TaskrelError(f"{what}: file {str(p)!r} is not UTF-8 text (byte 0x{raw[e.start]:02x} at position {e.start})") from None


def read_json(path: str | Path, what: str) -> Any:
    """A user's JSON file, parsed; a :class:`TaskrelError` when it cannot be read or parsed."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except ValueError as e:
        raise TaskrelError(f"{what}: {str(path)!r} is not valid JSON ({e})") from None


def check_output_dir(path: str | Path, what: str) -> Path:
    """Check, creating nothing, that ``path`` can be (or already is) a writable folder.

    >>> check_output_dir(__file__, "--out")
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: --out: ... exists and is not a folder
    """
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise TaskrelError(f"{what}: {str(p)!r} exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise TaskrelError(f"{what}: folder {str(p)!r} is not writable")
        return p
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise TaskrelError(f"{what}: {str(p)!r} cannot be created: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TaskrelError(f"{what}: {str(p)!r} cannot be created: {str(parent)!r} is not writable")
    return p


__all__ = ["remove_stale_temporaries", "temp_prefix", "STALE_AFTER", "atomic_write", "atomic_write_text", "atomic_write_bytes", "atomic_savefig", "sha256_file", "read_text", "read_json", "check_output_dir"]
