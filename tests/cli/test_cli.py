"""The command line: suggestions for misspellings, messages (never tracebacks) for bad input,
``study --check`` listing every error, and Ctrl-C. Commands run in-process (``main([...])``);
nothing here trains."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskrel.cli import main

STUDY = 'name = "x"\n[suite]\nname = "planted"\noptions = { n_examples = 100 }\n'


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("taskrel")]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------ did you mean
@pytest.mark.parametrize("argv, meant", [
    (["study", "--n_jobs", "2"], "did you mean --n-jobs?"),
    (["probe", "pairwise", "planted", "--batch_size", "8"], "did you mean --batch-size?"),
    (["stdy"], "did you mean 'study'?"),
    (["study", "--backend", "dsk"], "did you mean 'dask'?"),
    (["probe", "pairwse", "planted"], "did you mean 'pairwise'?"),
    (["train", "yaest"], "did you mean 'yeast'"),
    (["suites", "plantd"], "did you mean 'planted'"),
    (["train", "planted", "--tasks", "c0t0,unrelatd"], "did you mean 'unrelated'?"),
])
def test_misspellings_get_a_suggestion(argv, meant, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2 and meant in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_unknown_option_shows_the_commands_usage_not_the_top_level(capsys):
    code, _, err = run(["study", "--n_jobs", "2"], capsys)
    assert code == 2 and err.startswith("usage: taskrel study")


def test_a_suite_name_given_as_study_points_at_its_study_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["study", "planted"], capsys)
    assert code == 2 and "'planted' is a suite" in one_line_error(err) and "[suite]" in err  # how to write one
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "planted.toml").write_text(STUDY)
    for name in ("planted", "plantd"):
        code, _, err = run(["study", name], capsys)
        assert code == 2 and "taskrel study studies/planted.toml" in one_line_error(err)
    code, _, err = run(["study", "studies/plantd.toml"], capsys)
    assert code == 2 and "did you mean studies/planted.toml?" in err


def test_suites_lists_every_suite_without_building_any(capsys):
    from taskrel.cli.names import suites

    code, out, _ = run(["suites"], capsys)
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()[: len(suites())]] == list(suites())


# ------------------------------------------------------------------ bad input
def _setup(tmp: Path) -> None:
    (tmp / "folder").mkdir()
    (tmp / "ok.toml").write_text(STUDY + "[probes.pairwise]\nseeds = [0]\n")
    (tmp / "store-file").write_text("")
    (tmp / "claims-store").mkdir()
    (tmp / "claims-store" / "claims").write_text("")


def _bad_inputs(tmp: Path) -> dict[str, tuple[list, str]]:
    ok = tmp / "ok.toml"
    return {
        "group a folder": (["group", tmp / "folder", "--budget", "2"], "is a folder"),
        "train --layout a folder": (["train", "planted", "--layout", tmp / "folder"], "is a folder"),
        "cluster a folder": (["cluster", tmp / "folder"], "is a folder"),
        "study a folder": (["study", tmp / "folder"], "is a folder"),
        "study --out /proc": (["study", ok, "--store", tmp / "s", "--out", "/proc/x"], "cannot write in '/proc'"),
        "probe --out /proc": (["probe", "pairwise", "planted", "--store", tmp / "s", "--out", "/proc/x.json"], "cannot write in '/proc'"),
        "probe --out a folder": (["probe", "pairwise", "planted", "--store", tmp / "s", "--out", tmp / "folder"], "is a folder"),
        "layout --out /proc": (["layout", ok, "--out", "/proc/l.json"], "cannot write in '/proc'"),
        "group --json /proc": (["group", ok, "--budget", "2", "--json", "/proc/g.json"], "cannot write in '/proc'"),
        "report --out /proc": (["report", tmp, "--out", "/proc/r"], "cannot write in '/proc'"),
        "study --store ''": (["study", ok, "--store", ""], "--store ''"),
        "probe --store ''": (["probe", "pairwise", "planted", "--store", ""], "--store ''"),
        "train --store ''": (["train", "planted", "--store", ""], "--store ''"),
        "study --store a file": (["study", ok, "--store", tmp / "store-file"], "is a file, not a folder"),
        "train --tasks ,,": (["train", "planted", "--tasks", ",,"], "--tasks ',,' names no task"),
        "probe --tasks ''": (["probe", "pairwise", "planted", "--store", tmp / "s", "--tasks", ""], "names no task"),
        "train --seed -1": (["train", "planted", "--seed", "-1"], "--seed must be at least 0, got -1"),
        "probe --retries -1": (["probe", "pairwise", "planted", "--store", tmp / "s", "--retries", "-1"], "--retries must be at least 0"),
        "store whose claims is a file": (["study", ok, "--store", tmp / "claims-store", "--out", tmp / "out", "--quiet"], "is a file; move it away"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs(Path("."))))
def test_bad_input_is_a_message_and_exit_2_before_anything_trains(case, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _setup(tmp_path)
    argv, message = _bad_inputs(tmp_path)[case]
    code, _, err = run(argv, capsys)
    line = one_line_error(err)
    assert code == 2 and line.startswith("taskrel: error:") and message in line, err
    assert not (tmp_path / "s").exists() and not (tmp_path / "runs").exists(), "nothing may train before the error"
    assert not list(Path("/proc").glob("x*")) and not (tmp_path / "out").exists()


def test_a_folder_the_system_will_not_let_us_write_is_refused_before_training(capsys, tmp_path, monkeypatch):
    # what a read-only mount or a folder of another user does (root passes permission bits, so simulated)
    import errno
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and Path(dir).resolve() == locked.resolve():
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    (tmp_path / "ok.toml").write_text(STUDY + "[probes.pairwise]\nseeds = [0]\n")
    code, _, err = run(["study", tmp_path / "ok.toml", "--store", tmp_path / "s", "--out", locked / "report"], capsys)
    assert code == 2 and "Read-only file system" in one_line_error(err)
    assert not (tmp_path / "s").exists() and list(locked.iterdir()) == []


def test_dask_backend_without_dask_is_refused_up_front_with_the_install_line(capsys, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("dask", "distributed") else real(name, *a))
    (tmp_path / "ok.toml").write_text(STUDY + "[probes.pairwise]\nseeds = [0]\n")
    code, _, err = run(["study", tmp_path / "ok.toml", "--store", tmp_path / "s", "--backend", "dask"], capsys)
    assert code == 2 and "pip install 'taskrel[dask]'" in one_line_error(err)
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------ study --check
def test_check_lists_every_error_at_once_and_trains_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "bad.toml"
    f.write_text('name = "bad"\nseed = 3\n[suite]\nname = "planted"\noptions = { n_examples = 100 }\nepochs = 3\n'
                 "[probes.pairwise]\nseeds = [0]\nfoo = 1\n[probes.gradient]\nseeds = [0]\n"
                 "[analysis.grouping]\nbudget = -1\n")
    code, out, err = run(["study", "--check", f, "--store", tmp_path / "s"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "3 errors" in out, out
    for blamed in ("field 'seed'", "field 'suite.epochs'", "field 'probes.pairwise.foo'"):
        assert blamed in out, out
    assert "plan:" not in out
    assert not (tmp_path / "s").exists()


def test_check_counts_the_probes_runs(capsys, tmp_path):
    # pairwise on four tasks and one seed: 4 single-task runs and 6 pairs; gradient: 1 run
    f = tmp_path / "ok.toml"
    f.write_text(STUDY + 'tasks = ["c0t0", "c0t1", "c1t0", "c1t1"]\n[probes.pairwise]\nseeds = [0]\n[probes.gradient]\nseeds = [0]\n')
    code, out, _ = run(["study", "--check", f, "--store", tmp_path / "s"], capsys)
    assert code == 0 and "valid" in out
    assert "11 probe runs (pairwise 10, gradient 1); 0 of them already in the store" in out, out
    assert not (tmp_path / "s").exists()


def test_check_stops_at_invalid_toml_with_its_position(capsys, tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text('name = "x"\n[suite\n')
    code, out, _ = run(["study", "--check", f], capsys)
    assert code == 2 and "not valid TOML" in out and "line 2" in out


# ------------------------------------------------------------------ the unexpected
def _failing(exc: BaseException):
    def cmd(args: argparse.Namespace) -> int:
        raise exc
    return cmd


def _with_func(monkeypatch, func):
    from taskrel.cli import core

    monkeypatch.setattr(core, "cmd_suites", func)


def test_an_unexpected_error_is_one_line_naming_the_command_and_debug_shows_the_traceback(capsys, monkeypatch):
    _with_func(monkeypatch, _failing(RuntimeError("boom")))
    code, _, err = run(["suites"], capsys)
    line = one_line_error(err)
    assert code == 1 and "'taskrel suites' failed: RuntimeError: boom" in line and "--debug" in line
    with pytest.raises(RuntimeError, match="boom"):
        main(["suites", "--debug"])
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "suites"])


def test_an_os_error_on_a_path_names_the_path(capsys, monkeypatch):
    _with_func(monkeypatch, _failing(PermissionError(13, "Permission denied", "/some/where")))
    code, _, err = run(["suites"], capsys)
    assert code == 2 and "'/some/where': Permission denied" in one_line_error(err)


def test_an_environment_failure_is_exit_1(capsys, monkeypatch):
    import errno

    _with_func(monkeypatch, _failing(OSError(errno.EFBIG, "File too large", "/some/file")))
    code, _, err = run(["suites"], capsys)
    assert code == 1 and "'/some/file': File too large" in one_line_error(err)


def test_an_interrupt_exits_130_with_one_line(capsys, monkeypatch):
    _with_func(monkeypatch, _failing(KeyboardInterrupt()))
    code, _, err = run(["suites"], capsys)
    assert code == 130 and "interrupted" in one_line_error(err)


def test_a_real_ctrl_c_exits_130_without_a_traceback(tmp_path):
    # 'ready' is printed by the command itself, so the signal lands while the command runs (on a
    # cold machine the parser's own imports could outlast a fixed wait after start-up)
    code = ("import sys, time\nfrom taskrel.cli import core, main\n"
            "core.cmd_suites = lambda args: (print('ready', flush=True), time.sleep(60))\n"
            "sys.exit(main(['suites']))")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "Traceback" not in err and "interrupted" in err, err


def test_a_ctrl_c_while_the_finished_command_shuts_down_prints_nothing():
    # a library's exit-time cleanup (torch's, for one) would otherwise print a KeyboardInterrupt traceback
    code = ("import atexit, sys, time\nfrom taskrel.cli import core, main\n"
            "core.cmd_suites = lambda args: 0\n"
            "atexit.register(lambda: (print('exiting', flush=True), time.sleep(2)))\n"
            "sys.argv = ['taskrel', 'suites']\nsys.exit(main())")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "exiting"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0 and err == ""
