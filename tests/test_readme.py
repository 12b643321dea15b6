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


def test_api_tour_imports_exist():
    tour = next(b for b in _blocks("python") if "import taskrel" in b)
    tree = ast.parse(tour)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports
    exec(compile(ast.Module(imports, type_ignores=[]), "README", "exec"), {})


def test_api_tour_is_one_import_and_its_names_exist():
    """The tour needs one import line; every ``taskrel.NAME`` it uses is exported."""
    import taskrel

    tour = next(b for b in _blocks("python") if "import taskrel" in b)
    tree = ast.parse(tour)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(imports) == 1 and ast.unparse(imports[0]) == "import taskrel"
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "taskrel"}
    assert used and used <= set(taskrel.__all__), sorted(used - set(taskrel.__all__))
