"""``taskrel study [FILE]`` (the main job) and ``taskrel report STORE_OR_OUT``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taskrel.cli.checks import input_file, writable_folder
from taskrel.cli.common import add_execution_args
from taskrel.cli.names import close_to, suites
from taskrel.errors import TaskrelError

HOW_TO_WRITE = ("a study file is TOML: name = \"my-study\", then [suite] name = \"planted\", then one table per "
                "probe, e.g. [probes.pairwise]; see studies/*.toml and docs/cli.md")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run a study end to end (probes, analyses, validation) and write its report",
        description="Run a study file (TOML, see studies/). Without FILE, the built-in default study "
        "on the digits suite runs (about 3.3 minutes on two busy cores from an empty store, as measured in "
        "studies/results/digits-default/summary.json). A rerun resumes from the store. --check lists "
        "every error in the file and the runs it plans, training nothing.",
    )
    p.add_argument("file", nargs="?", default=None, help="study file (default: the built-in digits study)")
    p.add_argument("--store", default="runs", help="run store directory (default: ./runs); reruns resume from it")
    p.add_argument("--out", default=None, help="report folder (default: reports/<study name>)")
    add_execution_args(p)
    p.add_argument("--device", default=None, help="torch device for every run, e.g. cuda")
    p.add_argument("--check", action="store_true", help="list every error in the study file and the runs it plans; trains nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("report", help="re-render a study's report from its saved result (trains nothing)")
    p.add_argument("path", help="a study's output folder, its study_result.json, or a run store holding one study")
    p.add_argument("--out", default=None, help="write the report here (default: next to the result)")
    p.set_defaults(func=cmd_report)


def study_file(name: str | None) -> Path | None:
    """The study file ``name`` gives (None: the built-in study); a missing one is explained.

    A suite's name (``taskrel study planted``) points at ``studies/<suite>.toml`` when that
    file exists, and otherwise says how to write a study file.
    """
    if name is None:
        return None
    p = Path(name)
    if p.exists():
        return input_file(p, "study", "a study file (TOML)")
    bare = p.suffix == "" and len(p.parts) == 1  # a word, not a path: perhaps a suite's name
    suite = name if name in suites() else next(iter(close_to(name, suites(), n=1)), None) if bare else None
    if suite is not None:
        said = f"{name!r} is a suite, not a study file" if suite == name else f"did you mean the suite {suite!r}? (a suite is not a study file)"
        there = Path("studies") / f"{suite}.toml"
        hint = (f"{said}; its study file is here: taskrel study {there}" if there.is_file()
                else f"{said}; {HOW_TO_WRITE}")
    else:
        folder = p.parent if str(p.parent) not in ("", ".") else Path(".")
        tomls = [str(t) for t in folder.glob("*.toml")] + ([str(t) for t in Path("studies").glob("*.toml")] if folder == Path(".") else [])
        found = close_to(str(p), tomls, n=1)
        hint = f"did you mean {found[0]}?" if found else HOW_TO_WRITE
    raise TaskrelError(f"study file {name!r} does not exist; {hint}")


def cmd_study(args: argparse.Namespace) -> int:
    """Run the study; exit 1 when it gave no recommendation or a probe it asked for gave nothing.

    A probe that measured some tasks (others' runs failed) did give something: the tasks it
    could not measure are left out, said on stderr and in the report, and the exit code is 0
    when a recommendation was made for the remaining tasks.
    """
    path = study_file(args.file)
    if args.check:
        return check_study_file(path, args.store)
    from taskrel.study import Study

    study = Study.from_toml(path)
    out = Path(args.out) if args.out else Path("reports") / _folder(study.name)
    writable_folder(out, "--out")  # before anything trains, and creating nothing
    return _run(args, path, study, out)


def _folder(name: str) -> str:
    import taskrel.study as study

    fn = getattr(study, "study_folder", None) or study.safe_name
    return fn(name)


def check_study_file(path: Path | None, store: str | None) -> int:
    """``--check``: every error in the file, or the runs it plans; exit 2 if any error."""
    from taskrel.cli.lint import lint_study

    lint = lint_study(path, store)
    where = str(path) if path is not None else "the built-in study"
    n = len(lint.errors)
    print(f"{where}: " + (f"{n} error{'s' if n != 1 else ''}" if n else f"valid (study {lint.name!r})"))
    for line in lint.lines():
        print(line)
    return 2 if lint.errors else 0


def _run(args: argparse.Namespace, path: Path | None, study, out: Path) -> int:
    from taskrel.report import summary_text, write_report
    from taskrel.study import run_study

    # the file's path (not the parsed study) so that the report's Reproduce commands name it
    fitted = run_study(str(path) if path is not None else study, args.store, out, n_jobs=args.n_jobs, quiet=args.quiet,
                       backend=args.backend, device=args.device, scheduler=args.scheduler, retries=args.retries)
    result = getattr(fitted, "result_", fitted)  # Study.fit may return the study, its result in result_
    write_report(result, out, quiet=args.quiet)
    print(summary_text(result))
    for e in result.errors:
        print(f"  problem: {e.part}: {e.error}", file=sys.stderr)
    if result.failed_runs:
        print(f"  {len(result.failed_runs)} run(s) failed; listed in the report", file=sys.stderr)
    for task, why in result.left_out.items():
        print(f"  left out: task {task!r}: {why}", file=sys.stderr)
    print(f"report: {out / 'report.html'}")
    empty = [name for name, info in result.probes.items() if info.error is not None]
    if empty:
        print(f"taskrel: probe(s) {', '.join(empty)} produced nothing (see the problems above)", file=sys.stderr)
    if study.grouping is not None and result.recommended is None:
        print("taskrel: the study gave no recommendation (see the problems above)", file=sys.stderr)
    return 1 if empty or (study.grouping is not None and result.recommended is None) else 0


def cmd_report(args: argparse.Namespace) -> int:
    if not Path(args.path).exists():
        raise TaskrelError(f"report: {args.path!r} does not exist; give a study's output folder, its study_result.json, or its run store")
    if args.out:
        writable_folder(args.out, "--out")
    from taskrel.report import write_report
    from taskrel.study import StudyResult, find_result

    path = find_result(args.path)
    result = StudyResult.load(path)
    out = Path(args.out) if args.out else path.parent
    paths = write_report(result, out, quiet=False)
    print(f"report: {paths['html']}")
    return 0
