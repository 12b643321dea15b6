"""Greedy forward selection of auxiliary tasks for a primary task, with real training runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.plans import ProbeSettings, group_spec
from taskrel.store import RunStore
from taskrel.suite import Suite


class GreedyAuxiliarySelection:
    """Add, one at a time, the auxiliary task that most lowers the primary's validation loss.

    Candidates are tried in the order a ranking suggests (an :class:`~taskrel.Affinity`: the
    effect of each source on the primary; best first), each as a network shared by the primary,
    the auxiliaries chosen so far and the candidate, over every seed. The best candidate of a
    round is added if it lowers the primary's mean validation loss by at least ``min_gain``
    (relative); the search stops when no candidate does, or when ``max_runs`` runs were asked
    for. Every run goes through the store.

    Attributes
    ----------
    selected_ : the chosen auxiliaries, in the order they were added.
    steps_ : DataFrame, one row per candidate tried: round, candidate, loss mean/std, gain.
    comparison_ : DataFrame: primary alone, the greedy selection, every auxiliary, and the
        top-k by affinity (k = number selected), validation and test loss mean and std.
    runs_ : runs asked for (trained now or found in the store).

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=300).subset(["c0t0", "c0t1", "c1t0"])
    >>> sel = GreedyAuxiliarySelection("c0t0", settings=ProbeSettings(TrainConfig(epochs=3), progress=False))
    >>> sel = sel.fit(suite, RunStore(tempfile.mkdtemp()))
    >>> list(sel.comparison_["set"])[:2]
    ['primary alone', 'greedy']
    """

    def __init__(
        self,
        primary: str,
        candidates: Sequence[str] | None = None,
        ranking: Affinity | None = None,
        max_runs: int = 40,
        min_gain: float = 0.0,
        settings: ProbeSettings | None = None,
    ):
        self.primary = primary
        self.candidates = candidates
        self.ranking = ranking
        self.max_runs = max_runs
        self.min_gain = min_gain
        self.settings = settings or ProbeSettings()

    def _order(self, suite: Suite) -> list[str]:
        cands = list(self.candidates) if self.candidates is not None else [t for t in suite.task_names if t != self.primary]
        if self.primary in cands:
            raise TaskrelError(f"auxiliary selection: the primary {self.primary!r} is also a candidate")
        suite.check_tasks([self.primary, *cands])
        if not cands:
            raise TaskrelError("auxiliary selection: no candidate auxiliaries")
        if self.ranking is None:
            return cands
        if self.primary not in self.ranking.tasks:
            raise TaskrelError(f"auxiliary selection: primary {self.primary!r} is not in the ranking's tasks")
        missing = [c for c in cands if c not in self.ranking.tasks]
        if missing:
            raise TaskrelError(f"auxiliary selection: candidates {missing} are not in the ranking's tasks")
        from taskrel.analysis.auxiliary import rank_auxiliaries

        ranked = list(rank_auxiliaries(self.ranking, self.primary)["source"])
        return [c for c in ranked if c in cands]

    def _losses(self, suite, store, groups: list[list[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        from taskrel.runner import Runner

        s = self.settings
        specs = [group_spec(suite, g, s.config, seed) for g in groups for seed in s.seeds]
        runner = store if isinstance(store, Runner) else s.runner(store)
        plan = runner.run(suite, specs, desc="auxiliary")
        self.runs_ += len(specs)
        out = []
        for i in range(len(groups)):
            recs = [plan[i * len(s.seeds) + j] for j in range(len(s.seeds))]
            val = np.array([r.loss(self.primary, "val") if r.ok else np.nan for r in recs])
            test = np.array([r.loss(self.primary, "test") if r.ok else np.nan for r in recs])
            out.append((val, test))
        return out

    def fit(self, suite: Suite, store: RunStore) -> GreedyAuxiliarySelection:
        import pandas as pd

        if self.max_runs < 1:
            raise TaskrelError(f"auxiliary selection: max_runs must be >= 1, got {self.max_runs}")
        order = self._order(suite)
        self.runs_ = 0
        n_seeds = len(self.settings.seeds)
        (base_val, base_test), = self._losses(suite, store, [[self.primary]])
        chosen: list[str] = []
        current = float(np.nanmean(base_val))
        rows = []
        rnd = 0
        while True:
            left = [c for c in order if c not in chosen]
            room = (self.max_runs - self.runs_) // n_seeds
            trial = left[: max(room, 0)]
            if not trial:
                break
            res = self._losses(suite, store, [[self.primary, *chosen, c] for c in trial])
            gains = []
            for c, (val, _) in zip(trial, res):
                mean = float(np.nanmean(val)) if np.isfinite(val).any() else np.inf
                gain = (current - mean) / current if np.isfinite(mean) else -np.inf
                gains.append(gain)
                rows.append({"round": rnd, "candidate": c, "val_loss": mean, "val_std": float(np.nanstd(val)), "gain": gain, "added": False})
            best = int(np.argmax(gains))
            if gains[best] < self.min_gain or not np.isfinite(gains[best]):
                break
            rows[len(rows) - len(trial) + best]["added"] = True
            chosen.append(trial[best])
            current = float(np.nanmean(res[best][0]))
            rnd += 1
        self.selected_ = chosen
        self.steps_ = pd.DataFrame(rows, columns=["round", "candidate", "val_loss", "val_std", "gain", "added"])
        k = max(len(chosen), 1)
        sets = {
            "primary alone": [self.primary],
            "greedy": [self.primary, *chosen],
            "all auxiliaries": [self.primary, *order],
            f"top-{k} by affinity": [self.primary, *order[:k]],
        }
        names = list(sets)
        res = self._losses(suite, store, list(sets.values()))
        self.comparison_ = pd.DataFrame(
            [
                {
                    "set": n,
                    "tasks": "+".join(sets[n][1:]) or "-",
                    "val_loss": float(np.nanmean(v)),
                    "val_std": float(np.nanstd(v)),
                    "test_loss": float(np.nanmean(t)),
                    "test_std": float(np.nanstd(t)),
                }
                for n, (v, t) in zip(names, res)
            ]
        )
        return self
