"""Surrogate probe: train a seeded sample of task groups, then regress any group's losses on them.

The design (:func:`sample_design`, seeded) holds every single task, some pairs and random larger
groups, ``n_subsets`` groups beyond the singles in all. Singles are the shared single-task runs
and every other group is trained as the pairwise probe trains a pair (one shared encoder, a head
per task, :func:`~taskrel.probes.base.group_spec`), so runs already in the store, the
pairwise probe's included, are reused and nothing trains twice.

The measured validation losses of every seed (one row per group and seed) are fitted by a
:class:`~taskrel.tables.SubsetSurrogate` (Li et al., 2023): per target task, a ridge regression
of its loss on which tasks share its network. Its ``affinity_`` is the relative drop of the
target's loss when the source joins it (the pairwise probe's scale), and :meth:`candidates`
estimates every group.

The design is chosen so that the surrogate can be fitted: every ordered pair of tasks appears
together in some group, and every task is in at least as many groups as its model has
parameters. A budget too small for that is refused before anything trains.

Failed runs. A group whose run failed (a task's loss diverged) gives no row. A task that no
group measured is left out of the surrogates (``measured_tasks_`` are the others): its entries
are NaN, marked missing, and :meth:`SurrogateProbe.candidates` estimates groups of the others
only (``tasks=``; asking for it is an error naming it and its stored reason). When the groups
left cannot fit the others' surrogates (a pair never measured together, too few rows), ``fit``
fails with an error naming the task that diverged and what is not identifiable.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import combinations
from math import comb
from typing import Any

import numpy as np

from taskrel.base import check_is_fitted
from taskrel.errors import TaskrelError
from taskrel.plans import Plan
from taskrel.probes.base import Probe, Trained, cost_of, group_spec, register_probe
from taskrel.probes.partial import place, restrict_candidates, unmeasured
from taskrel.store import RunRecord, RunStore
from taskrel.suite import Suite
from taskrel.tables import CandidateTable, SubsetSurrogate
from taskrel.tables.active import most_uncertain, random_pool
from taskrel.train import TrainConfig

N_CANDIDATES = 24  # random groups scored per draw of the greedy design


def _n_params(n: int, pairwise: bool) -> int:
    return n + (comb(n - 1, 2) if pairwise else 0)


def sample_design(
    tasks: Sequence[str],
    n_subsets: int,
    n_pairs: int | None = None,
    max_size: int | None = None,
    pairwise: bool = False,
    seed: int = 0,
) -> list[tuple[str, ...]]:
    """Every single task, then ``n_subsets`` distinct groups of two or more tasks (seeded).

    Pairs come first (``n_pairs``; default: as many as the budget allows while every task can
    still reach as many groups as its surrogate has parameters, at most half the budget),
    spread so that each task is in about as many pairs as any other. Larger groups (3 to
    ``max_size`` tasks, default all; no smaller than the rows still missing require) follow,
    drawn greedily: of ``24`` random groups the one that brings together the most pairs of
    tasks not yet measured together, then the one that helps the tasks short of rows most,
    else the first drawn.

    >>> d = sample_design(["a", "b", "c", "d"], n_subsets=6, seed=1)
    >>> d[:4], len(d), len(set(d)) == len(d)
    ([('a',), ('b',), ('c',), ('d',)], 10, True)
    >>> sample_design(["a", "b", "c", "d"], n_subsets=6, seed=1) == d
    True
    """
    names = [str(t) for t in tasks]
    n = len(names)
    if n < 2:
        raise TaskrelError(f"surrogate probe: needs at least 2 tasks, got {names}")
    k_max = n if max_size is None else max_size
    if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or not 2 <= k_max <= n:
        raise TaskrelError(f"surrogate probe: max_size must be an integer in [2, {n}], got {max_size!r}")
    room = sum(comb(n, k) for k in range(2, int(k_max) + 1))
    if isinstance(n_subsets, bool) or not isinstance(n_subsets, (int, np.integer)) or not 1 <= n_subsets <= room:
        raise TaskrelError(f"surrogate probe: n_subsets must be an integer in [1, {room}] "
                           f"(groups of 2..{k_max} of {n} tasks), got {n_subsets!r}")
    need = _n_params(n, pairwise) - 1  # rows beyond its single that each task needs
    if n_pairs is None:  # the most pairs (up to half the budget) that leave room for every task's need
        n_pairs = 0
        while n_pairs < int(n_subsets) // 2 and 2 * (n_pairs + 1) + _max_slots(n, int(k_max), int(n_subsets) - n_pairs - 1) >= n * need:
            n_pairs += 1
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 0:
        raise TaskrelError(f"surrogate probe: n_pairs must be an integer >= 0, got {n_pairs!r}")
    n_pairs = min(int(n_pairs), comb(n, 2), int(n_subsets))
    rng = np.random.default_rng(seed)
    chosen: list[frozenset[int]] = _spread_pairs(n, n_pairs, rng)
    together = np.eye(n, dtype=bool)
    rows = np.zeros(n, dtype=int)
    for g in chosen:
        _count(g, together, rows)
    while len(chosen) < n_subsets:
        short = int(np.clip(need - rows, 0, None).sum())
        lo = min(max(3, -(-short // (int(n_subsets) - len(chosen)))), int(k_max))  # sizes that can still meet it
        g = _draw(n, lo, int(k_max), set(chosen), together, rows, need, rng)
        chosen.append(g)
        _count(g, together, rows)
    singles = [(t,) for t in names]
    return singles + [tuple(names[i] for i in sorted(g)) for g in chosen]


def _max_slots(n: int, k_max: int, m: int) -> int:
    """The most task slots ``m`` distinct groups of 3..k_max tasks can hold (largest first)."""
    total = 0
    for k in range(k_max, 2, -1):
        take = min(m, comb(n, k))
        total += take * k
        m -= take
    return total


def _spread_pairs(n: int, n_pairs: int, rng: np.random.Generator) -> list[frozenset[int]]:
    """Pairs drawn so that every task is in about as many as any other."""
    out: list[frozenset[int]] = []
    degree = np.zeros(n, dtype=int)
    left = [frozenset(p) for p in combinations(range(n), 2)]
    while len(out) < n_pairs:
        score = np.array([degree[list(p)].sum() for p in left]) + rng.random(len(left))
        p = left.pop(int(np.argmin(score)))
        out.append(p)
        degree[list(p)] += 1
    return out


def _count(g: frozenset[int], together: np.ndarray, rows: np.ndarray) -> None:
    idx = list(g)
    together[np.ix_(idx, idx)] = True
    rows[idx] += 1


def _draw(n, lo, k_max, taken, together, rows, need, rng) -> frozenset[int]:
    """The best of a few random new groups of lo..k_max tasks (lo is at least 2)."""
    best, best_score = None, None
    for _ in range(N_CANDIDATES):
        size = int(rng.integers(min(lo, k_max), k_max + 1))
        g = frozenset(rng.choice(n, size=size, replace=False).tolist())
        if g in taken:
            continue
        idx = list(g)
        score = (int((~together[np.ix_(idx, idx)]).sum()), int(np.clip(need - rows[idx], 0, None).sum()))
        if best is None or score > best_score:
            best, best_score = g, score
    if best is None:  # a nearly full design: any group not yet taken
        left = [frozenset(c) for k in range(2, k_max + 1) for c in combinations(range(n), k) if frozenset(c) not in taken]
        best = left[int(rng.integers(len(left)))]
    return best


@register_probe("surrogate")
class SurrogateProbe(Probe):
    """Sampled-subset surrogate (Li et al., 2023): a few groups trained, every group estimated.

    Parameters
    ----------
    tasks : tasks to probe (default: every task of the suite).
    n_subsets : groups of two or more tasks to train per seed, beyond the singles (default
        ``2 * n``; the pairwise probe trains ``n (n - 1) / 2``).
    n_pairs, max_size, design_seed : the design (:func:`sample_design`).
    pairwise, alpha, underdetermined, effects : the surrogate's pairwise terms, ridge penalty,
        what to do with a task in fewer groups than its parameters, and whether group mates'
        effects are averaged, summed or both (:class:`~taskrel.tables.SubsetSurrogate`; the
        default ``"both"`` nests the two, each task's groups choose the penalty: less noisy
        than ``"auto"``'s choice of form, benchmarks/results/surrogate_check_qm9-scarce.json).
    config, seeds : the training config of every run and the seeds (every seed trains the
        same design).
    active : larger groups to add in a second stage (default 0), those the first stage's
        surrogate is least sure of (:meth:`follow_up`); ``design_`` lists them last.

    Attributes
    ----------
    design_ : the groups trained (singles first). ``affinity_`` : relative drop of the target's
    validation loss when the source joins its network (mean over seeds of each seed's
    surrogate, fitted with the form and penalty chosen on every seed). ``surrogates_`` : ``{"val": SubsetSurrogate, "test": SubsetSurrogate}`` fitted
    on every seed's losses at once (seeds are repeated rows); :meth:`candidates` reads them.
    ``measured_`` : ``{split: [CandidateTable of one seed's measured groups]}``. ``records_``,
    ``trained_``, ``failed_``, ``config_`` as every probe.

    Examples
    --------
    >>> import tempfile
    >>> from taskrel.runner import Runner
    >>> from taskrel.suites import get_suite
    >>> from taskrel.train import TrainConfig
    >>> suite = get_suite("planted", n_examples=200)
    >>> runner = Runner(tempfile.mkdtemp(), progress=False)
    >>> probe = SurrogateProbe(["c0t0", "c0t1", "conflict"], n_subsets=4, config=TrainConfig(epochs=2))
    >>> probe = probe.fit(suite, runner)
    >>> len(probe.design_), probe.trained_, probe.affinity_.measure, len(probe.candidates())
    (7, 7, 'surrogate', 7)
    >>> probe.fit(suite, runner).trained_
    0
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        n_subsets: int | None = None,
        n_pairs: int | None = None,
        max_size: int | None = None,
        design_seed: int = 0,
        pairwise: bool = False,
        alpha: float | str = "auto",
        underdetermined: str = "raise",
        effects: str = "both",
        config: TrainConfig | None = None,
        seeds: Sequence[int] = (0,),
        active: int = 0,
    ):
        self.tasks = tasks
        self.n_subsets = n_subsets
        self.n_pairs = n_pairs
        self.max_size = max_size
        self.design_seed = design_seed
        self.pairwise = pairwise
        self.alpha = alpha
        self.underdetermined = underdetermined
        self.effects = effects
        self.config = config
        self.seeds = seeds
        self.active = active

    def design(self, suite: Suite) -> list[tuple[str, ...]]:
        """The groups this probe trains (singles first), without training.

        A design whose surrogate could not be fitted is refused here, before any training.
        """
        tasks = self.task_names(suite)
        if self.underdetermined not in ("raise", "warn"):
            raise TaskrelError(f"surrogate probe: underdetermined must be 'raise' or 'warn', got {self.underdetermined!r}")
        n_subsets = 2 * len(tasks) if self.n_subsets is None else self.n_subsets
        design = sample_design(tasks, n_subsets, self.n_pairs, self.max_size, bool(self.pairwise), self.design_seed)
        _check_design(tasks, design, bool(self.pairwise), self.underdetermined == "warn")
        return design

    def check(self, suite: Suite) -> None:
        if isinstance(self.active, bool) or not isinstance(self.active, (int, np.integer)) or self.active < 0:
            raise TaskrelError(f"surrogate probe: active must be an integer >= 0, got {self.active!r}")
        self.design(suite)

    def plan(self, suite: Suite) -> Plan:
        """One run per group of the design and seed (seed-major), without training; ``index``
        is the design. Singles are the shared single-task runs and every other group is trained as the
        pairwise probe trains a pair, so those runs are shared with it.
        """
        cfg, design = self.train_config(), self.design(suite)
        return Plan([group_spec(suite, g, cfg, seed) for seed in self.seed_list() for g in design], design)

    def follow_up(self, suite: Suite, plan: Plan, trained: Trained, store: RunStore) -> Plan | None:
        """The ``active`` larger groups of 200 random untrained ones the first stage's surrogate
        is least sure of (:mod:`taskrel.tables.active`), or None."""
        if not self.active:
            return None
        groups, _ = self._by_seed(plan, trained.records)
        kept = [t for t in self.task_names(suite) if any(r.ok and t in g for seed in groups for g, r in seed)]
        tables = [CandidateTable([{"tasks": list(g), "cost": 1.0, "values": {t: r.loss(t, "val") for t in g}}
                                  for g, r in seed if r.ok], tasks=kept) for seed in groups if any(r.ok for _, r in seed)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the fit after the follow-up warns
            try:
                model = self._surrogate().fit(tables).group_model()
            except TaskrelError:
                return None  # failed runs left the first stage unfit; measure says why
        index = {t: i for i, t in enumerate(kept)}
        done = np.zeros((len(plan.index), len(kept)), dtype=bool)
        for r, g in enumerate(plan.index):
            done[r, [index[t] for t in g if t in index]] = True
        top = len(kept) if self.max_size is None else min(int(self.max_size), len(kept))
        pool = random_pool(len(kept), min(3, top), top, 200, done, self.design_seed + 1)
        if not len(pool):
            return None
        chosen = [tuple(kept[i] for i in np.nonzero(pool[c])[0]) for c in most_uncertain(model, pool, int(self.active))]
        return Plan([group_spec(suite, g, self.train_config(), seed) for seed in self.seed_list() for g in chosen], chosen)

    def _by_seed(self, plan: Plan, records: Sequence[RunRecord]):
        """Per seed, the (group, record) pairs of the first stage and of a follow-up, if any."""
        first, second = plan.split(records) if plan.follow_up is not None else (list(records), [])
        out, extra = [], list(plan.follow_up.index) if plan.follow_up is not None else []
        g, h = len(plan.index), len(extra)
        for k in range(len(self.seed_list())):
            out.append(list(zip(plan.index, first[k * g : (k + 1) * g])) + list(zip(extra, second[k * h : (k + 1) * h])))
        return out, list(plan.index) + extra

    def measure(self, suite: Suite, plan: Plan, records: Sequence[RunRecord], store: RunStore) -> dict[str, np.ndarray]:
        """Fit the surrogates; per seed, the affinity of that seed's surrogate (NaN if it fails)."""
        tasks, seeds = self.task_names(suite), self.seed_list()
        by_seed, design = self._by_seed(plan, records)
        self.design_, self.measured_, self.surrogates_ = design, {}, {}
        failed = [r for r in records if not r.ok]
        kept = [t for t in tasks if any(r.ok and t in grp for seed in by_seed for grp, r in seed)]
        self.measured_tasks_ = kept
        if len(kept) < 2:
            raise unmeasured(tasks, kept, failed, "surrogate probe") or TaskrelError("surrogate probe: every run failed")
        for split in ("val", "test"):
            self.measured_[split] = []
            for seed in by_seed:
                rows = [{"tasks": list(grp), "cost": 1.0, "values": {t: rec.loss(t, split) for t in grp}}
                        for grp, rec in seed if rec.ok]
                self.measured_[split].append(CandidateTable(rows, tasks=kept) if rows else None)
            tables = [t for t in self.measured_[split] if t is not None]
            try:
                self.surrogates_[split] = self._surrogate().fit(tables, compute=cost_of(records))
            except TaskrelError as e:
                lost = unmeasured(tasks, kept, failed, "surrogate probe")
                if lost is None:
                    raise
                raise TaskrelError(f"{lost}; the groups left cannot fit the surrogate of the others: {e}") from None
        per_seed = np.full((len(seeds), len(tasks), len(tasks)), np.nan)
        for k, table in [(k, t) for k, t in enumerate(self.measured_["val"]) if t is not None]:
            with warnings.catch_warnings():  # each seed's fit keeps the form and penalty chosen on every seed
                warnings.simplefilter("ignore", UserWarning)  # the pooled fit has warned
                try:
                    per_seed[k] = place(self._surrogate(self.surrogates_["val"]).fit(table).affinity_.values, kept, tasks)
                except TaskrelError:
                    pass  # failed runs left this seed unidentifiable; the other seeds stand
        return {"surrogate": per_seed}

    def _surrogate(self, chosen: SubsetSurrogate | None = None):
        """This probe's surrogate; with ``chosen`` (fitted on every seed), one that keeps its form
        and penalty per task, so each seed's fit differs from it by the seed only."""
        fixed = chosen is not None
        return SubsetSurrogate(pairwise=bool(self.pairwise), higher_is_better=False, underdetermined=self.underdetermined,
                               alpha=dict(zip(chosen.tasks_, chosen.alpha_.tolist())) if fixed else self.alpha,
                               effects=dict(zip(chosen.tasks_, chosen.effects_)) if fixed else self.effects)

    def meta(self) -> dict[str, Any]:
        sur = self.surrogates_["val"]
        return {"split": "val", "scale": "relative", "design": ["+".join(d) for d in self.design_],
                "pairwise": bool(self.pairwise), "alpha": sur.alpha_.tolist(), "effects": list(sur.effects_),
                "estimator": sur.estimator_name(),
                "residual_std": dict(zip(sur.tasks_, sur.sigma_.tolist()))}

    @property
    def surrogate_(self):
        """The validation-loss surrogate."""
        check_is_fitted(self, "affinity_", "fit(suite, runner)")
        return self.surrogates_["val"]

    def group_model(self, split: str = "val"):
        """The fitted surrogate of ``split`` as a group-value model (exact pricing without
        pairwise terms), for the grouping search at many tasks; nothing is enumerated."""
        check_is_fitted(self, "affinity_", "fit(suite, runner)")
        if split not in ("val", "test"):
            raise TaskrelError(f"surrogate probe: split must be 'val' or 'test', got {split!r}")
        return self.surrogates_[split].group_model()

    def candidates(self, max_size: int | None = None, split: str = "val", cost=1.0, tasks: Sequence[str] | None = None):
        """Every group up to ``max_size`` with surrogate-estimated per-task losses on ``split``.

        ``cost`` per network: a number (default 1), a dict size -> cost or a function of the
        group's task tuple. Standard errors: ``surrogates_[split].predict(groups)``.
        ``tasks``: groups of these tasks only (default all). A task no successful run measured
        (every group holding it failed) is an error naming it and its stored reason: pass
        the others (``measured_tasks_``).
        """
        check_is_fitted(self, "affinity_", "fit(suite, runner)")
        if split not in ("val", "test"):
            raise TaskrelError(f"surrogate probe: split must be 'val' or 'test', got {split!r}")
        want = self.tasks_ if tasks is None else [t for t in self.tasks_ if t in set(tasks)]
        unknown = [t for t in (tasks or []) if t not in self.tasks_]
        if unknown:
            raise TaskrelError(f"surrogate probe: unknown task(s) {unknown}; tasks are {self.tasks_}")
        lost = unmeasured(want, self.measured_tasks_, self.failed_, "surrogate probe")
        if lost is not None:
            raise lost
        return restrict_candidates(self.surrogates_[split].candidates(max_size=max_size, cost=cost), want)


def _check_design(tasks: list[str], design: list[tuple[str, ...]], pairwise: bool, allow_few: bool) -> None:
    """Refuse, before training, a design whose surrogate could not be fitted."""
    index = {t: i for i, t in enumerate(tasks)}
    n = len(tasks)
    together = np.eye(n, dtype=bool)
    rows = np.zeros(n, dtype=int)
    for g in design:
        _count(frozenset(index[t] for t in g), together, rows)
    apart = np.argwhere(~together)
    if len(apart):
        a, b = apart[0]
        raise TaskrelError(f"surrogate probe: the design never trains {tasks[a]!r} with {tasks[b]!r} "
                           f"({len(apart) // 2} pairs apart); raise n_subsets or max_size")
    p = _n_params(n, pairwise)
    short = [t for t, r in zip(tasks, rows) if r < p]
    if short and not allow_few:
        raise TaskrelError(f"surrogate probe: the design gives {short} fewer groups than the {p} parameters of their "
                           "surrogate; raise n_subsets or max_size, lower n_pairs, or pass underdetermined='warn'")


__all__ = ["SurrogateProbe", "sample_design"]
