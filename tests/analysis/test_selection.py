import numpy as np
import pytest

from taskrel.affinity import Affinity
from taskrel.analysis.selection import GreedyAuxiliarySelection
from taskrel.base import clone
from taskrel.errors import TaskrelError
from taskrel.runner import Runner
from taskrel.store import RunStore
from taskrel.train import TrainConfig

CFG = TrainConfig(epochs=40, patience=8, lr=3e-3, batch_size=32)


def test_greedy_picks_the_planted_partner(tmp_path, planted):
    cands = ["conflict", "c1t0", "c0t1"]
    # a ranking that puts the planted partner last: the real runs must still find it
    ranking = Affinity(["c0t0", *cands], np.array([[0, 0, 0, 0], [3, 0, 0, 0], [2, 0, 0, 0], [1, 0, 0, 0]]))
    sel = GreedyAuxiliarySelection("c0t0", cands, ranking=ranking, config=CFG, seeds=[0, 1])
    assert clone(sel).get_params() == sel.get_params() and not hasattr(sel, "selected_")
    assert sel.fit(planted, Runner(tmp_path, progress=False)) is sel
    assert sel.selected_[0] == "c0t1"
    assert list(sel.steps_.loc[sel.steps_["round"] == 0, "candidate"]) == cands  # ranking order
    comp = sel.comparison_.set_index("set")
    assert comp.loc["greedy", "val_loss"] < comp.loc["primary alone", "val_loss"]
    asked = sel.runs_
    # asking again trains nothing: everything is in the store
    store = RunStore(tmp_path)
    before = len(store)
    sel2 = clone(sel).fit(planted, store)
    assert len(store) == before and sel2.selected_ == sel.selected_ and sel2.runs_ == asked


def test_budget_of_runs_is_respected(tmp_path, planted):
    sel = GreedyAuxiliarySelection("c0t0", max_runs=3, config=TrainConfig(epochs=2)).fit(planted, RunStore(tmp_path))
    assert len(sel.steps_) == 2  # 1 run for the primary alone, then 2 candidates


def test_bad_selection_inputs(tmp_path, planted):
    with pytest.raises(TaskrelError, match="unknown task 'zzz'"):
        GreedyAuxiliarySelection("zzz").fit(planted, RunStore(tmp_path))
    with pytest.raises(TaskrelError, match="also a candidate"):
        GreedyAuxiliarySelection("c0t0", ["c0t0", "c0t1"]).fit(planted, RunStore(tmp_path))
    with pytest.raises(TaskrelError, match="max_runs must be an integer >= 1"):
        GreedyAuxiliarySelection("c0t0", max_runs=0).fit(planted, RunStore(tmp_path))
    with pytest.raises(TaskrelError, match="seeds must be a non-empty list"):
        GreedyAuxiliarySelection("c0t0", seeds=[]).fit(planted, RunStore(tmp_path))
