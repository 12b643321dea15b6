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
    widths = [0.5, 1.0]                # optional: offer every group at these encoder widths
                                       # (the suite's stages built at width x; the search
                                       # chooses groups and widths together; needs a
                                       # pairwise probe, measured at every width)
    cost = "params"                    # with widths: a network costs its parameters over the
                                       # width-1 all-shared network's ("params"), or its
                                       # width in full networks ("networks")

    [validation]                       # train recommended vs all-shared vs all-separate
    seeds = [0, 1, 2]
    train = { epochs = 30 }            # optional overrides of [train]
    front = true                       # also train each grouping of the Pareto front
    random = 2                         # and 2 random groupings with the recommendation's
                                       # group sizes (the same budget and parameter count)
    aggregator = "upgrad"              # and all-shared trained with a conflict-aware TorchJD
                                       # aggregator ("all-shared + upgrad"; optional)
    matched = true                     # and all-shared and all-separate at the widths that
                                       # match the recommendation's parameter count (default:
                                       # when the grouping searches widths)

Every problem is a :class:`~taskrel.errors.TaskrelError` that names the field at fault.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.files import read_text
from taskrel.probes import PROBES

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

# keys the study handles itself (not passed to the probe's constructor)
PROBE_OWN_KEYS = ("kind", "seeds", "train", "enabled")

TOP_KEYS = {"name", "description", "suite", "train", "probes", "analysis", "validation"}
SUITE_KEYS = {"name", "tasks", "options"}
ANALYSIS_KEYS = {"affinity", "clustering", "auxiliary", "grouping", "layout"}
CLUSTER_KEYS = {"method", "n_clusters", "linkage", "random_state", "stability"}
AUX_KEYS = {"primary"}
GROUPING_KEYS = {"budgets", "budget", "source", "solver", "partition", "max_size", "widths", "cost"}
LAYOUT_KEYS = {"branched"}
VALIDATION_KEYS = {"enabled", "seeds", "train", "front", "random", "aggregator", "matched"}


@dataclass
class ProbeSpec:
    """One probe of a study: its name, kind, seeds, training overrides and parameters."""

    name: str
    kind: str
    seeds: list[int] = field(default_factory=lambda: [0])
    train: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudySpec:
    """A parsed study file as plain data (:func:`load_study`, :func:`parse_study`); the
    :class:`~taskrel.study.Study` it describes is :func:`study_from_spec`."""

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
    def from_dict(cls, d: dict[str, Any]) -> StudySpec:
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


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        _fail(where, f"must be true or false, got {value!r}")
    return value


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            _fail(where, f"a number of seeds must be >= 1, got {value}")
        return list(range(value))
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        _fail(where, f"must be a number of seeds or a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        _fail(where, f"seeds are repeated: {value}")
    if min(value) < 0:
        _fail(where, f"seeds must be >= 0, got {min(value)}")
    return list(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, f"must be text, got {value!r}")
    return value


def _names(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _fail(where, f"must be a list of task names, got {value!r}")
    return list(value)


def _parse_probes(raw_probes: Any) -> list[ProbeSpec]:
    probes: list[ProbeSpec] = []
    if not isinstance(raw_probes, dict):
        _fail("probes", "must be a table of probe tables ([probes.NAME])")
    for pname, body in raw_probes.items():
        where = f"probes.{pname}"
        if not isinstance(body, dict):
            _fail(where, "must be a table")
        if not _bool(body.get("enabled", True), f"{where}.enabled"):
            continue
        kind = body.get("kind", pname)
        if kind not in PROBES:
            _fail(f"{where}.kind" if "kind" in body else where,
                  f"unknown probe {kind!r}; probes are {sorted(PROBES)}")
        ptrain = body.get("train") or {}
        if not isinstance(ptrain, dict):
            _fail(f"{where}.train", "must be a table of TrainConfig fields")
        params = {k: v for k, v in body.items() if k not in PROBE_OWN_KEYS}
        probes.append(ProbeSpec(pname, kind, _seeds(body.get("seeds", [0]), f"{where}.seeds"), dict(ptrain), params))
    return probes


def _parse_validation(validation: Any) -> dict[str, Any] | None:
    validation = None if validation is False else _table(validation, "validation", VALIDATION_KEYS)
    if validation is None or not _bool(validation.get("enabled", True), "validation.enabled"):
        return None
    for key in ("front", "matched"):
        if key in validation:
            _bool(validation[key], f"validation.{key}")
    validation["seeds"] = _seeds(validation.get("seeds", [0, 1, 2]), "validation.seeds")
    if not isinstance(validation.get("train", {}), dict):
        _fail("validation.train", "must be a table of TrainConfig fields")
    r = validation.get("random", 0)
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 20:
        _fail("validation.random", f"must be a whole number of random groupings from 0 to 20, got {r!r}")
    if validation.get("aggregator") is not None:
        from taskrel.aggregators import AGGREGATORS

        if validation["aggregator"] not in AGGREGATORS:
            _fail("validation.aggregator", f"unknown aggregator {validation['aggregator']!r}; use one of {', '.join(sorted(AGGREGATORS))}")
    return validation


def parse_study(data: dict[str, Any] | str, source: str = "") -> StudySpec:
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

    probes = _parse_probes(top.get("probes") or {})

    analysis = _table(top.get("analysis"), "analysis", ANALYSIS_KEYS)
    clustering = analysis.get("clustering", {})
    clustering = None if clustering is False else _table(clustering, "analysis.clustering", CLUSTER_KEYS)
    aux = _table(analysis.get("auxiliary"), "analysis.auxiliary", AUX_KEYS)
    primary = _names(aux["primary"], "analysis.auxiliary.primary") if "primary" in aux else []
    grouping = analysis.get("grouping", {})
    grouping = None if grouping is False else _table(grouping, "analysis.grouping", GROUPING_KEYS)
    layout = _table(analysis.get("layout"), "analysis.layout", LAYOUT_KEYS)
    validation = _parse_validation(top.get("validation", {}))
    return StudySpec(
        name=name.strip(),
        description=_text(top.get("description", ""), "description"),
        suite=suite["name"],
        tasks=tasks,
        suite_options=options,
        train=dict(train),
        probes=probes,
        affinity=analysis.get("affinity"),
        clustering=clustering,
        auxiliary=primary,
        grouping=grouping,
        branched=_bool(layout.get("branched", True), "analysis.layout.branched"),
        validation=validation,
        source=source,
    )


def load_study(path: str | Path | None = None) -> StudySpec:
    """Read a study file; ``None`` gives the built-in default study (digits)."""
    if path is None:
        from importlib.resources import files

        return parse_study(files("taskrel.study").joinpath("default.toml").read_text(encoding="utf-8"))
    return parse_study(read_text(path, "study"))


# ==================================================================== configs
def train_config_of(d: dict[str, Any], where: str):
    """A TrainConfig from a study file's table (a TaskrelError naming the field if bad)."""
    from taskrel.train import TrainConfig

    try:
        return TrainConfig.from_dict(d)
    except (TaskrelError, TypeError) as e:
        raise TaskrelError(f"study: field {where!r}: {e}") from None
