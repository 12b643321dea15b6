"""Task clustering: planted blocks are recovered, a conflicting task stays apart, stability."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from taskrel import Affinity, TaskrelError
from taskrel.analysis import TaskClustering, cluster_stability, similarity_matrix

METHODS = ["hierarchical", "spectral", "community"]


def planted(seed, sizes=(4, 4, 4), conflict=True, noise=0.08):
    """Blocks of tasks that help each other (+1) plus noise; the conflicting task (last) hurts
    block 0 (-1) and mildly helps block 2 (+0.4). Returns the affinity and the true labels."""
    rng = np.random.default_rng(seed)
    n = sum(sizes) + int(conflict)
    values = rng.normal(0, noise, (n, n))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    start = 0
    for s in sizes:
        values[start : start + s, start : start + s] += 1.0
        start += s
    if conflict:
        c = n - 1
        values[c, : sizes[0]] -= 1.0
        values[: sizes[0], c] -= 1.0
        last = slice(sizes[0] + sizes[1], sum(sizes))
        values[c, last] += 0.4
        values[last, c] += 0.4
        truth = np.append(truth, 2)
    np.fill_diagonal(values, 0.0)
    return Affinity([f"t{i}" for i in range(n)], values), truth


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(4))
def test_planted_blocks_with_conflicting_task(method, seed):
    aff, truth = planted(seed)
    blocks = slice(0, 12)
    for k in (3, None):
        tc = TaskClustering(method=method, n_clusters=k).fit(aff)
        assert adjusted_rand_score(truth[blocks], tc.labels_[blocks]) >= 0.9
        conflict = tc.labels_[-1]
        assert conflict not in set(tc.labels_[:4].tolist()), (method, k)
        if k is None:
            # 3 clusters, or 4 with the conflicting task on its own
            assert tc.n_clusters_ == 3 or (tc.n_clusters_ == 4 and (tc.labels_ == conflict).sum() == 1)
        assert sorted(sum(tc.clusters_, [])) == sorted(aff.tasks)


@pytest.mark.parametrize("method", METHODS)
def test_automatic_k_finds_three_blocks(method):
    for seed in range(3):
        aff, truth = planted(seed, sizes=(3, 5, 4), conflict=False)
        tc = TaskClustering(method=method).fit(aff)
        assert tc.n_clusters_ == 3
        assert adjusted_rand_score(truth, tc.labels_) >= 0.9
        assert 3 in tc.scores_.index


def test_hierarchical_keeps_linkage_and_dendrogram():
    aff, _ = planted(0)
    tc = TaskClustering(linkage="complete", n_clusters=3).fit(aff)
    assert tc.linkage_matrix_.shape == (aff.n_tasks - 1, 4)
    assert sorted(tc.dendrogram_["ivl"]) == sorted(aff.tasks)
    assert len(tc.dendrogram_["icoord"]) == aff.n_tasks - 1
    tc_auto = TaskClustering().fit(aff)
    assert tc_auto.scores_["silhouette"].idxmax() == tc_auto.n_clusters_


def test_similarity_is_symmetric_and_in_unit_range():
    aff, _ = planted(1)
    sim = similarity_matrix(aff)
    assert np.allclose(sim, sim.T)
    assert sim.min() >= 0 and sim.max() <= 1 and np.allclose(np.diag(sim), 1)
    flat = similarity_matrix(Affinity(["a", "b", "c"], np.ones((3, 3))))
    assert flat[0, 1] == 0.5


def test_stability_over_seeds():
    per_seed = []
    for seed in range(4):
        aff, _ = planted(seed)
        per_seed.append(aff.values)
    aff = Affinity.from_seeds([f"t{i}" for i in range(13)], per_seed)
    st = cluster_stability(aff, method="hierarchical", n_clusters=3)
    assert st.mean_ari_ == pytest.approx(1.0) and st.mean_ari_vs_mean_ == pytest.approx(1.0)
    assert st.coassignment_.loc["t0", "t1"] == 1.0 and st.coassignment_.loc["t0", "t12"] == 0.0
    assert st.labels_.shape == (4, 13)
    noisy = Affinity.from_seeds(aff.tasks, [planted(s, noise=1.5)[0].values for s in range(4)])
    assert cluster_stability(noisy, n_clusters=3).mean_ari_ < 1.0


def test_bad_input_raises():
    aff, _ = planted(0)
    with pytest.raises(TaskrelError, match="no per-seed matrices"):
        cluster_stability(aff)
    with pytest.raises(TaskrelError, match="unknown method 'kmeans'"):
        TaskClustering(method="kmeans").fit(aff)
    with pytest.raises(TaskrelError, match="unknown linkage 'ward'"):
        TaskClustering(linkage="ward").fit(aff)
    with pytest.raises(TaskrelError, match="n_clusters must be an integer between 1 and 13"):
        TaskClustering(n_clusters=14).fit(aff)
    staged = Affinity(["a", "b", "c"], np.zeros((2, 3, 3)))
    with pytest.raises(TaskrelError, match="per-stage"):
        TaskClustering(n_clusters=2).fit(staged)
    with pytest.raises(TaskrelError, match="expected a taskrel Affinity"):
        TaskClustering(n_clusters=2).fit(np.eye(3))
    apart = Affinity(["a", "b", "c"], -np.ones((3, 3)))
    with pytest.raises(TaskrelError, match="no pair of tasks has a positive affinity"):
        TaskClustering(method="community", n_clusters=2).fit(apart)


@pytest.mark.parametrize("method", METHODS)
def test_one_or_two_tasks_need_no_k(method):
    """Two tasks are one cluster when they help each other on average, else two; no error."""
    assert TaskClustering(method=method).fit(Affinity(["a", "b"], [[0, .5], [-.2, 0]])).clusters_ == [["a", "b"]]
    assert TaskClustering(method=method).fit(Affinity(["a", "b"], [[0, -.5], [.2, 0]])).n_clusters_ == 2
    assert TaskClustering(method=method).fit(Affinity(["a"], [[0.0]])).clusters_ == [["a"]]


def many(n_clusters, seed, within=0.3, noise=0.12):
    """Planted clusters of 4 to 8 tasks with noisy symmetric affinities (as gradient cosines)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(n_clusters), rng.integers(4, 9, n_clusters))
    n = len(truth)
    v = np.where(truth[:, None] == truth[None], within, 0.0) + rng.normal(0, noise, (n, n))
    v = (v + v.T) / 2
    np.fill_diagonal(v, 0)
    return Affinity([f"t{i}" for i in range(n)], v), truth


@pytest.mark.parametrize("method", METHODS)
def test_automatic_k_holds_at_many_tasks(method):
    """At about 200 tasks in 32 clusters every method finds the clusters (the spectral rule on
    the dense similarity, and greedy modularity, did not: benchmarks/clustering_scale.py)."""
    aff, truth = many(32, seed=1)
    tc = TaskClustering(method=method).fit(aff)
    assert adjusted_rand_score(truth, tc.labels_) >= 0.95, (method, tc.n_clusters_)


def test_clustering_is_an_estimator_and_permutation_equivariant():
    aff, truth = many(6, seed=2)
    tc = TaskClustering(method="spectral")
    assert tc.get_params()["n_neighbors"] == "auto" and "TaskClustering(method='spectral')" == repr(tc)
    order = np.random.default_rng(0).permutation(aff.n_tasks)
    perm = Affinity([aff.tasks[i] for i in order], aff.values[np.ix_(order, order)])
    a = TaskClustering().fit(aff).labels_
    b = TaskClustering().fit(perm).labels_
    assert adjusted_rand_score(a[order], b) == pytest.approx(1.0)
    with pytest.raises(TaskrelError, match="n_neighbors must be a positive integer"):
        TaskClustering(method="spectral", n_neighbors=0).fit(aff)
