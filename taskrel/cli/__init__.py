"""The ``taskrel`` command. Each sub-command lives in its own module with ``register(sub)``."""

from taskrel.cli.main import main

__all__ = ["main"]
