"""``taskrel study [FILE]`` (the main job) and ``taskrel report STORE_OR_OUT``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taskrel.cli.common import add_execution_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run a study end to end (probes, analyses, validation) and write its report",
        description="Run a study file (TOML, see studies/). Without FILE, the built-in default study "
        "on the digits suite runs (about 4.6 minutes on two cores from an empty store, as measured in "
        "studies/results/digits-default/summary.json). A rerun resumes from the store.",
    )
    p.add_argument("file", nargs="?", default=None, help="study file (default: the built-in digits study)")
    p.add_argument("--store", default="runs", help="run store directory (default: ./runs); reruns resume from it")
    p.add_argument("--out", default=None, help="report folder (default: reports/<study name>)")
    add_execution_args(p)
    p.add_argument("--device", default=None, help="torch device for every run, e.g. cuda")
    p.add_argument("--check", action="store_true", help="validate the study file and stop (trains nothing)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("report", help="re-render a study's report from its saved result (trains nothing)")
    p.add_argument("path", help="a study's output folder, its study_result.json, or a run store holding one study")
    p.add_argument("--out", default=None, help="write the report here (default: next to the result)")
    p.set_defaults(func=cmd_report)


def cmd_study(args: argparse.Namespace) -> int:
    """Run the study; exit 1 when it gave no recommendation or a probe it asked for gave nothing.

    A probe that measured some tasks (others' runs failed) did give something: the tasks it
    could not measure are left out, said on stderr and in the report, and the exit code is 0
    when a recommendation was made for the remaining tasks.
    """
    from taskrel.files import check_output_dir
    from taskrel.report import summary_text, write_report
    from taskrel.study import load_study, run_study, safe_name, validate_study

    spec = load_study(args.file)
    out = Path(args.out) if args.out else Path("reports") / safe_name(spec.name)
    check_output_dir(out, "--out")  # before anything trains, and creating nothing
    if args.check:
        suite = validate_study(spec)
        print(f"study {spec.name!r} is valid: suite {suite.name}, tasks {', '.join(spec.task_list(suite))}, "
              f"probes {', '.join(p.name for p in spec.probes)}")
        return 0
    # the file's path (not the parsed study) so that the report's Reproduce commands name it
    result = run_study(args.file or spec, args.store, out, n_jobs=args.n_jobs, quiet=args.quiet, backend=args.backend,
                       device=args.device, scheduler=args.scheduler, retries=args.retries)
    write_report(result, out, quiet=args.quiet)
    print(summary_text(result))
    for e in result.errors:
        print(f"  problem: {e['part']}: {e['error']}", file=sys.stderr)
    if result.failed_runs:
        print(f"  {len(result.failed_runs)} run(s) failed; listed in the report", file=sys.stderr)
    for task, why in result.left_out.items():
        print(f"  left out: task {task!r}: {why}", file=sys.stderr)
    print(f"report: {out / 'report.html'}")
    empty = [name for name, info in result.probes.items() if "error" in info]
    if empty:
        print(f"taskrel: probe(s) {', '.join(empty)} produced nothing (see the problems above)", file=sys.stderr)
    if spec.grouping is not None and result.recommended is None:
        print("taskrel: the study gave no recommendation (see the problems above)", file=sys.stderr)
    return 1 if empty or (spec.grouping is not None and result.recommended is None) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from taskrel.report import write_report
    from taskrel.study import StudyResult, find_result

    path = find_result(args.path)
    result = StudyResult.load(path)
    out = Path(args.out) if args.out else path.parent
    paths = write_report(result, out, quiet=False)
    print(f"report: {paths['html']}")
    return 0
