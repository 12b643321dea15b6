"""Any group's value from a few measured groups: a sampled-subset surrogate (Li et al., 2023).

:class:`SubsetSurrogate` fits, for every target task ``t``, a ridge regression of ``t``'s
measured value on which other tasks share its network. ``effects="mean"`` averages the
effects of ``t``'s group mates (Standley's higher-order approximation, fitted to every
measured group), ``effects="sum"`` adds them (Li et al.'s linear model), ``effects="both"``
holds one of each per mate, so it nests the two (and declines with group size between them)::

    value_t(G) = b_t + mean_{s in G - {t}} w[s, t]  (+ mean_{s < u in G - {t}} v[s, u, t])
    value_t(G) = b_t + sum_{s in G - {t}} w[s, t]   (+ sum_{s < u in G - {t}} v[s, u, t])

``b_t`` is ``t``'s value alone, anchored at its measured single (else free) so that the penalty
shrinks the effects towards "as good as alone"; ``w[s, t]`` is the effect of ``s`` on ``t`` in
the pair ``{s, t}``; the pairwise terms ``v`` are optional.

**The default** (``effects="both"``, ``alpha="auto"``) nests the forms and chooses, per target,
the penalty with the least leave-one-group-out error of the fit itself (closed form; a group's
seeds leave together; the target alone is never left out), kept in ``alpha_``, ``cv_``;
``effects="auto"`` also chooses the form. ``"both"`` is the default because one continuous
choice from 7-8 groups per target is less noisy than a three-way choice of form: it chose as
well or better (benchmarks/results/surrogate_check_qm9-scarce.json, group_values.json).

Uncertainty is analytic: the ridge solution's covariance ``sigma^2 A^-1 Z'WZ A^-1`` plus the
anchor's own variance carried into every effect, with ``sigma^2`` the residual variance over
the residual degrees of freedom, bounded below by the variance of measured values given with
a ``std``. A prediction's ``std`` is the standard error of the fitted mean for that group.

What cannot be learned is said, never guessed: tasks never measured together, fewer measured
rows than parameters, NaN values and mixed directions raise a
:class:`~taskrel.errors.TaskrelError`; effects the design cannot tell apart raise an
:class:`IdentifiabilityWarning`; predicting groups larger than any measured one raises an
:class:`ExtrapolationWarning`.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np
import pandas as pd

from taskrel.affinity import Affinity, Cost
from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable
from taskrel.tables.effects import (
    ExtrapolationWarning,
    IdentifiabilityWarning,
    candidate_grid,
    check_identifiable,
    check_std,
    choose_forms,
    cross_validate,
    design,
    pair_contrast,
    ridge,
    split_effects,
    stack_tables,
    table_sem,
)
from taskrel.tables.group_estimates import check_max_size, enumerate_groups, network_costs
from taskrel.tables.group_values import GroupValues, check_members
from taskrel.tables.pricing import effects_form, price_quadratic

CostSpec = float | Mapping[int, float] | Callable[[tuple[str, ...]], float]
MAPS = ("sum", "mean", "both")
MAX_LISTED = 500_000  # candidates() refuses to list more groups than this
ALPHAS = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)


@dataclass
class SurrogatePrediction:
    """Predicted per-task values of some groups, with standard errors.

    ``values`` and ``std`` are arrays (groups, tasks), NaN where the task is not a member.
    """

    tasks: list[str]
    groups: list[tuple[str, ...]]
    values: np.ndarray
    std: np.ndarray
    higher_is_better: bool

    def to_frame(self) -> pd.DataFrame:
        """One row per group and task: ``group`` ("a+b"), ``task``, ``value``, ``std``."""
        rows = []
        for g, group in enumerate(self.groups):
            for t in group:
                j = self.tasks.index(t)
                rows.append({"group": "+".join(group), "task": t, "value": self.values[g, j], "std": self.std[g, j]})
        return pd.DataFrame(rows, columns=["group", "task", "value", "std"])


class SubsetSurrogate:
    """Per-task ridge regressions of a task's value on its network's membership.

    Parameters
    ----------
    pairwise : add a term for every pair of the target's group mates (needs many more
        measured groups: a group of three or more holding each triple).
    effects : ``"both"`` (default) holds a summed and an averaged effect per mate (module
        docstring); ``"mean"`` averages the mates' effects, ``"sum"`` adds them; ``"auto"``
        chooses one of the three per task by leave-one-group-out error.
    alpha : ridge penalty on the effects (not on the intercept), in units of measured rows;
        ``"auto"`` (default) chooses it per task from ``1e-3 .. 100`` (with the form). Either
        may be a mapping task -> value naming every task (e.g. another fit's choices).
    unseen : ``"raise"`` (default) refuses a target never measured with some task;
        ``"shrink"`` sets that effect to zero with an :class:`IdentifiabilityWarning` (used
        when the model corrects another estimate, which then stands there).
    choose : ``"task"`` (default) or ``"pooled"``: ``effects="auto"`` picks a form per task, or one for all.
    higher_is_better : the direction of the measured values; None takes the table's. Given and
        different from the table's, it is an error (mixed directions).
    underdetermined : ``"raise"`` (default) refuses a task measured in fewer rows than its
        model has parameters; ``"warn"`` fits it anyway (the ridge penalty picks the smallest
        effects that fit) with an :class:`IdentifiabilityWarning`.

    Attributes
    ----------
    tasks_ : task names; ``intercept_`` : (n,) each task's fitted value alone.
    main_ : (n, n) ``main_[s, t]`` = fitted change of ``t``'s value when ``s`` joins it alone.
    pair_ : (n, n, n) pairwise terms ``pair_[s, u, t]`` (symmetric in s, u) or None.
    coef_ : ``{task: pandas.Series}`` of every fitted coefficient with its name (``mean:s`` for
    an averaged effect beside a summed one). ``effects_``, ``alpha_`` : the form and penalty
    used per target; ``cv_`` : ``{task: {(form, alpha): leave-one-group-out error}}`` when chosen.
    sigma_ : (n,) residual standard deviation per target; ``n_rows_`` : measured rows per target;
    dof_ : residual degrees of freedom per target; ``max_size_`` : largest measured group per
    target; ``affinity_`` : :class:`~taskrel.Affinity` of relevance scores source -> target
    (losses: the relative drop ``-main_[s, t] / |intercept_[t]|``, as the pairwise probe;
    scores: ``main_[s, t]`` in the score's units; larger is better for the target).

    Examples
    --------
    >>> rows = [{"tasks": "a", "cost": 1, "a": 1.0}, {"tasks": "b", "cost": 1, "b": 2.0},
    ...         {"tasks": "c", "cost": 1, "c": 3.0},
    ...         {"tasks": "a+b", "cost": 1, "a": 0.8, "b": 2.1},
    ...         {"tasks": "a+c", "cost": 1, "a": 1.1, "c": 2.5},
    ...         {"tasks": "b+c", "cost": 1, "b": 2.2, "c": 2.9},
    ...         {"tasks": "a+b+c", "cost": 1, "a": 0.95, "b": 2.3, "c": 2.4}]
    >>> s = SubsetSurrogate(alpha=1e-6, effects="sum").fit(CandidateTable(rows))
    >>> round(float(s.main_[0, 2]), 2), round(s.affinity_.value("c", "b"), 3)  # a helps c; c hurts b
    (-0.5, -0.1)
    >>> pred = s.predict([["a", "c"]])
    >>> round(float(pred.values[0, 0]), 2), bool(pred.std[0, 0] > 0)
    (1.12, True)
    >>> len(s.candidates(max_size=2))
    6
    """

    def __init__(self, pairwise: bool = False, alpha: float | str = "auto", higher_is_better: bool | None = None,
                 underdetermined: str = "raise", effects: str = "both", unseen: str = "raise", choose: str = "task"):
        self.pairwise = pairwise
        self.effects = effects
        self.alpha = alpha
        self.higher_is_better = higher_is_better
        self.underdetermined = underdetermined
        self.unseen = unseen
        self.choose = choose

    def get_params(self, deep: bool = False) -> dict:
        """The constructor's parameters (scikit-learn style)."""
        return {k: getattr(self, k) for k in ("pairwise", "alpha", "higher_is_better", "underdetermined", "effects", "unseen", "choose")}

    def set_params(self, **params) -> SubsetSurrogate:
        """Set constructor parameters; an unknown one is a TaskrelError naming it."""
        for k, v in params.items():
            if k not in self.get_params():
                raise TaskrelError(f"surrogate: unknown parameter {k!r}; parameters are {sorted(self.get_params())}")
            setattr(self, k, v)
        return self

    # ------------------------------------------------------------------ fitting
    def fit(self, measured, std=None, n_seeds: int = 1, compute: Cost | None = None) -> SubsetSurrogate:
        """Fit one model per task on the measured networks. Returns ``self``.

        ``measured`` is a :class:`~taskrel.tables.CandidateTable` or a list of them over the
        same tasks (one per seed: the rows are stacked, so seeds are repeated rows). ``std``
        (optional, an array (networks, tasks) or a DataFrame with one column per task) is the
        standard deviation of each measured value over ``n_seeds`` seeds: the value's own
        standard error ``std / sqrt(n_seeds)`` weighs its row and bounds the noise from below.
        Without ``std``, tables that carry their own std (``CandidateTable.sem``) are used so.
        ``compute`` is what measuring the table cost (carried into ``affinity_``).
        """
        if self.underdetermined not in ("raise", "warn"):
            raise TaskrelError(f"surrogate: underdetermined must be 'raise' or 'warn', got {self.underdetermined!r}")
        for name, allowed in (("unseen", ("raise", "shrink")), ("choose", ("task", "pooled"))):
            if getattr(self, name) not in allowed:
                raise TaskrelError(f"surrogate: {name} must be one of {allowed}, got {getattr(self, name)!r}")
        tasks, members, values, hib = stack_tables(measured, self.higher_is_better)
        grid = candidate_grid(self.effects, self.alpha, tasks, MAPS, ALPHAS)
        sem = check_std(std, members, tasks, n_seeds) if std is not None else table_sem(measured)
        n = len(tasks)
        self.tasks_ = tasks
        self.higher_is_better_ = hib
        self.intercept_ = np.zeros(n)
        self.main_ = np.zeros((n, n))
        self.pair_ = np.zeros((n, n, n)) if self.pairwise else None
        self.coef_, self.cov_, self.effects_, self.cv_ = {}, [], [], {}
        self.sigma_, self.n_rows_, self.dof_, self.max_size_, self.alpha_ = (np.zeros(n) for _ in range(5))
        for j, t in enumerate(tasks):  # checks, then the leave-one-group-out errors of every choice
            rows, (maps, alphas) = members[:, j], grid[j]
            base = design(members[rows], j, bool(self.pairwise), "sum" if maps == ("both",) else maps[0])
            check_identifiable(base, tasks, j, bool(self.pairwise), self.underdetermined == "warn", self.unseen == "shrink")
            if len(maps) * len(alphas) > 1:
                w = None if sem is None else sem[rows, j]
                self.cv_[t] = cross_validate(members[rows], j, values[rows, j], w, maps, alphas, bool(self.pairwise))
        picks = choose_forms(self.cv_, tasks, grid, self.choose)
        for j, t in enumerate(tasks):
            rows = members[:, j]
            w = None if sem is None else sem[rows, j]
            effects, alpha = picks[j]
            Z = design(members[rows], j, bool(self.pairwise), effects)
            beta, cov, sigma, dof = ridge(Z, values[rows, j], w, alpha, t)
            self.effects_.append(effects)
            self.alpha_[j] = alpha
            self._store(j, beta, cov, sigma, dof, int(rows.sum()), int(members[rows].sum(1).max()))
        self.affinity_ = self._affinity(compute or Cost(), n_seeds)
        return self

    def _store(self, j, beta, cov, sigma, dof, m, max_size) -> None:
        others = [k for k in range(len(self.tasks_)) if k != j]
        self.intercept_[j] = beta[0]
        contrast = self._pair_contrast(j)
        self.main_[others, j] = contrast @ beta
        names = ["intercept"] + [self.tasks_[k] for k in others]
        if self.effects_[j] == "both":
            names += [f"mean:{self.tasks_[k]}" for k in others]
        first = len(names)
        if self.pairwise:
            for c, (a, b) in enumerate(combinations(others, 2)):
                self.pair_[a, b, j] = self.pair_[b, a, j] = beta[first + c]
                names.append(f"{self.tasks_[a]}*{self.tasks_[b]}")
        self.coef_[self.tasks_[j]] = pd.Series(beta, index=names)
        self.cov_.append(cov)
        self.sigma_[j], self.dof_[j], self.n_rows_[j], self.max_size_[j] = sigma, dof, m, max_size

    def _pair_contrast(self, j: int) -> np.ndarray:
        return pair_contrast(len(self.tasks_), j, bool(self.pairwise), self.effects_[j])

    def _affinity(self, compute: Cost, n_seeds: int) -> Affinity:
        n = len(self.tasks_)
        se = np.zeros((n, n))
        for j in range(n):
            C = self._pair_contrast(j)
            d = np.sqrt(np.clip(np.einsum("ip,pq,iq->i", C, self.cov_[j], C), 0, None))
            se[[k for k in range(n) if k != j], j] = np.nan_to_num(d)
        if self.higher_is_better_:
            values, std, scale = self.main_.copy(), se, "absolute"
        else:
            base = np.maximum(np.abs(self.intercept_), 1e-12)[None, :]
            values, std, scale = -self.main_ / base, se / base, "relative"
        np.fill_diagonal(values, 0.0)
        np.fill_diagonal(std, 0.0)
        return Affinity(self.tasks_, values, std=std, n_seeds=max(int(n_seeds), 1), measure="surrogate",
                        cost=compute, calibration="gain" if self.higher_is_better_ else "relative-gain", meta={"scale": scale, "pairwise": bool(self.pairwise),
                                            "alpha": self.alpha_.tolist(), "effects": list(self.effects_),
                                            "estimator": self.estimator_name(), "rows": self.n_rows_.astype(int).tolist()})

    def estimator_name(self) -> str:
        """What estimated the group values, as reports name it (the chosen forms and penalties)."""
        kinds = {e: self.effects_.count(e) for e in MAPS if e in self.effects_}
        chosen = ", ".join(f"{e} x{c}" for e, c in kinds.items())
        given = {k: "per task" if isinstance(v, Mapping) else v for k, v in (("effects", self.effects), ("alpha", self.alpha))}
        return (f"SubsetSurrogate(effects={given['effects']!r}: {chosen}; alpha={given['alpha']!r}"
                f"{', pairwise' if self.pairwise else ''})")

    # ------------------------------------------------------------------ predictions
    def predict(self, groups) -> SurrogatePrediction:
        """Predicted value (and standard error) of every member of each group.

        ``groups``: task lists, "a+b" strings, or a CandidateTable (its networks).
        """
        self._check_fitted()
        if isinstance(groups, CandidateTable):
            groups = groups.groups
        if isinstance(groups, str):
            groups = [groups]
        members = np.zeros((0, len(self.tasks_)), dtype=bool)
        rows = [self._mask(g) for g in groups]
        if rows:
            members = np.array(rows, dtype=bool)
        values, std = self._predict_members(members)
        names = [tuple(t for t, m in zip(self.tasks_, row) if m) for row in members]
        return SurrogatePrediction(list(self.tasks_), names, values, std, self.higher_is_better_)

    def _mask(self, group) -> np.ndarray:
        names = [p.strip() for p in group.split("+")] if isinstance(group, str) else [str(t) for t in group]
        row = np.zeros(len(self.tasks_), dtype=bool)
        for t in names:
            if t not in self.tasks_:
                raise TaskrelError(f"surrogate: unknown task {t!r} in group {names}; tasks are {self.tasks_}")
            row[self.tasks_.index(t)] = True
        if not row.any():
            raise TaskrelError("surrogate: an empty group has no values to predict")
        return row

    @property
    def tasks(self) -> list[str]:
        """The fitted tasks (the columns of ``predict_members``)."""
        self._check_fitted()
        return list(self.tasks_)

    def predict_members(self, members) -> tuple[np.ndarray, np.ndarray]:
        """Group-value contract: (m, n) boolean membership -> (values, standard errors), NaN outside.

        >>> rows = [{"tasks": t, "cost": 1, t: v} for t, v in (("a", 1.0), ("b", 2.0))]
        >>> s = SubsetSurrogate(effects="sum", alpha=1e-6).fit(CandidateTable(rows + [{"tasks": "a+b", "cost": 1, "a": .8, "b": 2.1}]))
        >>> v, se = s.predict_members(np.array([[True, True]]))
        >>> v.round(2).tolist()
        [[0.8, 2.1]]
        """
        self._check_fitted()
        m = check_members(members, len(self.tasks_), "surrogate")
        return self._predict_members(m)

    def _predict_members(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = np.full(members.shape, np.nan)
        std = np.full(members.shape, np.nan)
        too_big = []
        for j, t in enumerate(self.tasks_):
            rows = members[:, j]
            if not rows.any():
                continue
            Z = design(members[rows], j, bool(self.pairwise), self.effects_[j])
            beta = self.coef_[t].to_numpy()
            values[rows, j] = Z @ beta
            std[rows, j] = np.sqrt(np.clip(np.einsum("ip,pq,iq->i", Z, self.cov_[j], Z), 0, None))
            if members[rows].sum(1).max() > self.max_size_[j]:
                too_big.append(f"{t} (measured up to size {int(self.max_size_[j])})")
        if too_big:
            warnings.warn("surrogate: predicting groups larger than any measured group holding "
                          f"{', '.join(too_big)}: these values are extrapolated", ExtrapolationWarning, stacklevel=3)
        return values, std

    def candidates(self, max_size: int | None = None, cost: CostSpec = 1.0) -> CandidateTable:
        """Every group of up to ``max_size`` tasks with its predicted values, for GroupingSearch.

        ``cost`` per network: a number (default 1: the table counts networks), a dict size ->
        cost, or a function of the group's task tuple. The table's ``std`` holds each
        prediction's standard error (``n_seeds`` 1), when every one is known.
        """
        self._check_fitted()
        n = len(self.tasks_)
        top = check_max_size(max_size, n)
        total = sum(comb(n, k) for k in range(1, top + 1))
        if total > MAX_LISTED:
            raise TaskrelError(f"surrogate: {total} groups of {n} tasks up to size {top} is too many to list (more than "
                               f"{MAX_LISTED}); pass a smaller max_size, or give surrogate.group_model() to the grouping "
                               "search, which asks it for groups on demand (column generation with exact pricing)")
        blocks = enumerate_groups(n, top)
        members = np.zeros((sum(len(idx) for _, idx in blocks), n), dtype=bool)
        costs = np.empty(len(members))
        row = 0
        for _, idx in blocks:
            members[np.arange(row, row + len(idx))[:, None], idx] = True
            costs[row : row + len(idx)] = network_costs(cost, self.tasks_, idx, 1.0)
            row += len(idx)
        values, std = self._predict_members(members)
        known = bool(np.isfinite(std[members]).all())
        return CandidateTable.from_arrays(self.tasks_, members, costs, values, higher_is_better=self.higher_is_better_,
                                          check_duplicates=False, std=std if known else None,
                                          meta={"rule": "surrogate"})

    def effect_matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(base (n,), summed (n, n), averaged (n, n))``: member ``t`` of a group of ``k`` is
        worth ``base[t] + sum_{s in mates} (summed[s, t] + averaged[s, t] / (k - 1))``
        (the pairwise terms aside)."""
        self._check_fitted()
        return split_effects(self.intercept_, [self.coef_[t].to_numpy() for t in self.tasks_], self.effects_)

    def group_model(self, time_limit: float = 5.0) -> GroupValues:
        """This surrogate under the group-value contract, with exact pricing when it has no
        pairwise terms (a quadratic binary program per group size; ``time_limit`` seconds for
        each pricing call, after which ``price_exact`` turns False)."""
        self._check_fitted()
        state, price, default_limit = {"exact": True}, None, float(time_limit)
        if not self.pairwise:
            base, summed, averaged = self.effect_matrices()

            def price(weights, size_cost, max_size, n_groups=1, *, min_size=1, time_limit=None):
                form = effects_form(base, summed, averaged, weights, size_cost, self.higher_is_better_)
                limit = default_limit if time_limit is None else min(float(time_limit), default_limit)
                groups, exact = price_quadratic(form, len(base), max_size, n_groups, limit, min_size=min_size)
                state["exact"] = state["exact"] and exact
                return groups

        return GroupValues(self.tasks_, self.higher_is_better_, self._predict_members, price=price,
                           price_exact=lambda: price is not None and state["exact"], estimator=self.estimator_name(),
                           cost=self.affinity_.cost, meta={"effects": list(self.effects_), "alpha": self.alpha_.tolist()})

    def _check_fitted(self) -> None:
        if not hasattr(self, "affinity_"):
            raise TaskrelError("surrogate: call fit(measured) first")

    def __repr__(self) -> str:
        return f"SubsetSurrogate({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


__all__ = ["ExtrapolationWarning", "IdentifiabilityWarning", "SubsetSurrogate", "SurrogatePrediction"]
