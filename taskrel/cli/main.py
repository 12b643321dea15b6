"""Entry point: builds the parser from the command modules and turns every error into a message.

Building the parser imports nothing heavy (no torch, scipy or pandas): the command modules
import what a command needs inside the function that runs it, and the names they offer (probe
kinds, suites, backends) come from :mod:`taskrel.cli.names`. So ``taskrel --help`` is quick.

Exit codes: 0 done, 1 the work gave no answer or failed unexpectedly, 2 bad input (a message
names what is wrong and what to do), 130 interrupted.

>>> main(["--version"])
taskrel 0.1.0
0
>>> main(["stdy"])  # stderr: ... invalid choice: 'stdy' (...); did you mean 'study'?
2
"""

from __future__ import annotations

import argparse
import errno
import importlib
import re
import sys
from collections.abc import Sequence

from taskrel.cli.names import close_to, did_you_mean
from taskrel.errors import TaskrelError

# Each module defines register(subparsers).
COMMAND_MODULES = ["core", "probe", "analysis", "study"]

INTERRUPTED = "taskrel: interrupted; finished runs are stored, run the same command again to resume"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors suggest the choice or option the user probably meant."""

    def error(self, message: str):  # type: ignore[override]
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if found:
            message = message[: found.end(2) + 1] + did_you_mean(found.group(1), re.findall(r"'([^']*)'", found.group(2)))
        super().error(message)

    def options(self) -> list[str]:
        """Every option string this parser accepts (``--n-jobs``, ``-o``, ...)."""
        return [s for action in self._actions for s in action.option_strings]


def build_parser() -> Parser:
    """The ``taskrel`` parser with every command (imports no heavy module)."""
    import taskrel

    parser = Parser(prog="taskrel", description="Which tasks should learn together, and how much of a network should they share?")
    parser.add_argument("--version", action="version", version=f"taskrel {taskrel.__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"taskrel.cli.{name}").register(sub)
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of an unexpected error")
    parser.commands = sub.choices  # type: ignore[attr-defined]
    return parser


def _unknown(parser: Parser, args: argparse.Namespace, extras: list[str]) -> int:
    """Refuse arguments no command takes, suggesting the option meant (``--n_jobs`` -> ``--n-jobs``)."""
    where = parser.commands.get(getattr(args, "command", None), parser)
    words = []
    for word in extras:
        found = close_to(word.split("=", 1)[0], where.options()) if word.startswith("-") else []
        words.append(f"{word} (did you mean {' or '.join(found)}?)" if found else word)
    message = f"unrecognized argument{'s' if len(extras) > 1 else ''}: {' '.join(words)}"
    where.error(message)
    return 2  # pragma: no cover - error() exits


def _parse(argv: Sequence[str] | None) -> tuple[Parser, argparse.Namespace]:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        _unknown(parser, args, extras)
    return parser, args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``taskrel`` command line (``argv`` None: ``sys.argv[1:]``); the exit code.

    With ``argv`` None this process is the command: once it is done, a late Ctrl-C (while the
    interpreter shuts down) is ignored, so it cannot print a traceback from a library's cleanup.
    """
    try:
        return _main(argv)
    finally:
        if argv is None:
            _ignore_late_interrupts()


def _ignore_late_interrupts() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _main(argv: Sequence[str] | None) -> int:
    try:
        try:
            parser, args = _parse(argv)
        except SystemExit as e:  # --help, --version, or a usage error already printed
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return run_command(args)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; a message (never a traceback, unless ``--debug``) for each error."""
    from taskrel.cli.checks import check_common

    debug = bool(getattr(args, "debug", False))
    try:
        check_common(args)
        return int(args.func(args) or 0)
    except TaskrelError as e:
        if debug:
            raise
        print(f"taskrel: error: {suggest(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        return unexpected(args.command, e)


def suggest(message: str) -> str:
    """``message`` with a "did you mean" when it names an unknown value and lists the valid ones.

    >>> suggest("suite 'planted': unknown task 'unrelatd'; tasks are ['c0t0', 'c0t1', 'unrelated']")
    "suite 'planted': unknown task 'unrelatd'; tasks are ['c0t0', 'c0t1', 'unrelated']; did you mean 'unrelated'?"
    """
    found = re.search(r"unknown [\w -]*?'([^']+)'.*?\[([^\]]*)\]", message)
    if found is None or "did you mean" in message:
        return message
    return message + did_you_mean(found.group(1), re.findall(r"'([^']*)'", found.group(2)))


# an OSError with these errno values is about a path the user gave (exit 2); others (a full
# disk, a lost connection) are the environment's (exit 1)
PATH_ERRORS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.EEXIST, errno.ENAMETOOLONG}


def unexpected(command: str, e: BaseException) -> int:
    """One line for an error nobody planned for: exit 2 for a bad path the user gave, else 1."""
    if isinstance(e, BrokenPipeError):  # `taskrel suites | head`
        return 0
    where = f" {e.filename!r}" if isinstance(e, OSError) and e.filename else ""
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    print(f"taskrel: error: 'taskrel {command}' failed: {type(e).__name__}{where}: {text} (rerun with --debug to see the traceback)",
          file=sys.stderr)
    return 2 if isinstance(e, OSError) and e.errno in PATH_ERRORS else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
