"""The planted suite's truth is real: measured by training, not assumed."""

import numpy as np

from taskrel.layout import SharingLayout
from taskrel.train import TrainConfig, train

CFG = TrainConfig(epochs=40, patience=8, lr=3e-3, batch_size=32)


def _test_loss(suite, tasks, target, seeds=(0, 1, 2)):
    lay = SharingLayout.shared(tasks, suite.n_stages)
    return np.mean([train(suite, lay, CFG, seed=s).metrics["test"][target]["loss"] for s in seeds])


def test_same_cluster_helps_and_conflict_hurts(planted):
    for a, b in [("c0t0", "c0t1"), ("c1t0", "c1t1")]:
        alone_a, alone_b = _test_loss(planted, [a], a), _test_loss(planted, [b], b)
        together = SharingLayout.shared([a, b], planted.n_stages)
        res = [train(planted, together, CFG, seed=s).metrics["test"] for s in (0, 1, 2)]
        assert np.mean([r[a]["loss"] for r in res]) < alone_a
        assert np.mean([r[b]["loss"] for r in res]) < alone_b
    for t in ("c0t0", "c0t1"):
        assert _test_loss(planted, [t, "conflict"], t) > _test_loss(planted, [t], t)
