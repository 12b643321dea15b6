"""Fault injection on a run store: damaged records, stray files, bad weights, dead workers.

No damage may stop a study: each damaged record is moved aside (or, when it is not a record,
ignored) with one log line, and its run trains again with the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskrel.errors import MissingWeights, TaskrelError
from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec, RunStore
from taskrel.suites import get_suite
from taskrel.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite():
    return get_suite("planted", n_examples=120)


@pytest.fixture(scope="module")
def spec(suite):
    return RunSpec(SharingLayout.separate(suite.task_names[:1], suite.n_stages), TrainConfig(epochs=2, batch_size=32), seed=3, keep_weights=True)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, suite, spec):
    """A store holding one finished run (with weights), trained once for the whole module."""
    path = tmp_path_factory.mktemp("pristine")
    rec = Runner(path, n_jobs=1, progress=False).run(suite, [spec])[0]
    assert rec.ok
    return path, rec


@pytest.fixture
def store(pristine, tmp_path):
    src, rec = pristine
    shutil.copytree(src, tmp_path / "s")
    return RunStore(tmp_path / "s"), rec


def _record_file(store, key):
    return store.path / "runs" / f"{key}.json"


def _rerun(store, suite, spec):
    return Runner(store, n_jobs=1, progress=False).run(suite, [spec])


def _resign(d):
    """Re-checksum a record dict (as a writer of that content would have)."""
    d.pop("checksum", None)
    d["checksum"] = hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return json.dumps(d)


# ---------------------------------------------------------------------- records
def _sample_offsets(raw: bytes) -> dict[str, int]:
    text = raw.decode()
    return {
        "opening brace": 0,
        "schema digit": text.index('"schema": ') + len('"schema": '),
        "key": text.index('"key": "') + len('"key": "') + 3,
        "a metric": text.index('"loss": ') + len('"loss": ') + 2,
        "checksum": text.index('"checksum": "') + len('"checksum": "') + 5,
        "closing brace": len(raw) - 1,
    }


@pytest.mark.parametrize("where", ["opening brace", "schema digit", "key", "a metric", "checksum", "closing brace"])
def test_every_bit_flip_of_a_byte_is_caught(store, where, caplog):
    store, rec = store
    p = _record_file(store, rec.key)
    raw = p.read_bytes()
    weights = store.weights_path(rec.key).read_bytes()
    offset = _sample_offsets(raw)[where]
    for bit in range(8):
        damaged = bytearray(raw)
        damaged[offset] ^= 1 << bit
        p.write_bytes(bytes(damaged))
        with caplog.at_level(logging.WARNING, logger="taskrel.store"):
            assert store.get(rec.key) is None, f"bit {bit} at {where} went unnoticed"
        assert not p.exists(), "a damaged record is moved aside"
        p.write_bytes(raw)  # put back: the record and its weights went aside together
        store.weights_path(rec.key).write_bytes(weights)
        assert store.get(rec.key) == rec
    assert len(list((store.path / "corrupt").glob(f"{rec.key}.json.*"))) == 8
    assert len(list((store.path / "corrupt").glob(f"{rec.key}.pt.*"))) == 8
    assert sum("trained again" in r.getMessage() for r in caplog.records) == 8


def test_flipped_record_is_retrained_to_the_same_numbers(store, suite, spec):
    store, rec = store
    p = _record_file(store, rec.key)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x80  # top bit: no longer UTF-8
    p.write_bytes(bytes(raw))
    again = _rerun(store, suite, spec)
    assert again.trained == 1 and again[0].metrics == rec.metrics
    assert store.get(rec.key).metrics == rec.metrics


@pytest.mark.parametrize("keep", [0, 1, 0.5, -1])
def test_truncated_record_is_quarantined(store, keep):
    store, rec = store
    p = _record_file(store, rec.key)
    raw = p.read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else (len(raw) + keep if keep < 0 else keep)
    p.write_bytes(raw[:n])
    assert store.get(rec.key) is None
    assert list((store.path / "corrupt").iterdir())


def test_stray_files_are_ignored_with_one_line(store, suite, spec, caplog):
    store, rec = store
    runs = store.path / "runs"
    (runs / "._notes.json").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    shutil.copy(runs / f"{rec.key}.json", runs / f"{rec.key.upper()}.json")
    (runs / "README.txt").write_text("hello")
    (runs / f".{rec.key}.json.abc.tmp").write_text("{half")  # a write in flight: silent
    with caplog.at_level(logging.WARNING, logger="taskrel.store"):
        assert store.keys() == [rec.key]
        assert store.keys() == [rec.key]  # said once
        assert [r.key for r in store.records()] == [rec.key]
        res = _rerun(store, suite, spec)
    assert res.trained == 0 and res.reused == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all("ignoring runs/" in m for m in lines), lines
    assert (runs / "._notes.json").exists(), "a file that is not a record is left alone"


def test_directory_named_like_a_record(store, suite, spec):
    store, rec = store
    p = _record_file(store, rec.key)
    p.unlink()
    p.mkdir()
    (p / "inside").write_text("x")
    assert store.get(rec.key) is None
    assert not p.exists()
    res = _rerun(store, suite, spec)
    assert res.trained == 1 and res[0].metrics == rec.metrics


def test_symlink_loop(store, suite, spec):
    store, rec = store
    p = _record_file(store, rec.key)
    p.unlink()
    os.symlink(p.name, p)  # points at itself
    assert store.get(rec.key) is None
    assert not os.path.lexists(p)
    assert _rerun(store, suite, spec).trained == 1


def test_unreadable_record_is_quarantined(store):
    store, rec = store
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    p = _record_file(store, rec.key)
    p.chmod(0)
    assert store.get(rec.key) is None


# ---------------------------------------------------------------------- schema
def test_newer_schema_is_refused_clearly(store):
    store, rec = store
    p = _record_file(store, rec.key)
    d = json.loads(p.read_text())
    d["schema"] = 99
    p.write_text(_resign(d))
    with pytest.raises(TaskrelError, match="schema 99, newer than this taskrel reads"):
        store.get(rec.key)
    assert p.exists(), "a newer record is not ours to move"


def test_older_schema_is_migrated_and_extra_fields_ignored(store):
    store, rec = store
    p = _record_file(store, rec.key)
    d = json.loads(p.read_text())
    d["schema"] = 1
    del d["weights_sha256"], d["failed_task"]
    d["written_by_a_plugin"] = {"x": 1}
    p.write_text(_resign(d))
    old = store.get(rec.key)
    assert old is not None and old.metrics == rec.metrics and old.weights_sha256 is None
    assert set(store.load_weights(rec.key)) == set(store_state_keys(store, rec.key))


def store_state_keys(store, key):
    import torch

    return torch.load(store.weights_path(key), weights_only=True).keys()


# ---------------------------------------------------------------------- weights
def _damage_weights(p: Path, how: str) -> None:
    raw = p.read_bytes()
    if how == "missing":
        p.unlink()
    elif how == "truncated":
        p.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        p.write_bytes(b"")
    elif how == "flipped":  # inside a tensor's data: torch loads it fine, with another number
        import torch

        state = torch.load(p, weights_only=True)
        name, tensor = max(state.items(), key=lambda kv: kv[1].numel())
        at = raw.find(tensor.numpy().tobytes()[:64])
        assert at > 0
        damaged = bytearray(raw)
        damaged[at + 2] ^= 0x10
        p.write_bytes(bytes(damaged))
        assert not torch.equal(torch.load(p, weights_only=True)[name], tensor), "the flip lands in the data"


@pytest.mark.parametrize("how", ["missing", "truncated", "empty", "flipped"])
def test_bad_weights_mean_retraining(store, suite, spec, how):
    store, rec = store
    good = store.load_weights(rec.key)
    _damage_weights(store.weights_path(rec.key), how)
    with pytest.raises(MissingWeights, match="missing"):
        store.load_weights(rec.key)
    assert store.get(rec.key) is None, "the run's record went aside with its weights"
    res = _rerun(store, suite, spec)
    assert res.trained == 1
    again = store.load_weights(rec.key)
    assert all((again[k] == good[k]).all() for k in good)


def test_weights_of_a_run_that_kept_none(store, suite):
    store, _ = store
    plain = RunSpec(SharingLayout.separate(suite.task_names[1:2], suite.n_stages), TrainConfig(epochs=1), seed=3)
    rec = Runner(store, n_jobs=1, progress=False).run(suite, [plain])[0]
    with pytest.raises(MissingWeights, match="missing"):
        store.load_weights(rec.key)


# ---------------------------------------------------------------------- claims
HOLDER = """
import sys, time
from taskrel.store import RunStore
store = RunStore(sys.argv[1], lease=float(sys.argv[3]))
claim = store.claim(sys.argv[2])
print("claimed" if claim else "busy", flush=True)
time.sleep(600)
"""


def test_sigkilled_worker_claim_is_taken_over_at_once(tmp_path, suite, spec):
    """A live holder's claim is kept past its lease by the heartbeat; once the holder is
    SIGKILLed its claim (lease one hour) is taken over at once: its owner is gone."""
    lease = 1.0
    store = RunStore(tmp_path / "s", lease=lease)
    key = Runner(store, progress=False).key(suite, spec)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path), key, "3600"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        time.sleep(3 * lease)
        assert store.is_claimed(key) and store.claim(key) is None
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        res = Runner(store, n_jobs=1, progress=False).run(suite, [spec])
        waited = time.monotonic() - killed
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert res.trained == 1 and res[0].ok
    assert waited < 30, waited  # training only: no wait for the hour-long lease
    assert not store.is_claimed(key), "the claim is released after training"


# ---------------------------------------------------------------------- orphaned workers
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(__import__("os").getpid())])
print(child.pid, flush=True)
time.sleep(600)
"""
WORKER = """
import sys, time
from taskrel.workers import exit_with_parent
exit_with_parent(int(sys.argv[1]), every=0.2)
time.sleep(600)
"""


def test_a_worker_exits_when_its_study_is_killed():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    study = subprocess.Popen([sys.executable, "-c", PARENT, WORKER], env=env, stdout=subprocess.PIPE, text=True)
    worker = int(study.stdout.readline())
    try:
        time.sleep(1.0)
        os.kill(worker, 0)  # alive while the study lives
        study.send_signal(signal.SIGKILL)
        study.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.1)
        assert not _alive(worker), "an orphaned worker lingers"
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
    return True


STUDY_WITH_WORKERS = """
import sys
from taskrel.layout import SharingLayout
from taskrel.runner import Runner
from taskrel.store import RunSpec
from taskrel.suites import get_suite
from taskrel.train import TrainConfig
suite = get_suite("planted", n_examples=400)
specs = [RunSpec(SharingLayout.separate([t], suite.n_stages), TrainConfig(epochs=500, patience=500, batch_size=8)) for t in suite.task_names]
Runner(sys.argv[1], n_jobs=2, backend="loky", progress=False).run(suite, specs)
"""


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().split(")")[-1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d.name))
    return out


def test_pool_workers_exit_when_the_study_is_sigkilled(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    study = subprocess.Popen([sys.executable, "-c", STUDY_WITH_WORKERS, str(tmp_path)], env=env)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any((tmp_path / "claims").glob("*.claim")):
            time.sleep(0.2)  # a worker holds a claim: it is training
        assert any((tmp_path / "claims").glob("*.claim")), "the workers never started"
        workers = [w for c in _children(study.pid) for w in [c, *_children(c)]]
        assert workers
        study.send_signal(signal.SIGKILL)
        study.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "pool workers outlive their study"
    finally:
        if study.poll() is None:
            study.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


# ---------------------------------------------------------------------- atomic writes
def _table(n_tasks: int):
    from taskrel.tables import CandidateTable

    tasks = [f"t{i}" for i in range(n_tasks)]
    rows = [{"tasks": t, "cost": 1, t: 0.5 + i / 10} for i, t in enumerate(tasks)]
    rows += [{"tasks": f"{a}+{b}", "cost": 1, a: 0.55 + i / 10, b: 0.6 + j / 10}
             for i, a in enumerate(tasks) for j, b in enumerate(tasks) if i < j]
    return CandidateTable(rows)


def _stages_affinity(n_tasks: int):
    import numpy as np

    from taskrel.affinity import Affinity

    rng = np.random.default_rng(n_tasks)
    s = rng.uniform(0.1, 0.9, size=(2, n_tasks, n_tasks))
    s = (s + s.transpose(0, 2, 1)) / 2
    s[:, np.arange(n_tasks), np.arange(n_tasks)] = 1.0
    return Affinity([f"t{i}" for i in range(n_tasks)], s, stages=["s0", "s1"])


def _table_json(tmp_path, n_tasks):
    table = _table(n_tasks)
    return lambda target: table.to_json(target)


def _cli(argv):
    """Run the CLI; a write that failed for lack of room (reported in one line, exit 1) is
    raised again as the OSError it was, for the test below."""
    import contextlib
    import errno
    import io

    from taskrel.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(argv)
    if rc == 1 and "File too large" in err.getvalue():
        raise OSError(errno.EFBIG, err.getvalue().strip())
    assert rc == 0, err.getvalue()


def _group_json(tmp_path, n_tasks):
    _table(n_tasks).to_json(tmp_path / f"in{n_tasks}.json")
    return lambda target: _cli(["group", str(tmp_path / f"in{n_tasks}.json"), "--budget", "2", "--json", str(target)])


def _group_layout(tmp_path, n_tasks):
    _table(n_tasks).to_json(tmp_path / f"in{n_tasks}.json")
    return lambda target: _cli(["group", str(tmp_path / f"in{n_tasks}.json"), "--budget", "2", "--n-stages", "3", "--out", str(target)])


def _branched_layout(tmp_path, n_tasks):
    _stages_affinity(n_tasks).save(tmp_path / f"aff{n_tasks}.json")
    return lambda target: _cli(["layout", str(tmp_path / f"aff{n_tasks}.json"), "--out", str(target)])


@pytest.mark.parametrize("writer", [_table_json, _group_json, _group_layout, _branched_layout],
                         ids=["CandidateTable.to_json", "group --json", "group --n-stages --out", "layout --out"])
def test_a_write_that_fails_midway_leaves_the_previous_file(tmp_path, capsys, writer):
    """The disk fills up while a finished result is written: the previous file stays whole.

    RLIMIT_FSIZE makes every write past a few bytes fail with EFBIG, as a full disk would,
    after the file was opened (a plain ``write_text`` has truncated it by then).
    """
    import errno

    resource = pytest.importorskip("resource")
    target = tmp_path / "out" / "result.json"
    target.parent.mkdir()
    write_old, write_new = writer(tmp_path, 3), writer(tmp_path, 4)
    write_old(target)  # the previous result (and every lazy import, before the limit)
    before = target.read_bytes()
    assert len(before) > 64
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (32, hard))
    try:
        with pytest.raises(OSError) as info:
            write_new(target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert info.value.errno == errno.EFBIG, info.value  # it failed while writing, not before
    assert target.read_bytes() == before, "a failed write damaged the previous file"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"], "a temporary file was left behind"
    write_new(target)  # with room on the disk the new result replaces the old one
    assert target.read_bytes() != before and json.loads(target.read_text())
