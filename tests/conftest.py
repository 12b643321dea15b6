import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seeds():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="session")
def planted():
    from taskrel.suites import get_suite

    return get_suite("planted")
