"""Prediction probe: how alike the tasks' cheap single-task predictions are. No network trains.

Each task gets a ridge regression from the suite's inputs (flattened, standardised on the
training split) to its targets, fitted on its own labelled training rows, with the penalty chosen
per task by generalised cross-validation (scikit-learn's ``RidgeCV``). Every task's model then
predicts on one common set of inputs, the training and validation rows by default (labels are
not needed there, so a task labelled on rows no other task has is still compared on every row;
the test split is never read). Two tasks are alike when their predictions move together: the
affinity is the Pearson correlation of the two prediction vectors. A task with several outputs
(multiclass: one column per class; multilabel) is compared through linear CKA, and the square
root of it is taken, so that for single outputs it equals the absolute correlation and the scale
is the same; ``similarity="cka"`` uses linear CKA everywhere (sign-free).

What it sees and what it misses. It reads whether two tasks' targets depend on the inputs in
the same way, as far as a linear read of the inputs shows: tasks that need the same features and
combine them alike. Two tasks that use the same features with unrelated read-outs, or whose
relation is non-linear, read near 0; a linear read of raw pixels sees little of an image task.
On ``planted-many`` (clusters of related read-outs of shared latent features) it recovers the
planted clusters better than gradient cosines from three joint runs, at no training cost:
``benchmarks/prediction_route.py`` (``benchmarks/results/prediction_route.json``).

Uncertainty. The value is the fit on every labelled row. Each seed draws a bootstrap sample of
every task's labelled rows (as many rows, drawn with replacement), refits each task's ridge with
the penalty its full fit chose, and measures again; ``std`` is the root mean square of the
bootstrap values' departures from the full value (the bootstrap estimate of the full value's
sampling spread). The bootstrap matrices are ``per_seed``, so cluster stability asks how stable
the clusters are under resampling the labels; ``n_seeds`` is 1 because the value is one
measurement, not a mean over seeds. (Half-samples, tried first, measure a probe with half the
labels, and their clusterings agreed far less than the full value's clusters warranted.)

>>> import tempfile
>>> from taskrel.suites import get_suite
>>> suite = get_suite("planted-many", n_tasks=12, n_train=200, n_val=40, n_test=40)
>>> probe = PredictionProbe(seeds=(0, 1)).fit(suite, tempfile.mkdtemp())
>>> aff = probe.affinity_
>>> aff.values.shape, aff.measure, aff.cost.runs, aff.per_seed.shape
((12, 12), 'prediction-correlation', 0, (2, 12, 12))
>>> c = suite.truth["clusters"][0]
>>> bool(aff.value(c[0], c[1]) > 0.3)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from taskrel.affinity import Affinity, Cost
from taskrel.errors import TaskrelError
from taskrel.plans import Plan
from taskrel.probes.base import Probe, register_probe
from taskrel.splits import SPLITS
from taskrel.store import RunRecord, RunStore
from taskrel.suite import Suite
from taskrel.train import TrainConfig

SIMILARITIES = ("correlation", "cka")
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
TINY = 1e-12


def _design(suite: Suite, fit_rows: np.ndarray) -> np.ndarray:
    """The inputs flattened to (examples, features), standardised on ``fit_rows`` (a constant
    feature is left centred)."""
    X = np.asarray(suite.inputs, dtype=np.float64).reshape(len(suite.inputs), -1)
    mu, sd = X[fit_rows].mean(axis=0), X[fit_rows].std(axis=0)
    return (X - mu) / np.where(sd > TINY, sd, 1.0)


def task_targets(suite: Suite, task: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``task``'s labelled rows among ``rows`` and their targets as a (rows, outputs) matrix:
    one column for binary and regression, one-hot for multiclass, every label for multilabel
    (rows with a missing label left out).

    >>> from taskrel.suites import get_suite
    >>> s = get_suite("planted-many", n_tasks=6, n_train=50, n_val=10, n_test=10)
    >>> r, y = task_targets(s, "c0t0", s.split["train"])
    >>> len(r), y.shape
    (40, (40, 1))
    """
    t = suite.task(task)
    y = np.asarray(suite.targets[task], dtype=np.float64)[rows]
    if t.kind == "custom":
        raise TaskrelError(f"prediction probe: task {task!r} is a custom task; the probe reads binary, multiclass, "
                           "regression and multilabel tasks (leave it out with tasks=[...])")
    y = y.reshape(len(rows), -1)
    keep = ~np.isnan(y).any(axis=1)
    y = y[keep]
    if t.kind == "multiclass":
        classes = np.unique(y[:, 0])
        y = (y[:, :1] == classes[None, :]).astype(np.float64)
    return rows[keep], y


def _predict(X: np.ndarray, fit: np.ndarray, y: np.ndarray, at: np.ndarray, alpha: float | None = None) -> tuple[np.ndarray, float]:
    """A ridge fit on rows ``fit`` (penalty chosen by GCV, or ``alpha``) predicting rows ``at``; and its penalty."""
    from sklearn.linear_model import Ridge, RidgeCV

    model = RidgeCV(alphas=ALPHAS) if alpha is None else Ridge(alpha=alpha)
    model.fit(X[fit], y if y.shape[1] > 1 else y[:, 0])
    return model.predict(X[at]).reshape(len(at), -1), float(alpha if alpha is not None else model.alpha_)


def prediction_similarity(preds: Sequence[np.ndarray], similarity: str = "correlation") -> np.ndarray:
    """Similarity of every pair of prediction matrices (rows: the same inputs).

    ``"correlation"``: the Pearson correlation when both have one column, else the square root
    of linear CKA; ``"cka"``: linear CKA. A constant prediction is alike to nothing (0); the
    diagonal is 1.

    >>> a = np.array([[1.0], [2.0], [3.0], [4.0]])
    >>> np.round(prediction_similarity([a, -a, a ** 2]), 3).tolist()[0]
    [1.0, -1.0, 0.984]
    >>> np.round(prediction_similarity([a, -a], similarity="cka"), 3).tolist()[0]
    [1.0, 1.0]
    """
    from taskrel.probes.cka import cka_matrix

    if similarity not in SIMILARITIES:
        raise TaskrelError(f"prediction probe: similarity must be one of {SIMILARITIES}, got {similarity!r}")
    centred = [p - p.mean(axis=0) for p in preds]
    live = [i for i, p in enumerate(centred) if np.linalg.norm(p) > TINY * max(1.0, float(np.abs(preds[i]).max(initial=0.0)))]
    out = np.zeros((len(preds), len(preds)))
    if live:
        cka = cka_matrix([torch.from_numpy(centred[i]) for i in live], kind="linear")
        out[np.ix_(live, live)] = cka if similarity == "cka" else np.sqrt(np.clip(cka, 0.0, 1.0))
    one = [i for i in live if centred[i].shape[1] == 1]
    if similarity == "correlation" and one:
        z = np.stack([centred[i][:, 0] / np.linalg.norm(centred[i]) for i in one], axis=1)
        out[np.ix_(one, one)] = z.T @ z
    np.fill_diagonal(out, 1.0)
    return np.clip(out, -1.0, 1.0)


@register_probe("prediction")
class PredictionProbe(Probe):
    """How alike the tasks' ridge predictions from the inputs are (module docstring); trains nothing.

    Parameters
    ----------
    tasks : tasks to compare (default: all of the suite's).
    similarity : ``"correlation"`` (default: signed, for single-output tasks) or ``"cka"``.
    probe_set : the splits whose inputs every task's model predicts on (default train and val;
        the test split is refused).
    max_rows : at most this many labelled rows per task are fitted on (a fixed random draw).
    config : unused (no network trains); accepted so that a study's ``[train]`` applies to every probe.
    seeds : one bootstrap sample of the labels per seed, for ``std`` and ``per_seed``.

    Attributes
    ----------
    affinity_ : the affinity (measure ``"prediction-SIMILARITY"``), values from every labelled row.
    labelled_ : dict task -> how many labelled rows its model was fitted on; ``alpha_``: its penalty.
    records_ : empty (no runs); ``trained_`` 0.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.suites import get_suite
    >>> suite = get_suite("planted-many", n_tasks=8, n_train=100, n_val=20, n_test=20)
    >>> PredictionProbe(probe_set=("test",)).fit(suite, tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    taskrel.errors.TaskrelError: prediction probe: probe_set must be splits from ('train', 'val'), got ('test',): the test split is kept for validation
    """

    def __init__(self, tasks: Sequence[str] | None = None, similarity: str = "correlation",
                 probe_set: Sequence[str] | str = ("train", "val"), max_rows: int = 2000,
                 config: TrainConfig | None = None, seeds: Sequence[int] = (0, 1, 2, 3)):
        self.tasks = tasks
        self.similarity = similarity
        self.probe_set = probe_set
        self.max_rows = max_rows
        self.config = config
        self.seeds = seeds

    def set_splits(self) -> list[str]:
        sets = [self.probe_set] if isinstance(self.probe_set, str) else list(self.probe_set)
        if not sets or any(s not in SPLITS[:2] for s in sets) or len(set(sets)) != len(sets):
            raise TaskrelError(f"prediction probe: probe_set must be splits from {SPLITS[:2]}, got {self.probe_set!r}: "
                               "the test split is kept for validation")
        return sets

    def check(self, suite: Suite) -> None:
        if self.similarity not in SIMILARITIES:
            raise TaskrelError(f"prediction probe: similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        self.set_splits()
        if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, (int, np.integer)) or self.max_rows < 4:
            raise TaskrelError(f"prediction probe: max_rows must be an integer >= 4, got {self.max_rows!r}")
        if getattr(suite, "streams", False):
            raise TaskrelError(f"prediction probe: suite {suite.name!r} streams from a Dataset; the probe needs its inputs in memory")
        train = suite.split["train"]
        for t in self.task_names(suite):
            if len(task_targets(suite, t, train)[0]) < 4:
                raise TaskrelError(f"prediction probe: task {t!r} has fewer than 4 labelled training rows")

    def plan(self, suite: Suite) -> Plan:
        """No runs: the probe fits ridge regressions, not networks."""
        return Plan([], [])

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, np.ndarray]:
        """(1 + seeds, n, n): the fit on every labelled row, then one bootstrap sample per seed."""
        names, seeds = self.task_names(suite), self.seed_list()
        train = suite.split["train"]
        at = np.concatenate([suite.split[s] for s in self.set_splits()])
        X = _design(suite, train)
        fits = []
        for i, t in enumerate(names):
            rows, y = task_targets(suite, t, train)
            if len(rows) > self.max_rows:
                pick = np.sort(np.random.default_rng([int(self.max_rows), i]).choice(len(rows), self.max_rows, replace=False))
                rows, y = rows[pick], y[pick]
            fits.append((rows, y))
        self.labelled_ = {t: int(len(r)) for t, (r, _) in zip(names, fits)}
        full = [_predict(X, r, y, at) for r, y in fits]
        self.alpha_ = {t: a for t, (_, a) in zip(names, full)}
        out = [prediction_similarity([p for p, _ in full], self.similarity)]
        for seed in seeds:
            preds = []
            for i, ((r, y), (_, alpha)) in enumerate(zip(fits, full)):
                draw = np.random.default_rng([int(seed), i, 7]).integers(0, len(r), len(r))
                preds.append(_predict(X, r[draw], y[draw], at, alpha)[0])
            out.append(prediction_similarity(preds, self.similarity))
        return {self.similarity: np.stack(out)}

    def measure_name(self, key: str) -> str:
        return f"prediction-{key}"

    def meta(self) -> dict[str, Any]:
        return {"probe_set": self.set_splits(), "similarity": self.similarity, "labelled": getattr(self, "labelled_", {}),
                "uncertainty": "std: root mean square departure of bootstrap samples of each task's labelled rows",
                "per_seed": "bootstrap samples of the labels"}

    def _averaged(self, suite: Suite, tasks: list[str], name: str, ps: Any, cost: Cost, meta: dict[str, Any]) -> Affinity:
        ps = np.asarray(ps, dtype=np.float64)
        spread = np.sqrt(np.mean((ps[1:] - ps[0]) ** 2, axis=0))  # the bootstrap samples' root mean square departure
        return Affinity(tasks, ps[0], std=spread, n_seeds=1, per_seed=ps[1:],
                        measure=self.measure_name(name), cost=cost, meta=meta, calibration="uncalibrated")


__all__ = ["SIMILARITIES", "PredictionProbe", "prediction_similarity", "task_targets"]
