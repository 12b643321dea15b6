"""An affinity as a group-value model: group values by the rule for its kind, on demand.

:meth:`~taskrel.tables.CandidateTable.from_affinity` lists every group up to ``max_size``;
at many tasks that list is too long. :class:`AffinityGroupModel` gives the same values for
any group asked (the contract of :mod:`taskrel.tables.group_model`), so the grouping search
can price new groups by column generation instead. The rule follows the affinity's
calibration (:mod:`taskrel.tables.group_estimates`): ``"hoa"`` for relative gains (member
``t`` gains the mean of its mates' affinities onto it), ``"mean-gain"`` for gains, and
``"no-singleton"`` for scores without a calibrated zero (TAG's rule: no task alone;
``min_size`` is then 2). Without ``base_loss`` the values are scores (higher is better; a
task alone scores 0); with it they are values in the base's units.

>>> from taskrel.affinity import Affinity
>>> aff = Affinity(["a", "b", "c"], [[0, .4, 0], [.2, 0, .1], [0, 0, 0]], measure="pairwise")
>>> model = AffinityGroupModel(aff)
>>> model.rule, model.higher_is_better, model.min_size
('hoa', True, 1)
>>> values, std = model.predict_members([[True, True, False], [True, True, True]])
>>> values.round(3).tolist()
[[0.2, 0.4, nan], [0.1, 0.2, 0.05]]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.tables.group_estimates import RULE_OF, RULES
from taskrel.tables.pricing import effects_form


def rule_for(affinity: Affinity, rule: str = "auto") -> str:
    """The group-value rule for an affinity's calibration (or ``rule`` if given)."""
    if rule == "auto":
        if affinity.calibration not in RULE_OF:
            raise TaskrelError(
                f"grouping: affinity {affinity.measure!r} is {affinity.calibration!r} (not a "
                "task affinity); it cannot score groups")
        return RULE_OF[affinity.calibration]
    if rule not in RULES:
        raise TaskrelError(f"grouping: unknown rule {rule!r}; use 'auto' or one of {RULES}")
    return rule


class AffinityGroupModel:
    """Group values from an affinity, for any group on demand (module docstring).

    Parameters
    ----------
    affinity : a plain (n x n) :class:`~taskrel.Affinity` with no missing entries.
    rule : ``"auto"`` (by calibration), ``"hoa"``, ``"mean-gain"`` or ``"no-singleton"``.
    base_loss : optional ``{task: single-task value}``; values are then in its units.
    higher_is_better : with ``base_loss``, whether the values are scores.
    """

    def __init__(self, affinity: Affinity, rule: str = "auto",
                 base_loss: Mapping[str, float] | None = None, higher_is_better: bool = False):
        if not isinstance(affinity, Affinity) or affinity.is_staged:
            raise TaskrelError("grouping: an affinity model needs a plain (n x n) taskrel "
                               "Affinity")
        self.rule = rule_for(affinity, rule)
        self.tasks = list(affinity.tasks)
        onto = np.array(affinity.values, dtype=np.float64)
        off = ~np.eye(len(self.tasks), dtype=bool)
        if not np.isfinite(onto[off]).all():
            i, j = np.argwhere(off & ~np.isfinite(onto))[0]
            raise TaskrelError(f"grouping: affinity {affinity.measure!r} has no value for "
                               f"{self.tasks[i]!r} -> {self.tasks[j]!r}; call "
                               "affinity.complete() first")
        np.fill_diagonal(onto, 0.0)
        std = np.nan_to_num(np.asarray(affinity.std, dtype=np.float64))
        np.fill_diagonal(std, 0.0)
        self._onto, self._var = onto, std ** 2
        self.min_size = 2 if self.rule == "no-singleton" else 1
        if base_loss is not None and self.rule == "no-singleton":
            raise TaskrelError(f"grouping: affinity {affinity.measure!r} has no calibrated "
                               "zero, so it cannot be turned into losses (base_loss); "
                               "calibrate it first (Affinity.calibrate)")
        self._base = None
        if base_loss is not None:
            if not isinstance(base_loss, Mapping) or set(base_loss) != set(self.tasks):
                raise TaskrelError("grouping: base_loss must map every task of the affinity "
                                   "to its single-task value")
            self._base = np.array([float(base_loss[t]) for t in self.tasks])
        self.higher_is_better = bool(higher_is_better) if base_loss is not None else True

    def predict_members(self, members) -> tuple[np.ndarray, np.ndarray]:
        """Each member's value (and standard error) in each group; NaN outside."""
        m = np.asarray(members, dtype=bool)
        f = m.astype(np.float64)
        mates = np.maximum(f.sum(axis=1, keepdims=True) - 1.0, 1.0)
        gain = (f @ self._onto) / mates
        sem = np.sqrt(f @ self._var) / mates
        if self._base is not None:
            scale = self._scale()
            gain = self._base + scale * gain
            sem = (np.abs(scale) * sem) if self.rule == "hoa" else sem
        return np.where(m, gain, np.nan), np.where(m, sem, np.nan)

    def _scale(self) -> np.ndarray:
        """Per task, the factor on its mates' mean affinity in its value: 1 without
        ``base_loss``; with it, +1 for scores and -1 for losses, times ``|base|`` (HOA rule)."""
        n = len(self.tasks)
        if self._base is None:
            return np.ones(n)
        sign = 1.0 if self.higher_is_better else -1.0
        return sign * (np.abs(self._base) if self.rule == "hoa" else np.ones(n))

    def quadratic_form(self, weights, size_cost):
        """The reduced cost ``sum_{t in g} (sign * v_t(g) - weights[t]) + size_cost[|g|]`` as a
        quadratic in membership, size by size: ``form(k) -> (const, lin, Q)`` (the form that
        :func:`~taskrel.analysis.pricing_bound.certify` proves bounds for; ``sign`` is -1 for
        scores, +1 for losses). Member ``t`` of a group of ``k`` is worth ``base[t] + b[t] *
        sum_{s in mates} onto[s, t] / (k - 1)``.

        >>> from taskrel.affinity import Affinity
        >>> aff = Affinity(["a", "b", "c"], [[0, .4, 0], [.2, 0, .1], [0, 0, 0]], measure="pairwise")
        >>> const, lin, Q = AffinityGroupModel(aff).quadratic_form([0, 0, 0], [0, 0, 0, 0])(2)
        >>> Q.round(2).tolist()  # scores enter negated: a and b lower each other's cost by .6
        [[0.0, -0.6, 0.0], [-0.6, 0.0, -0.1], [0.0, -0.1, 0.0]]
        """
        n = len(self.tasks)
        base = np.zeros(n) if self._base is None else self._base
        averaged = self._onto * self._scale()[None, :]
        return effects_form(base, np.zeros((n, n)), averaged, weights, size_cost,
                            self.higher_is_better)
