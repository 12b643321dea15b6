"""Measured groups correct a cheap estimate: a surrogate fitted to the cheap estimate's errors.

A cheap group-value model (the gradient-feature estimate, HOA from pairs, any
:class:`~taskrel.tables.group_values.GroupValues`) answers every group but is biased; a few
measured groups are right but few. :class:`CorrectedModel` uses the cheap estimate as an
offset: for every measured group it takes the residual ``measured - cheap`` and fits a
:class:`~taskrel.tables.SubsetSurrogate` to the residuals (every task's own offset, its
mates' effects; by default summed and averaged effects, the penalty chosen by
leave-one-group-out error, as the surrogate's default). A prediction is ``cheap + residual``, with a standard error
``sqrt(se_cheap^2 + se_residual^2)`` (a cheap estimate without a standard error counts 0).

Effects no measured group can inform (two tasks never measured together) are shrunk to zero
by the ridge penalty, so there the cheap estimate stands uncorrected; this is said with an
:class:`~taskrel.tables.IdentifiabilityWarning`, not refused.

>>> import numpy as np
>>> from taskrel.tables import CandidateTable
>>> from taskrel.tables.group_values import GroupValues
>>> def cheap(members):  # every member's loss 1.0: biased
...     m = np.asarray(members, dtype=bool)
...     return np.where(m, 1.0, np.nan), np.where(m, 0.0, np.nan)
>>> rows = [{"tasks": "a", "cost": 1, "a": 1.2}, {"tasks": "b", "cost": 1, "b": 0.9},
...         {"tasks": "a+b", "cost": 1, "a": 1.1, "b": 0.8}]
>>> model = CorrectedModel(GroupValues(["a", "b"], False, cheap), alpha=1e-6).fit(CandidateTable(rows))
>>> model.predict_members(np.array([[True, False], [True, True]]))[0].round(2).tolist()
[[1.2, nan], [1.1, 0.8]]
"""
from __future__ import annotations

import warnings

import numpy as np

from taskrel.affinity import Cost
from taskrel.errors import TaskrelError
from taskrel.tables.candidates import CandidateTable
from taskrel.tables.group_values import GroupValues, check_members
from taskrel.tables.surrogate import SubsetSurrogate


class CorrectedModel:
    """A cheap group-value model corrected by a surrogate of its residuals on measured groups.

    Parameters
    ----------
    cheap : a group-value model (``tasks``, ``higher_is_better``, ``predict_members``), e.g.
        ``GradFeatureProbe.group_model()``.
    effects, alpha : the residual surrogate's form and ridge penalty (default ``"both"`` and
        ``"auto"``: summed and averaged effects, the penalty chosen per task by
        leave-one-group-out error; the surrogate's default, which chose as well or better than
        ``effects="auto"`` in ``benchmarks/results/group_values.json``;
        :class:`~taskrel.tables.SubsetSurrogate`).

    Attributes
    ----------
    residual_ : the fitted :class:`~taskrel.tables.SubsetSurrogate` of ``measured - cheap``.
    tasks_, higher_is_better_ : the cheap model's; ``cost_`` : the cheap model's cost plus the
    measured groups' (``compute``); ``estimator_`` : a name for reports.
    """

    def __init__(self, cheap, effects: str = "both", alpha: float | str = "auto"):
        self.cheap = cheap
        self.effects = effects
        self.alpha = alpha

    def fit(self, measured, std=None, n_seeds: int = 1, compute: Cost | None = None) -> CorrectedModel:
        """Fit the residual surrogate on measured tables (one per seed, or one). Returns ``self``.

        ``measured`` must hold the cheap model's tasks (in any order), in its direction.
        """
        for attr in ("tasks", "higher_is_better", "predict_members"):
            if not hasattr(self.cheap, attr):
                raise TaskrelError(f"corrected model: cheap has no {attr!r}; pass a group-value model "
                                   "(for a probe: probe.group_model())")
        tables = [measured] if isinstance(measured, CandidateTable) else list(measured)
        tasks = list(self.cheap.tasks)
        residual = []
        for k, tab in enumerate(tables):
            if not isinstance(tab, CandidateTable):
                raise TaskrelError(f"corrected model: measured table {k} is a {type(tab).__name__}, not a CandidateTable")
            if sorted(tab.tasks) != sorted(tasks):
                raise TaskrelError(f"corrected model: measured table {k} has tasks {tab.tasks}; the cheap model has {tasks}")
            if tab.higher_is_better != bool(self.cheap.higher_is_better):
                raise TaskrelError(f"corrected model: measured table {k} has higher_is_better={tab.higher_is_better}, "
                                   f"the cheap model {bool(self.cheap.higher_is_better)}")
            order = [tab.tasks.index(t) for t in tasks]
            members, values = tab.members[:, order], tab.values[:, order]
            cheap, _ = self.cheap.predict_members(members)
            residual.append(CandidateTable.from_arrays(tasks, members, np.ones(len(members)), values - cheap,
                                                       higher_is_better=tab.higher_is_better, check_duplicates=False))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*never appears together.*")
            self.residual_ = SubsetSurrogate(effects=self.effects, alpha=self.alpha, underdetermined="warn",
                                             unseen="shrink").fit(residual, std, n_seeds, compute)
        self.tasks_ = tasks
        self.higher_is_better_ = bool(self.cheap.higher_is_better)
        self.cost_ = getattr(self.cheap, "cost", Cost()) + (compute or Cost())
        self.estimator_ = (f"corrected: {getattr(self.cheap, 'estimator', type(self.cheap).__name__)} "
                           f"+ residual {self.residual_.estimator_name()}")
        return self

    def predict_members(self, members) -> tuple[np.ndarray, np.ndarray]:
        """Group-value contract: the cheap estimate plus the fitted residual, with standard errors."""
        if not hasattr(self, "residual_"):
            raise TaskrelError("corrected model: call fit(measured) first")
        m = check_members(members, len(self.tasks_), "corrected model")
        cheap, cheap_se = self.cheap.predict_members(m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the residual model's extrapolation is the cheap model's business
            res, res_se = self.residual_.predict_members(m)
        se = np.sqrt(np.nan_to_num(np.asarray(cheap_se, dtype=float)) ** 2 + res_se**2)
        return np.where(m, cheap + res, np.nan), np.where(m, se, np.nan)

    def group_model(self) -> GroupValues:
        """This model under the group-value contract (no exact pricing: the search prices it
        by heuristic search over ``predict_members``)."""
        if not hasattr(self, "residual_"):
            raise TaskrelError("corrected model: call fit(measured) first")
        return GroupValues(self.tasks_, self.higher_is_better_, self.predict_members, estimator=self.estimator_,
                           cost=self.cost_, meta={"residual_effects": list(self.residual_.effects_)})


__all__ = ["CorrectedModel"]
