"""``Study``: the one entry point, composed of probes, analyses and validation.

``fit(suite, runner)`` returns the study, its :class:`~taskrel.study.StudyResult` in
``result_``; :func:`run_study` fits a study and saves its result.

>>> import tempfile
>>> from taskrel.analysis import GroupingSearch
>>> from taskrel.probes import PairwiseProbe
>>> from taskrel.suites import get_suite
>>> from taskrel.train import TrainConfig
>>> suite = get_suite("planted", n_examples=200)
>>> study = Study(probes=[PairwiseProbe()], grouping=Grouping(GroupingSearch(budget=2)),
...               validation=Validation(seeds=[0]), tasks=["c0t0", "c0t1", "c1t0"],
...               config=TrainConfig(epochs=2), verbose=False)
>>> result = study.fit(suite, tempfile.mkdtemp()).result_
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
from taskrel.probes import Probe
from taskrel.runner import Runner, as_runner
from taskrel.store import RunStore
from taskrel.study.checks import Checked, check_study, study_problems
from taskrel.study.result import StudyResult, failed_runs
from taskrel.study.settings import Clustering, Grouping, Validation, plain
from taskrel.study.steps import Log, probe_params
from taskrel.suite import Suite
from taskrel.train import TrainConfig

# which probe the analyses read when the study does not say
AFFINITY_PREFERENCE = ("pairwise", "transfer", "lookahead", "gradient", "similarity")


class Study(Estimator):
    """A whole study: probes, then clustering, auxiliary ranking, grouping, a branched layout,
    and the validation of the recommendation, every run through one :class:`~taskrel.runner.Runner`.

    Parameters
    ----------
    probes : probes (``[PairwiseProbe(), ...]``, named by kind) or ``{name: probe}``.
    clustering : a :class:`~taskrel.analysis.TaskClustering` (the clusters' stability over
        seeds is measured), or a :class:`Clustering` (the same, with ``stability=False`` to
        skip that); None: no clustering.
    grouping : a :class:`Grouping` (a bare ``GroupingSearch`` is its ``search``). None: no
        grouping, no recommendation.
    validation : a :class:`Validation` (None: no validation).
    auxiliary : primary tasks to rank auxiliary tasks for.
    affinity : the probe whose affinity the analyses read (default: the first of pairwise,
        transfer, lookahead, gradient, similarity).
    branched : search a branched layout from a per-stage affinity.
    tasks : the study's tasks (default: every task of the suite).
    config : training config of every probe and validation run that gives none.
    name, description : how the study is named in its result and report.
    suite : the built-in suite to use when ``fit`` gets none: its name (``"planted"``), or
        ``{"name": "planted", "options": {...}}`` with options for its builder.
    verbose : progress lines on stderr.
    max_runs : the most distinct probe runs the study may plan (default 2,000); a study whose
        probes plan more is refused before any training, with each probe's count and the cheap
        route (gradient and gradient-feature probes). None: no limit.

    ``fit(suite, runner)`` returns the study; the :class:`~taskrel.study.StudyResult` is
    ``result_``. A study read from a file (:meth:`from_toml`) keeps the file's text in
    ``file_text`` (not a parameter: '' for a study built in Python) and its result records it.

    >>> Study(probes=[], suite={"name": "planted", "options": {"n_examples": 100}}).suite_options()
    {'n_examples': 100}
    """

    file_text: str = ""  # the study file's text, set by from_toml; kept by the study's own copies

    def __init__(
        self,
        probes: Sequence[Probe] | Mapping[str, Probe],
        clustering: Any = None,
        grouping: Any = None,
        validation: Validation | None = None,
        auxiliary: Sequence[str] = (),
        affinity: str | None = None,
        branched: bool = True,
        tasks: Sequence[str] | None = None,
        config: TrainConfig | None = None,
        name: str = "study",
        description: str = "",
        suite: str | Mapping[str, Any] | None = None,
        verbose: bool = True,
        max_runs: int | None = 2000,
    ):
        self.probes = probes
        self.clustering = clustering
        self.grouping = grouping
        self.validation = validation
        self.auxiliary = auxiliary
        self.affinity = affinity
        self.branched = branched
        self.tasks = tasks
        self.config = config
        self.name = name
        self.description = description
        self.suite = suite
        self.verbose = verbose
        self.max_runs = max_runs

    @classmethod
    def from_toml(cls, path: str | Path | None = None, text: str | None = None) -> Study:
        """The study of a study file (None: the built-in default study; ``text``: the file's
        text); constructs only. Each table goes straight to its constructor; the first problem
        is raised naming its TOML path (:func:`check_toml` lists them all).

        >>> Study.from_toml(text='name = "x"\\n[suite]\\nname = "planted"\\n[probes.pairwise]\\nseed = 2')
        Traceback (most recent call last):
        ...
        taskrel.errors.TaskrelError: study: field 'probes.pairwise.seed': unknown key; did you mean 'seeds'? valid keys here are [...]
        """
        from taskrel.study.toml import first_error, parse, study_text

        study, errors = parse(text if text is not None else study_text(path), cls)
        if errors:
            raise first_error(errors)
        return study

    def to_toml(self) -> str:
        """This study as a study file (:func:`taskrel.study.toml.to_toml`)."""
        from taskrel.study.toml import to_toml

        return to_toml(self)

    # ------------------------------------------------------------------ derived
    @property
    def stability(self) -> bool:
        """Whether the clusters' stability over seeds is measured (the clustering's
        ``stability``, true for a plain TaskClustering; false without a clustering)."""
        return self.clustering is not None and bool(getattr(self.clustering, "stability", True))

    def suite_name(self) -> str | None:
        """The name of the built-in suite the study names (None: none)."""
        return self._suite_table()[0]

    def suite_options(self) -> dict[str, Any]:
        """The options of the built-in suite's builder (empty: none)."""
        return self._suite_table()[1]

    def _suite_table(self) -> tuple[str | None, dict[str, Any]]:
        s = self.suite
        if s is None or isinstance(s, str):
            return s, {}
        if not isinstance(s, Mapping):
            raise TaskrelError(f"study: field 'suite': a suite's name or {{'name': ..., 'options': {{...}}}}, got {s!r}")
        unknown = sorted(set(s) - {"name", "options"})
        if unknown:
            raise TaskrelError(f"study: field 'suite.{unknown[0]}': unknown key; valid keys here are ['name', 'options']")
        options = s.get("options") or {}
        if not isinstance(options, Mapping):
            raise TaskrelError(f"study: field 'suite.options': must be a table of the suite builder's options, got {options!r}")
        return s.get("name"), dict(options)

    def copy_with(self, **changes: Any) -> Study:
        """A new, unfitted study with these parameters changed (its file's text kept)."""
        new = clone(self, **changes)
        new.file_text = self.file_text
        return new

    def grouping_plan(self) -> Grouping | None:
        """The grouping step (a bare GroupingSearch given as ``grouping`` becomes its search)."""
        if self.grouping is None or isinstance(self.grouping, Grouping):
            return self.grouping
        return Grouping(search=self.grouping)

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

    def task_list(self, suite: Suite) -> list[str]:
        """The study's tasks in ``suite`` (all of its tasks when the study names none), checked."""
        try:
            return suite.check_tasks(self.tasks) if self.tasks is not None else list(suite.task_names)
        except TaskrelError as e:
            raise TaskrelError(f"study: field 'suite.tasks': {e}") from None

    def build_suite(self) -> Suite:
        """The built-in suite this study names (a TaskrelError naming the field if none)."""
        from taskrel.suites import get_suite, list_suites

        name, options = self._suite_table()
        if name is None:
            raise TaskrelError("study: field 'suite.name': no suite given (pass one to fit, or name a built-in suite)")
        if name not in list_suites():
            raise TaskrelError(f"study: field 'suite.name': unknown suite {name!r}; built-in suites are {sorted(list_suites())}")
        try:
            return get_suite(name, **options)
        except TaskrelError as e:
            raise TaskrelError(f"study: field 'suite.options': {e}") from None

    def base_config(self) -> TrainConfig:  # the study's training config
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
        g = self.grouping_plan()
        if g is not None and g.source:
            return g.source
        pair = next((n for n, p in self.named_probes().items() if p.kind == "pairwise"), None)
        return pair or self.analysis_probe()

    def with_device(self, device: str) -> Study:
        """The same study with every run on ``device`` (a new study; this one is unchanged)."""
        probes = {n: clone(p, config=(p.config or self.base_config()).with_(device=device)) for n, p in self.prepared_probes().items()}
        val = self.validation
        if val is not None:
            val = clone(val, config=(val.config or self.base_config()).with_(device=device))
        return self.copy_with(probes=probes, validation=val, config=self.base_config().with_(device=device))

    def prepared_probes(self, tasks: Sequence[str] | None = None) -> dict[str, Probe]:
        """The probes as fitted: the study's tasks and config where a probe gives none."""
        out = {}
        for name, p in self.named_probes().items():
            changes: dict[str, Any] = {}
            if p.tasks is None and (tasks or self.tasks) is not None:
                changes["tasks"] = list(tasks or self.tasks)
            if p.config is None:
                changes["config"] = self.base_config()
            out[name] = clone(p, **changes) if changes else p
        return out

    # ------------------------------------------------------------------ fitting
    def fit(self, suite: Suite | None, runner: Runner | RunStore | str | Path) -> Study:
        """Check everything, then run probes, analyses and validation; the result is ``result_``.

        ``suite`` None builds the study's named suite. ``runner`` is a
        :class:`~taskrel.runner.Runner` or a store (then a default runner, closed at the end).
        A probe or analysis that fails is recorded in ``result.errors`` and the study goes on.
        """
        t_start = time.perf_counter()
        suite = suite if suite is not None else self.build_suite()
        checked = check_study(self, suite)  # every check, and each probe's plan, made once
        tasks, budgets, budget = checked.tasks, checked.budgets, checked.budget
        own = not isinstance(runner, Runner)
        runner = as_runner(runner, progress=self.verbose)
        result = StudyResult(
            study=self.describe(suite, tasks, budgets, budget),
            suite={**suite.summary(), "tasks": [suite.task(t).to_dict() for t in tasks], "fingerprint": suite.fingerprint()},
            tasks=tasks,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        log = Log(self.verbose, result.errors)
        log.say(f"{self.name!r}: suite {suite.name}, {len(tasks)} tasks, store {runner.store.path}")
        try:
            self._steps(suite, checked, runner, result, log)
        finally:
            if own:
                runner.close()
        result.failed_runs = failed_runs(runner.store, suite, tasks)
        result.seconds["total"] = time.perf_counter() - t_start
        self.result_ = result.settle()  # decided once, stored with the result
        return self

    def _steps(self, suite: Suite, checked: Checked, runner: Runner, result: StudyResult, log: Log) -> None:
        """Probes, analyses and validation, each a function of typed inputs; outputs into ``result``."""
        from taskrel.study.analyses import analyse
        from taskrel.study.steps import leave_out, probe_step, validate_step, validation_layouts

        tasks, budgets, budget = checked.tasks, checked.budgets, checked.budget
        t0 = time.perf_counter()
        probed = probe_step(checked, suite, runner, log)
        result.affinities = dict(probed.affinities)
        result.probes, result.trajectories = probed.info, probed.trajectories
        result.seconds["probes"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        remaining, result.left_out = leave_out(probed.affinities, tasks, log)
        if len(remaining) >= 2:
            found = analyse(self, suite, remaining, probed.affinities, probed.fitted, runner, budgets, budget, log,
                            probed.at_width)
            result.analysis_probe, result.clustering, result.stability = found.analysis_probe, found.clustering, found.stability
            result.auxiliary, result.grouping, result.layouts = found.auxiliary, found.grouping, found.layouts
            for name, described in found.branched.items():
                result.probes[name].branched_layout = described  # branched layouts come from probes' affinities
        result.seconds["analyses"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        v = self.validation
        if v is not None and result.layouts:
            plan = self.grouping_plan()

            def validation() -> None:
                named = validation_layouts(v, result.layouts, result.grouping, suite, remaining,
                                           bool(plan is not None and plan.widths), log)
                done = validate_step(v, v.config or self.base_config(), named, suite, remaining, runner, log)
                result.layouts.update(done.layouts)
                result.validation, result.validation_cost = done.rows, done.cost

            log.guard("validation", validation)
        result.seconds["validation"] = time.perf_counter() - t0

    def describe(self, suite: Suite, tasks: list[str], budgets: list[float] | None, budget: float | None) -> dict[str, Any]:
        """The study as plain data (the ``study`` field of its result)."""
        probes = []
        for name, p in self.prepared_probes(tasks).items():
            probes.append({"name": name, "kind": p.kind, "seeds": p.seed_list(), "train": p.train_config().to_dict(),
                           "params": probe_params(p)})
        g = self.grouping_plan()
        gs = None if g is None else g.searcher()
        grouping = None if g is None else {
            "budgets": budgets, "budget": budget, "source": self.source_probe(), "solver": gs.solver,
            "partition": bool(gs.partition), "max_size": g.max_size,
        } | ({"widths": [float(w) for w in g.widths], "cost": g.cost} if g.widths else {})
        c = self.clustering
        clustering = None if c is None else {**plain({k: getattr(c, k) for k in ("method", "n_clusters", "linkage", "random_state") if hasattr(c, k)}), "stability": self.stability}
        v = self.validation
        validation = None if v is None else {"seeds": list(v.seeds), "train": (v.config or self.base_config()).to_dict(),
                                             "front": bool(v.front), "random": int(v.random), "matched": v.matched}
        return {
            "name": self.name, "suite": suite.name, "description": self.description, "tasks": list(tasks),
            "suite_options": self.suite_options(), "train": self.base_config().to_dict(), "probes": probes,
            "affinity": self.analysis_probe(), "clustering": clustering, "auxiliary": list(self.auxiliary),
            "grouping": grouping, "branched": bool(self.branched), "validation": validation, "source": self.file_text,
        }


# ---------------------------------------------------------------------- study files
def check_toml(path: str | Path | None = None, text: str | None = None, suite: Suite | None = None) -> list[str]:
    """Every problem of a study file at once, one line each (empty: valid). The study is also
    checked against its suite (built here unless ``suite`` is given), as before training;
    nothing trains. The runs it plans: :func:`planned_runs`.

    >>> check_toml(text='name = "x"\\n[suite]\\nname = "planted"\\nsize = 3\\n[validation]\\nrandom = 99')
    ["study: field 'suite.size': unknown key; valid keys here are ['name', 'options', 'tasks']", "study: field 'validation.random': must be a whole number of random groupings from 0 to 20, got 99"]
    """
    from taskrel.study.toml import parse, study_text

    try:
        study, errors = parse(text if text is not None else study_text(path), Study)
    except TaskrelError as e:  # the file cannot be read
        return [str(e)]
    if study is None:
        return errors
    try:
        built = suite if suite is not None else study.build_suite()
    except TaskrelError as e:
        return [str(e)]
    return study_problems(study, built)


__all__ = ["AFFINITY_PREFERENCE", "Clustering", "Grouping", "Study", "Validation", "check_toml"]
