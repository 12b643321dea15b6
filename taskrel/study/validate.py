"""Validation: train the recommended layout against all-shared and all-separate, several seeds.

Every layout is trained with the same config and seeds and scored on the held-out *test*
split (the probes and the grouping search only ever read validation losses). With
``front = true`` the grouping chosen at every budget of the Pareto front is trained too, so the
report can put measured next to predicted loss. With ``random = R``, R random groupings with
the recommendation's group sizes (so the same number of networks and parameters) are trained
too: the equal-budget control that says whether the probes' choice of *who* shares mattered.
"""

from __future__ import annotations

import numpy as np

from taskrel.layout import SharingLayout
from taskrel.store import RunSpec
from taskrel.study.runner import _Context, _say, layout_of_groups

ORDER = ("recommended", "branched", "all-shared", "all-separate")


def front_name(budget: float) -> str:
    """The layout name of the grouping chosen at ``budget``.

    >>> front_name(2.0), front_name(2.5)
    ('budget 2', 'budget 2.5')
    """
    return f"budget {budget:g}"


def validation_layouts(ctx: _Context) -> dict[str, SharingLayout]:
    res = ctx.result
    named = {n: SharingLayout.from_dict(res.layouts[n]) for n in ORDER if n in res.layouts}
    if ctx.study.validation.get("front", True) and res.grouping:
        for row in res.grouping["front"]:
            if row.get("layout"):
                name = front_name(row["budget"])
                res.layouts[name] = row["layout"]
                named[name] = SharingLayout.from_dict(row["layout"])
    rec = named.get("recommended")
    if rec is not None and ctx.study.validation.get("random", 0):
        for i, blocks in enumerate(random_groupings(rec.blocks(0), ctx.tasks, ctx.study.validation["random"]), 1):
            lay = layout_of_groups(blocks, ctx.tasks, rec.n_stages)
            res.layouts[f"random {i}"] = lay.to_dict()
            named[f"random {i}"] = lay
    return named


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


def validate(ctx: _Context) -> None:
    from taskrel.execute import execute

    v = ctx.study.validation
    cfg = ctx.study.train_config(v.get("train"))
    named = validation_layouts(ctx)
    fp = ctx.suite.fingerprint()
    specs, keys = [], []
    for name, lay in named.items():
        for seed in v["seeds"]:
            spec = RunSpec(lay, cfg, seed, label=f"validate {name} seed{seed}")
            specs.append(spec)
            keys.append((name, seed, spec.key(fp)))
    n_layouts = len({lay for lay in named.values()})
    _say(ctx.quiet, f"validation: {n_layouts} distinct layouts x {len(v['seeds'])} seeds, scored on the test split")
    plan = execute(ctx.suite, specs, ctx.store, n_jobs=ctx.n_jobs, backend=ctx.backend,
                   progress=not ctx.quiet, desc="validation")
    rows = []
    for name, seed, key in keys:
        rec = plan.records[key]
        for t in ctx.tasks:
            if rec.ok:
                rows.append({"layout": name, "seed": seed, "task": t,
                             "test_loss": rec.loss(t, "test"), "test_metric": rec.metric(t, "test"),
                             "val_loss": rec.loss(t, "val"), "n_parameters": rec.n_parameters, "status": "ok"})
            else:
                rows.append({"layout": name, "seed": seed, "task": t, "test_loss": None, "test_metric": None,
                             "val_loss": None, "n_parameters": None, "status": "failed"})
    ctx.result.validation = rows
