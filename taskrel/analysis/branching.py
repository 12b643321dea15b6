"""Branched layouts from per-stage similarity: where should the tasks' networks split?

The idea of branched multi-task networks: tasks whose representations are alike at a stage
can share that stage; deeper stages, where they differ, are split. Given a per-stage affinity
(for example linear CKA of single-task models at every stage), this search considers, at every
stage, the cuts of a hierarchical clustering of the tasks on that stage's dissimilarity,
each intersected with the partition above (so partitions only get finer with depth), and
returns the tree of least *sharing dissimilarity* whose cost fits the budget.

* dissimilarity of stage k between tasks i and j: ``1 - s_k(i, j)`` with ``s`` the symmetrised
  affinity (similarities in [-1, 1], as CKA and RSA give), floored at 0;
* sharing dissimilarity of a layout: the sum, over stages and over pairs of tasks that share
  that stage, of their dissimilarity at it;
* cost: the sum over stages of (blocks at the stage) x (cost of one copy of the stage), in
  stage copies by default (``stage_costs`` can give parameters per stage instead).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from taskrel.affinity import Affinity
from taskrel.base import Estimator
from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout


def _cuts(d: np.ndarray) -> list[np.ndarray]:
    """Cluster labels of every cut (1..n clusters) of an average-linkage tree on ``d``."""
    n = d.shape[0]
    if n == 1:
        return [np.zeros(1, dtype=int)]
    z = linkage(squareform(d, checks=False), method="average")
    return [fcluster(z, t=m, criterion="maxclust") for m in range(1, n + 1)]


def _refine(parent: list[tuple[int, ...]], labels: np.ndarray) -> list[tuple[int, ...]]:
    out = []
    for block in parent:
        groups: dict[int, list[int]] = {}
        for i in block:
            groups.setdefault(int(labels[i]), []).append(i)
        out.extend(tuple(g) for g in groups.values())
    return out


class BranchedLayoutSearch(Estimator):
    """Search the branched layout of least sharing dissimilarity under a cost budget.

    Parameters
    ----------
    budget : largest allowed cost (stage copies, or the units of ``stage_costs``). None: the
        cost half-way between all-shared and all-separate.
    stage_costs : cost of one copy of each stage (default 1 each).

    Attributes
    ----------
    layout_ : the chosen :class:`~taskrel.layout.SharingLayout`.
    dissimilarity_, cost_ : its sharing dissimilarity and cost; ``budget_`` : the budget used.
    front_ : pandas DataFrame, the least dissimilarity found at every cost (a Pareto front).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.ones((2, 4, 4))
    >>> s[1] = [[1, .9, .1, .1], [.9, 1, .1, .1], [.1, .1, 1, .9], [.1, .1, .9, 1]]
    >>> aff = Affinity(["a", "b", "c", "d"], s, stages=["early", "late"])
    >>> BranchedLayoutSearch(budget=3).fit(aff).layout_.describe()
    'stage0: a+b+c+d | stage1: a+b c+d'
    """

    def __init__(self, budget: float | None = None, stage_costs: Sequence[float] | None = None):
        self.budget = budget
        self.stage_costs = stage_costs

    def fit(self, affinity: Affinity) -> BranchedLayoutSearch:
        """Search every stage's cuts for the layout that fits the budget. Returns ``self``."""
        import pandas as pd

        if not isinstance(affinity, Affinity) or not affinity.is_staged:
            raise TaskrelError("branched layout: needs a per-stage affinity (stages x n x n), e.g. from SimilarityProbe")
        sims = affinity.symmetrize().values
        n_stages, n = sims.shape[0], sims.shape[1]
        costs = np.ones(n_stages) if self.stage_costs is None else np.asarray(self.stage_costs, dtype=float)
        if costs.shape != (n_stages,) or (costs <= 0).any() or not np.isfinite(costs).all():
            raise TaskrelError(f"branched layout: stage_costs must be {n_stages} positive numbers, got {self.stage_costs}")
        lo, hi = costs.sum(), costs.sum() * n
        budget = (lo + hi) / 2 if self.budget is None else float(self.budget)
        if budget < lo:
            raise TaskrelError(f"branched layout: budget {budget:g} is below the cheapest layout (all shared: {lo:g})")
        dis = [np.clip(1.0 - s, 0.0, None) for s in sims]
        for d in dis:
            np.fill_diagonal(d, 0.0)
        cuts = [_cuts(0.5 * (d + d.T)) for d in dis]
        best: dict[tuple, tuple[float, float]] = {}
        for choice in itertools.product(range(n), repeat=n_stages):
            parts: list[list[tuple[int, ...]]] = []
            parent = [tuple(range(n))]
            for k, m in enumerate(choice):
                parent = _refine(parent, cuts[k][m])
                parts.append(parent)
            key = tuple(tuple(sorted(p)) for p in parts)
            if key in best:
                continue
            cost = float(sum(len(p) * c for p, c in zip(parts, costs)))
            score = float(sum(dis[k][i, j] for k, p in enumerate(parts) for b in p for i, j in itertools.combinations(b, 2)))
            best[key] = (score, cost)
        tasks = affinity.tasks
        rows = [{"cost": c, "dissimilarity": s, "key": k} for k, (s, c) in best.items()]
        front = pd.DataFrame(rows).sort_values(["cost", "dissimilarity"]).groupby("cost", as_index=False).first()
        front = front[front["dissimilarity"] <= front["dissimilarity"].cummin()]
        ok = front[front["cost"] <= budget + 1e-12]
        row = ok.sort_values(["dissimilarity", "cost"]).iloc[0]
        self.layout_ = self._layout(tasks, row["key"])
        self.dissimilarity_ = float(row["dissimilarity"])
        self.cost_ = float(row["cost"])
        self.budget_ = budget
        front = front.assign(layout=[self._layout(tasks, k).describe() for k in front["key"]]).drop(columns="key")
        self.front_ = front.reset_index(drop=True)
        return self

    @staticmethod
    def _layout(tasks: list[str], key: tuple) -> SharingLayout:
        return SharingLayout(tasks, [[[tasks[i] for i in b] for b in part] for part in key])


def branched_layout(affinity: Affinity, budget: float | None = None, stage_costs: Sequence[float] | None = None) -> SharingLayout:
    """The branched layout of :class:`BranchedLayoutSearch` (a shortcut)."""
    return BranchedLayoutSearch(budget, stage_costs).fit(affinity).layout_
