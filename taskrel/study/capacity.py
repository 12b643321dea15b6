"""Capacity as a search dimension: each group offered at several widths, chosen with the grouping.

With ``widths`` (a study file's ``[analysis.grouping] widths = [0.5, 1.0]``; ``Study(...,
grouping=Grouping(GroupingSearch(...), widths=[0.5, 1.0]))``) the study measures the grouping
source's runs, a pairwise probe's single and pair runs, on the suite built at each width
(``suite.at_width(w)``; at width 1 they are the probe's own runs). Those runs are planned once,
with the probes' (:func:`taskrel.study.checks.width_plans`), and train in the probes' one queue
(:meth:`taskrel.runner.Runner.run_all`); the study's result says, per width, how many runs the
source needed and how many the queue trained (``probes[source]["widths"]``). It builds one
:class:`~taskrel.tables.CandidateTable` holding every group at every width by Standley's
higher-order approximation, and the grouping search chooses groups and widths together under
the budget. The recommendation is a layout whose groups carry their widths
(``SharingLayout.widths``), trained as one model by the validation.

What a network costs (``cost``):

* ``"params"`` (default): its parameter count (the encoder at its width and its tasks' heads)
  over the count of the width-1 all-shared network. A budget of 1 buys the parameters of one
  full network shared by every task; the table's ``meta["capacity"]`` keeps the reference.
* ``"networks"``: its width, in full networks (Standley's convention: a full network costs
  1, a half-size one 0.5).

The validation then adds two width-matched baselines (:func:`matched_baselines`): all-shared
and all-separate at the width whose parameter count is nearest the recommendation's, so a
gain from fewer (or more) parameters can be told from a gain from who shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taskrel.base import clone
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.suite import Suite
from taskrel.tables import CandidateTable, hoa_candidates
from taskrel.widths import layout_parameters, matching_width, network_parameters

COSTS = ("params", "networks")
MATCHED = ("all-shared matched", "all-separate matched")


def capacity_table(plan: Any, source: str | None, probe: Any, suite: Suite, tasks: list[str], runner: Any,
                   say: Callable[[str], None], at_width: Mapping[float, Any] | None = None) -> CandidateTable:
    """The candidate table of every group at every width of the study's grouping ``plan``
    (module docstring).

    ``probe`` is the study's fitted pairwise probe (width 1), named ``source``. At every other
    width the probe fitted on ``suite.at_width(w)`` is ``at_width[w]`` when given (a study
    fits it with its probes, its runs in the probes' one queue:
    :func:`taskrel.study.steps.probe_step`), else a clone of ``probe`` fitted here through
    ``runner`` (training only what the store lacks).
    """
    if probe is None or getattr(probe, "kind", None) != "pairwise":
        raise TaskrelError("study: field 'analysis.grouping.widths': choosing widths needs a pairwise probe as the "
                           f"grouping source (its single and pair runs at each width); the source is {source!r}")
    cost = plan.cost
    reference = network_parameters(suite, tasks, 1.0)
    tables, runs = [], {}
    for w in sorted({float(x) for x in plan.widths}):
        p = probe if w == 1.0 else (at_width or {}).get(w) or clone(probe).fit(suite.at_width(w), runner)
        runs[f"{w:g}"] = len(p.records_)
        if w != 1.0:
            say(f"capacity: width {w:g}: {runs[f'{w:g}']} single and pair runs")

        def of(group: tuple[str, ...], w: float = w) -> float:
            return network_parameters(suite, group, w) / reference

        keep = set(tasks)  # the study's tasks (fewer than the probe's when some were left out)
        singles = {t: v for t, v in p.mean_single_loss().items() if t in keep}
        pairs = {k: v for k, v in p.mean_pair_loss().items() if set(k) <= keep}
        tables.append(hoa_candidates(tasks, {w: singles}, {w: pairs},
                                     max_size=plan.max_size, cost=of if cost == "params" else 1.0,
                                     width_cost={w: 1.0 if cost == "params" else w}))
    table = CandidateTable.concat(tables)
    table.meta["capacity"] = {"widths": sorted({float(x) for x in plan.widths}), "cost": cost,
                              "reference_parameters": reference, "runs": runs}
    return table


def matched_baselines(suite: Suite, tasks: Sequence[str], layout: SharingLayout) -> dict[str, tuple[SharingLayout, dict[str, Any]]]:
    """All-shared and all-separate at the widths whose parameter counts are nearest
    ``layout``'s: ``{name: (layout, {"width", "n_parameters", "target_parameters",
    "relative_difference"})}``.

    >>> from taskrel.suites import get_suite
    >>> suite = get_suite("planted", n_examples=100)
    >>> rec = SharingLayout.groups([["c0t0", "c0t1"], ["c1t0"]], suite.n_stages)
    >>> out = matched_baselines(suite, ["c0t0", "c0t1", "c1t0"], rec)
    >>> shared, info = out["all-shared matched"]
    >>> info["width"] > 1 and abs(info["relative_difference"]) < 0.05
    True
    """
    target = layout_parameters(suite, layout)
    out = {}
    for name, base in zip(MATCHED, (SharingLayout.shared(tasks, suite.n_stages), SharingLayout.separate(tasks, suite.n_stages))):
        w, count = matching_width(lambda w, b=base: layout_parameters(suite, b.with_widths(w)), target)
        out[name] = (base.with_widths(w), {"width": w, "n_parameters": count, "target_parameters": target,
                                           "relative_difference": (count - target) / target})
    return out


__all__ = ["COSTS", "MATCHED", "capacity_table", "matched_baselines"]
