"""Validation: train the recommended layout against all-shared and all-separate, several seeds.

Every layout is trained with the same config and seeds and scored on the held-out *test*
split (the probes and the grouping search only ever read validation losses). With
``front = true`` the grouping chosen at every budget of the Pareto front is trained too, so the
report can put measured next to predicted loss. With ``random = R``, R random groupings with
the recommendation's group sizes (so the same number of networks and parameters) are trained
too: the equal-budget control that says whether the probes' choice of *who* shares mattered.
With ``aggregator = "upgrad"`` (any TorchJD aggregator taskrel names) all-shared is trained
once more with that conflict-aware aggregator, as ``"all-shared + upgrad"``: a grouping has to
beat "keep everything shared and use a better optimiser" too. With ``matched`` (by default
when the grouping chooses widths), all-shared and all-separate are trained once more at the
widths whose parameter counts are nearest the recommendation's (``"all-shared matched"``,
``"all-separate matched"``; :func:`taskrel.study.capacity.matched_baselines`): the layout
entry of each records its width, its parameter count and the recommendation's.
"""

from __future__ import annotations

import numpy as np

from taskrel.layout import SharingLayout
from taskrel.store import RunSpec
from taskrel.study.capacity import matched_baselines
from taskrel.study.context import StudyContext

ORDER = ("recommended", "branched", "all-shared", "all-separate")


def front_name(budget: float) -> str:
    """The layout name of the grouping chosen at ``budget``.

    >>> front_name(2.0), front_name(2.5)
    ('budget 2', 'budget 2.5')
    """
    return f"budget {budget:g}"


def validation_layouts(ctx: StudyContext) -> dict[str, SharingLayout]:
    """The layouts to validate (recorded in the result's layouts), by name."""
    res, v = ctx.result, ctx.study.validation
    named = {n: SharingLayout.from_dict(res.layouts[n]) for n in ORDER if n in res.layouts}
    if v.front and res.grouping:
        for row in res.grouping["front"]:
            if row.get("layout"):
                name = front_name(row["budget"])
                res.layouts[name] = row["layout"]
                named[name] = SharingLayout.from_dict(row["layout"])
    rec = named.get("recommended")
    if rec is not None and v.random:
        # the i-th largest random group takes the width of the i-th largest recommended group
        widths = [rec.width_of(b[0]) for b in sorted(rec.blocks(0), key=lambda b: -len(b))]
        for i, blocks in enumerate(random_groupings(rec.blocks(0), ctx.tasks, v.random), 1):
            lay = ctx.layout_of(blocks, {t: w for b, w in zip(blocks, widths) for t in b})
            res.layouts[f"random {i}"] = lay.to_dict()
            named[f"random {i}"] = lay
    matched = v.matched if getattr(v, "matched", None) is not None else bool(getattr(ctx.study, "widths", None))
    if rec is not None and matched:
        for name, (lay, info) in matched_baselines(ctx.suite, ctx.tasks, rec).items():
            res.layouts[name] = {**lay.to_dict(), **info}
            named[name] = lay
            ctx.say(f"validation: {name} at width {info['width']:g}: {info['n_parameters']} parameters "
                    f"(the recommendation has {info['target_parameters']})")
    return named


def control_name(aggregator: str) -> str:
    """The layout name of all-shared trained with a conflict-aware aggregator.

    >>> control_name("upgrad")
    'all-shared + upgrad'
    """
    return f"all-shared + {aggregator}"


def random_groupings(blocks, tasks, count: int, seed: int = 0) -> list[list[list[str]]]:
    """``count`` distinct random partitions of ``tasks`` with the group sizes of ``blocks``,
    none equal to ``blocks`` itself (fewer when no more exist).

    >>> gs = random_groupings([["a", "b"], ["c"]], ["a", "b", "c"], 5)
    >>> len(gs), sorted(sorted(len(b) for b in g) for g in gs)
    (2, [[1, 2], [1, 2]])
    """
    sizes = sorted((len(b) for b in blocks), reverse=True)
    seen = {frozenset(frozenset(b) for b in blocks)}
    rng = np.random.default_rng(seed)
    out: list[list[list[str]]] = []
    for _ in range(200 * count):
        if len(out) == count:
            break
        perm = [tasks[i] for i in rng.permutation(len(tasks))]
        cut = np.cumsum([0, *sizes])
        groups = [perm[a:b] for a, b in zip(cut[:-1], cut[1:])]
        key = frozenset(frozenset(g) for g in groups)
        if key not in seen:
            seen.add(key)
            out.append(groups)
    return out


def validate(ctx: StudyContext) -> None:
    """Train every validation layout over the seeds (one queue) and table the test scores."""
    v = ctx.study.validation
    cfg = v.config if v.config is not None else ctx.study.base_config()
    named = validation_layouts(ctx)
    configs = {name: cfg for name in named}
    if getattr(v, "aggregator", None) and "all-shared" in named:
        name = control_name(v.aggregator)
        named[name], configs[name] = named["all-shared"], cfg.with_(aggregator=v.aggregator)
        ctx.result.layouts[name] = {**named[name].to_dict(), "aggregator": v.aggregator}  # not an alias of all-shared
    runs = [(name, seed, RunSpec(lay, configs[name], seed, label=f"validate {name} seed{seed}"))
            for name, lay in named.items() for seed in v.seeds]
    ctx.say(f"validation: {len(set(named.values()))} distinct layouts x {len(v.seeds)} seeds, scored on the test split")
    records = ctx.runner.run(ctx.suite, [spec for _, _, spec in runs], desc="validation")
    from taskrel.probes.base import cost_of

    c = cost_of(records)  # from the records: a resumed study keeps the cost of its first run
    ctx.result.validation_cost = {"steps": c.steps, "examples": c.examples, "seconds": c.seconds, "runs": c.runs}
    rows = []
    for (name, seed, _), rec in zip(runs, records):
        for t in ctx.tasks:
            if rec.ok:
                rows.append({"layout": name, "seed": seed, "task": t,
                             "test_loss": rec.loss(t, "test"), "test_metric": rec.metric(t, "test"),
                             "val_loss": rec.loss(t, "val"), "n_parameters": rec.n_parameters, "status": "ok"})
            else:
                rows.append({"layout": name, "seed": seed, "task": t, "test_loss": None, "test_metric": None,
                             "val_loss": None, "n_parameters": None, "status": "failed"})
    ctx.result.validation = rows
