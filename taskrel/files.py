"""Files written so that a process killed at any moment leaves the old file or the new one,
and files read so that a damaged one gives a clear error, never a traceback.

Every record, report and figure taskrel writes goes through :func:`atomic_write`; every file a
user hands to taskrel (a study, a result, an affinity, a table) is read by :func:`read_text`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from taskrel.errors import TaskrelError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes", "atomic_savefig", "sha256_file", "read_text", "read_json", "check_output_dir"]
