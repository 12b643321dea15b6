"""Mixed precision (autocast) on any device, and the GPU tests: run where CUDA is present.

The ``gpu`` tests are skipped, with the reason, on a machine without a CUDA GPU. Run only them
with ``python -m pytest -m gpu tests/test_gpu.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout
from taskrel.store import RunSpec
from taskrel.suites import get_suite
from taskrel.train import TrainConfig, train

TASKS = ["c0t0", "c0t1", "c1t0"]
CFG = TrainConfig(epochs=2, batch_size=32, lr=0.01)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def planted():
    return get_suite("planted", n_examples=200)


def test_bf16_autocast_trains_deterministically_and_differently(planted):
    lay = SharingLayout.shared(TASKS, planted.n_stages)
    a = train(planted, lay, CFG.with_(precision="bf16"), seed=0)
    b = train(planted, lay, CFG.with_(precision="bf16"), seed=0)
    full = train(planted, lay, CFG, seed=0)
    assert a.metrics == b.metrics
    assert a.metrics != full.metrics  # autocast did run the layers in bfloat16
    for t in TASKS:  # but it is the same training, up to bfloat16 rounding
        assert math.isclose(a.loss(t, "test"), full.loss(t, "test"), rel_tol=0.05)


def test_precision_is_checked_and_keyed(planted):
    with pytest.raises(TaskrelError, match="unknown precision 'fp8'"):
        TrainConfig(precision="fp8")
    lay = SharingLayout.shared(TASKS, planted.n_stages)
    assert RunSpec(lay, CFG, 0).key(planted) != RunSpec(lay, CFG.with_(precision="bf16"), 0).key(planted)
    assert "precision" not in CFG.to_dict()  # fp32 runs keep the keys they had


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_cuda_without_a_gpu_is_named_before_training():
    with pytest.raises(TaskrelError, match="device 'cuda' is not available"):
        TrainConfig(device="cuda")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_cuda(planted, precision):
    lay = SharingLayout.shared(TASKS, planted.n_stages)
    gpu = train(planted, lay, CFG.with_(device="cuda", precision=precision), seed=0)
    cpu = train(planted, lay, CFG, seed=0)
    for t in TASKS:
        assert math.isfinite(gpu.loss(t, "test"))
        assert math.isclose(gpu.loss(t, "test"), cpu.loss(t, "test"), rel_tol=0.1 if precision != "fp32" else 1e-3)


@pytest.mark.gpu
@needs_cuda
def test_dense_suite_aggregator_and_gradient_probe_on_cuda(tmp_path):
    pytest.importorskip("torchjd", reason="the conflict extra (torchjd) is not installed")
    from taskrel.probes import GradientProbe

    dense = get_suite("mnist-dense", tasks=["fg", "dist", "digit"], n_examples=200)
    cfg = TrainConfig(epochs=1, batch_size=32, device="cuda", precision="bf16")
    r = train(dense, SharingLayout.shared(dense.task_names, dense.n_stages), cfg.with_(aggregator="upgrad", precision="fp32"))
    assert all(math.isfinite(r.loss(t, "test")) for t in dense.task_names)
    aff = GradientProbe(every=2, config=cfg).fit(dense, tmp_path / "store").affinity_.plain()
    assert torch.isfinite(torch.as_tensor(aff.values)).all()
