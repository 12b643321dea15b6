"""The fidelity curves' summarising and rendering (no training: synthetic protocol output)."""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _curves():
    spec = importlib.util.spec_from_file_location("fidelity_curves", ROOT / "benchmarks" / "fidelity_curves.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _checks(rel, held, rand, z):
    checks = {
        "split_half_reliability": {"value": rel, "pass": rel >= 0.8},
        "heldout_regret_mean": {"value": held, "pass": held <= 5},
        "random_regret_mean": {"value": rand, "pass": rand >= 30},
        "best_beats_separate_and_shared_se": {"value": z, "pass": z > 3},
    }
    checks["testbed"] = all(c["pass"] for c in checks.values())
    return checks


def _row(rho, part, over, examples):
    return {"spearman": rho, "spearman_ceiling": 0.9, "regret_partition": part, "regret_overlap": over,
            "examples": examples, "examples_vs_pairwise": examples / 1000, "seconds": 1.0, "rule": "hoa"}


def test_doctests_of_the_script():
    mod = _curves()
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0


def test_summary_means_over_budgets_and_keeps_failures():
    mod = _curves()
    rows = {
        "pairwise": _row(0.85, {"2": 1.0, "3": 2.0, "4": 6.0}, {"2": 0.0, "3": None, "4": 4.0}, 1000),
        "pairwise-groups": _row(0.85, {"2": None, "3": None, "4": None}, {"2": 5.0}, 1000),
        "lookahead": {"error": "RuntimeError: boom"},
    }
    p = mod.summarise_point(_checks(0.9, 1.0, 45.0, 7.0), rows, ["pairwise", "lookahead", "gradient"])
    pw = p["probes"]["pairwise"]
    assert pw["regret_partition"] == pytest.approx(3.0) and pw["regret_overlap"] == pytest.approx(2.0)
    assert pw["examples_vs_pairwise"] == 1.0
    assert p["probes"]["pairwise-groups"]["regret_partition"] is None  # no budget had a choice: NaN -> None
    assert p["probes"]["lookahead"] == {"error": "RuntimeError: boom"}
    assert p["probes"]["gradient"] == {"error": "not run"}
    assert "gradient-groups" not in p["probes"]
    assert p["testbed"] is True
    failing = mod.summarise_point(_checks(0.3, 1.0, 0.5, 0.1), rows, ["pairwise"])
    assert failing["testbed"] is False
    assert [c["pass"] for c in failing["checks"].values()] == [False, True, False, False]


def test_markdown_has_a_row_per_point_and_probe_and_marks_failed_checks():
    mod = _curves()
    points = []
    for v, checks in ((0.0, _checks(0.3, 8.0, 2.0, 0.5)), (0.9, _checks(0.95, 0.5, 60.0, 9.0))):
        p = mod.summarise_point(checks, {"pairwise": _row(0.5, {"2": 1.0}, {"2": 2.0}, 1000),
                                         "gradient": _row(0.1, {"2": 9.0}, {"2": 8.0}, 50)}, ["pairwise", "gradient"])
        p.update(value=v, oracle_heldout_regret={"partition": 0.1, "overlap": 0.2})
        points.append(p)
    text = mod.markdown({"sweeps": [{"knob": "relatedness", "at": {"width": 32}, "points": points}]})
    checks_table, probes_table = text.split("\n\n")
    assert len(checks_table.splitlines()) == 2 + 2
    assert len(probes_table.splitlines()) == 2 + 2 * 3  # oracle + two probes per point
    first, second = checks_table.splitlines()[2:]
    assert first.count("✗") == 4 and first.endswith("| no |")
    assert "✗" not in second and second.endswith("| yes |")
    assert "| relatedness (width=32) | 0.9 | gradient | 0.10 (0.90) | 9.00 | 8.00 | 0.05 |" in probes_table


def test_parse_sweep_rejects_a_knob_without_values():
    mod = _curves()
    assert mod.parse_sweep("width=8,32") == ("width", [8, 32], {})
    assert mod.parse_sweep("relatedness=0@width=32,label_overlap=None") == ("relatedness", [0], {"width": 32, "label_overlap": None})
    with pytest.raises(SystemExit, match="knob=v1"):
        mod.parse_sweep("width")
    with pytest.raises(SystemExit, match="opt=x"):
        mod.parse_sweep("width=8@n_examples")
