"""Representation similarity probe: CKA / RSA between single-task models, at every stage.

Each task's single-task model (the same stored runs the transfer and pairwise probes use, from
:func:`~taskrel.probes.base.single_task_specs`) is run once on a fixed probe set: the first
``n_probe`` examples of a split. Its representation at the output of every encoder stage is
kept, and :func:`taskrel.probes.cka.cka_matrix` compares every pair of tasks at each stage (each
representation prepared once, then one cross product per pair). The result is a per-stage
affinity ``(stages, n, n)``, symmetric, 1 on the diagonal (for linear CKA, RBF CKA and RSA).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from taskrel.affinity import Affinity, Cost
from taskrel.errors import TaskrelError
from taskrel.layout import build_model
from taskrel.probes.base import ProbeSettings, check_probe_tasks, cost_of, single_task_specs
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.suite import SPLITS, Suite

ALL_KINDS = ("linear", "debiased", "rbf", "rsa")


@torch.no_grad()
def stage_features(suite: Suite, spec: RunSpec, store: RunStore, x: torch.Tensor, task: str) -> list[torch.Tensor]:
    """``task``'s representation at every encoder stage of the stored model of ``spec``."""
    key = spec.key(suite.fingerprint())
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


class SimilarityProbe:
    """How alike the tasks' single-task representations are, stage by stage.

    Parameters
    ----------
    tasks : tasks to compare (default: all of the suite's).
    kinds : similarity measures, any of ``"linear"``, ``"debiased"``, ``"rbf"``, ``"rsa"``
        (see :mod:`taskrel.probes.cka`); a single string is allowed. The first is ``affinity_``.
    probe_set : the split whose inputs are the probe set (``"val"`` by default).
    n_probe : use the first ``n_probe`` examples of that split (default: all of it).
    settings : training config and seeds of the single-task models.

    Attributes
    ----------
    affinity_ : per-stage affinity of the first kind, shape (stages, n, n), stage names from
        ``suite.stage_names``; mean and std over seeds.
    affinities_ : dict kind -> per-stage affinity, for every kind.
    records_ : the single-task runs used (one per task and seed).
    plan_ : the :class:`~taskrel.execute.PlanResult` of the single-task runs (``plan_.trained``
        is 0 when every model was already stored).

    The cost is that of the single-task runs plus the seconds spent on features and similarity.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300)
    >>> probe = SimilarityProbe(suite.task_names[:3], kinds=("linear", "rsa"),
    ...     settings=ProbeSettings(TrainConfig(epochs=2), progress=False))
    >>> probe = probe.fit(suite, RunStore(tempfile.mkdtemp()))
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
        settings: ProbeSettings | None = None,
    ):
        self.tasks = tasks
        self.kinds = kinds
        self.probe_set = probe_set
        self.n_probe = n_probe
        self.settings = settings

    def _check(self) -> list[str]:
        kinds = [self.kinds] if isinstance(self.kinds, str) else list(self.kinds)
        bad = [k for k in kinds if k not in ALL_KINDS]
        if not kinds or bad or len(set(kinds)) != len(kinds):
            raise TaskrelError(f"similarity probe: kinds must be distinct names from {ALL_KINDS}, got {self.kinds!r}")
        if self.probe_set not in SPLITS:
            raise TaskrelError(f"similarity probe: probe_set must be one of {SPLITS}, got {self.probe_set!r}")
        if self.n_probe is not None and int(self.n_probe) < 4:
            raise TaskrelError(f"similarity probe: n_probe must be >= 4, got {self.n_probe}")
        return kinds

    def fit(self, suite: Suite, store: RunStore) -> SimilarityProbe:
        from taskrel.execute import execute

        kinds = self._check()
        settings = self.settings or ProbeSettings()
        names = check_probe_tasks(suite, self.tasks)
        specs = {seed: single_task_specs(suite, names, settings.config, seed) for seed in settings.seeds}
        plan = execute(suite, [s for d in specs.values() for s in d.values()], store, desc="similarity probe", **settings.execute_kwargs())
        fp = suite.fingerprint()
        records: list[RunRecord] = []
        for d in specs.values():
            for t, spec in d.items():
                rec = plan.records[spec.key(fp)]
                if not rec.ok:
                    raise TaskrelError(f"similarity probe: the single-task run of task {t!r} (seed {spec.seed}) failed: {rec.error}")
                records.append(rec)
        t0 = time.perf_counter()
        X = torch.from_numpy(suite.inputs[suite.split[self.probe_set]])
        if self.n_probe is not None:
            X = X[: int(self.n_probe)]
        per_kind: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
        for d in specs.values():
            feats = {t: stage_features(suite, spec, store, X, t) for t, spec in d.items()}
            for kind, m in similarity_matrices(feats, names, kinds).items():
                per_kind[kind].append(m)
        cost = cost_of(records) + Cost(seconds=time.perf_counter() - t0)
        meta = {"probe_set": self.probe_set, "n_probe": int(len(X)), "run_keys": [r.key for r in records]}
        self.affinities_ = {
            kind: Affinity.from_seeds(names, per_kind[kind], measure=f"similarity-{kind}", cost=cost, stages=list(suite.stage_names), meta=dict(meta))
            for kind in kinds
        }
        self.affinity_ = self.affinities_[kinds[0]]
        self.records_ = records
        self.plan_ = plan
        return self
