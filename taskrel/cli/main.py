"""Entry point: builds the parser from the command modules and turns errors into messages."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from taskrel.errors import TaskrelError

# Each module defines register(subparsers).
COMMAND_MODULES = ["core", "probe", "analysis", "study"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskrel",
        description="Which tasks should learn together, and how much of a network should they share?",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"taskrel.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TaskrelError as e:
        print(f"taskrel: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("taskrel: interrupted; finished runs are stored, run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
