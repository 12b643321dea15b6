"""The few places where the report reads a study result.

The study's result type is being reshaped (fields instead of dict keys, ``decision`` a
property instead of a method); the report reads the parts that may move through these
functions only, so such a change is made here once.
"""

from __future__ import annotations

from typing import Any


def decision_of(result) -> Any:
    """The result's :class:`~taskrel.study.decision.Decision`, whether ``decision`` is a
    property or a method of the result.

    >>> class R:
    ...     decision = "d"
    >>> decision_of(R())
    'd'
    """
    d = result.decision
    # a property's value is the Decision itself (it has a .decision field), even where it can
    # also be called for compatibility; an old result's bound method is called
    return d() if callable(d) and not hasattr(d, "decision") else d


def probe_compute_seconds(result, name: str) -> float | None:
    """Seconds of compute a probe cost as its runs' records state them (plus its measuring
    time), whenever those runs were trained; None when the result has no cost for it.

    This, not the affinity's own cost or this invocation's wall time, is what a probe cost:
    a study that read its runs from the store has near-zero wall time.

    >>> class R:
    ...     probes = {"pairwise": {"cost": {"runs": 4, "seconds": 67.2}}, "cka": {}}
    >>> probe_compute_seconds(R(), "pairwise"), probe_compute_seconds(R(), "cka")
    (67.2, None)
    """
    cost = ((result.probes or {}).get(name) or {}).get("cost") or {}
    seconds = cost.get("seconds")
    return None if seconds is None else float(seconds)


def study_source(result) -> str:
    """The study file's text as the study recorded it ('' for a study built in Python)."""
    return (result.study or {}).get("source") or ""


def suite_name(result) -> str:
    """The suite's name as the study recorded it."""
    return str((result.study or {}).get("suite") or (result.suite or {}).get("name") or "")


def built_in_python(result) -> bool:
    """Whether the study was built in Python rather than read from a study file.

    Such a study's suite may be the user's own (not in the registry) or a built-in one built
    with options the result does not record, so no CLI command can rebuild it: the report
    shows Python that rebuilds the answer's model from the saved layout instead.

    >>> class R:
    ...     study, suite, invocation = {"suite": "mine", "source": ""}, {}, {}
    >>> built_in_python(R())
    True
    >>> R.study = {"suite": "digits", "source": "name = 'x'"}
    >>> built_in_python(R())
    False
    """
    if (getattr(result, "invocation", None) or {}).get("study_file"):
        return False
    return not study_source(result)


def in_registry(name: str) -> bool:
    """Whether ``name`` is a built-in suite that ``taskrel train`` can build.

    >>> in_registry("digits"), in_registry("multilabel7")
    (True, False)
    """
    from taskrel.suites import list_suites

    try:
        return name in list_suites()
    except Exception:  # a registry that cannot be listed names no suite
        return False


def front_name(budget: float) -> str:
    """The validation's name of the grouping chosen at ``budget`` (``"budget 3"``), from the
    study module that names it (``taskrel.study.steps``, earlier ``taskrel.study.validate``).

    >>> front_name(3)
    'budget 3'
    """
    try:
        from taskrel.study.steps import front_name as name
    except ImportError:
        from taskrel.study.validate import front_name as name
    return name(budget)
