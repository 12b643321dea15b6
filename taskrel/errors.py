"""Errors raised by taskrel.

Every problem with user input is a :class:`TaskrelError` (a ``ValueError``) whose message names
what is wrong: the task, the field and the value. They are raised before any training starts.
"""

from __future__ import annotations


class TaskrelError(ValueError):
    """Bad input: the message names the task, field and value at fault."""


class RunFailed(RuntimeError):
    """A training run could not finish (for example its loss became NaN).

    The run store records the reason; a study goes on without it.
    """

    def __init__(self, reason: str, step: int | None = None):
        super().__init__(reason if step is None else f"{reason} (at step {step})")
        self.reason = reason
        self.step = step
