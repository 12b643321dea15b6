"""``taskrel suites`` and ``taskrel train``."""

from __future__ import annotations

import argparse
from pathlib import Path

from taskrel.cli.checks import check_suite_name, input_file
from taskrel.cli.common import add_suite_args, load_suite
from taskrel.cli.names import suites
from taskrel.errors import TaskrelError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("suites", help="list the built-in suites (with their tasks: name them, or --tasks)")
    p.add_argument("names", nargs="*", metavar="SUITE", help="show these suites' tasks and stages (builds them)")
    p.add_argument("--tasks", action="store_true", help="show every suite's tasks and stages (builds each: slow)")
    p.add_argument("--no-tasks", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.set_defaults(func=cmd_suites)

    p = sub.add_parser("train", help="train one sharing layout on a suite and print per-task metrics")
    add_suite_args(p)
    p.add_argument("--layout", default="shared", help="shared | separate | groups:a+b,c | path to a layout JSON")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=None, help="examples per step (default: TrainConfig's, 64)")
    p.add_argument("--patience", type=int, default=None, help="epochs without improvement before stopping (default 10)")
    p.add_argument("--rows", choices=("all", "labelled"), default=None,
                   help="labelled: step only through rows labelled for the layout's tasks (sparse labels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--store", default=None, help="store the run in this run store (reused if present)")
    p.set_defaults(func=cmd_train)


def cmd_suites(args: argparse.Namespace) -> int:
    """Names and descriptions from :mod:`taskrel.cli.names` (fast); tasks only when asked."""
    names = [check_suite_name(n) for n in args.names]
    show = names if names else list(suites())
    for name in show:
        print(f"{name}: {suites().get(name, '')}".rstrip(": "))
        if names or args.tasks:
            _print_tasks(name)
    if not names and not args.tasks:
        print("\n'taskrel suites NAME' lists a suite's tasks; a study file names its suite under [suite] (see studies/).")
    return 0


def _print_tasks(name: str) -> None:
    from taskrel.suites import get_suite

    try:
        s = get_suite(name)
    except TaskrelError as e:
        print(f"  (not available here: {e})")
        return
    print(f"  tasks ({len(s.tasks)}): {', '.join(s.task_names)}")
    print(f"  stages: {', '.join(s.stage_names)}; examples: {s.summary()['examples']}")  # arrays or a Dataset


def parse_layout(text: str, tasks: list[str], n_stages: int):
    from taskrel.layout import SharingLayout

    if text == "shared":
        return SharingLayout.shared(tasks, n_stages)
    if text == "separate":
        return SharingLayout.separate(tasks, n_stages)
    if text.startswith("groups:"):
        groups = [g.split("+") for g in text[len("groups:"):].split(",") if g]
        return SharingLayout.groups(groups, n_stages)
    return SharingLayout.from_json(layout_file(text).read_text(encoding="utf-8"))


def layout_file(text: str) -> Path:
    """The layout JSON that ``--layout`` names (checked before any suite is built)."""
    if not Path(text).exists():
        raise TaskrelError(f"--layout {text!r}: not 'shared', 'separate', 'groups:a+b,c' or an existing JSON file")
    return input_file(text, "--layout", "a layout JSON file (or shared, separate, groups:a+b,c)")


def cmd_train(args: argparse.Namespace) -> int:
    if args.layout not in ("shared", "separate") and not args.layout.startswith("groups:"):
        layout_file(args.layout)  # before the suite is built
    from taskrel.train import TrainConfig

    suite = load_suite(args)
    layout = parse_layout(args.layout, suite.task_names, suite.n_stages)
    given = {"batch_size": args.batch_size, "patience": args.patience, "rows": args.rows}
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, device=args.device, **{k: v for k, v in given.items() if v is not None})
    print(f"suite {suite.name}: {layout.describe()}")
    if args.store:
        from taskrel.runner import Runner
        from taskrel.store import RunSpec

        with Runner(args.store) as runner:
            rec = runner.run(suite, [RunSpec(layout, cfg, args.seed)])[0]
        if not rec.ok:
            print(f"run failed: {rec.error}")
            return 1
        metrics, steps, secs, params = rec.metrics, rec.steps, rec.seconds, rec.n_parameters
    else:
        from taskrel.train import train

        res = train(suite, layout, cfg, args.seed)
        metrics, steps, secs, params = res.metrics, res.steps, res.seconds, res.n_parameters
    print(f"{'task':<16}{'metric':>8}{'val loss':>10}{'val':>9}{'test loss':>11}{'test':>9}")
    for t in layout.tasks:
        m = suite.task(t).metric
        v, te = metrics["val"][t], metrics["test"][t]
        print(f"{t:<16}{m:>8}{v['loss']:>10.4f}{v['metric']:>9.4f}{te['loss']:>11.4f}{te['metric']:>9.4f}")
    print(f"{params} parameters, {steps} steps, {secs:.1f} s")
    return 0
