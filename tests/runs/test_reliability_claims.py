"""Claims that know their owner: a dead owner's claim is taken over at once, a live one's is
respected, interrupts leave no claim behind, and killed writers' temporaries are swept."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskrel.claims import claim_holder, owner_alive, try_claim
from taskrel.errors import TaskrelError
from taskrel.files import remove_stale_temporaries, temp_prefix
from taskrel.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
KEY = "ab" * 12
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _python(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], env=ENV, **kw)


def test_a_claim_left_by_an_exited_process_is_taken_over_at_once(tmp_path):
    # the repro: claim with an hour's lease, then exit without releasing
    code = "import sys, os, taskrel; c = taskrel.RunStore(sys.argv[1], lease=3600).claim(sys.argv[2]); os._exit(0)"
    assert _python(code, str(tmp_path), KEY).wait(60) == 0
    assert (tmp_path / "claims" / f"{KEY}.claim").exists(), "the dead process's claim is on disk"
    store = RunStore(tmp_path, lease=3600)
    assert not store.is_claimed(KEY)
    start = time.monotonic()
    claim = store.claim(KEY)
    assert claim is not None and time.monotonic() - start < 1.0
    holder = claim_holder(tmp_path / "claims", KEY)
    assert holder["pid"] == os.getpid() and holder["alive"] is True
    claim.release()


def test_a_reused_pid_does_not_keep_a_dead_owners_claim(tmp_path):
    """The claim names a live PID (this test's parent) with another start time: its owner is gone."""
    d = tmp_path / "claims"
    claim = try_claim(d, KEY, lease=3600)
    body = json.loads((d / f"{KEY}.claim").read_text())
    claim._stop.set()  # silence its heartbeat, then forge the owner
    body.update(pid=os.getppid(), start="1", owner="forged")
    (d / f"{KEY}.claim").write_text(json.dumps(body))
    assert owner_alive(body) is False
    again = try_claim(d, KEY, lease=3600)
    assert again is not None
    again.release()
    claim.release()


def test_a_claim_from_another_host_waits_for_its_lease(tmp_path):
    d = tmp_path / "claims"
    d.mkdir()
    body = {"owner": "far:1:x", "host": "far.invalid", "pid": 1, "lease": 0.5, "since": time.time()}
    (d / f"{KEY}.claim").write_text(json.dumps(body))
    assert try_claim(d, KEY, lease=0.5) is None, "a live claim elsewhere is respected"
    time.sleep(0.7)
    claim = try_claim(d, KEY, lease=0.5)
    assert claim is not None, "an expired one is taken over"
    claim.release()


def test_a_live_owner_keeps_its_claim(tmp_path):
    code = "import sys, time, taskrel; c = taskrel.RunStore(sys.argv[1], lease=1).claim(sys.argv[2]); print(bool(c), flush=True); time.sleep(60)"
    proc = _python(code, str(tmp_path), KEY, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "True"
        time.sleep(1.5)  # past its lease: the heartbeat keeps it
        store = RunStore(tmp_path, lease=1)
        assert store.claim(KEY) is None and store.is_claimed(KEY)
        holder = claim_holder(tmp_path / "claims", KEY)
        assert holder["pid"] == proc.pid and holder["host"] == socket.gethostname() and holder["alive"]
    finally:
        proc.kill()
        proc.wait()


def test_keyboard_interrupt_while_training_releases_the_claim(tmp_path):
    store = RunStore(tmp_path)

    def train():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.train_once(KEY, train)
    assert not (tmp_path / "claims" / f"{KEY}.claim").exists()


def test_a_claim_dropped_before_its_block_is_released(tmp_path):
    """An interrupt between claiming and entering ``with``: the claim is garbage, and released."""
    store = RunStore(tmp_path)
    store.claim(KEY)  # dropped at once
    gc.collect()
    assert not (tmp_path / "claims" / f"{KEY}.claim").exists()
    assert store.claim(KEY) is not None


def test_sigterm_leaves_a_claim_the_next_process_takes_at_once(tmp_path):
    code = "import sys, time, taskrel; c = taskrel.RunStore(sys.argv[1], lease=3600).claim(sys.argv[2]); print(1, flush=True); time.sleep(60)"
    proc = _python(code, str(tmp_path), KEY, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "1"
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    claim = RunStore(tmp_path, lease=3600).claim(KEY)
    assert claim is not None
    claim.release()


def test_a_claims_file_is_refused_by_name(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "claims").write_text("not a folder")
    with pytest.raises(TaskrelError, match=r"claims.*is a file; move it away"):
        RunStore(tmp_path)
    with pytest.raises(TaskrelError, match="is a file"):
        try_claim(tmp_path / "claims", KEY)


KILLED_WRITER = """
import os, sys
from taskrel.files import atomic_write
def write(f):
    f.write(b"x" * 100)
    f.flush()
    print("writing", flush=True)
    os.kill(os.getpid(), 9)  # killed mid-write
atomic_write(os.path.join(sys.argv[1], "runs", "r.json"), write)
"""


def test_a_killed_writers_temporary_file_is_swept_when_the_store_opens(tmp_path):
    proc = _python(KILLED_WRITER, str(tmp_path), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.wait(30)
    left = [p.name for p in (tmp_path / "runs").iterdir()]
    assert len(left) == 1 and left[0].endswith(".tmp"), left
    mine = tmp_path / "runs" / (temp_prefix("s.json") + "live.tmp")
    mine.write_text("")  # a write in progress in this live process
    store = RunStore(tmp_path)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [mine.name], "only the dead writer's file goes"
    assert store.sweep() == []


def test_sweep_leaves_a_read_only_folder_alone(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    (tmp_path / ".x.json.~000000-1~y.tmp").write_text("")
    os.utime(tmp_path / ".x.json.~000000-1~y.tmp", (0, 0))  # stale
    tmp_path.chmod(0o500)
    try:
        assert remove_stale_temporaries(tmp_path) == []
    finally:
        tmp_path.chmod(0o700)
    assert remove_stale_temporaries(tmp_path) == [tmp_path / ".x.json.~000000-1~y.tmp"]
