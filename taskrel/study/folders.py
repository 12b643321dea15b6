"""Where study results live and what their files hold: one folder per study, named for it;
finding the result file behind a path (the file, an output folder, or a run store holding one
study); JSON values (:func:`jsonable`) and the content checksum the file carries.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from taskrel.errors import TaskrelError

RESULT_FILE = "study_result.json"


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON data: numpy arrays and numbers to lists and floats, NaN to None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if np.isfinite(v) else None
    return x


def content_checksum(body: dict[str, Any]) -> str:
    """SHA-256 of a JSON body in canonical form (sorted keys, no spaces)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_name(name: str, default: str = "study") -> str:
    """A file-name-safe version of ``name`` (letters, digits, ``-``, ``_``, ``.``; no path).

    >>> safe_name("../../etc/passwd"), safe_name("<script>"), safe_name("digits default")
    ('etc_passwd', 'script', 'digits_default')
    """
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-")
    s = re.sub(r"_+", "_", s)
    return s[:80] or default


def study_folder(name: str) -> str:
    """The folder name of a study called ``name``: readable, and unique per name.

    Letters and digits of any script are kept; anything else becomes ``_``. When that changed
    the name (or the name is empty), a short hash of the exact name is appended, so two
    different names never share a folder.

    >>> study_folder("planted"), study_folder("研究一"), study_folder("研究二")
    ('planted', '研究一', '研究二')
    >>> study_folder("digits default") != study_folder("digits_default")
    True
    >>> study_folder("../../etc/passwd").startswith("etc_passwd-")
    True
    """
    text = unicodedata.normalize("NFC", str(name))
    s = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    s = re.sub(r"_+", "_", s).strip("._-")[:80]
    if s == text and s:
        return s
    return f"{s or 'study'}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def invocation_of(study_file: str | Path | None, store: str | Path, out: str | Path) -> dict[str, Any]:
    """Where a study ran and the paths as they were given, so that the report can show
    commands that work when pasted where the study ran.

    >>> inv = invocation_of("studies/planted.toml", "runs", "out/planted")
    >>> inv["study_file"], inv["store"], inv["out"], Path(inv["cwd"]).is_absolute()
    ('studies/planted.toml', 'runs', 'out/planted', True)
    """
    import os

    return {"cwd": os.getcwd(), "study_file": None if study_file is None else str(study_file),
            "store": str(store), "out": str(out)}


def find_result(path: str | Path) -> Path:
    """The result file behind ``path``: the file, an output folder or a run store."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise TaskrelError(f"report: {str(p)!r} does not exist")
    if (p / RESULT_FILE).is_file():
        return p / RESULT_FILE
    found = sorted((p / "studies").glob(f"*/{RESULT_FILE}")) if (p / "studies").is_dir() else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(f.parent.name for f in found)
        raise TaskrelError(f"report: the store {str(p)!r} holds several studies ({names}); pass {str(p)}/studies/NAME")
    raise TaskrelError(f"report: no study result in {str(p)!r} (looked for {RESULT_FILE} and studies/*/{RESULT_FILE})")


__all__ = ["RESULT_FILE", "content_checksum", "find_result", "invocation_of", "jsonable", "safe_name", "study_folder"]
