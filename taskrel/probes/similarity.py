"""Representation similarity probe: CKA / RSA between single-task models, at every stage.

Each task's single-task model (the same stored runs the transfer and pairwise probes use, from
:func:`~taskrel.probes.base.single_task_specs`) is run once on a fixed probe set: the first
``n_probe`` examples of a split. Its representation at the output of every encoder stage is
kept, and :func:`taskrel.probes.cka.cka_matrix` compares every pair of tasks at each stage (each
representation prepared once, then one cross product per pair). The result is a per-stage
affinity ``(stages, n, n)``, symmetric, 1 on the diagonal (for linear CKA, RBF CKA and RSA).

Initialisation. For a given seed every copy of a stage starts from the same weights (so that
layouts differ by their sharing only). Two single-task models of one seed therefore start
identical, and whatever of the start survives training reads as similarity: unrelated tasks
look alike (linear CKA 0.58 at the first planted stage even for the conflicting task). By
default (``init="independent"``) each task's model here is trained from its own seed, derived
from the seed and the task's name (:func:`independent_seed`), so an unrelated pair reads near
the similarity of two independently initialised networks, reported per stage as ``chance_``.
These runs are the probe's own (n per seed) instead of the single-task runs the transfer and
pairwise probes share; ``init="shared"`` reuses those, start and all.

Failed runs. A task whose model failed in a seed (its loss diverged) is NaN at every entry of
it in that seed; the other tasks are still compared. An entry no seed measured is marked
missing and ``meta["failed"]`` names the task that diverged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from taskrel.errors import TaskrelError
from taskrel.layout import build_model
from taskrel.plans import Plan
from taskrel.probes.base import Probe, register_probe, single_task_specs
from taskrel.probes.partial import place
from taskrel.splits import SPLITS
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import Suite
from taskrel.train import TrainConfig

ALL_KINDS = ("linear", "debiased", "rbf", "rsa")
INITS = ("independent", "shared")


def independent_seed(seed: int, task: str) -> int:
    """The seed of ``task``'s model under ``init="independent"``: its own, from seed and name.

    >>> independent_seed(0, "a") == independent_seed(0, "a") != independent_seed(0, "b")
    True
    """
    return int(hashlib.sha256(f"similarity/{int(seed)}/{task}".encode()).hexdigest()[:7], 16)


@torch.no_grad()
def untrained_features(suite: Suite, spec: RunSpec, x: torch.Tensor, task: str) -> list[torch.Tensor]:
    """``task``'s representation at every stage of the model of ``spec`` as initialised."""
    model = build_model(spec.layout, suite, spec.seed)
    model.eval()
    return [feats[task].reshape(len(x), -1).detach().cpu() for feats in model.task_features(x)]


@torch.no_grad()
def stage_features(suite: Suite, spec: RunSpec, store: RunStore, x: torch.Tensor, task: str, key: str) -> list[torch.Tensor]:
    """``task``'s representation at every encoder stage of the stored model of ``spec`` (run ``key``)."""
    model = build_model(spec.layout, suite, spec.seed)
    model.load_state_dict(store.load_weights(key))
    model.eval()
    return [feats[task].reshape(len(x), -1).detach().cpu() for feats in model.task_features(x)]


def similarity_matrices(features: dict[str, list[torch.Tensor]], tasks: Sequence[str], kinds: Sequence[str]) -> dict[str, np.ndarray]:
    """Per kind, an array (stages, n, n) of similarities between the tasks' representations.

    >>> rng = np.random.default_rng(0)
    >>> a = torch.from_numpy(rng.normal(size=(40, 5)))
    >>> feats = {"a": [a, a], "b": [2 * a, torch.from_numpy(rng.normal(size=(40, 3)))]}
    >>> m = similarity_matrices(feats, ["a", "b"], ["linear"])["linear"]
    >>> m.shape, round(float(m[0, 0, 1]), 6), bool(m[1, 0, 1] < 0.5)
    ((2, 2, 2), 1.0, True)
    """
    from taskrel.probes.cka import cka_matrix

    n_stages = len(features[tasks[0]])
    out = {}
    for kind in kinds:
        stages = []
        for k in range(n_stages):
            try:
                stages.append(cka_matrix([features[t][k] for t in tasks], kind=kind))
            except TaskrelError as e:
                raise TaskrelError(f"similarity probe: stage {k}, kind {kind!r}: {e}") from None
        out[kind] = np.stack(stages)
    return out


@register_probe("similarity")
class SimilarityProbe(Probe):
    """How alike the tasks' single-task representations are, stage by stage.

    Parameters
    ----------
    tasks : tasks to compare (default: all of the suite's).
    kinds : similarity measures, any of ``"linear"``, ``"debiased"``, ``"rbf"``, ``"rsa"``
        (see :mod:`taskrel.probes.cka`); a single string is allowed. The first is ``affinity_``.
    probe_set : the split whose inputs are the probe set (``"val"`` by default).
    n_probe : use the first ``n_probe`` examples of that split (default: all of it).
    config, seeds : training config and seeds of the single-task models.
    init : ``"independent"`` (default: each task's model from its own seed, so a shared start
        does not read as similarity) or ``"shared"`` (the single-task runs of the other probes,
        which start from the same weights for a seed).

    Attributes
    ----------
    affinity_ : per-stage affinity of the first kind, shape (stages, n, n), stage names from
        ``suite.stage_names``; mean and std over seeds.
    affinities_ : dict kind -> per-stage affinity, for every kind (measure ``"similarity-KIND"``).
    chance_ : dict kind -> array (stages,): mean similarity of the untrained models of
        different tasks (mean over pairs and seeds): what unrelated tasks read.
    records_ : the single-task runs used (one per task and seed); ``trained_``: how many of
        them this ``fit`` trained (0 when every model was already stored).

    The cost is that of the single-task runs plus the seconds spent on features and similarity.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.runner import Runner
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> probe = SimilarityProbe(suite.task_names[:3], kinds=("linear", "rsa"), config=TrainConfig(epochs=2))
    >>> probe = probe.fit(suite, Runner(tempfile.mkdtemp(), progress=False))
    >>> probe.affinity_.values.shape, probe.affinity_.stages
    ((3, 3, 3), ['fc1', 'fc2', 'fc3'])
    >>> [round(float(v), 6) for v in probe.affinity_.values[:, 1, 1]]
    [1.0, 1.0, 1.0]
    >>> sorted(probe.affinities_)
    ['linear', 'rsa']
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        kinds: Sequence[str] | str = ALL_KINDS,
        probe_set: str = "val",
        n_probe: int | None = None,
        config: TrainConfig | None = None,
        seeds: Sequence[int] = (0,),
        init: str = "independent",
    ):
        self.tasks = tasks
        self.init = init
        self.kinds = kinds
        self.probe_set = probe_set
        self.n_probe = n_probe
        self.config = config
        self.seeds = seeds

    def kind_list(self) -> list[str]:
        kinds = [self.kinds] if isinstance(self.kinds, str) else list(self.kinds)
        bad = [k for k in kinds if k not in ALL_KINDS]
        if not kinds or bad or len(set(kinds)) != len(kinds):
            raise TaskrelError(f"similarity probe: kinds must be distinct names from {ALL_KINDS}, got {self.kinds!r}")
        return kinds

    def check(self, suite: Suite) -> None:
        self.kind_list()
        if self.probe_set not in SPLITS:
            raise TaskrelError(f"similarity probe: probe_set must be one of {SPLITS}, got {self.probe_set!r}")
        if self.n_probe is not None and int(self.n_probe) < 4:
            raise TaskrelError(f"similarity probe: n_probe must be >= 4, got {self.n_probe}")
        if self.init not in INITS:
            raise TaskrelError(f"similarity probe: init must be one of {INITS}, got {self.init!r}")

    def plan(self, suite: Suite) -> Plan:
        """Every seed's single-task runs, task by task (with ``init="shared"``: those of the
        transfer and pairwise probes; else each task from its :func:`independent_seed`);
        ``index`` holds the (seed, task) of each."""
        tasks, cfg = self.task_names(suite), self.train_config()
        shared = self.init == "shared"
        index = [(seed, t) for seed in self.seed_list() for t in tasks]
        return Plan([single_task_specs(suite, [t], cfg, seed if shared else independent_seed(seed, t))[t]
                     for seed, t in index], index)

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, np.ndarray]:
        """Per kind, per-seed arrays (seeds, stages, n, n); NaN at every entry of a task whose
        model failed in that seed (the other tasks are still compared)."""
        names, kinds = self.task_names(suite), self.kind_list()
        X = torch.from_numpy(suite.inputs[suite.split[self.probe_set]])
        if self.n_probe is not None:
            X = X[: int(self.n_probe)]
        self.n_probe_ = int(len(X))
        n, n_stages = len(names), suite.n_stages
        per_kind: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
        specs = plan.specs
        off = ~np.eye(n, dtype=bool)
        chance: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
        for k in range(len(self.seed_list())):
            start = {t: untrained_features(suite, spec, X, t) for t, spec in zip(names, specs[k * n:(k + 1) * n])}
            for kind, m in similarity_matrices(start, names, kinds).items():
                chance[kind].append(m[:, off].mean(axis=1))
        self.chance_ = {kind: np.mean(v, axis=0) for kind, v in chance.items()}
        for k in range(len(self.seed_list())):
            recs = records[k * n:(k + 1) * n]
            ok = [t for t, r in zip(names, recs) if r.ok]  # a task whose model failed: NaN at its entries
            if len(ok) < 2:
                for kind in kinds:
                    per_kind[kind].append(np.full((n_stages, n, n), np.nan))
                continue
            feats = {t: stage_features(suite, spec, store, X, t, r.key)
                     for t, spec, r in zip(names, specs[k * n:(k + 1) * n], recs) if r.ok}
            for kind, m in similarity_matrices(feats, ok, kinds).items():
                per_kind[kind].append(place(m, ok, names))
        return {kind: np.stack(v) for kind, v in per_kind.items()}

    def measure_name(self, key: str) -> str:
        return f"similarity-{key}"

    def meta(self) -> dict[str, Any]:
        chance = {kind: [float(v) for v in c] for kind, c in getattr(self, "chance_", {}).items()}
        return {"probe_set": self.probe_set, "n_probe": getattr(self, "n_probe_", self.n_probe), "init": self.init, "chance": chance,
                "run_keys": [r.key for r in getattr(self, "records_", [])]}
