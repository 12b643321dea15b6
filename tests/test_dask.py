"""Plans run on a dask.distributed cluster (started here, on loopback) give the local results."""

import pytest

from taskrel.execute import execute
from taskrel.layout import SharingLayout
from taskrel.store import RunSpec, RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

distributed = pytest.importorskip("dask.distributed", reason="dask is an optional extra: pip install 'taskrel[dask]'")


def test_dask_cluster_matches_local(tmp_path):
    suite = get_suite("planted", n_examples=300)
    cfg = TrainConfig(epochs=3)
    specs = [RunSpec(SharingLayout.separate([t], 3), cfg) for t in suite.task_names[:2]]
    specs.append(RunSpec(SharingLayout.shared(suite.task_names[:2], 3), cfg))
    local = execute(suite, specs, RunStore(tmp_path / "local"), progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = execute(suite, specs, RunStore(tmp_path / "dask"), n_jobs=2, backend="dask", scheduler=cluster.scheduler_address, progress=False)
    assert remote.trained == 3
    assert [r.metrics for r in remote.ok()] == [r.metrics for r in local.ok()]
