import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """One torch intra-op thread for the whole session, as for every small run (DESIGN.md).

    The tests' tensors are tiny; with torch's default threads, tiny operations on a machine
    that other processes load take 10-20x longer (idle threads wait for busy cores).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seeds():
    """Every test starts from the same seeds (Python, NumPy's legacy generator, torch)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def planted():
    from taskrel.suites import get_suite

    return get_suite("planted")
