"""A small plan, run as a separate process by the store tests (killed, then resumed)."""

import sys

from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec, RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig


def make_suite():
    return get_suite("planted", n_examples=400)


def plan(suite, seeds=(0, 1)):
    cfg = TrainConfig(epochs=15, patience=15, lr=3e-3, batch_size=16)
    return [RunSpec(SharingLayout.separate([t], suite.n_stages), cfg, seed=s) for s in seeds for t in suite.task_names]


if __name__ == "__main__":
    suite = make_suite()
    seeds = (0,) if len(sys.argv) > 2 and sys.argv[2] == "small" else (0, 1)
    lease = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0  # a claim outlives a killed process this long
    res = Runner(RunStore(sys.argv[1], lease=lease), n_jobs=1, progress=False).run(suite, plan(suite, seeds))
    print(res.trained, res.reused)
