"""Regenerate docs/report.png: the top of the default study's report, as headless Chromium shows it.

    python docs/screenshot.py                      # runs `taskrel study` into ./runs (reused when
                                                   # present), writes the report to a temporary
                                                   # folder, and screenshots its top
    python docs/screenshot.py --report reports/digits-default   # screenshot a report already written

Needs Chromium (Debian: apt-get install chromium). MkDocs does not publish this file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("screenshot: Chromium is not installed (Debian: apt-get install chromium)")


def shoot(page: Path, png: Path, width: int, height: int) -> None:
    """Screenshot the top ``width`` x ``height`` pixels of ``page`` into ``png``."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={png}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", default=None, help="a report folder (with report.html) to screenshot")
    ap.add_argument("--store", default="runs", help="the run store for `taskrel study` (default ./runs)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "report.png"))
    ap.add_argument("--width", type=int, default=1100)
    ap.add_argument("--height", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.report) if a.report else Path(tmp) / "digits-default"
        if not a.report:
            subprocess.run(["taskrel", "study", "--store", a.store, "--out", str(folder), "--quiet"], check=True)
        shoot(folder / "report.html", Path(a.out), a.width, a.height)
    print(a.out)


if __name__ == "__main__":
    main()
