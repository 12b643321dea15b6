"""The names the command line offers, found without importing anything heavy.

``taskrel --help``, ``taskrel suites`` and "did you mean" need the probe kinds, the suites and
the runner's backends; the registries that define them (:data:`taskrel.probes.PROBES`,
:func:`taskrel.suites.list_suites`, :data:`taskrel.runner.BACKENDS`) import torch and scipy.
So the kinds and suites are read from the registering decorators in the source
(``@register_probe("pairwise")``, ``@register_suite("planted", "description")``), and the
backends are written out. ``tests/cli/test_cli_names.py`` checks all three against the registries.

>>> "pairwise" in probe_kinds() and "planted" in suites()
True
>>> close_to("plantd", suites())[0]
'planted'
"""

from __future__ import annotations

import ast
import difflib
import functools
import re
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # the taskrel package
_NEXT = re.compile(r"^(?:@|def\s|class\s|async\s)", re.M)


@functools.cache
def registered(package: str, decorator: str) -> dict[str, tuple]:
    """``{name: other arguments}`` of every ``@decorator("name", ...)`` in ``taskrel/<package>/``,
    read from the source (the modules are not imported), sorted by name.

    >>> registered("probes", "register_probe")["pairwise"]
    ()
    """
    found: dict[str, tuple] = {}
    for path in sorted((HERE / package).glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(rf"^@{decorator}\(", text, re.M):
            end = _NEXT.search(text, m.end())
            call = ast.parse(text[m.start() + 1 : end.start() if end else None].strip(), mode="eval").body
            args = [ast.literal_eval(a) for a in call.args]  # type: ignore[attr-defined]
            found[args[0]] = tuple(args[1:])
    return dict(sorted(found.items()))


def probe_kinds() -> tuple[str, ...]:
    """The probe kinds of :data:`taskrel.probes.PROBES`, sorted."""
    return tuple(registered("probes", "register_probe"))


def suites() -> dict[str, str]:
    """The built-in suites and their descriptions, as :func:`taskrel.suites.list_suites` gives them."""
    return {name: args[0] if args else "" for name, args in registered("suites", "register_suite").items()}


# taskrel.runner.BACKENDS
BACKENDS = ("loky", "threading", "sequential", "dask")


def close_to(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices that look like ``word`` (a misspelling, ``_`` for ``-``, another case), best first.

    >>> close_to("--n_jobs", ["--n-jobs", "--store"])
    ['--n-jobs']
    >>> close_to("zzz", ["pairwise"])
    []
    """
    choices = list(choices)
    canon = {c.lower().replace("_", "-"): c for c in choices}
    key = word.lower().replace("_", "-")
    if key in canon:
        return [canon[key]]
    return [canon[m] for m in difflib.get_close_matches(key, list(canon), n=n, cutoff=0.6)]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a choice looks like ``word``, else ``""``.

    >>> did_you_mean("pairwse", probe_kinds())
    "; did you mean 'pairwise'?"
    """
    found = close_to(word, choices)
    if not found:
        return ""
    return "; did you mean " + " or ".join(repr(f) for f in found) + "?"


__all__ = ["BACKENDS", "close_to", "did_you_mean", "probe_kinds", "registered", "suites"]
