"""taskrel: which tasks should learn together, and how much of a network should they share.

Everything a study needs is one import away::

    import taskrel

    suite = taskrel.get_suite("planted")
    study = taskrel.Study(probes=[taskrel.PairwiseProbe(), taskrel.GradientProbe()],
                          grouping=taskrel.GroupingSearch(budget=3),
                          validation=taskrel.Validation(seeds=[0, 1, 2]))
    result = study.fit(suite, "runs").result_
    print(result.summary())       # the decision, why, and how sure

Names are imported on first use (PEP 562), so ``import taskrel`` itself imports neither torch
nor scipy, and the ``taskrel`` command starts quickly.

>>> import taskrel
>>> taskrel.Study.__name__, taskrel.PairwiseProbe.kind, taskrel.SharingLayout.__module__
('Study', 'pairwise', 'taskrel.layout')
"""

from importlib import import_module
from typing import Any

from taskrel.errors import RunFailed, TaskrelError

__version__ = "0.1.0"

# public name -> the module that defines it (one line per name keeps additions easy to merge)
_NAMES = {
    "Affinity": "taskrel.affinity",
    "Cost": "taskrel.affinity",
    # data and models
    "Suite": "taskrel.suite",
    "Task": "taskrel.suite",
    "DatasetSuite": "taskrel.datasets",
    "get_suite": "taskrel.suites",
    "list_suites": "taskrel.suites",
    "SharingLayout": "taskrel.layout",
    "build_model": "taskrel.layout",
    "TrainConfig": "taskrel.train",
    "train": "taskrel.train",
    # runs
    "RunSpec": "taskrel.store",
    "RunRecord": "taskrel.store",
    "RunStore": "taskrel.store",
    "Runner": "taskrel.runner",
    # probes
    "Probe": "taskrel.probes",
    "PROBES": "taskrel.probes",
    "PairwiseProbe": "taskrel.probes",
    "TransferProbe": "taskrel.probes",
    "GradientProbe": "taskrel.probes",
    "LookaheadProbe": "taskrel.probes",
    "SimilarityProbe": "taskrel.probes",
    "SurrogateProbe": "taskrel.probes",
    "measure_groups": "taskrel.probes",
    "AffinityTracker": "taskrel.tracker",
    # analyses
    "TaskClustering": "taskrel.analysis",
    "GroupingSearch": "taskrel.analysis",
    "CandidateTable": "taskrel.tables",
    "BranchedLayoutSearch": "taskrel.analysis",
    "rank_auxiliaries": "taskrel.analysis",
    "cluster_stability": "taskrel.analysis",
    "pareto_front": "taskrel.analysis",
    # studies
    "clone": "taskrel.base",
    "Study": "taskrel.study",
    "Validation": "taskrel.study",
    "StudyResult": "taskrel.study",
}

__all__ = ["RunFailed", "TaskrelError", "__version__", *_NAMES]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(import_module(_NAMES[name]), name)
        if _NAMES[name] == "taskrel.study":  # the report registers itself as the results' writer
            import_module("taskrel.report")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'taskrel' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
