"""Study files: TOML in (:func:`parse`, behind ``Study.from_toml``), TOML out (:func:`to_toml`),
every problem at once (behind :func:`taskrel.study.check_toml`).

A study file (see ``studies/default.toml``)::

    name = "digits-default"            # names the study's folder in the store
    description = "..."
    max_runs = 2000                    # optional: refuse probes planning more runs ("none": no limit)

    [suite]
    name = "digits"                    # a built-in suite (``taskrel suites``)
    tasks = ["is0", "is1", "even"]     # optional subset, in this order
    options = { width = 64 }           # optional options of the suite builder

    [train]                            # TrainConfig fields: epochs, lr, batch_size, patience, ...
    epochs = 20

    [probes.pairwise]                  # one table per probe; the key is its name
    seeds = [0, 1]                     # a list, or a count (2 means [0, 1]); default [0]
    cheap = true                       # other keys go to the probe's constructor
    train = { epochs = 10 }            # optional: overrides of [train] for this probe
    # kind = "pairwise"                # needed when the name is not a probe kind
    # enabled = false                  # leave the probe out

    [analysis]
    affinity = "pairwise"              # the probe whose affinity the analyses read
    [analysis.clustering]              # Clustering's: TaskClustering's, and stability = true|false
    [analysis.auxiliary]
    primary = ["is3"]                  # rank auxiliary tasks for these primary tasks
    [analysis.grouping]                # Grouping's parameters (budgets, source, max_size,
    budgets = [1, 2, 3, 4]             # widths, cost) and GroupingSearch's (budget, solver,
    budget = 2                         # partition, time_limit, ...); see taskrel.study.Grouping
    [analysis.layout]
    branched = true

    [validation]                       # Validation's parameters; train = { ... } overrides [train]
    seeds = [0, 1, 2]
    random = 2

Each table goes straight to its constructor: an unknown key is that constructor's error,
prefixed with the key's TOML path and with the nearest valid key ("did you mean").
A file may start with a UTF-8 byte-order mark.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from taskrel.errors import TaskrelError
from taskrel.files import read_text
from taskrel.study.settings import Clustering, Grouping, Validation, changed_params, param_names
from taskrel.train import TrainConfig

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

TOP_KEYS = ("name", "description", "max_runs", "suite", "train", "probes", "analysis", "validation")
SUITE_KEYS = ("name", "tasks", "options")
ANALYSIS_KEYS = ("affinity", "clustering", "auxiliary", "grouping", "layout")
PROBE_OWN_KEYS = ("kind", "seeds", "train", "enabled")  # the study's, not the probe constructor's
NOT_FROM_FILE = ("tasks", "config")  # constructor parameters a file does not set


class Problems:
    """Errors collected while reading one study file (each prefixed with its TOML path)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.errors.append(f"study: field {where!r}: {msg}" if where else f"study: {msg}")

    def attempt(self, where: str, fn: Callable[[], Any]) -> Any:
        """``fn()``, or None with its TaskrelError (or bad-argument error) recorded at ``where``."""
        try:
            return fn()
        except TaskrelError as e:
            msg = str(e)
            self.errors.append(msg if msg.startswith("study: field") else f"study: field {where!r}: {msg}")
        except (TypeError, ValueError) as e:
            self.add(where, str(e))
        return None


def unknown_keys(table: Mapping[str, Any], valid: list[str] | tuple[str, ...], where: str, problems: Problems) -> bool:
    """Record every key of ``table`` not in ``valid``, with the nearest valid key; True if none."""
    ok = True
    for key in table:
        if key not in valid:
            near = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            path = f"{where}.{key}" if where else key
            problems.add(path, f"unknown key; {hint}valid keys here are {sorted(valid)}")
            ok = False
    return ok


def _table(value: Any, where: str, problems: Problems) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(where, f"must be a table, got {value!r}")
        return {}
    return dict(value)


def _seeds(value: Any, where: str, problems: Problems) -> list[int] | None:
    """A list of distinct seeds >= 0, or a count n meaning [0, ..., n-1]."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1:
            return list(range(value))
        problems.add(where, f"a number of seeds must be >= 1, got {value}")
    elif not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        problems.add(where, f"must be a number of seeds or a non-empty list of integers, got {value!r}")
    elif len(set(value)) != len(value):
        problems.add(where, f"seeds are repeated: {value}")
    elif min(value) < 0:
        problems.add(where, f"seeds must be >= 0, got {min(value)}")
    else:
        return list(value)
    return None


def _enabled(table: dict[str, Any], where: str, problems: Problems) -> bool:
    """The table's ``enabled`` key (default true), which must be true or false."""
    value = table.get("enabled", True)
    if not isinstance(value, bool):
        problems.add(f"{where}.enabled", f"must be true or false, got {value!r}")
        return False
    return value


def _names(value: Any, where: str, problems: Problems) -> list[str]:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.add(where, f"must be a list of task names, got {value!r}")
        return []
    return list(value)


def _config(train: dict[str, Any], where: str, problems: Problems) -> TrainConfig | None:
    return problems.attempt(where, lambda: TrainConfig.from_dict(train))


# ---------------------------------------------------------------------- the tables
def _probes(raw: Any, train: dict[str, Any], problems: Problems) -> dict[str, Any]:
    from taskrel.probes import PROBES

    out: dict[str, Any] = {}
    for name, body in _table(raw, "probes", problems).items():
        where = f"probes.{name}"
        if not isinstance(body, dict):
            problems.add(where, "must be a table")
            continue
        if not _enabled(body, where, problems):
            continue
        kind = body.get("kind", name)
        if kind not in PROBES:
            near = difflib.get_close_matches(str(kind), list(PROBES), n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            problems.add(f"{where}.kind" if "kind" in body else where, f"unknown probe {kind!r}; {hint}probes are {sorted(PROBES)}")
            continue
        cls = PROBES[kind]
        params = {k: v for k, v in body.items() if k not in PROBE_OWN_KEYS}
        valid = [k for k in param_names(cls) if k not in NOT_FROM_FILE] + list(PROBE_OWN_KEYS)
        if not unknown_keys(body, valid, where, problems):
            continue
        seeds = _seeds(body.get("seeds", [0]), f"{where}.seeds", problems)
        ptrain = _table(body.get("train"), f"{where}.train", problems)
        config = _config({**train, **ptrain}, f"{where}.train" if ptrain else "train", problems)
        if seeds is None or config is None:
            continue
        probe = problems.attempt(where, lambda c=cls, p=params, k=config, s=seeds: c(**p, config=k, seeds=s))
        if probe is not None:
            out[name] = probe
    return out


def _clustering(raw: Any, problems: Problems) -> Clustering | None:
    """The :class:`~taskrel.study.settings.Clustering` of ``[analysis.clustering]`` (its
    ``stability`` key included); None when ``false``."""
    if raw is False:
        return None
    table = _table(raw, "analysis.clustering", problems)
    stability = table.get("stability", True)
    if not isinstance(stability, bool):
        problems.add("analysis.clustering.stability", f"must be true or false, got {stability!r}")
        return None
    if not unknown_keys(table, param_names(Clustering), "analysis.clustering", problems):
        return None
    return problems.attempt("analysis.clustering", lambda: Clustering(**table))


def _grouping(raw: Any, problems: Problems) -> Grouping | None:
    """``[analysis.grouping]``: Grouping's keys to it, GroupingSearch's keys to its search."""
    from taskrel.analysis import GroupingSearch

    if raw is False:
        return None
    where = "analysis.grouping"
    table = _table(raw, where, problems)
    own = [k for k in param_names(Grouping) if k != "search"]
    search_keys = param_names(GroupingSearch)
    if not unknown_keys(table, own + search_keys, where, problems):
        return None
    search = {k: v for k, v in table.items() if k in search_keys and k not in own}
    search.setdefault("budget", None)
    gs = problems.attempt(where, lambda: GroupingSearch(**search))
    if gs is None:
        return None
    return problems.attempt(where, lambda: Grouping(search=gs, **{k: v for k, v in table.items() if k in own}))


def _validation(raw: Any, train: dict[str, Any], problems: Problems) -> Validation | None:
    if raw is False:
        return None
    table = _table(raw, "validation", problems)
    if not _enabled(table, "validation", problems):
        return None
    table.pop("enabled", None)
    valid = [k for k in param_names(Validation) if k != "config"] + ["train", "enabled"]
    if not unknown_keys(table, valid, "validation", problems):
        return None
    if "seeds" in table:
        table["seeds"] = _seeds(table["seeds"], "validation.seeds", problems)
    vtrain = _table(table.pop("train", None), "validation.train", problems)
    config = _config({**train, **vtrain}, "validation.train" if vtrain else "train", problems)
    v = problems.attempt("validation", lambda: Validation(**table, config=config))
    if v is not None:
        problems.attempt("validation", v.check)
    return v


def _read(data: dict[str, Any], source: str, problems: Problems, cls: type) -> Any:
    """The Study of a parsed file, every problem recorded; None when any was found."""
    unknown_keys(data, TOP_KEYS, "", problems)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add("name", f"a study needs a non-empty name, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.add("description", f"must be text, got {description!r}")
    suite = _table(data.get("suite"), "suite", problems)
    unknown_keys(suite, SUITE_KEYS, "suite", problems)
    if not isinstance(suite.get("name"), str):
        problems.add("suite.name", f"a study needs a suite name, got {suite.get('name')!r}")
    options = _table(suite.get("options"), "suite.options", problems)
    tasks = _names(suite["tasks"], "suite.tasks", problems) if "tasks" in suite else None
    train = _table(data.get("train"), "train", problems)
    config = _config(train, "train", problems)
    probes = _probes(data.get("probes"), train, problems)
    analysis = _table(data.get("analysis"), "analysis", problems)
    unknown_keys(analysis, ANALYSIS_KEYS, "analysis", problems)
    clustering = _clustering(analysis.get("clustering", {}), problems)
    aux = _table(analysis.get("auxiliary"), "analysis.auxiliary", problems)
    unknown_keys(aux, ("primary",), "analysis.auxiliary", problems)
    primary = _names(aux["primary"], "analysis.auxiliary.primary", problems) if "primary" in aux else []
    layout = _table(analysis.get("layout"), "analysis.layout", problems)
    unknown_keys(layout, ("branched",), "analysis.layout", problems)
    branched = layout.get("branched", True)
    if not isinstance(branched, bool):
        problems.add("analysis.layout.branched", f"must be true or false, got {branched!r}")
    grouping = _grouping(analysis.get("grouping", {}), problems)
    validation = _validation(data.get("validation", {}), train, problems)
    if problems.errors:
        return None
    study = cls(probes=probes, clustering=clustering, grouping=grouping, validation=validation, auxiliary=primary,
                affinity=analysis.get("affinity"), branched=branched, tasks=tasks, config=config, name=name.strip(),
                description=description, suite={"name": suite["name"], "options": options} if options else suite["name"],
                **({"max_runs": None if data["max_runs"] == "none" else data["max_runs"]} if "max_runs" in data else {}))
    study.file_text = source
    return study


# ---------------------------------------------------------------------- entry points
def study_text(path: str | Path | None = None) -> str:
    """The text of a study file (None: the built-in default study), without a byte-order mark."""
    if path is None:
        from importlib.resources import files

        text = files("taskrel.study").joinpath("default.toml").read_text(encoding="utf-8")
    else:
        text = read_text(path, "study")
    return text[1:] if text.startswith("\ufeff") else text


def parse(text: str, cls: type) -> tuple[Any, list[str]]:
    """The study (a ``cls``, :class:`~taskrel.study.Study`) of a study file's text, or None,
    and every problem found (each naming its TOML path); constructs only."""
    problems = Problems()
    text = text[1:] if text.startswith("\ufeff") else text
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problems.add("", f"not valid TOML ({e})")
        return None, problems.errors
    return _read(data, text, problems, cls), problems.errors


def parse_tables(data: Any, cls: type, source: str = "") -> tuple[Any, list[str]]:
    """As :func:`parse`, for a file already parsed into tables."""
    problems = Problems()
    if not isinstance(data, dict):
        problems.add("", f"a study file is a table, got {type(data).__name__}")
        return None, problems.errors
    return _read(data, source, problems, cls), problems.errors


def first_error(errors: list[str]) -> TaskrelError:
    """The first problem as an error (saying how many more there are)."""
    more = len(errors) - 1
    return TaskrelError(errors[0] + (f" (and {more} more problem{'s' if more > 1 else ''}: "
                                     "taskrel study --check FILE lists them)" if more else ""))


def to_toml(study: Any) -> str:
    """The study file of a :class:`~taskrel.study.Study` (its probes, analyses and validation;
    ``Study.from_toml`` reads it back to an equal study).

    >>> from taskrel.study import Study
    >>> s = Study.from_toml()
    >>> Study.from_toml(text=to_toml(s)).get_params().keys() == s.get_params().keys()
    True
    """
    return "\n".join(_dump(study_tables(study))) + "\n"


def study_tables(study: Any) -> dict[str, Any]:
    """A study as the tables of its study file (what :func:`~taskrel.study.toml.to_toml` writes)."""
    base = study.base_config().to_dict()
    default_train = TrainConfig().to_dict()
    probes = {}
    for name, p in study.named_probes().items():
        own = {k: v for k, v in changed_params(p).items() if k not in ("tasks", "config", "seeds")}
        train = {k: v for k, v in p.train_config().to_dict().items() if v != base.get(k)}
        probes[name] = {**({"kind": p.kind} if name != p.kind else {}), "seeds": p.seed_list(), **own,
                        **({"train": train} if train else {})}
    analysis: dict[str, Any] = {"affinity": study.affinity}
    c = study.clustering
    analysis["clustering"] = False if c is None else changed_params(Clustering(**{**c.get_params(), "stability": study.stability}))
    if study.auxiliary:
        analysis["auxiliary"] = {"primary": list(study.auxiliary)}
    g = study.grouping_plan()
    if g is None:
        analysis["grouping"] = False
    else:
        own = {k: v for k, v in changed_params(g).items() if k != "search"}
        analysis["grouping"] = {**changed_params(g.searcher()), "budget": g.budget, **own}
    analysis["layout"] = {"branched": bool(study.branched)}
    v = study.validation
    validation: Any = False
    if v is not None:
        validation = {k: x for k, x in changed_params(v).items() if k != "config"}
        vtrain = {k: x for k, x in (v.config or study.base_config()).to_dict().items() if x != base.get(k)}
        validation |= {"train": vtrain} if vtrain else {}
    options = study.suite_options()
    suite = {"name": study.suite_name(), **({"tasks": list(study.tasks)} if study.tasks else {}),
             **({"options": options} if options else {})}
    return {"name": study.name, "description": study.description,
            **({} if study.max_runs == 2000 else {"max_runs": "none" if study.max_runs is None else study.max_runs}), "suite": suite,
            "train": {k: x for k, x in base.items() if x is not None and x != default_train.get(k)}, "probes": probes,
            "analysis": analysis, "validation": validation}


def _dump(d: dict[str, Any], name: str = "") -> list[str]:
    """TOML lines: a table's own keys after its header, then its sub-tables."""
    lines = [f"[{name}]"] if name else []
    lines += [f"{_key(k)} = {_value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", *_dump(v, f"{name}.{_key(k)}" if name else _key(k))]
    return lines


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else _value(k)


def _value(v: Any) -> str:
    import json
    import math

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "-inf" if v < 0 else "nan"
    if isinstance(v, (int, float, str)):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TaskrelError(f"study: cannot write {v!r} ({type(v).__name__}) to a study file")


__all__ = ["first_error", "parse", "parse_tables", "study_tables", "study_text", "to_toml"]
