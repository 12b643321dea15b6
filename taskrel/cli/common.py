"""Argument helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from taskrel.cli.checks import check_suite_name, task_list, writable_file
from taskrel.cli.names import BACKENDS
from taskrel.errors import TaskrelError


def parse_options(items: list[str] | None) -> dict:
    """``["n_examples=300", "tasks=a,b"]`` -> ``{"n_examples": 300, "tasks": ["a", "b"]}``."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise TaskrelError(f"option {item!r} must look like NAME=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v.split(",") if "," in v else v
    return out


def add_suite_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="built-in suite name (see 'taskrel suites')")
    p.add_argument("--option", "-o", action="append", metavar="NAME=VALUE", help="suite option, e.g. -o n_examples=500 (repeatable)")
    p.add_argument("--tasks", help="comma-separated subset of the suite's tasks")


def load_suite(args: argparse.Namespace):
    """The suite ``args.suite`` names, built with its ``--option`` values and cut to ``--tasks``."""
    from taskrel.suites import get_suite

    options = parse_options(args.option)
    tasks = task_list(getattr(args, "tasks", None))  # before the suite is built
    suite = get_suite(check_suite_name(args.suite), **options)
    if tasks is not None:
        suite = suite.subset(tasks)
    return suite


def add_execution_args(p: argparse.ArgumentParser) -> None:
    """How runs are trained: --n-jobs, --backend, --scheduler, --retries (a Runner's settings)."""
    p.add_argument("--n-jobs", type=int, default=-1,
                   help=f"runs trained at once, each on one thread (default -1: every core available, {_cores()} here)")
    p.add_argument("--backend", default="loky", choices=list(BACKENDS),
                   help="loky: worker processes (default); dask: a dask.distributed cluster")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address, e.g. tcp://10.0.0.1:8786 (with --backend dask; default: a local cluster)")
    p.add_argument("--retries", type=int, default=0, help="train a failed run this many more times (stored failures too)")


def _cores() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def runner_of(args: argparse.Namespace):
    """The Runner the command line asks for (on ``args.store``)."""
    from taskrel.runner import Runner

    return Runner(args.store, args.n_jobs, args.backend, args.scheduler, not args.quiet, args.retries)


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="runs", help="run store directory (default: ./runs); reruns resume from it")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1)")
    p.add_argument("--epochs", type=int, default=None, help="max epochs per run")
    add_execution_args(p)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def probe_settings(args: argparse.Namespace) -> dict:
    """The training config and seeds the flags ask for, as parameters: ``{"config", "seeds"}``."""
    from taskrel.train import TrainConfig

    cfg = TrainConfig(device=args.device)
    if args.epochs:
        cfg = cfg.with_(epochs=args.epochs)
    if args.seeds < 1:
        raise TaskrelError(f"--seeds must be >= 1, got {args.seeds}")
    return {"config": cfg, "seeds": list(range(args.seeds))}


def out_path(path: str | None, default: str, what: str = "--out") -> Path:
    """The file to write (``default`` if none given), checked writable, its folder created."""
    p = writable_file(path or default, what)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p
