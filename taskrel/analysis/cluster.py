"""Cluster tasks from an :class:`~taskrel.affinity.Affinity`: hierarchical, spectral, communities.

Every method starts from the *symmetrised* affinity ``A = (V + V.T) / 2`` (the mean of the
effect of a on b and of b on a). Two derived matrices are used:

* **similarity** ``sim``: the off-diagonal entries of ``A`` rescaled linearly to ``[0, 1]``
  (the most negative pair gets 0, the most positive gets 1); the diagonal is 1. When every pair
  has the same value, every off-diagonal similarity is 0.5.
* **distance** ``dist = 1 - sim`` (diagonal 0), used by hierarchical linkage and silhouettes.

The spectral and community methods use a **graph** instead: the positive part of ``A`` (tasks
that help each other; a pair that conflicts is never an edge), kept for each task's
``n_neighbors`` strongest partners (a symmetric k-nearest-neighbour graph, by default
``max(3, ceil(log2 n))`` neighbours). A dense graph hides clusters at many tasks: on planted
clusters of 4 to 8 tasks with noisy affinities (``benchmarks/clustering_scale.py``), the
eigengap of the dense similarity chose 2 clusters for 32 at 198 tasks (ARI 0.03), while the
sparse graph's chose 32 (ARI 1.0), and 100 of 100 at 607 tasks (ARI 0.985). With the number
of clusters chosen automatically, the community method runs Louvain at a few resolutions and
keeps the one with the best silhouette (modularity alone merges small clusters at many tasks:
its resolution limit).
"""

from __future__ import annotations

from math import ceil, log2

import numpy as np
import pandas as pd

from taskrel.affinity import Affinity
from taskrel.base import Estimator
from taskrel.errors import TaskrelError

METHODS = ("hierarchical", "spectral", "community")
LINKAGES = ("average", "complete", "single", "weighted")
RESOLUTIONS = (0.5, 1.0, 2.0, 4.0, 8.0)  # Louvain resolutions tried when k is chosen


def _plain_matrix(affinity: Affinity, who: str) -> np.ndarray:
    if not isinstance(affinity, Affinity):
        raise TaskrelError(f"{who}: expected a taskrel Affinity, got {type(affinity).__name__}")
    if affinity.is_staged:
        raise TaskrelError(
            f"{who}: affinity {affinity.measure!r} is per-stage; cluster one stage with .stage(k)"
        )
    return affinity.symmetrize().values


def similarity_matrix(affinity: Affinity) -> np.ndarray:
    """Similarity in ``[0, 1]`` from the symmetrised affinity (see the module docstring).

    >>> aff = Affinity(["a", "b", "c"], [[0, 1, -1], [1, 0, 0], [-1, 0, 0]])
    >>> similarity_matrix(aff).round(2).tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 0.5], [0.0, 0.5, 1.0]]
    """
    sym = _plain_matrix(affinity, "similarity")
    n = sym.shape[0]
    off = ~np.eye(n, dtype=bool)
    sim = np.ones((n, n))
    if n > 1:
        lo, hi = sym[off].min(), sym[off].max()
        sim[off] = (sym[off] - lo) / (hi - lo) if hi > lo else 0.5
    return sim


def _labels_from_groups(groups: list[set[int]], n: int) -> np.ndarray:
    labels = np.empty(n, dtype=int)
    for k, g in enumerate(groups):
        labels[list(g)] = k
    return labels


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel so that clusters are numbered in order of their first task."""
    mapping: dict[int, int] = {}
    for lab in labels:
        mapping.setdefault(int(lab), len(mapping))
    return np.array([mapping[int(lab)] for lab in labels], dtype=int)


def neighbour_graph(sym: np.ndarray, n_neighbors: int) -> np.ndarray:
    """The positive part of a symmetric matrix, each task keeping its ``n_neighbors`` strongest
    partners (an edge stays if either end keeps it); zero diagonal.

    >>> g = neighbour_graph(np.array([[0, .9, .1, -1], [.9, 0, .2, 0], [.1, .2, 0, .5], [-1, 0, .5, 0]]), 1)
    >>> g.tolist()
    [[0.0, 0.9, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.5, 0.0]]
    """
    w = np.clip(np.asarray(sym, dtype=np.float64), 0.0, None)
    np.fill_diagonal(w, 0.0)
    n = len(w)
    k = min(int(n_neighbors), n - 1)
    if k < n - 1:
        keep = np.zeros_like(w, dtype=bool)
        top = np.argsort(-w, axis=1, kind="stable")[:, :k]
        keep[np.repeat(np.arange(n), k), top.ravel()] = True
        w = np.where(keep | keep.T, w, 0.0)
    return w


def _eigengaps(graph: np.ndarray) -> dict[int, float]:
    """Gap ``lambda_{k+1} - lambda_k`` of the normalised Laplacian, for each k (1-based)."""
    deg = graph.sum(axis=1)
    inv = 1.0 / np.sqrt(np.maximum(deg, 1e-12))
    lap = np.eye(len(graph)) - inv[:, None] * graph * inv[None, :]
    eig = np.sort(np.linalg.eigvalsh(lap))
    return {k: float(eig[k] - eig[k - 1]) for k in range(1, len(graph))}


class TaskClustering(Estimator):
    """Group tasks that help each other, from an :class:`~taskrel.affinity.Affinity`.

    Parameters
    ----------
    method : ``"hierarchical"`` (scipy linkage on ``1 - similarity``), ``"spectral"``
        (scikit-learn ``SpectralClustering`` on the neighbour graph) or ``"community"``
        (networkx communities of the neighbour graph; module docstring).
    n_clusters : number of clusters, or ``None`` to choose it: hierarchical by the best
        silhouette (precomputed distances) over k = 2..n-1, spectral by the largest eigengap of
        the graph's normalised Laplacian over the same range, community by the best silhouette
        over Louvain resolutions. Two tasks are one cluster when they help each other on
        average (positive symmetrised affinity), else two; one task is one cluster.
    linkage : linkage for the hierarchical method: average, complete, single or weighted.
    random_state : seed for the spectral method's k-means and Louvain.
    n_neighbors : partners each task keeps in the spectral and community graph; ``"auto"``
        is ``max(3, ceil(log2 n))``.

    Attributes
    ----------
    labels_ : array (n,) of cluster numbers (numbered by first appearance).
    clusters_ : list of lists of task names, one per cluster.
    n_clusters_ : the number of clusters found.
    scores_ : when k was chosen, a DataFrame indexed by k with the score used: ``silhouette``
        (hierarchical), ``eigengap`` (spectral: ``lambda_{k+1} - lambda_k``) or ``silhouette``
        and ``resolution`` (community: the k that each Louvain resolution found).
    silhouette_ : silhouette of the final labels on the precomputed distances (NaN if undefined).
    similarity_, distance_ : the matrices used (see the module docstring); ``graph_`` the
        neighbour graph (spectral and community).
    linkage_matrix_, dendrogram_ : hierarchical only: scipy linkage matrix and the plain data of
        a scipy dendrogram (``icoord``, ``dcoord``, ``ivl`` leaf names, ``leaves``).

    Examples
    --------
    >>> v = [[0, .9, .1, 0], [.8, 0, 0, .1], [.1, 0, 0, .7], [0, .1, .9, 0]]
    >>> tc = TaskClustering(n_clusters=2).fit(Affinity(["a", "b", "c", "d"], v))
    >>> tc.clusters_
    [['a', 'b'], ['c', 'd']]
    >>> TaskClustering(method="community").fit(Affinity(["a", "b", "c", "d"], v)).n_clusters_
    2
    >>> TaskClustering().fit(Affinity(["a", "b"], [[0, .3], [.1, 0]])).clusters_
    [['a', 'b']]
    """

    def __init__(
        self,
        method: str = "hierarchical",
        n_clusters: int | None = None,
        linkage: str = "average",
        random_state: int = 0,
        n_neighbors: int | str = "auto",
    ):
        self.method = method
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.random_state = random_state
        self.n_neighbors = n_neighbors

    # ------------------------------------------------------------------ validation
    def _check(self, n: int) -> None:
        if self.method not in METHODS:
            raise TaskrelError(
                f"clustering: unknown method {self.method!r}; use one of {', '.join(METHODS)}"
            )
        if self.linkage not in LINKAGES:
            raise TaskrelError(
                f"clustering: unknown linkage {self.linkage!r}; use one of {', '.join(LINKAGES)}"
            )
        nb = self.n_neighbors
        if nb != "auto" and (isinstance(nb, bool) or not isinstance(nb, (int, np.integer)) or nb < 1):
            raise TaskrelError(f"clustering: n_neighbors must be a positive integer or 'auto', got {nb!r}")
        k = self.n_clusters
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
                raise TaskrelError(
                    f"clustering: n_clusters must be an integer between 1 and {n} (the number "
                    f"of tasks), got {k!r}"
                )

    def _neighbours(self, n: int) -> int:
        return max(3, ceil(log2(max(n, 2)))) if self.n_neighbors == "auto" else int(self.n_neighbors)

    # ------------------------------------------------------------------ methods
    def _hierarchical(self, k: int) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster

        return fcluster(self.linkage_matrix_, t=k, criterion="maxclust")

    def _spectral(self, k: int) -> np.ndarray:
        if k == 1:
            return np.zeros(len(self.graph_), dtype=int)
        if k == len(self.graph_):
            return np.arange(k)
        from sklearn.cluster import SpectralClustering

        model = SpectralClustering(
            n_clusters=k, affinity="precomputed", random_state=self.random_state, n_init=10
        )
        # a tiny floor keeps isolated tasks (no positive partner) in a connected graph
        return model.fit_predict(self.graph_ + 1e-9 * (1 - np.eye(len(self.graph_))))

    def _nx_graph(self):
        import networkx as nx

        return nx.from_numpy_array(self.graph_)

    def _community(self, graph, k: int) -> np.ndarray:
        from networkx.algorithms.community import greedy_modularity_communities

        n = graph.number_of_nodes()
        if graph.number_of_edges() == 0:
            if k != n:
                raise TaskrelError(
                    f"clustering: no pair of tasks has a positive affinity, so the "
                    f"community method can only make {n} clusters, not {k}"
                )
            return np.arange(n)
        try:
            groups = greedy_modularity_communities(graph, weight="weight", cutoff=k, best_n=k)
        except ValueError as e:  # networkx refuses an impossible count
            raise TaskrelError(f"clustering: community method cannot make {k} clusters ({e})") from None
        if len(groups) != k:
            raise TaskrelError(
                f"clustering: community method found {len(groups)} clusters, not the "
                f"{k} asked for (tasks without positive affinity stay apart)"
            )
        return _labels_from_groups([set(g) for g in groups], n)

    def _louvain(self, graph) -> tuple[np.ndarray, dict[int, dict[str, float]]]:
        """Louvain at each resolution; the labels with the best silhouette, and every k's score."""
        from networkx.algorithms.community import louvain_communities

        n = graph.number_of_nodes()
        if graph.number_of_edges() == 0:
            return np.arange(n), {}
        rows: dict[int, dict[str, float]] = {}
        best = None
        for r in RESOLUTIONS:
            groups = louvain_communities(graph, weight="weight", resolution=r, seed=self.random_state)
            lab = _labels_from_groups([set(g) for g in groups], n)
            s = _silhouette(self.distance_, lab)
            k = len(groups)
            if k not in rows or (np.isfinite(s) and s > rows[k]["silhouette"]):
                rows[k] = {"silhouette": s, "resolution": r}
            if best is None or (np.isfinite(s) and (not np.isfinite(best[0]) or s > best[0])):
                best = (s, lab)
        return best[1], rows

    # ------------------------------------------------------------------ fit
    def fit(self, affinity: Affinity) -> TaskClustering:
        """Cluster the tasks of ``affinity``; returns ``self``."""
        sym = _plain_matrix(affinity, "clustering")
        n = sym.shape[0]
        self._check(n)
        self.tasks_ = list(affinity.tasks)
        self.similarity_ = similarity_matrix(affinity)
        self.distance_ = 1.0 - self.similarity_
        np.fill_diagonal(self.distance_, 0.0)
        self.graph_ = neighbour_graph(sym, self._neighbours(n)) if self.method != "hierarchical" else None
        if self.method == "hierarchical" and n >= 2:
            self._tree()
        rows: dict[int, dict[str, float]] = {}
        if self.n_clusters is not None:
            labels = self._labels_for(int(self.n_clusters))
        elif n < 3:  # nothing to choose between: together when they help each other
            labels = np.zeros(n, dtype=int) if n == 1 or sym[0, 1] + sym[1, 0] > 0 else np.arange(n)
        else:
            labels, rows = self._choose_k(n)
        self.scores_ = pd.DataFrame.from_dict(rows, orient="index")
        self.scores_.index.name = "k"
        self.labels_ = _canonical(np.asarray(labels))
        self.n_clusters_ = int(self.labels_.max()) + 1
        self.silhouette_ = _silhouette(self.distance_, self.labels_)
        self.clusters_ = [
            [t for t, lab in zip(self.tasks_, self.labels_) if lab == c]
            for c in range(self.n_clusters_)
        ]
        return self

    def _tree(self) -> None:
        from scipy.cluster.hierarchy import dendrogram, linkage
        from scipy.spatial.distance import squareform

        self.linkage_matrix_ = linkage(squareform(self.distance_, checks=False), self.linkage)
        d = dendrogram(self.linkage_matrix_, labels=self.tasks_, no_plot=True)
        self.dendrogram_ = {
            "icoord": [list(map(float, x)) for x in d["icoord"]],
            "dcoord": [list(map(float, x)) for x in d["dcoord"]],
            "ivl": list(d["ivl"]),
            "leaves": [int(x) for x in d["leaves"]],
            "color_list": list(d["color_list"]),
        }

    def _labels_for(self, k: int) -> np.ndarray:
        if self.method == "hierarchical":
            return self._hierarchical(k) if len(self.tasks_) > 1 else np.zeros(1, dtype=int)
        if self.method == "spectral":
            return self._spectral(k)
        return self._community(self._nx_graph(), k)

    def _choose_k(self, n: int) -> tuple[np.ndarray, dict[int, dict[str, float]]]:
        if self.method == "spectral":
            rows = {k: {"eigengap": g} for k, g in _eigengaps(self.graph_).items() if k > 1}
            k_best = max(rows, key=lambda k: (rows[k]["eigengap"], -k))
            return self._spectral(k_best), rows
        if self.method == "community":
            return self._louvain(self._nx_graph())
        rows = {k: {"silhouette": _silhouette(self.distance_, self._hierarchical(k))} for k in range(2, n)}
        valid = {k: r["silhouette"] for k, r in rows.items() if np.isfinite(r["silhouette"])}
        if not valid:
            raise TaskrelError("clustering: no number of clusters could be scored")
        k_best = max(valid, key=lambda k: (valid[k], -k))
        return self._hierarchical(k_best), rows


def _silhouette(distance: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette on precomputed distances (NaN when it is undefined for this many clusters)."""
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) not in range(2, len(labels)):
        return float("nan")
    return float(silhouette_score(distance, labels, metric="precomputed"))
