"""The settings of a study's steps: :class:`Clustering` (a task clustering that says whether
to measure its stability), :class:`Grouping` (the grouping search over a front of budgets) and
:class:`Validation` (what validation trains), each an Estimator whose constructor a study
file's table goes straight to.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from taskrel.analysis.cluster import TaskClustering
from taskrel.base import Estimator
from taskrel.errors import TaskrelError
from taskrel.train import TrainConfig


def param_names(cls: type) -> list[str]:
    """The keyword parameters of ``cls``'s constructor (any class, Estimator or not).

    >>> param_names(Grouping)
    ['search', 'budgets', 'source', 'max_size', 'widths', 'cost', 'recommend']
    """
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def changed_params(obj: Any) -> dict[str, Any]:
    """``obj``'s constructor parameters that differ from their defaults (None left out; tuples
    and mappings as lists and dicts)."""
    sig = inspect.signature(type(obj).__init__).parameters
    defaults = plain({k: v.default for k, v in sig.items() if v.default is not v.empty})
    mine = plain({k: getattr(obj, k) for k in param_names(type(obj)) if hasattr(obj, k)})
    return {k: v for k, v in mine.items() if v is not None and (k not in defaults or v != defaults[k])}


def plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()}


class Clustering(TaskClustering):
    """A study's clustering: a :class:`~taskrel.analysis.TaskClustering` (its parameters, as
    there) that also says whether the study measures the clusters' stability over seeds
    (:func:`~taskrel.analysis.cluster_stability`, needing two seeds or more). A study file's
    ``[analysis.clustering]`` table goes straight to it.

    Parameters
    ----------
    method, n_clusters, linkage, random_state, n_neighbors : as :class:`~taskrel.analysis.TaskClustering`.
    stability : measure the clusters' stability over the affinity's seeds (default true).

    >>> c = Clustering(n_clusters=2, stability=False)
    >>> c.n_clusters, c.stability, isinstance(c, TaskClustering)
    (2, False, True)
    """

    def __init__(self, method: str = "hierarchical", n_clusters: int | None = None, linkage: str = "average",
                 random_state: int = 0, n_neighbors: int | str = "auto", stability: bool = True):
        super().__init__(method=method, n_clusters=n_clusters, linkage=linkage, random_state=random_state,
                         n_neighbors=n_neighbors)
        self.stability = stability


class Validation(Estimator):
    """Train the recommended layout against all-shared and all-separate, scored on *test*.

    Parameters
    ----------
    seeds : seeds of every validation run.
    config : training config of the validation runs (default: the study's).
    front : also train the grouping chosen at every budget of the Pareto front.
    random : how many random groupings with the recommendation's group sizes to train too
        (the equal-budget control, 0 to 20).
    aggregator : also train all-shared with this conflict-aware TorchJD aggregator (e.g.
        ``"upgrad"``; :data:`taskrel.aggregators.AGGREGATORS`), as the layout
        ``"all-shared + upgrad"``: the control a grouping has to beat. None: no such control.
    matched : also train all-shared and all-separate at the widths whose parameter counts are
        nearest the recommendation's (``"all-shared matched"``, ``"all-separate matched"``;
        :mod:`taskrel.study.capacity`). None: when the study searches widths.
    """

    def __init__(self, seeds: Sequence[int] = (0, 1, 2), config: TrainConfig | None = None, front: bool = True, random: int = 0,
                 aggregator: str | None = None, matched: bool | None = None):
        self.seeds = seeds
        self.config = config
        self.front = front
        self.random = random
        self.aggregator = aggregator
        self.matched = matched

    def check(self) -> list[int]:
        from taskrel.probes.base import check_seeds

        if isinstance(self.random, bool) or not isinstance(self.random, int) or not 0 <= self.random <= 20:
            raise TaskrelError(f"study: field 'validation.random': must be a whole number of random groupings from 0 to 20, got {self.random!r}")
        if self.config is not None and not isinstance(self.config, TrainConfig):
            raise TaskrelError(f"study: field 'validation.train': must be a TrainConfig, got {self.config!r}")
        if self.aggregator is not None:
            from taskrel.aggregators import AGGREGATORS

            if self.aggregator not in AGGREGATORS:
                raise TaskrelError(f"study: field 'validation.aggregator': unknown aggregator {self.aggregator!r}; "
                                   f"use one of {', '.join(sorted(AGGREGATORS))}")
        if not isinstance(self.front, bool):
            raise TaskrelError(f"study: field 'validation.front': must be true or false, got {self.front!r}")
        if self.matched is not None and not isinstance(self.matched, bool):
            raise TaskrelError(f"study: field 'validation.matched': must be true, false or None, got {self.matched!r}")
        return check_seeds(self.seeds, "study: field 'validation.seeds'")


class Grouping(Estimator):
    """The grouping step of a study: ``search`` at every budget of a front, on a candidate table.

    Parameters
    ----------
    search : a :class:`~taskrel.analysis.GroupingSearch` (or a dict of its parameters); its
        ``budget`` is the recommendation's (None: the middle of ``budgets``), its other
        parameters serve every budget of the front.
    budgets : the budgets of the front (default 1..n and the recommendation's).
    source : the probe whose candidate table the search reads (default: a pairwise probe's
        HOA table, else the analysed affinity).
    max_size : largest group of a table built from an affinity.
    widths : offer every group at these encoder widths (e.g. ``[0.5, 1.0]``), chosen with the
        grouping under the budget (:mod:`taskrel.study.capacity`; the suite needs a width
        builder). None: every network at the suite's width.
    cost : with ``widths``, what a network costs: ``"params"`` (its parameters over the width-1
        all-shared network's) or ``"networks"`` (its width, in full networks).
    recommend : ``"search"`` (default: the grouping the search chooses at ``budget``) or
        ``"clusters"`` (the study's clustering, with k chosen automatically, is the
        recommendation; the search still draws the front at ``budgets``). At many tasks with an
        uncalibrated affinity (gradient cosine, CKA) the clusters are the better answer: a
        task's group value is then the mean of its mates' affinities, which does not change
        when a cluster is split, so the search's choice at a budget is arbitrary inside clusters.

    >>> from taskrel.analysis import GroupingSearch
    >>> Grouping({"budget": 2, "solver": "milp"}, budgets=[1, 2, 3]).searcher().budget
    2
    """

    def __init__(self, search: Any = None, budgets: Sequence[float] | None = None, source: str | None = None,
                 max_size: int | None = None, widths: Sequence[float] | None = None, cost: str = "params",
                 recommend: str = "search"):
        self.search = search
        self.budgets = budgets
        self.source = source
        self.max_size = max_size
        self.widths = widths
        self.cost = cost
        self.recommend = recommend

    def searcher(self) -> Any:
        """The :class:`~taskrel.analysis.GroupingSearch` (built from a dict; None: budget None)."""
        from taskrel.analysis import GroupingSearch

        if isinstance(self.search, GroupingSearch):
            return self.search
        params = {"budget": None, **dict(self.search or {})}
        try:
            return GroupingSearch(**params)
        except TypeError as e:
            raise TaskrelError(f"study: field 'analysis.grouping': {e}; GroupingSearch takes "
                               f"{GroupingSearch._param_names()}") from None

    @property
    def budget(self) -> float | None:
        return self.searcher().budget


__all__ = ["Clustering", "Grouping", "Validation", "changed_params", "param_names", "plain"]
