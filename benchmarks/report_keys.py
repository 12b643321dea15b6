"""How many string keys of a study result the report reads, counted while it renders.

Every dict reachable from the result (its fields, and the fields of its typed parts) is
replaced by a dict that records each key read by name (``d[k]``, ``d.get(k)``, ``k in d``,
``d.pop(k)``, ``d.setdefault(k)``); the typed parts' own key access (``Keyed``, kept for code
written against the dict form) is recorded too. The report (HTML, Markdown, summary.json) is
then written for each result under tests/data/results/ and the distinct (where, key) pairs
read are counted, split into

- *schema* keys: a field name read as a string (``grouping["budget"]``), what the typed
  result replaces with attribute access, and
- *name* keys: a layout, probe, task or stage name looked up in a mapping keyed by such names
  (``layouts["recommended"]``), and keys of the study's own recorded description
  (``study["train"]["epochs"]``) and of the per-stage seconds.

Runs against whichever taskrel is first on ``sys.path`` (``PYTHONPATH=<checkout> python
benchmarks/report_keys.py``), so the same count can be made for an older checkout.

    python benchmarks/report_keys.py --json benchmarks/results/report_keys.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "tests" / "data" / "results"
SEEN: set[tuple[str, str]] = set()
DESCRIPTIONS = ("study", "suite", "seconds", "invocation")  # recorded descriptions: their keys are not the result's schema
NAMED = ("affinities", "layouts", "probes", "trajectories", "left_out")  # mappings keyed by names of layouts, probes, tasks


class Recording(dict):
    """A dict that records each key read by name."""

    where = ""

    def _seen(self, key):
        if isinstance(key, str):
            SEEN.add((self.where, key))

    def __getitem__(self, key):
        self._seen(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._seen(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._seen(key)
        return super().__contains__(key)

    def pop(self, key, *default):
        self._seen(key)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        self._seen(key)
        return super().setdefault(key, default)


def wrap(x, where: str):
    """``x`` with every dict inside it recording its reads (dataclass fields wrapped in place)."""
    if isinstance(x, dict) and not isinstance(x, Recording):
        rec = Recording({k: wrap(v, f"{where}.*" if where.split(".")[-1] in NAMED else f"{where}.{k}") for k, v in x.items()})
        rec.where = where
        return rec
    if isinstance(x, list):
        return [wrap(v, f"{where}[]") for v in x]
    if dataclasses.is_dataclass(x) and not isinstance(x, type) and type(x).__name__ not in ("Affinity", "SharingLayout", "Decision"):
        for f in dataclasses.fields(x):
            object.__setattr__(x, f.name, wrap(getattr(x, f.name), f"{where}.{f.name}" if where else f.name))
        if hasattr(type(x), "to_dict") and hasattr(type(x), "__getitem__"):
            object.__setattr__(x, "_where", where)
    return x


def record_keyed() -> None:
    """Record key access on the typed parts too (absent in a taskrel without them)."""
    try:
        from taskrel.study.findings import Keyed
    except ImportError:
        return
    get, item, contains = Keyed.get, Keyed.__getitem__, Keyed.__contains__

    def seen(self, key):
        SEEN.add((getattr(self, "_where", type(self).__name__), key))

    Keyed.get = lambda self, k, d=None: (seen(self, k), get(self, k, d))[1]
    Keyed.__getitem__ = lambda self, k: (seen(self, k), item(self, k))[1]
    Keyed.__contains__ = lambda self, k: (seen(self, k), contains(self, k))[1]


def count(folder: Path) -> dict:
    import taskrel.report
    from taskrel.study.result import StudyResult

    result = StudyResult.load(folder / "study_result.json")
    result.decision  # decided at load, before the recording starts  # noqa: B018
    SEEN.clear()
    wrap(result, "")
    with tempfile.TemporaryDirectory() as out:
        shutil.copy(folder / "study_result.json", out)
        taskrel.report.write_report(result, out)
    schema = sorted({(w, k) for w, k in SEEN if w.split(".")[0] not in DESCRIPTIONS and not w.endswith(NAMED)})
    names = sorted(set(SEEN) - set(schema))
    return {"schema_keys": len(schema), "name_keys": len(names), "schema": [f"{w}[{k!r}]" for w, k in schema],
            "names": [f"{w}[{k!r}]" for w, k in names]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the counts here")
    ap.add_argument("--only", help="count only this result of tests/data/results/")
    args = ap.parse_args()
    record_keyed()
    out = {"taskrel": str(Path(__import__("taskrel").__file__).parent.parent),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__import__("taskrel").__file__).parent).stdout.strip(),
           "results": {f.name: count(f) for f in sorted(p.parent for p in RESULTS.glob("*/study_result.json"))
                       if args.only in (None, f.name)}}
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
