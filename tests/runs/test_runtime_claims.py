"""Every runtime claim about the default study cites one committed measurement."""

import argparse
import json
import re
from pathlib import Path

from taskrel.cli import study as study_cli

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "studies" / "results" / "digits-default" / "summary.json"


def _study_help() -> str:
    sub = argparse.ArgumentParser().add_subparsers()
    study_cli.register(sub)
    return sub.choices["study"].description


def test_default_study_runtime_claims_agree_with_the_committed_summary():
    claim = f"about {json.loads(SUMMARY.read_text())['seconds']['total'] / 60:.1f} minutes"
    texts = {
        "README.md": (ROOT / "README.md").read_text(),
        "taskrel study --help": _study_help(),
        "taskrel/study/default.toml": (ROOT / "taskrel" / "study" / "default.toml").read_text(),
    }
    for name, text in texts.items():
        flat = re.sub(r"[\s#]+", " ", text)
        assert claim in flat, (name, claim)
        assert "digits-default/summary.json" in flat, name
        assert not re.search(r"(ten|a few|several) minutes", flat), name
