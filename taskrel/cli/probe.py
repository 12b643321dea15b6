"""``taskrel probe KIND SUITE``: measure a task-affinity matrix and write it as JSON.

Probe kinds plug in through :data:`PROBES`: a name mapped to a builder
``builder(suite, settings, args) -> Affinity``. ``args`` is the parsed command line: the run
store is ``args.store``, the task list ``probe_tasks(args)``, and probe-specific options given as
``--param NAME=VALUE`` are in ``args.params`` (a dict), so a new kind needs no new flags.
"""

from __future__ import annotations

import argparse
from typing import Any

from taskrel.cli.common import add_run_args, add_suite_args, out_path, parse_options, probe_settings
from taskrel.errors import TaskrelError


def probe_tasks(args: argparse.Namespace) -> list[str] | None:
    """The ``--tasks`` list (the suite is loaded whole, so runs are shared across task lists)."""
    if not getattr(args, "tasks", None):
        return None
    return [t.strip() for t in args.tasks.split(",") if t.strip()]


def open_store(args: argparse.Namespace):
    from taskrel.store import RunStore

    return RunStore(args.store)


def _transfer(suite: Any, settings: Any, args: argparse.Namespace):
    from taskrel.probes.transfer import TransferProbe

    probe = TransferProbe(probe_tasks(args), mode=args.mode, gain=args.gain, settings=settings)
    return probe.fit(suite, open_store(args)).affinity_


def _pairwise(suite: Any, settings: Any, args: argparse.Namespace):
    from taskrel.probes.pairwise import PairwiseProbe

    cheap = None
    if args.cheap:
        cheap = {"epochs_fraction": args.cheap_epochs, "data_fraction": args.cheap_data}
    return PairwiseProbe(probe_tasks(args), cheap=cheap, settings=settings).fit(suite, open_store(args)).affinity_


def _params(args: argparse.Namespace, kind: str, known: tuple[str, ...]) -> dict[str, Any]:
    params = dict(getattr(args, "params", None) or {})
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TaskrelError(f"probe {kind}: unknown --param {unknown}; known: {', '.join(known)}")
    if params.get("window") is not None:
        w = params["window"]
        if not isinstance(w, list) or len(w) != 2:
            raise TaskrelError(f"probe {kind}: --param window=START,STOP (training steps), got {w!r}")
        params["window"] = (int(w[0]), int(w[1]))
    return params


def _gradient(suite: Any, settings: Any, args: argparse.Namespace):
    """--param every=10 method=batched|loop window=START,STOP lookahead=true|false"""
    from taskrel.probes.gradient import GradientProbe

    p = _params(args, "gradient", ("every", "method", "window", "lookahead"))
    return GradientProbe(probe_tasks(args), settings=settings, **p).fit(suite, open_store(args)).affinity_


def _lookahead(suite: Any, settings: Any, args: argparse.Namespace):
    """--param every=10 method=batched|loop window=START,STOP"""
    from taskrel.probes.lookahead import LookaheadProbe

    p = _params(args, "lookahead", ("every", "method", "window"))
    return LookaheadProbe(probe_tasks(args), settings=settings, **p).fit(suite, open_store(args)).affinity_


def _similarity(suite: Any, settings: Any, args: argparse.Namespace):
    """--param kind=linear|debiased|rbf|rsa probe_set=val n_probe=N (a staged affinity)"""
    from taskrel.probes.similarity import SimilarityProbe

    p = _params(args, "similarity", ("kind", "kinds", "probe_set", "n_probe"))
    kinds = p.pop("kind", None) or p.pop("kinds", "linear")
    return SimilarityProbe(probe_tasks(args), kinds=kinds, settings=settings, **p).fit(suite, open_store(args)).affinity_


# ---------------------------------------------------------------------------------------
# PROBE REGISTRY: name -> builder(suite, settings, args) -> Affinity.
# Other probe kinds are added here (one line each); nothing else in this module needs to change.
PROBES = {
    "transfer": _transfer,
    "pairwise": _pairwise,
    "gradient": _gradient,
    "lookahead": _lookahead,
    "similarity": _similarity,
}
# ---------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="measure task affinity with one probe and write it as JSON",
        description="Measure a task-affinity matrix (values[source, target], larger = better "
        "for the target). Runs go through the run store: a second call trains nothing.",
    )
    p.add_argument("kind", help=f"probe kind: {', '.join(PROBES)}")
    add_suite_args(p)
    add_run_args(p)
    p.add_argument("--out", default=None, help="affinity JSON to write (default: affinity-KIND.json)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of every run")
    p.add_argument("--batch-size", type=int, default=None, help="batch size of every run")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience (epochs)")
    p.add_argument("--mode", choices=["frozen", "finetune"], default="frozen", help="transfer: train only a new head on the source's encoder (frozen) or everything (finetune)")
    p.add_argument("--gain", choices=["absolute", "relative"], default="absolute", help="transfer: metric difference, or that difference over the from-scratch metric")
    p.add_argument("--cheap", action="store_true", help="pairwise: cheap runs (fewer epochs and/or less data)")
    p.add_argument("--cheap-epochs", type=float, default=0.25, help="with --cheap: fraction of the epochs (default 0.25)")
    p.add_argument("--cheap-data", type=float, default=1.0, help="with --cheap: fraction of the training data (default 1)")
    p.add_argument("--param", "-p", action="append", metavar="NAME=VALUE", help="option of the probe kind (repeatable)")
    p.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from taskrel.suites import get_suite

    if args.kind not in PROBES:
        raise TaskrelError(f"unknown probe kind {args.kind!r}; known kinds are: {', '.join(PROBES)}")
    args.params = parse_options(args.param)
    suite = get_suite(args.suite, **parse_options(args.option))
    tasks = probe_tasks(args)
    if tasks is not None:
        suite.check_tasks(tasks)
    settings = probe_settings(args)
    changes = {k: v for k, v in (("lr", args.lr), ("batch_size", args.batch_size), ("patience", args.patience)) if v is not None}
    if changes:
        settings.config = settings.config.with_(**changes)
    aff = PROBES[args.kind](suite, settings, args)
    path = aff.save(out_path(args.out, f"affinity-{args.kind}.json"))
    print(format_affinity(aff))
    c = aff.cost
    print(f"cost: {c.runs} runs, {c.steps} steps, {c.examples} examples, {c.seconds:.1f} s of training")
    print(f"affinity written to {path}")
    return 0


def format_affinity(aff: Any, digits: int = 3) -> str:
    """A short text table: sources as rows, targets as columns, mean (and +-std over seeds)."""
    if aff.is_staged:
        return "\n\n".join(f"[stage {aff.stages[k] if aff.stages else k}]\n" + format_affinity(aff.stage(k), digits) for k in range(aff.values.shape[0]))
    head = f"{aff.measure or 'affinity'}: values[source, target], larger = better for the target; {aff.n_seeds} seed(s)"
    frame = aff.to_frame().round(digits)
    if aff.n_seeds > 1:
        std = aff.to_frame().copy()
        std.loc[:, :] = aff.std
        frame = frame.astype(str) + "±" + std.round(digits).astype(str)
    return head + "\n" + frame.to_string()
