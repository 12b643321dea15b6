"""Digests of what a run depends on: the code and initial values of a network block.

A run's key (:meth:`taskrel.store.RunSpec.key`) hashes the blocks it trains through
:meth:`taskrel.suite.Suite.fingerprint`, which uses :func:`module_digest` here: a changed
``forward`` or a changed initialisation gives a new key, so no stale result is reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from torch import nn


def digest_of(parts: Sequence[str]) -> str:
    """A short hash of some strings, in order."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _code_digest(code: Any, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            _code_digest(c, h)
        else:
            h.update(repr(c).encode())


def _class_digest(cls: type) -> str:
    """A class by its version string (``taskrel_version``) or by the code of its own methods."""
    if cls.__module__.split(".")[0] == "torch":
        return f"{cls.__module__}.{cls.__qualname__}"
    version = getattr(cls, "taskrel_version", None)
    if version is not None:
        return f"{cls.__qualname__}@{version}"
    h = hashlib.sha256(cls.__qualname__.encode())
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == "torch" or klass is object:
            continue
        for name, attr in sorted(vars(klass).items()):
            fn = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
            code = getattr(fn, "__code__", None)
            if code is not None:
                h.update(name.encode())
                _code_digest(code, h)
    return h.hexdigest()


def module_digest(m: nn.Module) -> str:
    """A hash of a block: its structure, parameter and buffer values, and its classes' code.

    Torch's own modules count by name (their code comes with torch). A class of yours counts
    by the bytecode of its methods, or by its ``taskrel_version`` attribute when it has one
    (say that instead when ``forward`` calls helpers defined elsewhere).

    >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    >>> module_digest(a) == module_digest(b)      # other initial values
    False
    >>> b.load_state_dict(a.state_dict()) and None
    >>> module_digest(a) == module_digest(b)
    True
    >>> class Twice(nn.Module):
    ...     def forward(self, x):
    ...         return 2 * x
    >>> class Thrice(nn.Module):
    ...     def forward(self, x):
    ...         return 3 * x
    >>> module_digest(Twice()) == module_digest(Thrice())
    False
    """
    h = hashlib.sha256(repr(m).encode())
    for cls in sorted({type(sub) for sub in m.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        h.update(_class_digest(cls).encode())
    for name, p in sorted(m.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def function_digest(fn: Any) -> str:
    """A hash of a plain function by its qualified name and bytecode (a callable object: its class).

    >>> function_digest(lambda x: x + 1) != function_digest(lambda x: x + 2)
    True
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        return _class_digest(type(fn))
    h = hashlib.sha256(getattr(fn, "__qualname__", "").encode())
    _code_digest(code, h)
    return h.hexdigest()


__all__ = ["digest_of", "function_digest", "module_digest"]
