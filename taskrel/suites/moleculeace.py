"""``moleculeace``: 30 ChEMBL bioactivity targets, a real many-task suite with sparse labels.

Data and provenance. The MoleculeACE benchmark (van Tilborg, Alenicheva and Grisoni, "Exposing
the limitations of molecular machine learning with activity cliffs", J. Chem. Inf. Model. 2022)
ships 30 curated ChEMBL data sets inside its package, ``MoleculeACE/Data/benchmark_data/
CHEMBL<target>_<Ki|EC50>.csv`` (columns ``smiles``, ``exp_mean [nM]``, ``y``, ``cliff_mol``,
``split``): 48,714 measurements of 35,633 distinct molecules. The package is MIT-licensed; the
data come from ChEMBL, licensed CC BY-SA 3.0 (attribute ChEMBL and MoleculeACE; share changes
alike). Nothing is downloaded: the CSV files are read by path from the installed package, which
is never imported (its dependencies are heavy and include the obsolete ``rdkit-pypi``).
Install it without them: ``pip install --no-deps MoleculeACE==3.0.0``; inputs need RDKit
(the ``studies`` extra).

Tasks. One regression task per data set, named ``CHEMBL<target>_<Ki|EC50>``, whose target is
the package's ``y`` column (a negative log10 of the activity in nM; larger is more potent),
z-scored with the task's own training labels. A row is one distinct molecule (its SMILES
string); a molecule measured on several targets is labelled for each of them, and missing
(NaN) for every other task: each molecule carries 1.4 labels on average, and 27% of the
molecules carry two or more. With ``tasks`` given, only molecules labelled for one of them
are kept.

Split. MoleculeACE splits each data set into train and test (stratified on activity cliffs).
A molecule that is in the test split of *any* of its tasks is a test row (for all its tasks,
so no test molecule is ever trained on); the others are training rows, of which a seeded
``val_fraction`` becomes the validation split.

Inputs: Morgan fingerprint bits (``fp_bits``, radius 2) and, with ``descriptors``, the 12
counts of :func:`taskrel.suites.qm9.featurize`, z-scored over the training rows.

>>> import pytest
>>> if not moleculeace_available():
...     pytest.skip("needs pip install --no-deps MoleculeACE==3.0.0 and the 'studies' extra")
>>> s = moleculeace_suite(tasks=["CHEMBL2835_Ki", "CHEMBL2047_EC50"], fp_bits=64)
>>> s.task_names, s.inputs.shape[1]
(['CHEMBL2835_Ki', 'CHEMBL2047_EC50'], 76)
>>> bool(np.isnan(s.targets["CHEMBL2835_Ki"]).any())
True
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites.mlp import mlp_suite
from taskrel.suites.registry import register_suite

INSTALL = "pip install --no-deps MoleculeACE==3.0.0 (and the 'studies' extra for RDKit: pip install 'taskrel[studies]')"
N_TASKS = 30


def _data_dir() -> Path | None:
    """MoleculeACE's ``Data/benchmark_data`` folder, found without importing the package."""
    spec = importlib.util.find_spec("MoleculeACE")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        d = Path(root) / "Data" / "benchmark_data"
        if len(list(d.glob("CHEMBL*.csv"))) == N_TASKS:
            return d
    return None


def moleculeace_available() -> bool:
    """Whether MoleculeACE's data and RDKit are installed."""
    return _data_dir() is not None and importlib.util.find_spec("rdkit") is not None


def moleculeace_tasks() -> list[str]:
    """The 30 task names (data set files without ``.csv``), sorted; [] when the package is absent."""
    d = _data_dir()
    return sorted(p.stem for p in d.glob("CHEMBL*.csv")) if d is not None else []


@functools.lru_cache(maxsize=1)
def load_moleculeace() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per task: SMILES (object array), ``y`` (float) and whether each row is in MoleculeACE's
    test split (bool), read from the package's CSV files (read once per process)."""
    d = _data_dir()
    if d is None:
        raise TaskrelError(f"suite 'moleculeace' needs MoleculeACE's data: {INSTALL}")
    import pandas as pd

    out = {}
    for p in sorted(d.glob("CHEMBL*.csv")):
        df = pd.read_csv(p, usecols=["smiles", "y", "split"])
        bad = sorted(set(df["split"]) - {"train", "test"})
        if bad or df["y"].isna().any():
            raise TaskrelError(f"suite 'moleculeace': {p.name} has split values {bad} or missing y; reinstall: {INSTALL}")
        out[p.stem] = (df["smiles"].to_numpy(object), df["y"].to_numpy(np.float64), (df["split"] == "test").to_numpy())
    return out


def _table(names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct molecules of ``names`` (in first-seen order), their (molecules, tasks) labels
    (NaN where not measured; a molecule listed twice in a data set gets its mean) and test flags."""
    data = load_moleculeace()
    index: dict[str, int] = {}
    for t in names:
        for s in data[t][0]:
            index.setdefault(s, len(index))
    sums = np.zeros((len(index), len(names)))
    counts = np.zeros((len(index), len(names)))
    test = np.zeros(len(index), dtype=bool)
    for j, t in enumerate(names):
        smiles, y, is_test = data[t]
        rows = np.fromiter((index[s] for s in smiles), dtype=np.int64, count=len(smiles))
        np.add.at(sums[:, j], rows, y)
        np.add.at(counts[:, j], rows, 1.0)
        test[rows[is_test]] = True
    with np.errstate(invalid="ignore"):
        Y = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return np.array(list(index), dtype=object), Y, test


@register_suite("moleculeace", "30 ChEMBL bioactivity targets from the MoleculeACE package (sparse labels: 1.4 per molecule; MIT, data CC BY-SA 3.0); Morgan bits + counts, MLP (pip install --no-deps MoleculeACE==3.0.0)")
def moleculeace_suite(
    tasks: Sequence[str] | None = None,
    fp_bits: int = 512,
    descriptors: bool = True,
    width: int = 64,
    val_fraction: float = 0.125,
    seed: int = 0,
) -> Suite:
    """The moleculeace suite (module docstring): ``tasks`` (default all 30) as regression tasks.

    Parameters
    ----------
    tasks : data set names (``moleculeace_tasks()``); None: all 30.
    fp_bits : Morgan fingerprint bits (radius 2), 8 to 8192.
    descriptors : append the 12 RDKit counts (z-scored on the training rows).
    width : encoder widths ``width`` and ``width // 2``.
    val_fraction : share of the training molecules kept for validation, in (0, 0.5].
    seed : seeds the validation draw.
    """
    if isinstance(fp_bits, bool) or not isinstance(fp_bits, (int, np.integer)) or not 8 <= fp_bits <= 8192:
        raise TaskrelError(f"moleculeace: fp_bits must be an integer in [8, 8192], got {fp_bits!r}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 4 <= width <= 4096:
        raise TaskrelError(f"moleculeace: width must be an integer in [4, 4096], got {width!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction <= 0.5:
        raise TaskrelError(f"moleculeace: val_fraction must be in (0, 0.5], got {val_fraction!r}")
    if not moleculeace_available():
        raise TaskrelError(f"suite 'moleculeace' needs MoleculeACE's data and RDKit: {INSTALL}")
    known = moleculeace_tasks()
    names = list(tasks) if tasks is not None else known
    unknown = [t for t in names if t not in known]
    if unknown or not names or len(set(names)) != len(names):
        raise TaskrelError(f"moleculeace: tasks {unknown or names} are unknown, empty or repeated; known: {', '.join(known)}")
    from taskrel.suites.qm9 import featurize

    smiles, Y, test = _table(names)
    train_pool = np.flatnonzero(~test)
    val = np.sort(np.random.default_rng(seed).choice(train_pool, size=max(int(round(val_fraction * len(train_pool))), 1), replace=False))
    split = {"train": np.setdiff1d(train_pool, val), "val": val, "test": np.flatnonzero(test)}
    X = featurize(smiles, int(fp_bits), 2, descriptors=bool(descriptors))
    train = split["train"]
    if descriptors:
        c = X[train, int(fp_bits):]
        sd = c.std(axis=0)
        X[:, int(fp_bits):] = (X[:, int(fp_bits):] - c.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
    targets, stats = {}, {}
    for j, t in enumerate(names):
        own = Y[train, j][~np.isnan(Y[train, j])]
        if len(own) < 2:
            raise TaskrelError(f"moleculeace: task {t!r} has {len(own)} labelled training molecules; leave it out")
        mean, std = float(own.mean()), float(own.std()) or 1.0
        targets[t] = (Y[:, j] - mean) / std
        stats[t] = {"mean": mean, "std": std, "train_labels": int(len(own))}
    w = int(width)
    return mlp_suite(
        "moleculeace",
        X,
        [Task(t, "regression") for t in names],
        targets,
        [w, max(w // 2, 2)],
        split=split,
        truth={"zscore": stats, "labels_per_molecule": float(np.mean((~np.isnan(Y)).sum(axis=1))),
               "source": "MoleculeACE 3.0.0 (MIT); ChEMBL data, CC BY-SA 3.0"},
        description=f"MoleculeACE: {len(names)} ChEMBL targets, {len(smiles):,} molecules (sparse labels); "
        f"Morgan bits ({fp_bits}){' + 12 counts' if descriptors else ''}; MLP {w}/{max(w // 2, 2)}",
    )


__all__ = ["INSTALL", "load_moleculeace", "moleculeace_available", "moleculeace_suite", "moleculeace_tasks"]
