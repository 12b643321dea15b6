"""Errors raised by taskrel, and how a failed run is classified.

Every problem with user input is a :class:`TaskrelError` (a ``ValueError``) whose message names
what is wrong: the task, the field and the value. They are raised before any training starts.

A run that cannot finish is one of two things:

- a **result** (:class:`RunFailed`): the run itself went wrong, for example its loss became
  NaN. It is stored like any other result, with the task that diverged, and not trained again;
- a failure of the **environment** (:func:`is_environment_failure`): no memory, a device that
  is not there, a missing dependency, an interrupt. It says nothing about the run, so it is
  never stored: the next study (or a retry) trains the run again.

>>> is_environment_failure(MemoryError())
True
>>> is_environment_failure(RunFailed("training loss of task 'a' became nan", step=3, task="a"))
False
"""

from __future__ import annotations


class TaskrelError(ValueError):
    """Bad input: the message names the task, field and value at fault."""


class RunFailed(RuntimeError):
    """A training run could not finish (for example its loss became NaN): a result, stored.

    ``task`` names the task at fault where one is known (the task whose loss diverged).
    """

    def __init__(self, reason: str, step: int | None = None, task: str | None = None):
        super().__init__(reason if step is None else f"{reason} (at step {step})")
        self.reason = reason
        self.step = step
        self.task = task


class MissingWeights(LookupError):
    """A run's stored weights are missing or damaged; the run must be trained again.

    The store has already moved the run's record aside, so the next plan that needs the run
    trains it again.
    """


class EnvironmentFailure(RuntimeError):
    """A run could not be trained because of where it ran, not what it is (never stored)."""


# Messages of RuntimeErrors that come from the machine, not the run.
_ENVIRONMENT_MESSAGES = (
    "out of memory",
    "cuda error",
    "cudnn",
    "cublas",
    "no cuda gpus",
    "not compiled with cuda",
    "found no nvidia driver",
    "invalid device ordinal",
    "device-side assert",
    "expected one of cpu",
    "mps backend",
)


def is_environment_failure(exc: BaseException) -> bool:
    """True when ``exc`` comes from the machine (device, memory, interrupt, missing module).

    Such a failure is not stored as the run's result, so the run is trained again next time.

    >>> is_environment_failure(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    True
    >>> is_environment_failure(ModuleNotFoundError("No module named 'rdkit'"))
    True
    >>> is_environment_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    False
    """
    if isinstance(exc, RunFailed):
        return False
    if isinstance(exc, (EnvironmentFailure, MissingWeights, MemoryError, ImportError, KeyboardInterrupt, SystemExit, OSError)):
        return True
    if type(exc).__name__ in ("OutOfMemoryError", "AcceleratorError"):  # torch's own classes
        return True
    if isinstance(exc, (RuntimeError, AssertionError)):
        text = str(exc).lower()
        return any(m in text for m in _ENVIRONMENT_MESSAGES)
    return False
