"""MkDocs hook: keep the nav of mkdocs.yml true to the pages that exist in docs/.

A page the nav names that is not in docs/ (another engineer's page still being written) is
dropped instead of failing ``mkdocs build --strict``; a Markdown page in docs/ that the nav
does not name is added under "More", so every page is linked from the nav.
"""

from __future__ import annotations

from pathlib import Path


def _keep(entries: list, docs: Path, listed: set[str]) -> list:
    out = []
    for entry in entries:
        if isinstance(entry, str):
            title, target = None, entry
        else:
            (title, target), = entry.items()
        if isinstance(target, list):
            kept = _keep(target, docs, listed)
            if kept:
                out.append({title: kept})
            continue
        if "://" not in target and not (docs / target).is_file():
            continue
        listed.add(target)
        out.append(target if title is None else {title: target})
    return out


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").capitalize()


def on_config(config, **kwargs):
    docs = Path(config["docs_dir"])
    listed: set[str] = set()
    nav = _keep(list(config["nav"] or []), docs, listed)
    extra = [{_title(p): p.relative_to(docs).as_posix()} for p in sorted(docs.rglob("*.md"))
             if p.relative_to(docs).as_posix() not in listed and not p.name.startswith("_")]
    if extra:
        nav.append({"More": extra})
    config["nav"] = nav
    return config
