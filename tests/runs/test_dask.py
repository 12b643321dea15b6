"""Plans run on a dask.distributed cluster (started here, on loopback) give the local results."""

import pytest

from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec, RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

distributed = pytest.importorskip("dask.distributed", reason="dask is an optional extra: pip install 'taskrel[dask]'")


def test_dask_cluster_matches_local(tmp_path):
    suite = get_suite("planted", n_examples=300)
    cfg = TrainConfig(epochs=3)
    specs = [RunSpec(SharingLayout.separate([t], 3), cfg) for t in suite.task_names[:2]]
    specs.append(RunSpec(SharingLayout.shared(suite.task_names[:2], 3), cfg))
    local = Runner(RunStore(tmp_path / "local"), n_jobs=1, progress=False).run(suite, specs)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        with Runner(RunStore(tmp_path / "dask"), n_jobs=2, backend="dask", scheduler=cluster.scheduler_address, progress=False) as runner:
            remote = runner.run(suite, specs)
    assert remote.trained == 3
    assert [r.metrics for r in remote.ok()] == [r.metrics for r in local.ok()]


STUDY = """
name = "dask-study"
[suite]
name = "planted"
options = { n_clusters = 1, n_examples = 200 }
tasks = ["c0t0", "c0t1", "conflict"]
[train]
epochs = 2
batch_size = 32
[probes.pairwise]
[probes.transfer]
[analysis.grouping]
budgets = [1, 2]
budget = 2
[validation]
seeds = [0]
"""


def test_a_whole_study_on_a_loopback_cluster_uses_one_client_and_matches_local(tmp_path, monkeypatch):
    """``taskrel study --backend dask --scheduler ADDRESS``'s API: one Runner, one client for
    the probes' queue (warm starts included) and the validation's, the local answers."""
    import numpy as np

    import taskrel.workers as workers
    from taskrel.runner import Runner
    from taskrel.study import Study, clone

    study = clone(Study.from_toml(text=STUDY), verbose=False)
    local = study.fit(None, Runner(tmp_path / "local", n_jobs=1, progress=False)).result_
    clients = []
    real = workers.DaskPool.__init__
    monkeypatch.setattr(workers.DaskPool, "__init__", lambda self, *a: clients.append(a) or real(self, *a))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        with Runner(tmp_path / "dask", n_jobs=2, backend="dask", scheduler=cluster.scheduler_address, progress=False) as runner:
            remote = study.fit(None, runner).result_
    assert len(clients) == 1 and clients[0][0] == cluster.scheduler_address
    assert len(RunStore(tmp_path / "dask")) == len(RunStore(tmp_path / "local"))
    for name in ("pairwise", "transfer"):
        np.testing.assert_allclose(remote.affinity(name).values, local.affinity(name).values)
    assert remote.layouts["recommended"] == local.layouts["recommended"]
    assert remote.validation == local.validation
