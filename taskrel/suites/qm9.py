"""QM9: twelve quantum-chemical properties of small organic molecules, as regression tasks.

The 130,831 molecules of QM9 (up to nine heavy atoms among C, N, O, F) with the twelve
properties that are the usual QM9 benchmark targets. The table ships inside the ``qm9pack``
package (CSV files in its ``data`` folder); inputs are computed with ``rdkit``. Both come with
the optional extra: ``pip install 'taskrel[studies]'``. Nothing is downloaded.

Inputs: an RDKit Morgan fingerprint (``fp_bits`` bits, radius ``radius``) of each molecule's
SMILES, as 0/1 floats, followed (``descriptors=True``) by a few cheap counts: heavy atoms, H, C,
N, O and F atoms, rings, aromatic atoms, rotatable bonds, H-bond donors and acceptors and the
molecular weight. The extensive properties (the energies, ``alpha``, ``r2``, ``zpve``, ``Cv``)
follow the atom counts closely, which a set of presence bits alone does not carry.

Scaling, without test information: the split (60/20/20, seeded by ``split_seed``) is drawn
first; every target is then z-scored with the mean and standard deviation of its *training*
rows only, and so are the descriptor columns. The statistics are kept in ``suite.truth``
(``target_mean``/``target_std``, in the units of ``UNITS``) to map predictions back.

The subsample (``n_examples`` molecules, seeded by ``seed``) keeps a study to minutes on a
couple of CPU cores; ``n_examples=None`` takes every molecule (fingerprinting all of them takes
about half a minute).

>>> import pytest
>>> if not qm9_available():
...     pytest.skip("needs the optional extra: pip install 'taskrel[studies]'")
>>> s = qm9_suite(tasks=["gap", "U0"], n_examples=200, fp_bits=256)
>>> s.inputs.shape, s.task_names, s.n_stages
((200, 268), ['gap', 'U0'], 3)
>>> round(float(s.targets["gap"][s.split["train"]].mean()), 6)
0.0
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
from taskrel.suites.options import check_number
from taskrel.suites.registry import register_suite

# task name -> column of the qm9pack CSV files (the twelve standard QM9 targets, in their order)
TARGETS: dict[str, str] = {
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "gap": "HOMO_LUMO_gap_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "U0": "InternalEnergy_0K_au",
    "U": "InternalEnergy_298K_au",
    "H": "Enthalphy_298K_au",  # sic: the column is spelt so in qm9pack
    "G": "GibbsFreeEnergy_298K_au",
    "Cv": "Heatcapacity_Cv_cal_mol_K",
}
UNITS: dict[str, str] = {
    "mu": "debye", "alpha": "bohr^3", "homo": "hartree", "lumo": "hartree", "gap": "hartree",
    "r2": "bohr^2", "zpve": "hartree", "U0": "hartree", "U": "hartree", "H": "hartree",
    "G": "hartree", "Cv": "cal/(mol K)",
}
ALL_TASKS = list(TARGETS)
DESCRIPTORS = ["heavy_atoms", "n_H", "n_C", "n_N", "n_O", "n_F", "rings", "aromatic_atoms",
               "rotatable_bonds", "h_donors", "h_acceptors", "mol_weight"]
N_MOLECULES = 130_831
_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_EXTRA = "suite 'qm9' needs the qm9pack and rdkit packages: pip install 'taskrel[studies]'"


def _data_dir() -> Path | None:
    """The ``data`` folder of the installed qm9pack, found without importing the package.

    (``import qm9pack`` runs its ``get_data`` module, which needs ``pkg_resources``; that is
    gone from recent setuptools, so the package is located, never imported.)
    """
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        d = Path(root) / "data"
        if all((d / p).is_file() for p in _PARTS):
            return d
    return None


def qm9_available() -> bool:
    """Whether the optional packages of the qm9 suite (qm9pack's data, rdkit) are installed."""
    return _data_dir() is not None and importlib.util.find_spec("rdkit") is not None


@functools.lru_cache(maxsize=1)
def load_qm9() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every molecule: SMILES (object array), XYZ file ids, and the targets (n, 12) in ``TARGETS``
    order, raw units. Read once per process from qm9pack's CSV files (about a second)."""
    d = _data_dir()
    if d is None:
        raise TaskrelError(_EXTRA)
    import pandas as pd

    cols = ["XYZ_file", "SMILES", *TARGETS.values()]
    df = pd.concat([pd.read_csv(d / p, usecols=cols) for p in _PARTS], ignore_index=True)
    if len(df) != N_MOLECULES or not df["XYZ_file"].is_unique:
        raise TaskrelError(
            f"suite 'qm9': qm9pack's data in {d} has {len(df)} rows ({df['XYZ_file'].nunique()} "
            f"distinct molecules); expected {N_MOLECULES}"
        )
    smiles = df["SMILES"].to_numpy(object)
    ids = df["XYZ_file"].to_numpy(object)
    Y = df[list(TARGETS.values())].to_numpy(np.float64)
    for a in (smiles, ids, Y):
        a.flags.writeable = False  # cached: shared by every suite built in this process
    return smiles, ids, Y


def featurize(smiles: Sequence[str], fp_bits: int = 1024, radius: int = 2, descriptors: bool = True) -> np.ndarray:
    """Morgan fingerprint bits (and, with ``descriptors``, the raw ``DESCRIPTORS`` counts) of
    each SMILES: float32 array (n, fp_bits [+ 12])."""
    if importlib.util.find_spec("rdkit") is None:
        raise TaskrelError(_EXTRA)
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors, Lipinski, rdFingerprintGenerator, rdMolDescriptors

    RDLogger.DisableLog("rdApp.*")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=int(radius), fpSize=int(fp_bits))
    n_desc = len(DESCRIPTORS) if descriptors else 0
    out = np.zeros((len(smiles), int(fp_bits) + n_desc), dtype=np.float32)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            raise TaskrelError(f"suite 'qm9': RDKit cannot parse the SMILES {s!r} (molecule {i})")
        out[i, :fp_bits] = gen.GetFingerprintAsNumPy(mol)
        if descriptors:
            elems = [a.GetSymbol() for a in mol.GetAtoms()]
            out[i, fp_bits:] = [
                mol.GetNumHeavyAtoms(),
                sum(a.GetTotalNumHs() for a in mol.GetAtoms()),
                elems.count("C"), elems.count("N"), elems.count("O"), elems.count("F"),
                rdMolDescriptors.CalcNumRings(mol),
                sum(a.GetIsAromatic() for a in mol.GetAtoms()),
                rdMolDescriptors.CalcNumRotatableBonds(mol),
                Lipinski.NumHDonors(mol),
                Lipinski.NumHAcceptors(mol),
                Descriptors.MolWt(mol),
            ]
    return out


def _zscore(a: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = a[rows].mean(axis=0)
    std = a[rows].std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return (a - mean) / std, mean, std


@register_suite("qm9", "QM9 molecules from the qm9pack package (extra 'studies'): 12 regression tasks (mu .. Cv) on Morgan fingerprints; 3-stage MLP")
def qm9_suite(
    tasks: Sequence[str] | None = None,
    n_examples: int | None = 5000,
    fp_bits: int = 1024,
    radius: int = 2,
    descriptors: bool = True,
    width: int = 128,
    seed: int = 0,
    split_seed: int = 0,
) -> Suite:
    """The qm9 suite: one regression task per QM9 property (``ALL_TASKS``), z-scored.

    ``n_examples`` molecules are drawn at random (seeded by ``seed``; ``None`` takes all
    130,831). The encoder has three stages: Linear+ReLU to ``width``, ``width // 2`` and
    ``width // 4`` units.
    """
    names = list(tasks) if tasks else list(ALL_TASKS)
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        raise TaskrelError(f"qm9 tasks {unknown} are unknown; known: {', '.join(ALL_TASKS)}")
    if int(fp_bits) < 8 or int(radius) < 0 or int(width) < 4:
        raise TaskrelError(f"qm9: need fp_bits >= 8, radius >= 0 and width >= 4; got {fp_bits}, {radius}, {width}")
    if isinstance(n_examples, (int, float)) and n_examples < 10:
        raise TaskrelError(f"qm9: n_examples must be >= 10 (or None for all {N_MOLECULES}), got {n_examples}")
    check_number("qm9", "n_examples", n_examples, low=10, integer=True, none=True)
    if not qm9_available():
        raise TaskrelError(_EXTRA)
    smiles, ids, Y = load_qm9()
    if n_examples is not None and int(n_examples) < len(smiles):
        keep = np.sort(np.random.default_rng(seed).permutation(len(smiles))[: int(n_examples)])
    else:
        keep = np.arange(len(smiles))
    n = len(keep)
    X = featurize(smiles[keep], int(fp_bits), int(radius), descriptors)

    # the split first, so that every statistic below comes from the training rows only
    perm = np.random.default_rng(split_seed).permutation(n)
    a, b = int(round(0.6 * n)), int(round(0.6 * n)) + int(round(0.2 * n))
    split = {"train": np.sort(perm[:a]), "val": np.sort(perm[a:b]), "test": np.sort(perm[b:])}
    train_rows = split["train"]
    if descriptors:
        X[:, fp_bits:], _, _ = _zscore(X[:, fp_bits:].astype(np.float64), train_rows)
    cols = [ALL_TASKS.index(t) for t in names]
    Z, mean, std = _zscore(Y[keep][:, cols], train_rows)
    targets = {t: Z[:, j] for j, t in enumerate(names)}

    w = int(width)
    return mlp_suite(
        "qm9", X, [Task(t, "regression") for t in names], targets, [w, w // 2, w // 4],  # times the width
        split=split,
        split_seed=split_seed,
        truth={
            "molecule": [str(m) for m in ids[keep]],
            "target_mean": {t: float(mean[j]) for j, t in enumerate(names)},
            "target_std": {t: float(std[j]) for j, t in enumerate(names)},
            "units": {t: UNITS[t] for t in names},
        },
        description=f"QM9 ({n:,} of {N_MOLECULES:,} molecules, from qm9pack): properties z-scored on "
        f"the training split; Morgan fingerprints ({fp_bits} bits, radius {radius})"
        + (" + 12 RDKit counts" if descriptors else ""),
    )
