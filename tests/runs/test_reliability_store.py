"""Weight checks a long-lived store cannot be fooled out of: an in-place change that keeps the
file's size and mtime is caught (the cached check keys on ctime too)."""

from __future__ import annotations

import os

from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec
from taskrel.suites import get_suite
from taskrel.train import TrainConfig


def test_an_in_place_flip_keeping_size_and_mtime_is_caught(tmp_path):
    suite = get_suite("planted", n_examples=100)
    spec = RunSpec(SharingLayout.separate([suite.task_names[0]], suite.n_stages), TrainConfig(epochs=1), keep_weights=True)
    runner = Runner(tmp_path, n_jobs=1, progress=False)
    key = runner.run(suite, [spec])[0].key
    store = runner.store
    assert store.get(key) is not None and store.get(key) is not None  # verified once, then cached
    path = store.weights_path(key)
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 0x10]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert store.get(key) is None, "the changed weights passed as verified"
    assert (tmp_path / "corrupt").is_dir() and runner.run(suite, [spec]).trained == 1
