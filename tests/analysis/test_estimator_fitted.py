"""check_is_fitted: refuses an unfitted estimator with a message naming what to call."""

import pytest

from taskrel.base import Estimator, check_is_fitted
from taskrel.errors import TaskrelError


class _Twice(Estimator):
    def __init__(self, k=2):
        self.k = k

    def fit(self, x):
        self.out_ = [self.k * v for v in x]
        self.n_ = len(x)
        return self


def test_unfitted_is_refused_with_the_missing_attribute_and_hint():
    with pytest.raises(TaskrelError, match=r"_Twice is not fitted \(no out_\): call fit\(data\) first"):
        check_is_fitted(_Twice(), "out_", hint="fit(data)")


def test_any_learned_attribute_by_default_and_all_named_ones_required():
    e = _Twice()
    with pytest.raises(TaskrelError, match="no learned attribute"):
        check_is_fitted(e)
    e.fit([1, 2])
    check_is_fitted(e)
    check_is_fitted(e, ["out_", "n_"])
    with pytest.raises(TaskrelError, match="no other_"):
        check_is_fitted(e, ["out_", "other_"])


def test_parameters_alone_do_not_count_as_fitted():
    e = _Twice(k=3)
    e._private_ = 1  # private names are not learned attributes
    with pytest.raises(TaskrelError):
        check_is_fitted(e)
