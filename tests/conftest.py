import random
import signal

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


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_child_processes():
    """The interrupt tests send Ctrl-C (SIGINT) to child processes. A non-interactive shell
    starts background jobs with SIGINT ignored, children inherit an ignored signal, and Python
    keeps it ignored: started that way, those tests would test nothing (and fail). A handled
    SIGINT is reset to the default in a child, so the tests behave as from a terminal."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


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
