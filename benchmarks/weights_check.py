"""In-place flips of stored weights that keep the file's size and mtime: how many a long-lived
RunStore catches, and what checking costs.

A RunStore remembers which weights it has verified (by the file's stat) so that a study reading
the same run many times hashes it once. An in-place write that restores size and mtime (utime)
used to pass as verified (183 of 300 in the sweep of issue 26); the stat now includes ctime,
which no user-space call can set back. Measured here, side by side in one process:

* ``caught``: flips (one byte, at a random offset, mtime restored) that a store which had already
  verified the file refuses; each flip is followed by a restore and a re-verification;
* ``get_cached_ms``: ``store.get`` of a verified run (a stat); ``get_rehash_ms``: the same with
  the cache cleared (the whole file hashed), for weights of ``--mb`` MiB.

    python benchmarks/weights_check.py [--flips 300] [--mb 16] [--out benchmarks/results/weights_check.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _store_with_weights(folder: Path, mb: float):
    import torch

    from taskrel.layout import SharingLayout
    from taskrel.runner import Runner
    from taskrel.store import RunSpec
    from taskrel.suites import get_suite
    from taskrel.train import TrainConfig

    suite = get_suite("planted", n_examples=100)
    spec = RunSpec(SharingLayout.separate([suite.task_names[0]], suite.n_stages), TrainConfig(epochs=1), keep_weights=True)
    runner = Runner(folder, n_jobs=1, progress=False)
    rec = runner.run(suite, [spec])[0]
    state = {"pad": torch.zeros(int(mb * 2**20 / 4))}  # the run's weights, grown to the size asked
    sha = runner.store.save_weights(rec.key, state)
    runner.store.put(dataclasses.replace(rec, weights_sha256=sha))
    return runner.store, rec.key


def _flip_in_place(path: Path, offset: int) -> bytes:
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)
        f.seek(offset)
        f.write(bytes([old[0] ^ 0x01]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return old


def _restore(path: Path, offset: int, old: bytes) -> None:
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(old)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flips", type=int, default=300)
    ap.add_argument("--mb", type=float, default=16.0)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import logging

    logging.getLogger("taskrel.store").setLevel(logging.ERROR)
    from taskrel.store import RunStore

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as d:
        store, key = _store_with_weights(Path(d), args.mb)
        path = store.weights_path(key)
        size = path.stat().st_size
        caught = 0
        for _ in range(args.flips):
            assert store.get(key) is not None  # verified and cached
            offset = rng.randrange(size)
            old = _flip_in_place(path, offset)
            if store.get(key) is None:
                caught += 1
                # the flip moved the record aside: put both back for the next trial
                for f in (Path(d) / "corrupt").iterdir():
                    dest = Path(d) / ("weights" if f.name.startswith(key + ".pt") else "runs") / f.name.rsplit(".", 1)[0]
                    os.replace(f, dest)
            _restore(path, offset, old)
        store = RunStore(d)
        store.get(key)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            store.get(key)
        cached = (time.perf_counter() - t0) / args.repeats
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            store._verified.clear()
            store.get(key)
        rehash = (time.perf_counter() - t0) / args.repeats
    out = {
        "flips": args.flips, "caught": caught, "weights_mib": round(size / 2**20, 2),
        "get_cached_ms": round(cached * 1e3, 3), "get_rehash_ms": round(rehash * 1e3, 3),
        "load": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
