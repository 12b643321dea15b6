"""Greedy forward selection of auxiliary tasks for a primary task, with real training runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from taskrel.affinity import Affinity
from taskrel.base import Estimator
from taskrel.errors import TaskrelError
from taskrel.plans import check_seeds, group_spec
from taskrel.runner import Runner, as_runner
from taskrel.store import RunStore
from taskrel.suite import Suite
from taskrel.train import TrainConfig


class GreedyAuxiliarySelection(Estimator):
    """Add, one at a time, the auxiliary task that most lowers the primary's validation loss.

    Candidates are tried in the order a ranking suggests (an :class:`~taskrel.Affinity`: the
    effect of each source on the primary; best first), each as a network shared by the primary,
    the auxiliaries chosen so far and the candidate, over every seed. The best candidate of a
    round is added if it lowers the primary's mean validation loss by at least ``min_gain``
    (relative); the search stops when no candidate does, or when ``max_runs`` runs were asked
    for. Every run goes through the store.

    Parameters
    ----------
    primary : the task to help.
    candidates : the auxiliaries to try (default: every other task of the suite).
    ranking : an :class:`~taskrel.Affinity` whose column of the primary orders the candidates.
    max_runs : the most runs to ask for while searching (every seed's run counts).
    min_gain : the least relative drop of the primary's validation loss that adds a candidate.
    config, seeds : the training config (default ``TrainConfig()``) and seeds (default
        ``(0,)``) of every run.

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
    >>> from taskrel.runner import Runner
    >>> sel = GreedyAuxiliarySelection("c0t0", config=TrainConfig(epochs=3))
    >>> sel = sel.fit(suite, Runner(tempfile.mkdtemp(), progress=False))
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
        config: TrainConfig | None = None,
        seeds: Sequence[int] = (0,),
    ):
        self.primary = primary
        self.candidates = candidates
        self.ranking = ranking
        self.max_runs = max_runs
        self.min_gain = min_gain
        self.config = config
        self.seeds = seeds

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

    def _losses(self, suite: Suite, runner: Runner, groups: list[list[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        config = self.config if self.config is not None else TrainConfig()
        seeds = check_seeds(self.seeds, "auxiliary selection")
        specs = [group_spec(suite, g, config, seed) for g in groups for seed in seeds]
        plan = runner.run(suite, specs, desc="auxiliary")
        self.runs_ += len(specs)
        out = []
        for i in range(len(groups)):
            recs = [plan[i * len(seeds) + j] for j in range(len(seeds))]
            val = np.array([r.loss(self.primary, "val") if r.ok else np.nan for r in recs])
            test = np.array([r.loss(self.primary, "test") if r.ok else np.nan for r in recs])
            out.append((val, test))
        return out

    def fit(self, suite: Suite, runner: Runner | RunStore | str) -> GreedyAuxiliarySelection:
        """Search, then compare the selection with the primary alone, every auxiliary and the
        top-k by affinity. ``runner``: a :class:`~taskrel.runner.Runner` or a store. Returns ``self``."""
        if isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int) or self.max_runs < 1:
            raise TaskrelError(f"auxiliary selection: max_runs must be an integer >= 1, got {self.max_runs!r}")
        if self.config is not None and not isinstance(self.config, TrainConfig):
            raise TaskrelError(f"auxiliary selection: config must be a TrainConfig, got {self.config!r}")
        n_seeds = len(check_seeds(self.seeds, "auxiliary selection"))
        order = self._order(suite)
        own = not isinstance(runner, Runner)
        runner = as_runner(runner)
        try:
            self._search(suite, runner, order, n_seeds)
        finally:
            if own:
                runner.close()
        return self

    def _search(self, suite: Suite, store: Runner, order: list[str], n_seeds: int) -> None:
        import pandas as pd

        self.runs_ = 0
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
