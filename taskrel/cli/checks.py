"""Checks of the command line's own inputs, made before anything is built or trained.

Each failure is a :class:`~taskrel.errors.TaskrelError` naming the option, the value and what
to do instead. They are cheap: nothing here imports torch.

>>> import argparse
>>> check_common(argparse.Namespace(store=""))
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: --store '': give the run store's folder, e.g. --store runs
>>> check_suite_name("yaest")
Traceback (most recent call last):
...
taskrel.errors.TaskrelError: unknown suite 'yaest'; did you mean 'yeast'... (built-in suites: ...)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from pathlib import Path

from taskrel.cli.names import did_you_mean, probe_kinds, suites
from taskrel.errors import TaskrelError
from taskrel.files import check_output_dir

DASK_INSTALL = "pip install 'taskrel[dask]' (or: pip install 'dask[distributed]')"


def check_common(args: argparse.Namespace) -> None:
    """The options many commands share: ``--store``, ``--backend``, ``--seed(s)``, ``--retries``."""
    store = getattr(args, "store", None)
    if store is not None:
        if not str(store).strip():
            raise TaskrelError(f"--store {store!r}: give the run store's folder, e.g. --store runs")
        p = Path(store)
        if p.exists() and not p.is_dir():
            raise TaskrelError(f"--store {store!r} is a file, not a folder; give the run store's folder (it is created if missing)")
    for name, least in (("seed", 0), ("seeds", 1), ("retries", 0), ("max_runs", 1)):
        value = getattr(args, name, None)
        if value is not None and value < least:
            raise TaskrelError(f"--{name.replace('_', '-')} must be at least {least}, got {value}")
    if getattr(args, "backend", None) == "dask":
        missing = [m for m in ("dask", "distributed") if importlib.util.find_spec(m) is None]
        if missing:
            raise TaskrelError(f"--backend dask needs {' and '.join(missing)}, which is not installed here: {DASK_INSTALL}")


def task_list(text: str | None) -> list[str] | None:
    """The tasks ``--tasks a,b`` names (None if not given); one that names none is refused.

    >>> task_list("c0t0, c0t1")
    ['c0t0', 'c0t1']
    """
    if text is None:
        return None
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    if not tasks:
        raise TaskrelError(f"--tasks {text!r} names no task; give task names separated by commas (taskrel suites SUITE lists them)")
    return tasks


def writable_folder(path: str | Path, what: str) -> Path:
    """``path`` is (or can be made) a folder this process can write in; nothing is left behind.

    It tries to write a file in the folder, or in its nearest existing parent, so that a folder
    the permission bits do not protect but the system refuses (``/proc``, a read-only mount) is
    refused before any training, not when the results are saved.
    """
    p = check_output_dir(path, what)
    here = p if p.is_dir() else p.absolute().parent
    while not here.exists():
        here = here.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".taskrel-write-check-", dir=here)
    except OSError as e:
        raise TaskrelError(f"{what} {str(path)!r}: cannot write in {str(here)!r} ({e.strerror}); choose a folder you can write to") from None
    os.close(fd)
    os.unlink(name)
    return p


def writable_file(path: str | Path, what: str) -> Path:
    """``path`` can be written as a file (not a folder; its folder writable)."""
    p = Path(path)
    if str(path).strip() == "":
        raise TaskrelError(f"{what} {str(path)!r}: give a file name")
    if p.is_dir():
        raise TaskrelError(f"{what} {str(path)!r} is a folder; give a file name, e.g. {str(p / 'out.json')!r}")
    writable_folder(p.absolute().parent, what)
    return p


def input_file(path: str | Path, what: str, kinds: str = "a file") -> Path:
    """``path`` is an existing, readable file (a folder or a missing path is named as such)."""
    p = Path(path)
    if str(path).strip() == "":
        raise TaskrelError(f"{what}: give the path of {kinds}")
    if not p.exists():
        raise TaskrelError(f"{what} {str(path)!r} does not exist; give the path of {kinds}")
    if p.is_dir():
        raise TaskrelError(f"{what} {str(path)!r} is a folder; give the path of {kinds}")
    if not os.access(p, os.R_OK):
        raise TaskrelError(f"{what} {str(path)!r}: cannot be read (permissions)")
    return p


def check_suite_name(name: str) -> str:
    """``name`` is a built-in suite (a close name is suggested otherwise)."""
    if name in suites():
        return name
    from taskrel.suites import list_suites  # a suite registered since names.py was written

    known = list_suites()
    if name in known:
        return name
    raise TaskrelError(f"unknown suite {name!r}{did_you_mean(name, known)} (built-in suites: {', '.join(sorted(known))}; "
                       "'taskrel suites' describes them)")


def check_probe_kind(kind: str) -> str:
    """``kind`` is a registered probe kind (a close name is suggested otherwise)."""
    if kind in probe_kinds():
        return kind
    from taskrel.probes import PROBES

    if kind in PROBES:
        return kind
    raise TaskrelError(f"unknown probe kind {kind!r}{did_you_mean(kind, PROBES)} (kinds: {', '.join(sorted(PROBES))})")


__all__ = ["check_common", "check_probe_kind", "check_suite_name", "input_file", "task_list", "writable_file", "writable_folder"]
