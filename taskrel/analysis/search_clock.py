"""One time budget for a whole grouping search, and its progress reports.

Every solve inside :meth:`~taskrel.analysis.GroupingSearch.fit` asks the same clock how much
time is left, so ``time_limit`` bounds the whole search, not each solve. The clock also keeps
the best incumbent and bound seen so far and, once the search has run longer than ``quiet``
seconds, reports them (logger ``"taskrel"``, and the ``progress`` callback if one was given)
at most every ``every`` seconds, so a long search is never silent. A solver call wrapped in
:meth:`SearchClock.solving` is reported on from a helper thread while it runs (HiGHS releases
the GIL), so ``progress`` may be called from that thread.

>>> clock = SearchClock(time_limit=None)
>>> clock.left() == float("inf"), clock.expired()
(True, False)
>>> clock.update(incumbent=10.0, bound=9.0)
>>> round(clock.gap(), 3)
0.1
>>> seen = []
>>> clock = SearchClock(time_limit=5, progress=seen.append, quiet=0.0, every=0.0)
>>> clock.update(incumbent=4.0, bound=4.0, stage="master LP")
>>> seen[0]["stage"], seen[0]["gap"]
('master LP', 0.0)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from taskrel.errors import TaskrelError

LOG = logging.getLogger("taskrel")


def relative_gap(incumbent: float | None, bound: float | None) -> float | None:
    """``(incumbent - bound) / max(|incumbent|, 1e-12)``, clipped at 0; None if either is
    unknown. Objectives are minimised (losses; scores enter negated)."""
    if incumbent is None or bound is None or not math.isfinite(incumbent) \
            or not math.isfinite(bound):
        return None
    return max(0.0, (incumbent - bound) / max(abs(incumbent), 1e-12))


def check_time_limit(value) -> float | None:
    """A positive number of seconds or None (no limit), else a TaskrelError."""
    if value is None:
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise TaskrelError(f"grouping: time_limit must be a number of seconds or None, got "
                           f"{value!r}") from None
    if not t > 0:
        raise TaskrelError(f"grouping: time_limit must be positive (seconds), got {value!r}")
    return t


class SearchClock:
    """A deadline shared by every solve of one search, plus the incumbent/bound it reports.

    Parameters
    ----------
    time_limit : seconds for the whole search (None: no limit).
    progress : optional callable given a dict (stage, seconds, incumbent, bound, gap).
    quiet : seconds after the start before anything is reported.
    every : least seconds between two reports.
    """

    def __init__(self, time_limit: float | None, progress: Callable | None = None,
                 quiet: float = 2.0, every: float = 2.0):
        self.time_limit = check_time_limit(time_limit)
        if progress is not None and not callable(progress):
            raise TaskrelError(f"grouping: progress must be a callable, got "
                               f"{type(progress).__name__}")
        self.progress, self.quiet, self.every = progress, quiet, every
        self.start = time.perf_counter()
        self.incumbent: float | None = None
        self.bound: float | None = None
        self.hit = False  # set when some solve stopped on the limit
        self._held = 0.0  # seconds kept back for later steps (see reserve)
        self._last = -math.inf

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        """Seconds left (inf without a limit; never negative)."""
        if self.time_limit is None:
            return math.inf
        return max(0.0, self.time_limit - self.elapsed() - self._held)

    def expired(self) -> bool:
        return self.left() <= 0.0

    def short(self, fraction: float = 0.25, least: float = 0.5) -> bool:
        """True when less than ``fraction`` of the limit (or ``least`` seconds) is left."""
        if self.time_limit is None:
            return False
        return self.left() < max(least, fraction * self.time_limit)

    def gap(self) -> float | None:
        return relative_gap(self.incumbent, self.bound)

    def update(self, incumbent: float | None = None, bound: float | None = None,
               stage: str = "search") -> None:
        """Keep the better incumbent and bound; report them if the search has run long."""
        if incumbent is not None and (self.incumbent is None or incumbent < self.incumbent):
            self.incumbent = float(incumbent)
        if bound is not None and (self.bound is None or bound > self.bound):
            self.bound = float(bound)
        now = self.elapsed()
        if now < self.quiet or now - self._last < self.every:
            return
        self._last = now
        info = {"stage": stage, "seconds": round(now, 3), "incumbent": self.incumbent,
                "bound": self.bound, "gap": self.gap()}
        gap = "unknown" if info["gap"] is None else f"{info['gap']:.3g}"
        LOG.info("grouping: %s after %.1f s: incumbent %s, bound %s, gap %s", stage, now,
                 self.incumbent, self.bound, gap)
        if self.progress is not None:
            self.progress(info)

    @contextmanager
    def solving(self, stage: str) -> Iterator[None]:
        """Report the incumbent and bound every ``every`` seconds while a solver runs."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(0.25):  # update() reports at most every `every` seconds
                self.update(stage=f"{stage} (running)")

        helper = threading.Thread(target=tick, name="taskrel-search-progress", daemon=True)
        helper.start()
        try:
            yield
        finally:
            stop.set()
            helper.join()

    @contextmanager
    def reserve(self, fraction: float) -> Iterator[None]:
        """Keep ``fraction`` of the limit back from the solves inside (for a later step).

        >>> clock = SearchClock(10)
        >>> with clock.reserve(0.5):
        ...     clock.left() < 5.01
        True
        """
        held = self._held
        if self.time_limit is not None:
            self._held = held + fraction * self.time_limit
        try:
            yield
        finally:
            self._held = held
