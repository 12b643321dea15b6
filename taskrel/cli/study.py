"""``taskrel study [FILE]`` (the main job) and ``taskrel report STORE_OR_OUT``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run a study end to end (probes, analyses, validation) and write its report",
        description="Run a study file (TOML, see studies/). Without FILE, the built-in default study "
        "on the digits suite runs (about ten minutes on two cores). A rerun resumes from the store.",
    )
    p.add_argument("file", nargs="?", default=None, help="study file (default: the built-in digits study)")
    p.add_argument("--store", default="runs", help="run store directory (default: ./runs); reruns resume from it")
    p.add_argument("--out", default=None, help="report folder (default: reports/<study name>)")
    p.add_argument("--n-jobs", type=int, default=-1, help="runs trained at once (default -1: one per core)")
    p.add_argument("--backend", default="loky", choices=["loky", "threading", "sequential", "dask"])
    p.add_argument("--device", default=None, help="torch device for every run, e.g. cuda")
    p.add_argument("--check", action="store_true", help="validate the study file and stop (trains nothing)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("report", help="re-render a study's report from its saved result (trains nothing)")
    p.add_argument("path", help="a study's output folder, its study_result.json, or a run store holding one study")
    p.add_argument("--out", default=None, help="write the report here (default: next to the result)")
    p.set_defaults(func=cmd_report)


def cmd_study(args: argparse.Namespace) -> int:
    from taskrel.study import load_study, run_study, safe_name, validate_study

    study = load_study(args.file)
    if args.check:
        suite = validate_study(study)
        print(f"study {study.name!r} is valid: suite {suite.name}, tasks {', '.join(study.task_list(suite))}, "
              f"probes {', '.join(p.name for p in study.probes)}")
        return 0
    out = Path(args.out) if args.out else Path("reports") / safe_name(study.name)
    result = run_study(study, args.store, out, n_jobs=args.n_jobs, quiet=args.quiet, backend=args.backend, device=args.device)
    from taskrel.report.figures import headline

    head = headline(result)
    if head["recommended"]:
        print(f"recommended: {' | '.join('+'.join(g) for g in head['groups'])}")
    for name, m in head["measured"].items():
        print(f"  {name:<14} test loss {m['test_loss']:.4f} ± {m['std']:.4f} ({m['seeds']} seeds)")
    for e in result.errors:
        print(f"  problem: {e['part']}: {e['error']}", file=sys.stderr)
    if result.failed_runs:
        print(f"  {len(result.failed_runs)} run(s) failed; listed in the report", file=sys.stderr)
    print(f"report: {out / 'report.html'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from taskrel.report import write_report
    from taskrel.study import StudyResult, find_result

    path = find_result(args.path)
    result = StudyResult.load(path)
    out = Path(args.out) if args.out else path.parent
    paths = write_report(result, out, quiet=False)
    print(f"report: {paths['html']}")
    return 0
