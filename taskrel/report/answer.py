"""The answer as the reader gets it: the decision box's data, the JSON summary, the terminal
summary, and the commands to reproduce the study and train its answer.

Everything here is a function of the :class:`~taskrel.study.StudyResult` (and of the folder
the report is written to, for the commands); nothing trains.
"""

from __future__ import annotations

import json
import math
import shlex
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from taskrel.report.capacity import (
    CapacityView,
    capacity_view,
    chose_widths,
    front_groups,
    group_labels,
)
from taskrel.report.figures import headline
from taskrel.report.heatmaps import decimals_for, fmt
from taskrel.study.decision import CANNOT_TELL, SEPARATE, SHARE, SHARED, Decision
from taskrel.study.findings import GroupingFront
from taskrel.study.result import RESULT_FILE

BASELINE_FIRST = ("all-shared", "all-separate", "all-shared matched", "all-separate matched", "branched")


def shown_path(path: str | Path, cwd: str | None) -> str:
    """``path`` as typed from ``cwd``: relative when inside it, else absolute.

    >>> shown_path("/home/u/proj/out/x", "/home/u/proj"), shown_path("/tmp/x", "/home/u/proj")
    ('out/x', '/tmp/x')
    >>> shown_path("rel/x", "/home/u/proj")
    'rel/x'
    """
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    if cwd:
        try:
            return p.relative_to(Path(cwd)).as_posix() or "."
        except ValueError:
            pass
    return p.as_posix()


def _out_as_typed(result, out: str | Path | None) -> str:
    if out is None:
        return result.invocation.out or "."
    return shown_path(Path(out).resolve(), result.invocation.cwd)


def train_command(result, out: str | Path | None = None, layout: str | None = None) -> str:
    """The command that trains the recommended layout (``layout.json`` in the report folder
    ``out``) on the study's suite, with the study's epochs, learning rate, batch size, patience
    and rows; ``layout`` (``"separate"``, ``"shared"``) trains that instead.

    >>> from taskrel.study.result import StudyResult
    >>> r = StudyResult(study={"suite": "digits", "train": {"epochs": 5}}, suite={}, tasks=["a", "b"],
    ...                 invocation={"cwd": "/p", "out": "reports/x"})
    >>> train_command(r, "/p/reports/x")
    'taskrel train digits --tasks a,b --epochs 5 --layout reports/x/layout.json'
    """
    opts = "".join(f" -o {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in result.suite_options.items())
    train = result.train_settings
    extra = "".join(f" --{k.replace('_', '-')} {shlex.quote(str(train[k]))}"
                    for k in ("epochs", "lr", "batch_size", "patience", "rows") if k in train)
    layout = layout or (Path(_out_as_typed(result, out)) / "layout.json").as_posix()
    tasks = ",".join(result.remaining_tasks)  # a left-out task is in no recommended layout
    return (f"taskrel train {shlex.quote(result.suite_name)}{opts} --tasks {shlex.quote(tasks)}"
            f"{extra} --layout {shlex.quote(layout)}")


def reproduce_commands(result, out: str | Path | None = None) -> list[str]:
    """Rerun the study (stored runs are reused) and re-render the report, as typed where the
    study ran. A study given as an object (no file) is rerun from ``study.toml``, which the
    report writes next to itself. A study built in Python gets no ``taskrel study`` command
    (no file describes it), and ``taskrel report`` only where its saved result is in ``out``."""
    inv = result.invocation
    where = _out_as_typed(result, out)
    if result.built_in_python:
        saved = out is not None and (Path(out) / RESULT_FILE).is_file()
        return [f"taskrel report {shlex.quote(where)}"] if saved else []
    if inv.study_file:
        study_file = shown_path(inv.study_file, inv.cwd)
    elif needs_study_file(result):
        study_file = (Path(where) / "study.toml").as_posix()
    else:  # the built-in default study
        study_file = ""
    store = shown_path(inv.store, inv.cwd) if inv.store else "runs"
    study = f"taskrel study {shlex.quote(study_file)} " if study_file else "taskrel study "
    return [f"{study}--store {shlex.quote(store)} --out {shlex.quote(where)}", f"taskrel report {shlex.quote(where)}"]


def needs_study_file(result) -> bool:
    """Whether the report must write the study's source next to itself for Reproduce: a study
    run from a parsed object, other than the built-in default study (compared as TOML data, so
    an edited comment in the shipped file does not make an older default study another one)."""
    from importlib.resources import files

    from taskrel.study.toml import tomllib  # the stdlib one, or tomli before Python 3.11

    if result.study_file or not result.source:
        return False
    default = files("taskrel.study").joinpath("default.toml").read_text(encoding="utf-8")
    try:
        return tomllib.loads(result.source.lstrip("\ufeff")) != tomllib.loads(default)
    except tomllib.TOMLDecodeError:
        return True


def python_snippet(result, out: str | Path | None = None) -> str | None:
    """Python that rebuilds the answer's model, for a study built in Python (whose suite no
    ``taskrel train`` command can rebuild); None for a study read from a file.

    The layout comes from the ``layout.json`` the report writes (the recommendation), from the
    deciding width-matched baseline's file, or is built in place (``separate``, ``shared``).
    ``suite`` is the :class:`~taskrel.Suite` the study was fitted on.

    >>> from taskrel.study.result import StudyResult
    >>> r = StudyResult(study={"suite": "mine", "train": {"epochs": 5, "lr": 0.01}}, suite={}, tasks=["a", "b"],
    ...                 invocation={"cwd": "/p", "out": "reports/x"})
    >>> print(python_snippet(r, "/p/reports/x"))  # doctest: +NORMALIZE_WHITESPACE
    import json
    import taskrel
    from taskrel.train import train
    <BLANKLINE>
    # suite: the taskrel.Suite you passed to Study.fit
    layout = taskrel.SharingLayout.from_dict(json.load(open("reports/x/layout.json")))
    model = taskrel.build_model(layout, suite)  # a torch.nn.Module: train it in your own loop, or
    trained = train(suite, layout, taskrel.TrainConfig(epochs=5, lr=0.01), seed=0)
    """
    if not result.built_in_python:
        return None
    d = result.decision
    tasks = list(result.remaining_tasks)
    chosen = decided_layout(result, d, out)
    if chosen in ("separate", "shared"):
        make = f"taskrel.SharingLayout.{chosen}({tasks!r}, suite.n_stages)"
        lines = ["import taskrel", "from taskrel.train import train", ""]
    else:
        path = chosen or (Path(_out_as_typed(result, out)) / "layout.json").as_posix()
        make = f"taskrel.SharingLayout.from_dict(json.load(open({json.dumps(path)})))"
        lines = ["import json", "import taskrel", "from taskrel.train import train", ""]
    train = result.train_settings
    cfg = ", ".join(f"{k}={train[k]!r}" for k in ("epochs", "lr", "batch_size") if k in train)
    return "\n".join(lines + [
        "# suite: the taskrel.Suite you passed to Study.fit",
        f"layout = {make}",
        "model = taskrel.build_model(layout, suite)  # a torch.nn.Module: train it in your own loop, or",
        f"trained = train(suite, layout, taskrel.TrainConfig({cfg}), seed=0)"])


# ---------------------------------------------------------------------- the decision box
@dataclass
class AnswerView:
    """What the answer box shows."""

    decision: Decision
    title: str  # the decision, as a sentence
    style: str  # "good", "warn" or "none"
    groups: list[list[str]] | None
    budget_note: str
    comparison_rows: list[list[str]]  # layout, diff, interval, percent, seeds, outcome
    comparison_head: list[str]
    measured_line: str
    compute_seconds: float
    wall_seconds: float | None
    train: str
    reproduce: list[str] = field(default_factory=list)
    cwd: str = ""  # where the study ran: the commands work when pasted there
    group_labels: list[str] | None = None  # the groups as shown: "a + b", with "@width" in a width study
    capacity: CapacityView | None = None  # a width study: the grouping against the width-matched baselines
    python: str | None = None  # a study built in Python: the code that rebuilds the answer's model


def decision_title(d: Decision, n_groups: int | None, width: float | None = None) -> str:
    """The decision as a sentence; ``width``: the width of the baseline that decided, when it
    was a width-matched one.

    >>> from taskrel.study.decision import decide
    >>> from taskrel.study.result import StudyResult
    >>> d = decide(StudyResult(study={}, suite={}, tasks=["a"]))
    >>> d.decision = SEPARATE
    >>> print(decision_title(d, None, 0.47))
    Keep these tasks separate: train one network per task, each at width 0.47 (the recommendation's parameter count).
    """
    at = f", each at width {width:g} (the recommendation's parameter count)" if width is not None else ""
    if d.decision == SHARE:
        return f"Share as recommended: train {n_groups} network(s), sharing within each group."
    if d.decision == SEPARATE:
        return f"Keep these tasks separate: train one network per task{at}."
    if d.decision == SHARED:
        return f"Share everything: train one network for all the tasks{at.replace(', each', ',')}."
    return "The measurements cannot tell which layout is better."


def comparison_table(d: Decision, n_tasks: int) -> tuple[list[str], list[list[str]]]:
    """Rows of the paired comparisons, baselines first, numbers at the precision their scale needs."""
    head = ["layout", f"recommended − layout (total test loss, {n_tasks} tasks)", "95% interval (t, over seeds)",
            "% of layout's loss", "seeds", "outcome"]
    comps = sorted(d.comparisons, key=lambda c: (BASELINE_FIRST.index(c.layout) if c.layout in BASELINE_FIRST else 9, c.layout))
    dec = decimals_for(np.array([abs(c.mean_diff) for c in comps] or [0.0])) + 1
    rows = []
    for c in comps:
        lo, hi = c.ci95
        ci = f"[{fmt(lo, dec)}, {fmt(hi, dec)}]" if math.isfinite(lo) else "– (one seed)"
        name = c.layout + (f" (= {', '.join(c.same_as)})" if c.same_as else "")
        rows.append([name, fmt(c.mean_diff, dec), ci, f"{c.relative:+.1f}%" if math.isfinite(c.relative) else "–",
                     str(c.n_seeds), c.outcome])
    return head, rows


def answer_view(result, out: str | Path | None = None) -> AnswerView:
    d = result.decision
    head = headline(result)
    groups = head["groups"]
    g = result.grouping
    budget = None if g is None else g.budget
    note = ""
    if budget is not None:
        unit = " (parameters over the width-1 all-shared network's)" if g.params_cost else " network(s)"
        where = "" if result.built_in_python else " (the study file's analysis.grouping.budget)"
        note = (f"Budget: at most {budget:g}{unit}{where}; the groups above are what the search chose within it. "
                "The budget figure below shows what each other budget predicted and measured.")
        if g.recommend == "clusters":  # the clustering is the answer; the search only drew the front
            note = (f"The groups above are the clusters of the {result.analysis_probe or 'analysed'} affinity (their "
                    "number chosen automatically), not a choice under a budget; the budget figure below shows what the "
                    "search chose at each budget of the front.")
    ch, cr = comparison_table(d, len(result.remaining_tasks))
    python = python_snippet(result, out)
    return AnswerView(d, decision_title(d, len(groups) if groups else None, decided_width(result, d)), answer_style(d),
                      groups, note, cr, ch, measured_line(head["measured"], len(result.remaining_tasks)),
                      result.compute_seconds(), result.wall_seconds,
                      "" if python else train_command(result, out, decided_layout(result, d, out)),
                      reproduce_commands(result, out), result.invocation.cwd or "",
                      group_labels(result.recommended, chose_widths(result), " + "), capacity_view(result, d), python)


def answer_style(d: Decision) -> str:
    """The answer box's colour: ``"warn"`` (amber) when a baseline decided or measured as good
    as the recommendation, ``"good"`` (green) only for "share as recommended" at medium or high
    confidence, else ``"none"`` (neutral): a green headline never sits beside "confidence low".

    >>> from types import SimpleNamespace as NS
    >>> answer_style(NS(decision=SHARE, confidence="low", baseline_as_good=False))
    'none'
    >>> answer_style(NS(decision=SHARE, confidence="high", baseline_as_good=False))
    'good'
    """
    if d.baseline_as_good or d.decision in (SEPARATE, SHARED):
        return "warn"
    return "good" if d.decision == SHARE and d.confidence in ("high", "medium") else "none"


def measured_line(measured: dict[str, dict[str, Any]], n_tasks: int) -> str:
    """Each layout's mean test loss in the comparisons' unit: the total over the ``n_tasks``
    tasks (the per-task mean times the number of tasks; every validated layout covers them).

    >>> measured_line({"recommended": {"test_loss": 0.1, "std": 0.01, "seeds": 3}}, 4)
    'Mean total test loss over the 4 tasks, 3 seed(s) (lower is better): recommended 0.4'
    """
    parts = " · ".join(f"{k} {v['test_loss'] * n_tasks:.4g}" for k, v in measured.items() if v.get("test_loss") is not None)
    if not parts:
        return ""
    seeds = max(int(v.get("seeds") or 0) for v in measured.values())
    return f"Mean total test loss over the {n_tasks} tasks, {seeds} seed(s) (lower is better): {parts}"


def decided_file(d: Decision) -> str:
    """The file the report writes the deciding width-matched baseline's layout to.

    >>> from taskrel.study.decision import decide
    >>> from taskrel.study.result import StudyResult
    >>> d = decide(StudyResult(study={}, suite={}, tasks=["a"]))
    >>> d.decided_by = "all-separate matched"
    >>> decided_file(d)
    'layout-all-separate_matched.json'
    """
    from taskrel.study.result import safe_name

    return f"layout-{safe_name(d.decided_by or 'decided')}.json"


def decided_layout(result, d: Decision, out: str | Path | None) -> str | None:
    """What ``taskrel train --layout`` gets for the decision: ``separate`` or ``shared``, the
    width-matched baseline's file when one decided (written next to the report), else None
    (the recommended layout's file)."""
    if decided_width(result, d) is not None:
        return (Path(_out_as_typed(result, out)) / decided_file(d)).as_posix()
    return {SEPARATE: "separate", SHARED: "shared"}.get(d.decision)


def decided_width(result, d: Decision) -> float | None:
    """The width of the baseline whose win is the decision, when it is a width-matched one."""
    entry = result.layouts.get(d.decided_by or "")
    return None if entry is None or entry.width is None else float(entry.width)


# ---------------------------------------------------------------------- JSON and terminal
def summary(result, out: str | Path | None = None) -> dict[str, Any]:
    """The JSON summary: the decision, the validation table, probes, clusters, errors."""
    from taskrel.study.result import jsonable

    head = headline(result)
    d = result.decision
    widths = chose_widths(result)
    title = decision_title(d, len(head["groups"]) if head["groups"] else None, decided_width(result, d))
    cap = capacity_view(result, d)
    head["group_labels"] = group_labels(result.recommended, widths)
    answer = {**head, "verdict": f"{title} Why: {d.reason}.", "decision": d.decision, "reason": d.reason,
              "what_would_tell": d.what_would_tell, "decided_by": d.decided_by,
              "capacity": None if cap is None else cap.to_dict(),
              "best_measured": d.best_measured, "best_measured_loss": d.best_measured_loss,
              "comparisons": [c.to_dict() for c in d.comparisons], "comparisons_unit": "total test loss over the tasks",
              "confidence": d.confidence, "confidence_why": d.confidence_why,
              "stability_ari": d.stability_ari, "probe_agreement": d.probe_agreement}
    return jsonable({
        "study": result.name,
        "suite": result.suite.get("name"),  # the name the suite gave itself (suite_name: the one the study asked for)
        "tasks": result.tasks,
        "left_out": result.left_out,
        "answer": answer,
        "recommended_layout": None if result.recommended is None else result.recommended.to_dict(),
        "validation": result.validation_summary().to_dict(orient="records"),
        "grouping": _grouping_summary(result.grouping, widths),
        "clusters": None if result.clustering is None else result.clustering.clusters,
        "probes": {k: p.to_dict() for k, p in result.probes.items()},
        "failed_runs": [r.to_dict() for r in result.failed_runs],
        "errors": [p.to_dict() for p in result.problems],
        "compute_seconds": result.compute_seconds(),
        "validation_cost": asdict(result.validation_cost),
        "seconds": result.seconds,
        "reproduce": reproduce_commands(result, out),
        "train": train_command(result, out),
        "created": result.created,
    })


def _grouping_summary(g: GroupingFront | None, widths: bool) -> dict[str, Any] | None:
    """The grouping for the JSON summary: each front row's budget, cost, objective, blocks,
    networks and groups (with widths in a width study)."""
    if g is None:
        return None
    front = [{"budget": r.budget, "cost": r.cost, "objective": r.objective, "blocks": r.blocks, "networks": r.networks,
              "groups": front_groups(r, widths)} for r in g.front]
    return {k: v for k, v in g.to_dict().items() if k != "front"} | {"front": front}


def aligned(rows: list[list[str]], numeric: set[int] = frozenset()) -> list[str]:
    """Rows as lines of aligned columns (numeric columns right-aligned).

    >>> aligned([["a", "1.5"], ["bbb", "10.25"]], numeric={1})
    ['a     1.5', 'bbb 10.25']
    """
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))] if rows else []
    return ["  ".join(v.rjust(w) if j in numeric else v.ljust(w) for j, (v, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def summary_text(result) -> str:
    """The end of ``taskrel study`` in a terminal: the decision, why, how sure, and the paired
    comparisons as an aligned table."""
    d = result.decision
    head = headline(result)
    labels = " | ".join(group_labels(result.recommended, chose_widths(result)) or [])
    at = decided_width(result, d)
    lines = [f"decision: {d.decision}" + (f" ({labels})" if d.decision == SHARE and labels else "")
             + (f" (at width {at:g}, the recommendation's parameter count)" if at is not None else "")]
    lines.append(f"  why: {d.reason}")
    if d.decision == CANNOT_TELL and d.what_would_tell:
        lines.append(f"  what would tell: {d.what_would_tell}")
    if d.best_measured:
        lines.append(f"  best measured: {d.best_measured} (total test loss {d.best_measured_loss:.4g})")
    lines.append(f"  confidence: {d.confidence} — {d.confidence_why}")
    if d.comparisons:
        ch, cr = comparison_table(d, len(result.remaining_tasks))
        lines.append(f"  recommended minus layout, total test loss over {len(result.remaining_tasks)} tasks, paired seeds:")
        table = aligned([["layout", "mean diff", "95% interval", "% of layout", "seeds", "outcome"], *cr], numeric={1, 3, 4})
        lines += ["    " + t for t in table]
    if head["recommended"]:
        lines.append(f"  recommended: {labels}")
    cap = capacity_view(result, d)
    if cap is not None:
        lines += textwrap.wrap(f"capacity: {cap.text}", 100, initial_indent="  ", subsequent_indent="    ",
                               break_on_hyphens=False)
    lines += [f"  left out: {t} ({why}); in no layout, not validated" for t, why in result.left_out.items()]
    return "\n".join(lines)

