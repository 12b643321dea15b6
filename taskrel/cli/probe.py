"""``taskrel probe KIND SUITE``: measure a task-affinity matrix and write it as JSON.

Any registered probe kind (:data:`taskrel.probes.PROBES`) can be asked for; its parameters
are given as ``--param NAME=VALUE`` (a few common ones have their own flags), so a new kind
needs no new flags here.
"""

from __future__ import annotations

import argparse
from typing import Any

from taskrel.cli.checks import check_probe_kind, check_suite_name, task_list, writable_file
from taskrel.cli.common import add_run_args, add_suite_args, out_path, parse_options, runner_of
from taskrel.cli.names import probe_kinds
from taskrel.errors import TaskrelError

# parameters every probe takes from the command line's own flags, not from --param
OWN = ("tasks", "config", "seeds")


def probe_tasks(args: argparse.Namespace) -> list[str] | None:
    """The ``--tasks`` list (the suite is loaded whole, so runs are shared across task lists)."""
    return task_list(getattr(args, "tasks", None))


def probe_params(cls: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The probe's parameters from ``--param`` and the kind-specific flags, checked by name."""
    params = dict(getattr(args, "params", None) or {})
    kind = cls.kind
    if kind == "transfer":
        params.setdefault("mode", args.mode)
        params.setdefault("gain", args.gain)
    if kind == "pairwise" and args.cheap:
        params["cheap"] = {"epochs_fraction": args.cheap_epochs, "data_fraction": args.cheap_data}
    if kind == "similarity" and "kind" in params:
        params["kinds"] = params.pop("kind")
    known = [n for n in cls._param_names() if n not in OWN]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TaskrelError(f"probe {kind}: unknown --param {unknown}; known: {', '.join(known)}")
    if params.get("window") is not None:
        w = params["window"]
        if not isinstance(w, list) or len(w) != 2:
            raise TaskrelError(f"probe {kind}: --param window=START,STOP (training steps), got {w!r}")
        params["window"] = (int(w[0]), int(w[1]))
    return params


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="measure task affinity with one probe and write it as JSON",
        description="Measure a task-affinity matrix (values[source, target], larger = better "
        "for the target). Runs go through the run store: a second call trains nothing.",
    )
    p.add_argument("kind", help=f"probe kind: {', '.join(probe_kinds())}")
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
    check_probe_kind(args.kind)
    check_suite_name(args.suite)
    out = writable_file(args.out or f"affinity-{args.kind}.json", "--out")  # before anything trains
    args.params = parse_options(args.param)
    tasks = probe_tasks(args)
    from taskrel.probes import probe_class
    from taskrel.suites import get_suite
    from taskrel.train import TrainConfig

    cls = probe_class(args.kind)
    suite = get_suite(args.suite, **parse_options(args.option))
    if tasks is not None:
        suite.check_tasks(tasks)
    if args.seeds < 1:
        raise TaskrelError(f"--seeds must be >= 1, got {args.seeds}")
    changes = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size), ("patience", args.patience)) if v is not None}
    config = TrainConfig(device=args.device).with_(**changes)
    probe = cls(tasks=tasks, config=config, seeds=list(range(args.seeds)), **probe_params(cls, args))
    probe.check(suite)
    with runner_of(args) as runner:
        aff = probe.fit(suite, runner).affinity_
    path = aff.save(out_path(str(out), str(out)))
    print(format_affinity(aff))
    c = aff.cost
    print(f"cost: {c.runs} runs, {c.steps} steps, {c.examples} examples, {c.seconds:.1f} s of compute (training and measuring)")
    if probe.failed_:
        print(f"{len(probe.failed_)} run(s) failed; first: {probe.failed_[0].label}: {probe.failed_[0].error}")
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
