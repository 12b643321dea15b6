"""The study's steps as functions: validation stays bounded at many budgets (no training)."""

from __future__ import annotations

from taskrel.layout import SharingLayout
from taskrel.study import Validation
from taskrel.study.steps import FRONT_LIMIT, Log, front_name, validation_layouts
from taskrel.suites import get_suite

TASKS = ["c0t0", "c0t1", "c1t0", "conflict"]


def _front(n: int, n_stages: int) -> dict:
    rows = []
    for b in range(1, n + 1):
        lay = SharingLayout.groups([TASKS[:2], TASKS[2:]] if b % 2 else [TASKS], n_stages).to_dict()
        rows.append({"budget": float(b), "layout": lay})
    return {"front": rows}


def test_a_short_front_is_validated_and_a_long_one_is_not():
    suite = get_suite("planted", n_examples=100)
    rec = SharingLayout.groups([TASKS[:2], TASKS[2:]], suite.n_stages).to_dict()
    layouts = {"recommended": rec, "all-shared": SharingLayout.shared(TASKS, suite.n_stages).to_dict()}
    v = Validation(seeds=[0], front=True)
    short = validation_layouts(v, layouts, _front(3, suite.n_stages), suite, TASKS, False, Log(verbose=False))
    assert {front_name(b) for b in (1.0, 2.0, 3.0)} <= set(short)
    long = validation_layouts(v, layouts, _front(FRONT_LIMIT + 1, suite.n_stages), suite, TASKS, False, Log(verbose=False))
    assert set(long) == {"recommended", "all-shared"}


def test_a_probe_over_the_run_budget_is_refused_before_training_with_the_cheap_route(tmp_path):
    import pytest

    from taskrel.errors import TaskrelError
    from taskrel.probes import GradientProbe, PairwiseProbe
    from taskrel.store import RunStore
    from taskrel.study import Study, check_toml, planned_runs

    suite = get_suite("planted", n_examples=100)
    n = len(suite.task_names)
    pairs = n + n * (n - 1) // 2
    study = Study(probes=[PairwiseProbe(seeds=[0, 1])], max_runs=pairs, verbose=False)
    assert planned_runs(study, suite)["runs"] == 2 * pairs
    with pytest.raises(TaskrelError, match=rf"plan {2 * pairs} runs \(pairwise {2 * pairs}\).*gradient") as e:
        study.fit(suite, tmp_path / "store")
    assert f"{pairs} runs per seed at {n} tasks" in str(e.value)
    assert not (tmp_path / "store").exists() or len(RunStore(tmp_path / "store")) == 0
    cheap = Study(probes=[GradientProbe(seeds=[0, 1])], max_runs=pairs, verbose=False)
    assert planned_runs(cheap, suite, tmp_path / "none")["runs"] == 2
    text = f'name = "x"\nmax_runs = {pairs}\n[suite]\nname = "planted"\noptions = {{ n_examples = 100 }}\n[probes.pairwise]\nseeds = 2\n'
    assert [e.split("'")[1] for e in check_toml(text=text)] == ["max_runs"]


def test_pairwise_at_96_tasks_is_refused_up_front_and_the_cheap_route_passes():
    """The issue's case: a pairwise probe at 96 tasks (4,656 runs per seed) is refused by the
    check that runs before training; the gradient probe alone plans one run per seed."""
    from taskrel.study import check_toml

    head = 'name = "many"\n[suite]\nname = "planted-many"\noptions = { n_tasks = 96 }\n'
    errors = check_toml(text=head + "[probes.pairwise]\nseeds = 2\n[probes.gradient]\nseeds = 2\n")
    assert len(errors) == 1 and "field 'max_runs'" in errors[0]
    assert "plan 9314 runs (pairwise 9312, gradient 2)" in errors[0] and "4656 runs per seed at 96 tasks" in errors[0]
    assert "[probes.gradient], [probes.gradfeature]" in errors[0]
    assert check_toml(text=head + "[probes.gradient]\nseeds = 2\n") == []


# ---------------------------------------------------------------------- plans made once, one queue
PLANS: list[int] = []


def _counting_pairwise():
    from taskrel.probes import PairwiseProbe

    class Counting(PairwiseProbe):
        """A pairwise probe that counts its plans (class-wide: a study fits copies)."""

        def plan(self, suite):
            PLANS.append(1)
            return super().plan(suite)

    return Counting


def _calls_runner(store):
    """A runner that records, for every call, its description and the runs it trained per suite."""
    from taskrel.runner import Runner

    class Recording(Runner):
        calls: list = []

        def run_all(self, jobs, desc="runs"):
            out = super().run_all(jobs, desc)
            self.calls.append((desc, [r.trained for r in out]))
            return out

    return Recording(store, n_jobs=1, progress=False)


def test_a_study_plans_each_probe_once_per_fit(tmp_path):
    """The checks (run budget), the one queue and the probe's own fit share one plan: a probe
    counting its plan calls sees one per study fit, on a fresh store and on a rerun."""
    from taskrel.study import Study
    from taskrel.train import TrainConfig

    suite = get_suite("planted", n_examples=100)
    study = Study(probes=[_counting_pairwise()()], tasks=TASKS[:3], config=TrainConfig(epochs=1), clustering=None,
                  branched=False, validation=None, verbose=False)
    runner = _calls_runner(tmp_path / "store")
    for trained in (6, 0):  # 3 singles and 3 pairs; then nothing: every run is stored
        PLANS.clear()
        assert study.fit(suite, runner).result_.errors == []
        assert len(PLANS) == 1
        assert sum(sum(t) for _, t in runner.calls) == trained
        runner.calls.clear()


def test_a_width_study_trains_its_width_runs_in_the_probes_one_queue(tmp_path):
    """A width study's runs at width 0.5 train in the same runner call as the probe's runs at
    width 1: that call trains all 12, no other call trains any (there is no validation); the
    probe is planned once at each width (the grouping reads the width probes the queue fitted)."""
    from taskrel.analysis import GroupingSearch
    from taskrel.study import Grouping, Study
    from taskrel.train import TrainConfig

    suite = get_suite("planted", n_examples=100)
    study = Study(probes=[_counting_pairwise()()], grouping=Grouping(GroupingSearch(budget=1), widths=[0.5, 1.0]),
                  tasks=TASKS[:3], config=TrainConfig(epochs=1), clustering=None, branched=False,
                  validation=None, verbose=False)
    runner = _calls_runner(tmp_path / "store")
    PLANS.clear()
    result = study.fit(suite, runner).result_
    assert result.errors == [] and result.layouts.get("recommended")
    assert len(PLANS) == 2, PLANS  # width 1 and width 0.5, once each
    training = [(desc, t) for desc, t in runner.calls if sum(t)]
    assert training == [("probe runs", [6, 6])], runner.calls
    assert result.probes["pairwise"]["widths"] == {"0.5": {"runs": 6, "trained": 6}}
    assert result.grouping["capacity"]["runs"] == {"0.5": 6, "1": 6}


def test_a_probe_fits_on_the_plan_it_is_given_and_refuses_anything_else(tmp_path):
    """Probe.fit(suite, runner, plan): a given plan is used as it is (no second plan); a plan
    that is not a Plan is refused before anything trains."""
    import pytest

    from taskrel.errors import TaskrelError
    from taskrel.store import RunStore
    from taskrel.train import TrainConfig

    suite = get_suite("planted", n_examples=100)
    probe = _counting_pairwise()(tasks=TASKS[:2], config=TrainConfig(epochs=1))
    with pytest.raises(TaskrelError, match="plan must be the Plan"):
        probe.fit(suite, tmp_path / "store", plan=list(probe.plan(suite)))
    assert not (tmp_path / "store").exists() or len(RunStore(tmp_path / "store")) == 0
    PLANS.clear()
    plan = probe.plan(suite)
    probe.fit(suite, tmp_path / "store", plan=plan)
    assert len(PLANS) == 1 and len(probe.records_) == len(plan) == 3  # two singles and their pair
