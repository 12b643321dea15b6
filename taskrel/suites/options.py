"""Options of the built-in suites, checked before anything is built: numbers in their range, and
arrays that fit in this machine's memory. Each error names the suite and the option."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from taskrel.errors import TaskrelError


def check_number(where: str, name: str, value: Any, low: float | None = None, high: float | None = None,
                 integer: bool = False, none: bool = False) -> None:
    """A suite option that must be a finite number (an integer with ``integer``) in [low, high].

    >>> check_number("planted", "noise", float("nan"), low=0)
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: planted: option noise must be a finite number >= 0, got nan
    """
    if value is None and none:
        return
    kind = "an integer" if integer else "a finite number"
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    ok = ok and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f" in [{low}, {high}]" if low is not None and high is not None else (
            f" >= {low}" if low is not None else (f" <= {high}" if high is not None else ""))
        raise TaskrelError(f"{where}: option {name} must be {kind}{bounds}{' or None' if none else ''}, got {value!r}")


def check_memory(where: str, what: str, n_bytes: float) -> None:
    """Refuse, before allocating, an array larger than half of this machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 2**40
    if n_bytes > total / 2:
        raise TaskrelError(f"{where}: {what} would need {n_bytes / 2**30:,.0f} GiB, more than half of this machine's "
                           f"{total / 2**30:,.0f} GiB; ask for fewer")


__all__ = ["check_memory", "check_number"]
