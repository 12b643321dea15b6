"""What the parts of a running study share: the study, suite, tasks, runner and result.

The probes, analyses and validation of a :class:`~taskrel.study.Study` each receive one
:class:`StudyContext`; a part that fails is recorded in the result and the others go on.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskrel.base import clone
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.study.result import StudyResult
from taskrel.suite import Suite


def error_text(e: BaseException) -> str:
    """A one-line reason: a TaskrelError's message, else the exception's last line."""
    if isinstance(e, TaskrelError):
        return str(e)
    return traceback.format_exception_only(type(e), e)[-1].strip()


@dataclass
class StudyContext:
    """The shared state of one study fit (``study`` is the :class:`~taskrel.study.Study`)."""

    study: Any
    suite: Suite
    tasks: list[str]
    runner: Runner
    result: StudyResult
    verbose: bool = True

    def say(self, msg: str) -> None:
        """A progress line on stderr (unless the study is quiet)."""
        if self.verbose:
            print(f"taskrel study: {msg}", file=sys.stderr, flush=True)

    def guard(self, part: str, fn: Callable[[], Any]) -> Any:
        """Run one part; on failure record it and go on (KeyboardInterrupt still stops)."""
        try:
            return fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            msg = error_text(e)
            self.result.errors.append({"part": part, "error": msg})
            self.say(f"{part} failed: {msg} (the study goes on)")
            return None

    def layout_of(self, blocks: Sequence[Sequence[str]], widths: Mapping[str, float] | None = None) -> SharingLayout:
        """Flat groups as a layout of this suite, tasks kept in the study's order; ``widths``
        (``{task: width}``, default 1) gives each group's network its width."""
        return SharingLayout.from_groups(blocks, self.suite.n_stages, order=self.tasks).with_widths(widths or {})


__all__ = ["StudyContext", "clone", "error_text"]
