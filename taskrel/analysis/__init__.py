"""Analyses of an affinity: task clusters, auxiliary tasks and task groupings under a budget."""

from taskrel.analysis.affinity_model import AffinityGroupModel
from taskrel.analysis.auxiliary import rank_auxiliaries
from taskrel.analysis.branching import BranchedLayoutSearch, branched_layout
from taskrel.analysis.cluster import TaskClustering, similarity_matrix
from taskrel.analysis.grouping import GroupingSearch, minimal_cost, pareto_front
from taskrel.analysis.mincost import cost_bounds
from taskrel.analysis.stability import ClusterStability, cluster_stability
from taskrel.tables import CandidateTable, SubsetSurrogate, hoa_candidates


def __getattr__(name: str):
    # the greedy selection trains models: imported on first use, not with the analyses
    if name == "GreedyAuxiliarySelection":
        from taskrel.analysis.selection import GreedyAuxiliarySelection

        return GreedyAuxiliarySelection
    raise AttributeError(name)


__all__ = [
    "AffinityGroupModel",
    "BranchedLayoutSearch",
    "GreedyAuxiliarySelection",
    "branched_layout",
    "CandidateTable",
    "ClusterStability",
    "GroupingSearch",
    "TaskClustering",
    "cluster_stability",
    "cost_bounds",
    "hoa_candidates",
    "minimal_cost",
    "pareto_front",
    "rank_auxiliaries",
    "similarity_matrix",
    "SubsetSurrogate",
]
