"""``Study``: the one entry point, composed of probes, analyses and validation.

>>> import tempfile
>>> from taskrel.analysis import GroupingSearch
>>> from taskrel.probes import PairwiseProbe
>>> from taskrel.suites import get_suite
>>> from taskrel.train import TrainConfig
>>> suite = get_suite("planted", n_examples=200)
>>> study = Study(probes=[PairwiseProbe()], grouping=GroupingSearch(budget=2, partition=True),
...               validation=Validation(seeds=[0]), tasks=["c0t0", "c0t1", "c1t0"],
...               config=TrainConfig(epochs=2), verbose=False)
>>> result = study.fit(suite, tempfile.mkdtemp())
>>> sorted(result.affinities), len(result.recommended.blocks(0)) <= 2
(['pairwise'], True)
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from taskrel.base import Estimator, clone
from taskrel.errors import TaskrelError
from taskrel.probes import PROBES, Probe
from taskrel.runner import Runner
from taskrel.store import RunStore
from taskrel.study.result import StudyResult
from taskrel.study.spec import StudySpec, load_study, parse_study, train_config_of
from taskrel.suite import Suite
from taskrel.train import TrainConfig

# which probe the analyses read when the study does not say
AFFINITY_PREFERENCE = ("pairwise", "transfer", "lookahead", "gradient", "similarity")


class Validation(Estimator):
    """Train the recommended layout against all-shared and all-separate, scored on *test*.

    Parameters
    ----------
    seeds : seeds of every validation run.
    config : training config of the validation runs (default: the study's).
    front : also train the grouping chosen at every budget of the Pareto front.
    random : how many random groupings with the recommendation's group sizes to train too
        (the equal-budget control, 0 to 20).
    aggregator : also train all-shared with this conflict-aware TorchJD aggregator (e.g.
        ``"upgrad"``; :data:`taskrel.aggregators.AGGREGATORS`), as the layout
        ``"all-shared + upgrad"``: the control a grouping has to beat. None: no such control.
    matched : also train all-shared and all-separate at the widths whose parameter counts are
        nearest the recommendation's (``"all-shared matched"``, ``"all-separate matched"``;
        :mod:`taskrel.study.capacity`). None: when the study searches widths.
    """

    def __init__(self, seeds: Sequence[int] = (0, 1, 2), config: TrainConfig | None = None, front: bool = True, random: int = 0,
                 aggregator: str | None = None, matched: bool | None = None):
        self.seeds = seeds
        self.config = config
        self.front = front
        self.random = random
        self.aggregator = aggregator
        self.matched = matched

    def check(self) -> list[int]:
        from taskrel.probes.base import check_seeds

        if isinstance(self.random, bool) or not isinstance(self.random, int) or not 0 <= self.random <= 20:
            raise TaskrelError(f"study: field 'validation.random': must be a whole number of random groupings from 0 to 20, got {self.random!r}")
        if self.config is not None and not isinstance(self.config, TrainConfig):
            raise TaskrelError(f"study: field 'validation.train': must be a TrainConfig, got {self.config!r}")
        if self.aggregator is not None:
            from taskrel.aggregators import AGGREGATORS

            if self.aggregator not in AGGREGATORS:
                raise TaskrelError(f"study: field 'validation.aggregator': unknown aggregator {self.aggregator!r}; "
                                   f"use one of {', '.join(sorted(AGGREGATORS))}")
        if self.matched is not None and not isinstance(self.matched, bool):
            raise TaskrelError(f"study: field 'validation.matched': must be true, false or None, got {self.matched!r}")
        return check_seeds(self.seeds, "study: field 'validation.seeds'")


class Study(Estimator):
    """A whole study: probes, then clustering, auxiliary ranking, grouping, a branched layout,
    and the validation of the recommendation, every run through one :class:`~taskrel.runner.Runner`.

    Parameters
    ----------
    probes : probes (``[PairwiseProbe(), ...]``, named by kind) or ``{name: probe}``.
    clustering : a :class:`~taskrel.analysis.TaskClustering` (None: no clustering).
    grouping : a :class:`~taskrel.analysis.GroupingSearch`; its ``budget`` is the
        recommendation's (``budget=None``: the middle of ``budgets``); its other parameters
        serve every budget of the front. None: no grouping, no recommendation.
    validation : a :class:`Validation` (None: no validation).
    auxiliary : primary tasks to rank auxiliary tasks for.
    affinity : the probe whose affinity the analyses read (default: the first of pairwise,
        transfer, lookahead, gradient, similarity).
    budgets : the budgets of the Pareto front (default 1..n and the grouping's budget).
    grouping_source : the probe whose candidate table the grouping reads (default: a pairwise
        probe's HOA table, else the analysed affinity).
    max_size : largest group of a table built from an affinity.
    widths : offer every group at these encoder widths (e.g. ``[0.5, 1.0]``), chosen with the
        grouping under the budget (:mod:`taskrel.study.capacity`; the suite needs a width
        builder). None: every network at the suite's width.
    grouping_cost : with ``widths``, what a network costs: ``"params"`` (its parameters over
        the width-1 all-shared network's) or ``"networks"`` (its width, in full networks).
    stability : measure the clusters' stability over seeds.
    branched : search a branched layout from a per-stage affinity.
    tasks : the study's tasks (default: every task of the suite).
    config : training config of every probe and validation run that gives none.
    name, description : how the study is named in its result and report.
    suite, suite_options : a built-in suite to use when ``fit`` gets none.
    verbose : progress lines on stderr.
    source : the study file's text, when it came from one (kept in the result).

    ``fit(suite, runner)`` returns a :class:`~taskrel.study.StudyResult` (also ``result_``).
    """

    def __init__(
        self,
        probes: Sequence[Probe] | Mapping[str, Probe],
        clustering: Any = None,
        grouping: Any = None,
        validation: Validation | None = None,
        auxiliary: Sequence[str] = (),
        affinity: str | None = None,
        budgets: Sequence[float] | None = None,
        grouping_source: str | None = None,
        max_size: int | None = None,
        stability: bool = True,
        branched: bool = True,
        tasks: Sequence[str] | None = None,
        config: TrainConfig | None = None,
        name: str = "study",
        description: str = "",
        suite: str | None = None,
        suite_options: Mapping[str, Any] | None = None,
        verbose: bool = True,
        source: str = "",
        widths: Sequence[float] | None = None,
        grouping_cost: str = "params",
    ):
        self.probes = probes
        self.clustering = clustering
        self.grouping = grouping
        self.validation = validation
        self.auxiliary = auxiliary
        self.affinity = affinity
        self.budgets = budgets
        self.grouping_source = grouping_source
        self.max_size = max_size
        self.widths = widths
        self.grouping_cost = grouping_cost
        self.stability = stability
        self.branched = branched
        self.tasks = tasks
        self.config = config
        self.name = name
        self.description = description
        self.suite = suite
        self.suite_options = suite_options
        self.verbose = verbose
        self.source = source

    @classmethod
    def from_toml(cls, path: str | Path | None = None, text: str | None = None) -> Study:
        """The study of a TOML study file (None: the built-in default study); only constructs."""
        return study_from_spec(parse_study(text) if text is not None else load_study(path))

    # ------------------------------------------------------------------ derived
    def named_probes(self) -> dict[str, Probe]:
        """The probes by name (a list is named by kind: ``pairwise``, ``pairwise-2``, ...)."""
        if isinstance(self.probes, Mapping):
            out = dict(self.probes)
        else:
            out = {}
            for p in self.probes:
                kind = getattr(p, "kind", "") or type(p).__name__
                name, k = kind, 2
                while name in out:
                    name, k = f"{kind}-{k}", k + 1
                out[name] = p
        for name, p in out.items():
            if not isinstance(p, Probe):
                raise TaskrelError(f"study: field 'probes.{name}': not a probe, got {type(p).__name__}")
        return out

    def build_suite(self) -> Suite:
        """The built-in suite this study names (a TaskrelError naming the field if none)."""
        from taskrel.suites import get_suite, list_suites

        if self.suite is None:
            raise TaskrelError("study: field 'suite.name': no suite given (pass one to fit, or name a built-in suite)")
        if self.suite not in list_suites():
            raise TaskrelError(f"study: field 'suite.name': unknown suite {self.suite!r}; built-in suites are {sorted(list_suites())}")
        try:
            return get_suite(self.suite, **dict(self.suite_options or {}))
        except TaskrelError as e:
            raise TaskrelError(f"study: field 'suite.options': {e}") from None

    def base_config(self) -> TrainConfig:
        return self.config if self.config is not None else TrainConfig()

    def analysis_probe(self) -> str | None:
        """The name of the probe whose affinity the analyses read."""
        if self.affinity:
            return self.affinity
        named = self.named_probes()
        for kind in AFFINITY_PREFERENCE:
            for name, p in named.items():
                if p.kind == kind:
                    return name
        return next(iter(named), None)

    def source_probe(self) -> str | None:
        """The probe whose candidate table the grouping reads."""
        if self.grouping_source:
            return self.grouping_source
        pair = next((n for n, p in self.named_probes().items() if p.kind == "pairwise"), None)
        return pair or self.analysis_probe()

    def with_device(self, device: str) -> Study:
        """The same study with every run on ``device`` (a new study; this one is unchanged)."""
        probes = {n: clone(p, config=(p.config or self.base_config()).with_(device=device)) for n, p in self.prepared_probes().items()}
        val = self.validation
        if val is not None:
            val = clone(val, config=(val.config or self.base_config()).with_(device=device))
        return clone(self, probes=probes, validation=val, config=self.base_config().with_(device=device))

    def prepared_probes(self, tasks: Sequence[str] | None = None) -> dict[str, Probe]:
        """The probes as fitted: the study's tasks and config where a probe gives none."""
        out = {}
        for name, p in self.named_probes().items():
            changes: dict[str, Any] = {}
            if p.tasks is None and (tasks or self.tasks) is not None:
                changes["tasks"] = list(tasks or self.tasks)
            if p.config is None and getattr(p, "settings", None) is None:
                changes["config"] = self.base_config()
            out[name] = clone(p, **changes) if changes else p
        return out

    # ------------------------------------------------------------------ fitting
    def fit(self, suite: Suite | None, runner: Runner | RunStore | str | Path) -> StudyResult:
        """Check everything, then run probes, analyses and validation; the typed result.

        ``suite`` None builds the study's named suite. ``runner`` is a
        :class:`~taskrel.runner.Runner` or a store (then a default runner, closed at the end).
        A probe or analysis that fails is recorded in ``result.errors`` and the study goes on.
        """
        from taskrel.study.analyses import run_analyses
        from taskrel.study.checks import check_study
        from taskrel.study.context import StudyContext
        from taskrel.study.probing import run_probes
        from taskrel.study.validate import validate

        t_start = time.perf_counter()
        suite = suite if suite is not None else self.build_suite()
        tasks, budgets, budget = check_study(self, suite)
        own = not isinstance(runner, Runner)
        runner = runner if isinstance(runner, Runner) else Runner(runner, progress=self.verbose)
        result = StudyResult(
            study=self.describe(suite, tasks, budgets, budget),
            suite={**suite.summary(), "tasks": [suite.task(t).to_dict() for t in tasks], "fingerprint": suite.fingerprint()},
            tasks=tasks,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        ctx = StudyContext(self, suite, tasks, runner, result, self.verbose)
        ctx.say(f"{self.name!r}: suite {suite.name}, {len(tasks)} tasks, store {runner.store.path}")
        try:
            t0 = time.perf_counter()
            fitted = run_probes(ctx, self.prepared_probes(tasks))
            result.seconds["probes"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_analyses(ctx, fitted, budgets, budget)
            result.seconds["analyses"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if self.validation is not None and result.layouts:
                ctx.guard("validation", lambda: validate(ctx))
            result.seconds["validation"] = time.perf_counter() - t0
        finally:
            if own:
                runner.close()
        result.failed_runs = failed_runs(runner.store, suite, tasks)
        result.seconds["total"] = time.perf_counter() - t_start
        self.result_ = result.settle()  # decided once, stored with the result
        return result

    def describe(self, suite: Suite, tasks: list[str], budgets: list[float] | None, budget: float | None) -> dict[str, Any]:
        """The study as plain data (the ``study`` field of its result)."""
        probes = []
        for name, p in self.prepared_probes(tasks).items():
            params = {k: v for k, v in p.get_params().items() if k not in ("tasks", "config", "seeds", "settings")}
            probes.append({"name": name, "kind": p.kind, "seeds": p.seed_list(), "train": p.train_config().to_dict(),
                           "params": _plain(params)})
        g = self.grouping
        grouping = None if g is None else {
            "budgets": budgets, "budget": budget, "source": self.source_probe(), "solver": g.solver,
            "partition": bool(g.partition), "max_size": self.max_size,
        } | ({"widths": [float(w) for w in self.widths], "cost": self.grouping_cost} if self.widths else {})
        c = self.clustering
        clustering = None if c is None else {**_plain({k: getattr(c, k) for k in ("method", "n_clusters", "linkage", "random_state") if hasattr(c, k)}), "stability": bool(self.stability)}
        v = self.validation
        validation = None if v is None else {"seeds": list(v.seeds), "train": (v.config or self.base_config()).to_dict(),
                                             "front": bool(v.front), "random": int(v.random), "matched": v.matched}
        return {
            "name": self.name, "suite": suite.name, "description": self.description, "tasks": list(tasks),
            "suite_options": dict(self.suite_options or {}), "train": self.base_config().to_dict(), "probes": probes,
            "affinity": self.analysis_probe(), "clustering": clustering, "auxiliary": list(self.auxiliary),
            "grouping": grouping, "branched": bool(self.branched), "validation": validation, "source": self.source,
        }


def study_from_spec(spec: StudySpec) -> Study:
    """The :class:`~taskrel.study.Study` a study file describes (constructs; trains nothing).

    Unknown probe parameters and bad training configs are errors naming their field.

    >>> study = study_from_spec(load_study())
    >>> list(study.named_probes())[:2], study.grouping.budget
    (['pairwise', 'pairwise-cheap'], 3)
    """
    from taskrel.analysis import GroupingSearch, TaskClustering

    base = train_config_of(spec.train, "train")
    probes = {}
    for p in spec.probes:
        cls = PROBES[p.kind]
        known = cls._param_names()
        for key in p.params:
            if key not in known or key in ("config", "seeds", "settings"):
                raise TaskrelError(f"study: field 'probes.{p.name}.{key}': unknown parameter of {cls.__name__}; "
                                   f"known are {sorted(set(known) - {'config', 'seeds', 'settings', 'tasks'})}")
        config = train_config_of({**spec.train, **p.train}, f"probes.{p.name}.train")
        probes[p.name] = cls(**{"tasks": spec.tasks, **p.params, "config": config, "seeds": list(p.seeds)})
    clustering = None
    if spec.clustering is not None:
        clustering = TaskClustering(**{k: v for k, v in spec.clustering.items() if k != "stability"})
    grouping, g = None, spec.grouping
    if g is not None:
        grouping = GroupingSearch(budget=g.get("budget"), solver=g.get("solver", "milp"), partition=bool(g.get("partition", True)))
    validation = None
    if spec.validation is not None:
        v = spec.validation
        validation = Validation(seeds=v["seeds"], config=train_config_of({**spec.train, **v.get("train", {})}, "validation.train"),
                                front=bool(v.get("front", True)), random=v.get("random", 0), aggregator=v.get("aggregator"),
                                matched=v.get("matched"))
    return Study(
        probes=probes, clustering=clustering, grouping=grouping, validation=validation,
        auxiliary=list(spec.auxiliary), affinity=spec.affinity,
        budgets=None if g is None else g.get("budgets"), grouping_source=None if g is None else g.get("source"),
        max_size=None if g is None else g.get("max_size"),
        widths=None if g is None else g.get("widths"), grouping_cost="params" if g is None else g.get("cost", "params"),
        stability=bool((spec.clustering or {}).get("stability", True)), branched=spec.branched,
        tasks=spec.tasks, config=base, name=spec.name, description=spec.description,
        suite=spec.suite, suite_options=spec.suite_options, source=spec.source,
    )


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()}


def failed_runs(store: RunStore, suite: Suite, tasks: Sequence[str]) -> list[dict[str, Any]]:
    """Failed records of this suite's data whose tasks are among the study's."""
    keep = set(tasks)
    out = []
    for rec in store.records():
        if rec.ok or not set(rec.tasks) <= keep or rec.spec.get("suite") != suite.fingerprint(rec.tasks):
            continue
        out.append({"key": rec.key, "label": rec.label, "tasks": rec.tasks, "seed": rec.spec.get("seed"),
                    "error": rec.error, "step": rec.failed_step})
    return out


__all__ = ["AFFINITY_PREFERENCE", "Study", "Validation", "failed_runs", "study_from_spec"]
