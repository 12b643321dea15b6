"""The package's house rules, read from its source (AST, every module of ``taskrel``): no import
circle (type-only and function-level imports included, a package's ``__init__`` counting as
importing what it imports), no private name imported across modules, floors respected, modules
and functions of a readable size."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "taskrel"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


@functools.cache
def _parse(path: Path, mtime: float) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _tree(name: str) -> ast.Module:
    path = MODULES[name]
    return _parse(path, path.stat().st_mtime)


def imports(name: str) -> list[tuple[str, list[str], int]]:
    """Every ``taskrel`` import of a module, at any depth, under ``TYPE_CHECKING`` too: (module,
    names, line)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "taskrel"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == "taskrel":
                out.append((base, [a.name for a in node.names], node.lineno))
    return out


def _ancestors(module: str) -> list[str]:
    """The packages above ``module`` (the root ``taskrel`` left out: every module sits in it)."""
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(2, len(parts))]


def edges(name: str) -> dict[str, int]:
    """The modules whose code runs when ``name`` runs its imports, each with the line of the
    first import that runs it.

    ``from pkg import sub`` runs the submodule ``pkg.sub``; ``from pkg import thing`` runs
    ``pkg`` itself, even when ``pkg`` is the importer's own package (a submodule taking a name
    from its package's ``__init__`` closes a circle). The packages above a target run first,
    except the importer's own ones, which are already running.
    """
    out: dict[str, int] = {}
    for target, names, line in sorted(imports(name), key=lambda t: t[2]):
        explicit = {f"{target}.{n}" if f"{target}.{n}" in MODULES else target for n in names} or {target}
        for mod in sorted(explicit & MODULES.keys()):
            for m in [mod] + [a for a in _ancestors(mod) if not (name == a or name.startswith(a + "."))]:
                if m in MODULES and m != name:
                    out.setdefault(m, line)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = {m: edges(m) for m in MODULES}
    found = [f"{', '.join(comp)}, through: " + "; ".join(f"{a}:{graph[a][b]} imports {b}" for a in comp for b in sorted(graph[a]) if b in comp)
             for comp in cycles(graph)]
    assert found == [], "import circles:\n" + "\n".join(found)


def test_planted_circles_are_found_type_only_function_level_and_through_a_package(tmp_path, monkeypatch):
    files = {
        # a type-only import one way, a function-level import back
        "taskrel.x": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from taskrel.y import Y\n",
        "taskrel.y": "def f():\n    from taskrel.x import X\n",
        # a package's __init__ imports its module, which takes a name from the package
        "taskrel.p": "def load():\n    from taskrel.p import a\n",
        "taskrel.p.a": "from taskrel.p import register\n",
        # a module importing from its own package's submodule closes nothing
        "taskrel.q": "def load():\n    from taskrel.q import b\n",
        "taskrel.q.b": "from taskrel.q.registry import register\n",
        "taskrel.q.registry": "register = None\n",
    }
    for name, text in files.items():
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        monkeypatch.setitem(MODULES, name, path)
    graph = {m: edges(m) for m in files}
    assert cycles(graph) == [["taskrel.p", "taskrel.p.a"], ["taskrel.x", "taskrel.y"]]


def _private(n: str) -> bool:
    return n.startswith("_") and not (n.startswith("__") and n.endswith("__"))


def private_uses(name: str) -> list[tuple[str, int]]:
    """``from X import _name`` and ``module._name`` (``module`` an imported taskrel module)
    reaching into another module: (what, line). A private *module* may be imported from inside
    its own package, as long as the names taken from it are public."""
    bad = []
    modules_bound: set[str] = set()
    for target, names, line in imports(name):
        package = target.rpartition(".")[0]
        inside = name.rpartition(".")[0] == package or name == package
        if _private(target.rpartition(".")[2]) and not inside:
            bad.append((f"{name} imports private module {target}", line))
        for n in names:
            if f"{target}.{n}" in MODULES:
                modules_bound.add(n)
            elif _private(n) and target != name:
                bad.append((f"{name} imports {target}.{n}", line))
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            modules_bound.update(a.asname for a in node.names if a.asname and a.name.startswith("taskrel."))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in modules_bound and _private(node.attr):
                bad.append((f"{name} reads {node.value.id}.{node.attr}", node.lineno))
    return bad


def test_the_private_name_finder_finds_both_forms(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("from taskrel.b import _hidden, shown\nfrom taskrel import b\nx = b._also\n")
    monkeypatch.setitem(MODULES, "taskrel.a", tmp_path / "a.py")
    monkeypatch.setitem(MODULES, "taskrel.b", tmp_path / "a.py")
    assert [w for w, _ in private_uses("taskrel.a")] == ["taskrel.a imports taskrel.b._hidden", "taskrel.a reads b._also"]


def test_no_private_name_imported_across_modules():
    bad = [f"{what} (line {line})" for name in MODULES for what, line in private_uses(name)]
    assert bad == [], "private names used across modules:\n" + "\n".join(bad)


# floors of DESIGN.md: a module may import its own floor or lower ones only
FLOORS = {
    "taskrel.errors": 1, "taskrel.files": 1, "taskrel.base": 1,
    "taskrel.digest": 2, "taskrel.blocks": 2, "taskrel.splits": 2, "taskrel.task": 2, "taskrel.suite": 2, "taskrel.suites": 2, "taskrel.layout": 2,
    "taskrel.widths": 2,
    "taskrel.model": 2, "taskrel.losses": 2, "taskrel.datasets": 2,
    "taskrel.gradients": 3, "taskrel.aggregators": 3, "taskrel.step": 3, "taskrel.train": 3, "taskrel.config_checks": 3,
    "taskrel.store": 4, "taskrel.records": 4, "taskrel.claims": 4,
    "taskrel.runner": 5, "taskrel.workers": 5, "taskrel.plans": 5, "taskrel.affinity": 5,
    "taskrel.affinity_missing": 5, "taskrel.affinity_formats": 5,
    "taskrel.calibration": 5, "taskrel.tables": 5,
    "taskrel.probes": 6, "taskrel.tracker": 6,
    "taskrel.analysis": 7, "taskrel.study": 8, "taskrel.report": 9, "taskrel.cli": 10,
}


def test_every_module_has_a_floor():
    assert [m for m in MODULES if m != "taskrel" and floor(m) is None and m != "taskrel.__main__"] == []


def floor(name: str) -> int | None:
    parts = name.split(".")
    for k in range(len(parts), 1, -1):
        if ".".join(parts[:k]) in FLOORS:
            return FLOORS[".".join(parts[:k])]
    return None


def test_lower_floors_never_import_higher_ones():
    bad = []
    for name in MODULES:
        mine = floor(name)
        if mine is None:
            continue
        for target in edges(name):
            theirs = floor(target)
            if theirs is not None and theirs > mine:
                bad.append(f"{name} (floor {mine}) imports {target} (floor {theirs})")
    assert bad == []


@pytest.mark.parametrize("who, never", [("taskrel.runner", "taskrel.probes"), ("taskrel.train", "taskrel.probes"),
                                         ("taskrel.study", "taskrel.report"), ("taskrel.analysis", "taskrel.study"),
                                         ("taskrel.probes", "taskrel.analysis")])
def test_named_never_rules(who, never):
    graph = {m: edges(m) for m in MODULES}
    bad = [(m, t) for m in MODULES if m == who or m.startswith(who + ".") for t in graph[m] if t == never or t.startswith(never + ".")]
    assert bad == []


# Size: modules of at most ~400 lines and functions (methods and nested functions included) of
# at most ~80. Nothing is exempt.
MODULE_LINES = 400
FUNCTION_LINES = 80


def function_lengths(tree: ast.AST, prefix: str) -> dict[str, int]:
    """Qualified name (``module.Class.method``, ``module.outer.inner``) -> lines, for every
    function in ``tree``."""
    out: dict[str, int] = {}
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}.{node.name}"
            if not isinstance(node, ast.ClassDef):
                out[name] = (node.end_lineno or node.lineno) - node.lineno + 1
            out.update(function_lengths(node, name))
        else:
            out.update(function_lengths(node, prefix))
    return out


def test_the_length_finder_names_methods_and_nested_functions():
    tree = ast.parse("class A:\n    def f(self):\n        def g():\n            pass\n        return g\nif True:\n    def h(): pass\n")
    assert function_lengths(tree, "m") == {"m.A.f": 4, "m.A.f.g": 2, "m.h": 1}


def test_no_function_over_80_lines():
    long = {key: n for name in MODULES for key, n in function_lengths(_tree(name), name).items()
            if n > FUNCTION_LINES}
    assert long == {}, "functions over 80 lines: " + ", ".join(f"{k} ({n} lines)" for k, n in sorted(long.items()))


def test_modules_stay_small():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES}
    assert long == {}, "modules over 400 lines: " + ", ".join(f"{k} ({n} lines)" for k, n in sorted(long.items()))
