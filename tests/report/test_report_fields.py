"""The report reads the study result's fields, not string keys: every dict reachable from a
result (and the typed parts' key access) records each key read while the report is written
(benchmarks/report_keys.py), and no field name is read as a key; only names (of layouts,
probes, tasks) and the study's own recorded description are looked up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_report_reads_no_schema_key_of_the_result():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report_keys.py"), "--only", "small"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    counts = json.loads(run.stdout)["results"]["small"]
    assert counts["schema_keys"] == 0, counts["schema"]
    assert counts["name_keys"] > 0  # the recording works: layout and probe names are looked up by key
    assert any("layouts" in k and "'recommended'" in k for k in counts["names"])
