"""The docs site: every page is in the nav, the results pages are what benchmarks/tables.py
renders from the committed JSON, and the site builds with warnings as errors."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _nav_targets(nav) -> list[str]:
    out = []
    for entry in nav:
        target = entry if isinstance(entry, str) else next(iter(entry.values()))
        out += _nav_targets(target) if isinstance(target, list) else [target]
    return out


def _config(docs: Path) -> dict:
    import yaml

    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return {"docs_dir": str(docs), "nav": cfg["nav"]}


def test_every_page_is_in_the_nav_and_missing_pages_are_dropped(tmp_path):
    pytest.importorskip("yaml", reason="PyYAML comes with the docs extra: pip install -e '.[docs]'")
    hook = _load(DOCS / "_nav.py", "docs_nav")
    nav = hook.on_config(_config(DOCS))["nav"]
    targets = _nav_targets(nav)
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages <= set(targets)  # every page is linked
    assert all((DOCS / t).is_file() for t in targets)  # and nothing missing is
    # a page that appears later lands under "More"; one listed but absent is dropped
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy)
    (copy / "late.md").write_text("# A late page\n")
    (copy / "results" / "studies.md").unlink()
    nav = hook.on_config(_config(copy))["nav"]
    assert {"A late page": "late.md"} in next(e["More"] for e in nav if isinstance(e, dict) and "More" in e)
    assert "results/studies.md" not in _nav_targets(nav)


def test_results_pages_are_rendered_from_the_committed_json():
    tables = _load(ROOT / "benchmarks" / "tables.py", "bench_tables")
    pages = tables.docs_pages(ROOT / "benchmarks" / "results", ROOT / "studies" / "results")
    for name, text in pages.items():
        assert (DOCS / "results" / name).read_text(encoding="utf-8") == text, (
            f"docs/results/{name} is stale: run python benchmarks/tables.py --docs docs/results")


def test_default_study_page_shows_the_committed_summary():
    import json

    d = json.loads((ROOT / "studies" / "results" / "digits-default" / "summary.json").read_text())
    page = (DOCS / "results" / "studies.md").read_text()
    assert d["answer"]["verdict"] in page


@pytest.mark.skipif(shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None,
                    reason="MkDocs is not installed: pip install -e '.[docs]' (CI's docs step installs it)")
def test_site_builds_with_warnings_as_errors(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "report.png").is_file()
