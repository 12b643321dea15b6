"""README stays true: every command it shows parses, and every name its API tour imports exists."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from taskrel.cli.main import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _taskrel_lines() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("taskrel "):
                lines.append(re.sub(r"\[([^\]]*)\]", r"\1", line))  # optional parts shown in [...]
    return lines


def test_readme_shows_commands():
    cmds = {shlex.split(c)[1] for c in _taskrel_lines()}
    assert {"study", "suites", "probe", "group", "cluster", "aux", "layout", "report", "train"} <= cmds


@pytest.mark.parametrize("line", _taskrel_lines())
def test_every_readme_command_parses(line):
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert callable(args.func)


def test_python_examples_import_and_use_only_public_names():
    """Every Python example's imports run, and every ``taskrel.NAME`` it uses is exported."""
    import taskrel

    blocks = [b for b in _blocks("python") if "import taskrel" in b]
    assert blocks
    for block in blocks:
        tree = ast.parse(block)
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(imports, type_ignores=[]), "README", "exec"), {})
        used = {n.attr for n in ast.walk(tree)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "taskrel"}
        assert used and used <= set(taskrel.__all__), sorted(used - set(taskrel.__all__))


def test_readme_is_short_and_its_links_exist():
    root = Path(__file__).resolve().parents[1]
    assert len(README.splitlines()) <= 200
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    for target in re.findall(r"\]\(([^)#]+)\)", prose):
        if "://" not in target:
            assert (root / target).exists(), target


def _block(marker: str) -> str:
    return next(b for b in _blocks("python") if marker in b)


def test_own_data_example_runs_and_prints_the_decision(tmp_path, monkeypatch, capsys):
    """README's own-data example, as printed (fewer epochs), ends with a decision and a report
    whose Python snippet names the layout file it wrote."""
    code = _block("taskrel.Suite(").replace("epochs=20", "epochs=3")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README own data", "exec"), {})
    out = capsys.readouterr().out
    assert "decision:" in out and any(d in out for d in ("share", "separate", "cannot tell"))
    page = (tmp_path / "reports" / "mine" / "report.html").read_text()
    assert "taskrel.build_model(layout, suite)" in page and (tmp_path / "reports" / "mine" / "layout.json").is_file()


def test_tracker_example_runs(capsys):
    exec(compile(_block("AffinityTracker("), "README tracker", "exec"), {})
    out = capsys.readouterr().out
    assert "x" in out and "y" in out
