"""``bayesnet``: a semi-synthetic suite from a packaged discrete Bayesian network.

Data and provenance. pgmpy (MIT; ``pip install 'pgmpy>=1.1,<1.3'``, in the ``studies`` extra)
ships the bnlearn repository's networks as ``pgmpy/utils/example_models/<name>.bif.gz``:
alarm (37 variables), andes (223), diabetes (413), pigs (441), link (724), munin (1,041) and
others. The file is read by path from the installed package, which is never imported (its
loader is deprecated and later versions fetch from a hub), and parsed here; rows are drawn by
ancestral sampling with numpy (seeded), so nothing is downloaded. The networks' own licences
were not checked (bnlearn distributes them for research use): cite bnlearn and each network's
authors if you publish results on them.

Tasks and inputs. ``input_fraction`` of the variables, drawn at random (seeded), are
*observed*: one-hot encoded, they are the inputs. The other variables are candidate tasks: a
variable whose most frequent state covers more than ``max_majority`` of the sample is left out
(nearly constant, nothing to learn), and so is one whose labelled training rows show a
single state; ``n_tasks`` of the rest are kept (at random; None:
all). A two-state variable is a binary task, a k-state one a k-class task. Each task is
labelled on ``n_labelled`` random training rows (None: every training row); val and test
rows are fully labelled.

What the truth means. The network is the data's true generative structure, so it says which
variables carry information about which, not which tasks *help* each other when trained
together (that also depends on labels, capacity and the network's conditional tables).
``suite.truth`` holds:

* ``parents`` (every variable's parents) and ``observed`` (the input variables);
* ``distance``: for every pair of tasks, the length of the shortest path between their nodes in
  the network's undirected skeleton (-1 when unconnected). Distance 1 is a parent and child,
  distance 2 typically two children of one parent or a grandparent;
* ``markov_blanket``: each task's parents, children and its children's other parents; given its
  Markov blanket a variable is independent of all others;
* ``near``: ordered pairs of tasks at distance 1 or 2, the pairs one would *expect* to need
  the same features; ``clusters``: the connected components of the tasks when only ``near``
  pairs are linked (a structural grouping, not a measured one).

>>> import pytest
>>> if not bayesnet_available("alarm"):
...     pytest.skip("needs pgmpy<1.3's packaged networks: pip install 'taskrel[studies]'")
>>> s = bayesnet_suite("alarm", n_train=200, n_val=50, n_test=50, seed=0)
>>> 5 <= len(s.task_names) <= 30, s.inputs.shape[0]
(True, 300)
>>> d = s.truth["distance"]; t = s.task_names
>>> all(d[a][b] == d[b][a] for a in t for b in t)
True
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from collections import deque
from pathlib import Path

import numpy as np

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites.mlp import mlp_suite
from taskrel.suites.registry import register_suite

INSTALL = "pip install 'pgmpy>=1.1,<1.3' (or pip install 'taskrel[studies]')"
NETWORKS = ("alarm", "andes", "diabetes", "pigs", "link", "munin")
MAX_ROWS = 1_000_000

_VARIABLE = re.compile(r"variable\s+(\S+)\s*\{\s*type\s+discrete\s*\[\s*(\d+)\s*\]\s*\{([^}]*)\}\s*;\s*\}")
_PROBABILITY = re.compile(r"probability\s*\(\s*([^|)]+?)\s*(?:\|\s*([^)]*?))?\s*\)\s*\{([^}]*)\}")


def network_path(name: str) -> Path | None:
    """The ``.bif.gz`` file of a network in the installed pgmpy, found without importing it."""
    spec = importlib.util.find_spec("pgmpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "utils" / "example_models" / f"{name}.bif.gz"
        if p.is_file():
            return p
    return None


def bayesnet_available(name: str = "andes") -> bool:
    """Whether the network ``name`` ships in an installed pgmpy."""
    return network_path(name) is not None


def parse_bif(text: str) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, np.ndarray]]:
    """States, parents and conditional tables of a discrete BIF network.

    ``cpt[v]`` has shape (parent configurations, states of v), parent configurations in
    row-major order of the parents' states (the first parent varies slowest).

    >>> states, parents, cpt = parse_bif('''variable A { type discrete [ 2 ] { y, n }; }
    ... variable B { type discrete [ 2 ] { y, n }; }
    ... probability ( A ) { table 0.3, 0.7; }
    ... probability ( B | A ) { (y) 0.9, 0.1; (n) 0.2, 0.8; }''')
    >>> parents["B"], cpt["B"].tolist()
    (['A'], [[0.9, 0.1], [0.2, 0.8]])
    """
    states = {m[1]: [s.strip() for s in m[3].split(",")] for m in _VARIABLE.finditer(text)}
    parents, cpt = {}, {}
    for m in _PROBABILITY.finditer(text):
        v = m[1].strip()
        pa = [p.strip() for p in m[2].split(",")] if m[2] else []
        if v not in states or any(p not in states for p in pa):
            raise TaskrelError(f"bayesnet: probability of {v!r} names an undeclared variable among {pa}")
        k = len(states[v])
        shape = [len(states[p]) for p in pa]
        table = np.full((int(np.prod(shape)) if pa else 1, k), np.nan)
        for entry in (e.strip() for e in m[3].split(";")):
            if not entry:
                continue
            if entry.startswith("table"):
                table[:] = np.array([float(x) for x in entry[5:].split(",")]).reshape(-1, k)
                continue
            conf, _, vals = entry[1:].partition(")")
            idx = [states[p].index(s.strip()) for p, s in zip(pa, conf.split(","))]
            table[int(np.ravel_multi_index(idx, shape))] = [float(x) for x in vals.split(",")]
        if np.isnan(table).any():
            raise TaskrelError(f"bayesnet: the conditional table of {v!r} is incomplete")
        parents[v], cpt[v] = pa, table / table.sum(axis=1, keepdims=True)
    missing = [v for v in states if v not in cpt]
    if missing:
        raise TaskrelError(f"bayesnet: variables without a probability table: {missing[:5]}")
    return states, parents, cpt


def topological(parents: dict[str, list[str]]) -> list[str]:
    """The variables, every parent before its children (Kahn's algorithm, stable)."""
    indeg = {v: len(p) for v, p in parents.items()}
    children: dict[str, list[str]] = {v: [] for v in parents}
    for v, ps in parents.items():
        for p in ps:
            children[p].append(v)
    queue, order = deque(v for v in parents if indeg[v] == 0), []
    while queue:
        v = queue.popleft()
        order.append(v)
        for c in children[v]:
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    if len(order) != len(parents):
        raise TaskrelError("bayesnet: the network has a directed cycle")
    return order


def sample(states, parents, cpt, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` rows drawn by ancestral sampling: per variable, its state index (int array)."""
    out: dict[str, np.ndarray] = {}
    for v in topological(parents):
        pa = parents[v]
        row = np.ravel_multi_index([out[p] for p in pa], [len(states[p]) for p in pa]) if pa else np.zeros(n, dtype=np.int64)
        cum = np.cumsum(cpt[v][row], axis=1)
        u = rng.random(n)[:, None]
        out[v] = np.minimum((u > cum).sum(axis=1), len(states[v]) - 1)
    return out


def _distances(parents: dict[str, list[str]], sources: list[str]) -> dict[str, dict[str, int]]:
    """Shortest undirected path lengths from each of ``sources`` to every variable (absent: unconnected)."""
    adj: dict[str, set[str]] = {v: set() for v in parents}
    for v, ps in parents.items():
        for p in ps:
            adj[v].add(p)
            adj[p].add(v)
    out = {}
    for s in sources:
        dist, queue = {s: 0}, deque([s])
        while queue:
            v = queue.popleft()
            for w in adj[v]:
                if w not in dist:
                    dist[w] = dist[v] + 1
                    queue.append(w)
        out[s] = dist
    return out


def _truth(parents: dict[str, list[str]], observed: list[str], tasks: list[str], network: str, regime: dict) -> dict:
    children: dict[str, list[str]] = {v: [] for v in parents}
    for v, ps in parents.items():
        for p in ps:
            children[p].append(v)
    dist = _distances(parents, tasks)
    distance = {a: {b: dist[a].get(b, -1) for b in tasks} for a in tasks}
    near = [[a, b] for a in tasks for b in tasks if a != b and 1 <= distance[a][b] <= 2]
    blanket = {t: sorted(set(parents[t]) | set(children[t]) | {q for c in children[t] for q in parents[c]} - {t}) for t in tasks}
    label = {t: i for i, t in enumerate(tasks)}  # connected components of the near-graph
    for a, b in near:
        la, lb = label[a], label[b]
        if la != lb:
            label = {t: la if v == lb else v for t, v in label.items()}
    comps: dict[int, list[str]] = {}
    for t in tasks:
        comps.setdefault(label[t], []).append(t)
    return {"network": network, "parents": {v: list(p) for v, p in parents.items()}, "observed": observed,
            "distance": distance, "markov_blanket": blanket, "near": near, "clusters": list(comps.values()), "regime": regime}


def _check(network, n_tasks, input_fraction, n_labelled, n_train, n_val, n_test, max_majority, width) -> None:
    def integer(name, v, lo, hi, none_ok=False):
        if v is None and none_ok:
            return
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise TaskrelError(f"bayesnet: {name} must be an integer in [{lo}, {hi}]{' or None' if none_ok else ''}, got {v!r}")

    if not isinstance(network, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", network):
        raise TaskrelError(f"bayesnet: network must be a name such as {', '.join(NETWORKS)}; got {network!r}")
    integer("n_tasks", n_tasks, 1, 10_000, none_ok=True)
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        integer(name, v, 10, MAX_ROWS)
    integer("n_labelled", n_labelled, 2, n_train, none_ok=True)
    integer("width", width, 4, 4096)
    if n_train + n_val + n_test > MAX_ROWS:
        raise TaskrelError(f"bayesnet: n_train + n_val + n_test = {n_train + n_val + n_test} rows is over {MAX_ROWS:,}")
    for name, v in (("input_fraction", input_fraction), ("max_majority", max_majority)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise TaskrelError(f"bayesnet: {name} must be a number in (0, 1), got {v!r}")


@register_suite("bayesnet", "semi-synthetic, known structure: variables of a packaged Bayesian network (pgmpy<1.3: alarm 37 .. munin 1,041 variables); observed nodes are inputs, others tasks (extra 'studies')")
def bayesnet_suite(
    network: str = "andes",
    n_tasks: int | None = 100,
    input_fraction: float = 0.3,
    n_labelled: int | None = 200,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 1000,
    max_majority: float = 0.95,
    width: int = 64,
    seed: int = 0,
) -> Suite:
    """Build the suite (module docstring) from ``network``, sampled with ``seed``.

    Parameters
    ----------
    network : a network shipped by pgmpy (``NETWORKS`` lists the large ones).
    n_tasks : tasks kept among the unobserved, non-constant variables (None: all).
    input_fraction : share of the variables observed as inputs, in (0, 1).
    n_labelled : labelled training rows per task (None: all).
    n_train, n_val, n_test : rows of each split (drawn independently from the network).
    max_majority : a variable whose commonest state covers more than this is left out.
    width : encoder widths ``width`` and ``width // 2``.
    seed : seeds the sample, the observed variables, the tasks kept and the labelled rows.
    """
    _check(network, n_tasks, input_fraction, n_labelled, n_train, n_val, n_test, max_majority, width)
    path = network_path(network)
    if path is None:
        raise TaskrelError(f"suite 'bayesnet': network {network!r} not found in an installed pgmpy "
                           f"(known large ones: {', '.join(NETWORKS)}); install it: {INSTALL}")
    states, parents, cpt = parse_bif(gzip.decompress(path.read_bytes()).decode("utf-8"))
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    draws = sample(states, parents, cpt, n, rng)
    names = list(states)
    observed = sorted(rng.choice(names, size=max(int(round(input_fraction * len(names))), 1), replace=False).tolist(), key=names.index)
    targets = {}
    for v in names:  # labelled rows drawn for every variable, so a task's labels do not depend on n_tasks
        y = draws[v].astype(np.float64)
        if n_labelled is not None:
            y[rng.choice(n_train, size=n_train - n_labelled, replace=False)] = np.nan
        targets[v] = y
    candidates = [v for v in names if v not in observed and np.bincount(draws[v], minlength=len(states[v])).max() / n <= max_majority
                  and len(np.unique(targets[v][:n_train][~np.isnan(targets[v][:n_train])])) >= 2]  # two states among its labels
    if n_tasks is not None and n_tasks < len(candidates):
        candidates = sorted(rng.choice(candidates, size=n_tasks, replace=False).tolist(), key=names.index)
    if not candidates:
        raise TaskrelError(f"bayesnet: no variable of {network!r} is left as a task; lower input_fraction or raise max_majority")
    targets = {v: targets[v] for v in candidates}
    X = np.concatenate([np.eye(len(states[v]), dtype=np.float32)[draws[v]] for v in observed], axis=1)
    split = {"train": np.arange(n_train), "val": np.arange(n_train, n_train + n_val), "test": np.arange(n_train + n_val, n)}
    regime = {"input_fraction": float(input_fraction), "n_labelled": n_labelled, "n_train": n_train,
              "max_majority": float(max_majority), "width": int(width), "seed": int(seed)}
    return mlp_suite(
        "bayesnet",
        X,
        [Task(v, "binary") if len(states[v]) == 2 else Task(v, "multiclass", len(states[v])) for v in candidates],
        targets,
        [int(width), max(int(width) // 2, 2)],
        split=split,
        truth=_truth(parents, observed, candidates, network, regime),
        description=f"Bayesian network {network!r} ({len(names)} variables): {len(observed)} observed as inputs "
        f"(one-hot, {X.shape[1]} columns), {len(candidates)} tasks, {n_labelled or n_train} labels each",
    )


__all__ = ["INSTALL", "NETWORKS", "bayesnet_available", "bayesnet_suite", "network_path", "parse_bif", "sample", "topological"]
