"""A study file: what to measure, analyse and validate, checked before anything trains.

A study is a TOML file (see ``studies/default.toml``)::

    name = "digits-default"            # names the study's folder in the store
    description = "..."

    [suite]
    name = "digits"                    # a built-in suite (``taskrel suites``)
    tasks = ["is0", "is1", "even"]     # optional subset, in this order
    options = { width = 64 }           # optional options of the suite builder

    [train]                            # a TrainConfig: epochs, lr, batch_size, patience, ...
    epochs = 20

    [probes.pairwise]                  # one table per probe; the key is its name
    seeds = [0, 1]                     # default: [0]
    cheap = true                       # other keys go to the probe's constructor
    train = { epochs = 10 }            # optional: overrides of [train] for this probe
    # kind = "pairwise"                # needed when the name is not a probe kind

    [analysis]
    affinity = "pairwise"              # the probe whose affinity the analyses read (default:
                                       # the first of pairwise, transfer, lookahead, gradient)
    [analysis.clustering]              # TaskClustering parameters: method, n_clusters, linkage
    [analysis.auxiliary]
    primary = ["is3"]                  # rank auxiliary tasks for these primary tasks
    [analysis.grouping]
    budgets = [1, 2, 3, 4]             # networks one may train (each a full encoder)
    budget = 2                         # the recommendation's budget (one of budgets)
    source = "pairwise"                # candidate table: a pairwise probe's HOA table, or any
                                       # probe's affinity (default: pairwise if present)
    solver = "milp"
    max_size = 4                       # largest group in a table built from an affinity

    [validation]                       # train recommended vs all-shared vs all-separate
    seeds = [0, 1, 2]
    train = { epochs = 30 }            # optional overrides of [train]
    front = true                       # also train each grouping of the Pareto front
    random = 2                         # and 2 random groupings with the recommendation's
                                       # group sizes (the same budget and parameter count)

Every problem is a :class:`~taskrel.errors.TaskrelError` that names the field at fault.
"""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

# probe kind -> (module, class)
PROBE_KINDS: dict[str, tuple[str, str]] = {
    "pairwise": ("taskrel.probes.pairwise", "PairwiseProbe"),
    "transfer": ("taskrel.probes.transfer", "TransferProbe"),
    "gradient": ("taskrel.probes.gradient", "GradientProbe"),
    "lookahead": ("taskrel.probes.lookahead", "LookaheadProbe"),
    "similarity": ("taskrel.probes.similarity", "SimilarityProbe"),
}
# which probe the analyses read when the study does not say
AFFINITY_PREFERENCE = ("pairwise", "transfer", "lookahead", "gradient", "similarity")
# keys the study handles itself (not passed to the probe's constructor)
PROBE_OWN_KEYS = ("kind", "seeds", "train", "enabled")

TOP_KEYS = {"name", "description", "suite", "train", "probes", "analysis", "validation"}
SUITE_KEYS = {"name", "tasks", "options"}
ANALYSIS_KEYS = {"affinity", "clustering", "auxiliary", "grouping", "layout"}
CLUSTER_KEYS = {"method", "n_clusters", "linkage", "random_state", "stability"}
AUX_KEYS = {"primary"}
GROUPING_KEYS = {"budgets", "budget", "source", "solver", "partition", "max_size"}
LAYOUT_KEYS = {"branched"}
VALIDATION_KEYS = {"enabled", "seeds", "train", "front", "random"}


@dataclass
class ProbeSpec:
    """One probe of a study: its name, kind, seeds, training overrides and parameters."""

    name: str
    kind: str
    seeds: list[int] = field(default_factory=lambda: [0])
    train: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Study:
    """A parsed, validated study (build one with :func:`load_study` or :func:`parse_study`)."""

    name: str
    suite: str
    description: str = ""
    tasks: list[str] | None = None
    suite_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    probes: list[ProbeSpec] = field(default_factory=list)
    affinity: str | None = None
    clustering: dict[str, Any] | None = field(default_factory=dict)
    auxiliary: list[str] = field(default_factory=list)
    grouping: dict[str, Any] | None = field(default_factory=dict)
    branched: bool = True
    validation: dict[str, Any] | None = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Study:
        d = dict(d)
        d["probes"] = [ProbeSpec(**p) for p in d.get("probes", [])]
        return cls(**d)

    # ---------------------------------------------------------------- derived
    def build_suite(self):
        """The whole suite. It is not subset to the study's tasks, so that its runs are shared
        with every study and probe on the same suite (a subset has another fingerprint)."""
        from taskrel.suites import get_suite

        return get_suite(self.suite, **self.suite_options)

    def task_list(self, suite) -> list[str]:
        """The study's tasks (all of the suite's when it names none), checked against it."""
        return suite.check_tasks(self.tasks) if self.tasks else list(suite.task_names)

    def train_config(self, overrides: dict[str, Any] | None = None):
        from taskrel.train import TrainConfig

        return TrainConfig.from_dict({**self.train, **(overrides or {})})

    def probe(self, name: str) -> ProbeSpec | None:
        return next((p for p in self.probes if p.name == name), None)

    def analysis_probe(self) -> str | None:
        """The probe whose affinity the analyses read."""
        if self.affinity:
            return self.affinity
        for kind in AFFINITY_PREFERENCE:
            for p in self.probes:
                if p.kind == kind:
                    return p.name
        return self.probes[0].name if self.probes else None

    def grouping_source(self) -> str | None:
        if self.grouping is None:
            return None
        if self.grouping.get("source"):
            return self.grouping["source"]
        pair = next((p.name for p in self.probes if p.kind == "pairwise"), None)
        return pair or self.analysis_probe()


# ==================================================================== parsing
def _fail(field_name: str, msg: str) -> None:
    raise TaskrelError(f"study: field {field_name!r}: {msg}")


def _table(d: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if d is None:
        return {}
    if not isinstance(d, dict):
        _fail(where, f"must be a table, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        _fail(f"{where}.{unknown[0]}" if where else unknown[0], f"unknown key; known keys here are {sorted(allowed)}")
    return dict(d)


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            _fail(where, f"a number of seeds must be >= 1, got {value}")
        return list(range(value))
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        _fail(where, f"must be a number of seeds or a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        _fail(where, f"seeds are repeated: {value}")
    return list(value)


def _names(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _fail(where, f"must be a list of task names, got {value!r}")
    return list(value)


def parse_study(data: dict[str, Any] | str, source: str = "") -> Study:
    """Parse a study from TOML text or a dict (no suite is built; see :func:`validate_study`).

    >>> s = parse_study('name = "x"\\n[suite]\\nname = "planted"\\n[probes.gradient]\\nseeds = 2')
    >>> s.probes[0].kind, s.probes[0].seeds
    ('gradient', [0, 1])
    >>> parse_study('name = "x"\\n[suite]\\nname = "planted"\\nepochs = 3')
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: study: field 'suite.epochs': unknown key; known keys here are ['name', 'options', 'tasks']
    """
    if isinstance(data, str):
        source = source or data
        if tomllib is None:  # pragma: no cover
            raise TaskrelError("study: reading TOML on Python 3.10 needs tomli: pip install tomli")
        try:
            data = tomllib.loads(data)
        except tomllib.TOMLDecodeError as e:
            raise TaskrelError(f"study: not valid TOML ({e})") from None
    top = _table(data, "", TOP_KEYS)
    name = top.get("name")
    if not isinstance(name, str) or not name.strip():
        _fail("name", f"a study needs a non-empty name, got {name!r}")
    suite = _table(top.get("suite"), "suite", SUITE_KEYS)
    if not isinstance(suite.get("name"), str):
        _fail("suite.name", f"a study needs a suite name, got {suite.get('name')!r}")
    options = _table(suite.get("options"), "suite.options", set(suite.get("options") or {}))
    tasks = _names(suite["tasks"], "suite.tasks") if "tasks" in suite else None
    train = top.get("train") or {}
    if not isinstance(train, dict):
        _fail("train", "must be a table of TrainConfig fields")

    probes = []
    raw_probes = top.get("probes") or {}
    if not isinstance(raw_probes, dict):
        _fail("probes", "must be a table of probe tables ([probes.NAME])")
    for pname, body in raw_probes.items():
        where = f"probes.{pname}"
        if not isinstance(body, dict):
            _fail(where, "must be a table")
        if body.get("enabled", True) is False:
            continue
        kind = body.get("kind", pname)
        if kind not in PROBE_KINDS:
            _fail(f"{where}.kind" if "kind" in body else where,
                  f"unknown probe {kind!r}; probes are {sorted(PROBE_KINDS)}")
        ptrain = body.get("train") or {}
        if not isinstance(ptrain, dict):
            _fail(f"{where}.train", "must be a table of TrainConfig fields")
        params = {k: v for k, v in body.items() if k not in PROBE_OWN_KEYS}
        probes.append(ProbeSpec(pname, kind, _seeds(body.get("seeds", [0]), f"{where}.seeds"), dict(ptrain), params))

    analysis = _table(top.get("analysis"), "analysis", ANALYSIS_KEYS)
    clustering = analysis.get("clustering", {})
    clustering = None if clustering is False else _table(clustering, "analysis.clustering", CLUSTER_KEYS)
    aux = _table(analysis.get("auxiliary"), "analysis.auxiliary", AUX_KEYS)
    primary = _names(aux["primary"], "analysis.auxiliary.primary") if "primary" in aux else []
    grouping = analysis.get("grouping", {})
    grouping = None if grouping is False else _table(grouping, "analysis.grouping", GROUPING_KEYS)
    layout = _table(analysis.get("layout"), "analysis.layout", LAYOUT_KEYS)
    validation = top.get("validation", {})
    validation = None if validation is False else _table(validation, "validation", VALIDATION_KEYS)
    if validation is not None:
        if validation.get("enabled", True) is False:
            validation = None
        else:
            validation["seeds"] = _seeds(validation.get("seeds", [0, 1, 2]), "validation.seeds")
            if not isinstance(validation.get("train", {}), dict):
                _fail("validation.train", "must be a table of TrainConfig fields")
            r = validation.get("random", 0)
            if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 20:
                _fail("validation.random", f"must be a whole number of random groupings from 0 to 20, got {r!r}")
    return Study(
        name=name.strip(),
        description=str(top.get("description", "")),
        suite=suite["name"],
        tasks=tasks,
        suite_options=options,
        train=dict(train),
        probes=probes,
        affinity=analysis.get("affinity"),
        clustering=clustering,
        auxiliary=primary,
        grouping=grouping,
        branched=bool(layout.get("branched", True)),
        validation=validation,
        source=source,
    )


def load_study(path: str | Path | None = None) -> Study:
    """Read a study file; ``None`` gives the built-in default study (digits)."""
    if path is None:
        from importlib.resources import files

        return parse_study(files("taskrel.study").joinpath("default.toml").read_text(encoding="utf-8"))
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskrelError(f"study: file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise TaskrelError(f"study: {str(p)!r} is a directory, not a study file") from None
    return parse_study(text)


# ==================================================================== validation
def _check_train(d: dict[str, Any], where: str):
    from taskrel.train import TrainConfig

    try:
        return TrainConfig.from_dict(d)
    except TaskrelError as e:
        raise TaskrelError(f"study: field {where!r}: {e}") from None
    except TypeError as e:  # pragma: no cover - defensive
        raise TaskrelError(f"study: field {where!r}: {e}") from None


def probe_class(kind: str):
    """The class of a probe kind (TaskrelError if that probe is not available)."""
    module, cls = PROBE_KINDS[kind]
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise TaskrelError(f"probe {kind!r} is not available in this taskrel ({module}.{cls}: {e})") from None


def _check_probe_params(spec: ProbeSpec, study: Study, suite, tasks: list[str]) -> None:
    """Unknown parameters, and (for probes that can plan without training) bad values."""
    try:
        cls = probe_class(spec.kind)
    except TaskrelError:
        return  # reported when the study runs; the other probes go on
    sig = inspect.signature(cls.__init__)
    known = {n for n in sig.parameters if n not in ("self", "tasks", "settings")}
    if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        for key in spec.params:
            if key not in known:
                _fail(f"probes.{spec.name}.{key}", f"unknown parameter of {cls.__name__}; known are {sorted(known)}")
    if not hasattr(cls, "plan"):
        return
    from taskrel.probes.base import ProbeSettings

    settings = ProbeSettings(config=study.train_config(spec.train), seeds=spec.seeds, progress=False)
    try:
        cls(tasks=tasks, settings=settings, **spec.params).plan(suite)
    except TaskrelError as e:
        raise TaskrelError(f"study: field 'probes.{spec.name}': {e}") from None


def validate_study(study: Study, suite=None):
    """Check names and numbers against the suite; returns the suite (built if not given)."""
    from taskrel.suites import list_suites

    if suite is None:
        if study.suite not in list_suites():
            _fail("suite.name", f"unknown suite {study.suite!r}; built-in suites are {sorted(list_suites())}")
        try:
            suite = study.build_suite()
        except TaskrelError as e:
            raise TaskrelError(f"study: field 'suite.options': {e}") from None
    try:
        tasks = study.task_list(suite)
    except TaskrelError as e:
        raise TaskrelError(f"study: field 'suite.tasks': {e}") from None
    if len(tasks) < 2:
        _fail("suite.tasks", f"a study needs at least two tasks, got {tasks}")
    _check_train(study.train, "train")
    if not study.probes:
        _fail("probes", "a study needs at least one probe ([probes.pairwise], ...)")
    names = [p.name for p in study.probes]
    for p in study.probes:
        _check_train({**study.train, **p.train}, f"probes.{p.name}.train")
        _check_probe_params(p, study, suite, tasks)
    if study.affinity is not None and study.affinity not in names:
        _fail("analysis.affinity", f"no probe named {study.affinity!r}; probes are {names}")
    for t in study.auxiliary:
        if t not in tasks:
            _fail("analysis.auxiliary.primary", f"unknown task {t!r}; tasks are {tasks}")
    if study.clustering is not None:
        k = study.clustering.get("n_clusters")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(tasks)):
            _fail("analysis.clustering.n_clusters", f"must be an integer between 1 and {len(tasks)}, got {k!r}")
    if study.grouping is not None:
        _check_grouping(study, names, len(tasks))
    if study.validation is not None:
        _check_train({**study.train, **study.validation.get("train", {})}, "validation.train")
    return suite


def _check_grouping(study: Study, probes: list[str], n: int) -> None:
    g = study.grouping
    src = g.get("source")
    if src is not None and src not in probes:
        _fail("analysis.grouping.source", f"no probe named {src!r}; probes are {probes}")
    budgets = g.get("budgets", list(range(1, n + 1)))
    if not isinstance(budgets, list) or not budgets:
        _fail("analysis.grouping.budgets", f"must be a non-empty list of numbers, got {budgets!r}")
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b < 1:
            _fail("analysis.grouping.budgets", f"each budget (networks trained) must be a number >= 1, got {b!r}")
    budgets = sorted(set(float(b) for b in budgets))
    budget = g.get("budget", budgets[len(budgets) // 2])
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget < 1:
        _fail("analysis.grouping.budget", f"must be a number >= 1 (networks trained), got {budget!r}")
    if budget > n:
        _fail("analysis.grouping.budget", f"{budget} networks for {n} tasks: at most {n} are ever useful")
    if float(budget) not in budgets:
        budgets = sorted(budgets + [float(budget)])
    g["budgets"], g["budget"] = budgets, float(budget)
    from taskrel.analysis.grouping import SOLVERS

    if g.get("solver", "milp") not in SOLVERS:
        _fail("analysis.grouping.solver", f"unknown solver {g['solver']!r}; use one of {list(SOLVERS)}")
    ms = g.get("max_size")
    if ms is not None and (not isinstance(ms, int) or isinstance(ms, bool) or ms < 1):
        _fail("analysis.grouping.max_size", f"must be a positive integer, got {ms!r}")
