"""Cluster tasks from an :class:`~taskrel.affinity.Affinity`: hierarchical, spectral, communities.

Every method starts from the *symmetrised* affinity ``A = (V + V.T) / 2`` (the mean of the
effect of a on b and of b on a). Two derived matrices are used:

* **similarity** ``sim``: the off-diagonal entries of ``A`` rescaled linearly to ``[0, 1]``
  (the most negative pair gets 0, the most positive gets 1); the diagonal is 1. When every pair
  has the same value, every off-diagonal similarity is 0.5.
* **distance** ``dist = 1 - sim`` (diagonal 0), used by hierarchical linkage and silhouettes.

The graph-community method uses neither: it builds a graph with an edge of weight ``A[a, b]``
for each pair whose symmetrised affinity is *positive* (tasks that help each other), so a pair
that conflicts is never an edge.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError

METHODS = ("hierarchical", "spectral", "community")
LINKAGES = ("average", "complete", "single", "weighted")


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


def _eigengaps(sim: np.ndarray) -> dict[int, float]:
    """Gap ``lambda_{k+1} - lambda_k`` of the normalised Laplacian, for each k (1-based)."""
    deg = sim.sum(axis=1)
    inv = 1.0 / np.sqrt(np.maximum(deg, 1e-12))
    lap = np.eye(len(sim)) - inv[:, None] * sim * inv[None, :]
    eig = np.sort(np.linalg.eigvalsh(lap))
    return {k: float(eig[k] - eig[k - 1]) for k in range(1, len(sim))}


class TaskClustering:
    """Group tasks that help each other, from an :class:`~taskrel.affinity.Affinity`.

    Parameters
    ----------
    method : ``"hierarchical"`` (scipy linkage on ``1 - similarity``), ``"spectral"``
        (scikit-learn ``SpectralClustering`` on the precomputed similarity) or ``"community"``
        (networkx greedy modularity on the graph of positive symmetrised affinities).
    n_clusters : number of clusters, or ``None`` to choose it: hierarchical by the best
        silhouette (precomputed distances) over k = 2..n-1, spectral by the largest eigengap of
        the normalised Laplacian over the same range, community by the best modularity.
    linkage : linkage for the hierarchical method: average, complete, single or weighted.
    random_state : seed for the spectral method's k-means.

    Attributes
    ----------
    labels_ : array (n,) of cluster numbers (numbered by first appearance).
    clusters_ : list of lists of task names, one per cluster.
    n_clusters_ : the number of clusters found.
    scores_ : when k was chosen, a DataFrame indexed by k (2..n-1) with the score used:
        ``silhouette`` (hierarchical), ``eigengap`` (spectral: ``lambda_{k+1} - lambda_k``) or
        ``modularity`` (community, from greedy modularity merged down to k communities).
    silhouette_ : silhouette of the final labels on the precomputed distances (NaN if undefined).
    similarity_, distance_ : the matrices used (see the module docstring).
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
    """

    def __init__(
        self,
        method: str = "hierarchical",
        n_clusters: int | None = None,
        linkage: str = "average",
        random_state: int = 0,
    ):
        self.method = method
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.random_state = random_state

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
        k = self.n_clusters
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
                raise TaskrelError(
                    f"clustering: n_clusters must be an integer between 1 and {n} (the number "
                    f"of tasks), got {k!r}"
                )
        elif n < 3:
            raise TaskrelError(
                f"clustering: choosing the number of clusters needs at least 3 tasks, got {n}; "
                "pass n_clusters"
            )

    # ------------------------------------------------------------------ methods
    def _hierarchical(self, k: int) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster

        return fcluster(self.linkage_matrix_, t=k, criterion="maxclust")

    def _spectral(self, k: int) -> np.ndarray:
        if k == 1:
            return np.zeros(len(self.similarity_), dtype=int)
        if k == len(self.similarity_):
            return np.arange(k)
        from sklearn.cluster import SpectralClustering

        model = SpectralClustering(
            n_clusters=k, affinity="precomputed", random_state=self.random_state, n_init=10
        )
        return model.fit_predict(self.similarity_)

    def _graph(self, sym: np.ndarray):
        import networkx as nx

        graph = nx.Graph()
        n = len(sym)
        graph.add_nodes_from(range(n))
        for a, b in combinations(range(n), 2):
            if sym[a, b] > 0:
                graph.add_edge(a, b, weight=float(sym[a, b]))
        return graph

    def _community(self, graph, k: int | None) -> np.ndarray:
        from networkx.algorithms.community import greedy_modularity_communities

        n = graph.number_of_nodes()
        if graph.number_of_edges() == 0:
            groups = [{i} for i in range(n)]
            if k is not None:
                if k != n:
                    raise TaskrelError(
                        f"clustering: no pair of tasks has a positive affinity, so the "
                        f"community method can only make {n} clusters, not {k}"
                    )
        elif k is None:
            groups = greedy_modularity_communities(graph, weight="weight")
        else:
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

    def _labels_for(self, k: int, graph=None) -> np.ndarray:
        if self.method == "hierarchical":
            return self._hierarchical(k)
        if self.method == "spectral":
            return self._spectral(k)
        return self._community(graph, k)

    # ------------------------------------------------------------------ fit
    def fit(self, affinity: Affinity) -> TaskClustering:
        """Cluster the tasks of ``affinity``; returns ``self``."""
        from scipy.cluster.hierarchy import dendrogram, linkage
        from scipy.spatial.distance import squareform

        sym = _plain_matrix(affinity, "clustering")
        n = sym.shape[0]
        self._check(n)
        self.tasks_ = list(affinity.tasks)
        self.similarity_ = similarity_matrix(affinity)
        self.distance_ = 1.0 - self.similarity_
        np.fill_diagonal(self.distance_, 0.0)
        graph = self._graph(sym) if self.method == "community" else None
        if self.method == "hierarchical" and n >= 2:
            self.linkage_matrix_ = linkage(squareform(self.distance_, checks=False), self.linkage)
            d = dendrogram(self.linkage_matrix_, labels=self.tasks_, no_plot=True)
            self.dendrogram_ = {
                "icoord": [list(map(float, x)) for x in d["icoord"]],
                "dcoord": [list(map(float, x)) for x in d["dcoord"]],
                "ivl": list(d["ivl"]),
                "leaves": [int(x) for x in d["leaves"]],
                "color_list": list(d["color_list"]),
            }

        rows: dict[int, dict[str, float]] = {}
        if self.n_clusters is not None:
            labels = self._labels_for(int(self.n_clusters), graph)
        elif self.method == "spectral":
            rows = {k: {"eigengap": g} for k, g in _eigengaps(self.similarity_).items() if k > 1}
            k_best = max(rows, key=lambda k: (rows[k]["eigengap"], -k))
            labels = self._spectral(k_best)
        elif self.method == "community":
            for k in range(2, n):
                try:
                    rows[k] = {"modularity": _modularity(graph, self._community(graph, k))}
                except TaskrelError:
                    continue
            labels = self._community(graph, None)
        else:
            for k in range(2, n):
                lab = self._hierarchical(k)
                rows[k] = {"silhouette": _silhouette(self.distance_, lab)}
            valid = {k: r["silhouette"] for k, r in rows.items() if np.isfinite(r["silhouette"])}
            if not valid:
                raise TaskrelError("clustering: no number of clusters could be scored")
            k_best = max(valid, key=lambda k: (valid[k], -k))
            labels = self._hierarchical(k_best)
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


def _silhouette(distance: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette on precomputed distances (NaN when it is undefined for this many clusters)."""
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) not in range(2, len(labels)):
        return float("nan")
    return float(silhouette_score(distance, labels, metric="precomputed"))


def _modularity(graph, labels: np.ndarray) -> float:
    from networkx.algorithms.community import modularity

    if graph.number_of_edges() == 0:
        return float("nan")
    groups = [set(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)]
    return float(modularity(graph, groups, weight="weight"))
