"""Studies end to end: the study file is checked before training, runs go through the store,
a rerun trains nothing, failures are reported and the study goes on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from taskrel.errors import TaskrelError
from taskrel.report import write_report
from taskrel.store import RunRecord, RunSpec, RunStore
from taskrel.study import (
    Grouping,
    Study,
    StudyResult,
    Validation,
    load_study,
    parse_study,
    run_study,
    to_toml,
    validate_study,
)
from taskrel.suite import Suite, Task

XSS = "x<script>PWNED=1</script>"  # no "." (torch module names cannot hold one)
TASKS = ["c0t0", "c0t1", "c1t0", XSS]

SMALL = f"""
name = "small <b>study</b>"
description = "planted tasks, one with a hostile name"
[suite]
name = "planted"
tasks = {json.dumps(TASKS)}
[train]
epochs = 4
lr = 0.01
batch_size = 32
[probes.pairwise]
seeds = [0, 1]
[probes.gradient]
every = 3
[probes.similarity]
kinds = ["linear"]
[analysis]
affinity = "pairwise"
[analysis.auxiliary]
primary = "c0t0"
[analysis.grouping]
budgets = [1, 2, 3]
budget = 2
[validation]
seeds = [0, 1]
random = 2
"""


def hostile_suite() -> Suite:
    """The planted suite with one task renamed to a script tag (for escaping tests)."""
    from taskrel.suites import get_suite

    s = get_suite("planted", n_clusters=2, n_examples=240, label_fraction=0.6)
    rename = {"conflict": XSS}
    tasks = [Task(rename.get(t.name, t.name), t.kind) for t in s.tasks]
    targets = {rename.get(k, k): v for k, v in s.targets.items()}
    return Suite("planted", s.inputs, tasks, targets, s.stages, split=s.split, stage_names=s.stage_names)


def small_study(base: Path) -> tuple[StudyResult, Path, Path]:
    """Run (or, when already run in this session, rerun from the store) the small study."""
    study = parse_study(SMALL)
    suite = hostile_suite()
    store = RunStore(base / "store")
    if not (base / "seeded").exists():
        # a run recorded as failed (as a diverged run would be): the study must list it
        spec = RunSpec(_separate(suite), study.base_config(), 1, label="validate all-separate seed1")
        store.put(RunRecord(spec.key(suite), spec.identity(suite), "failed",
                            error="training loss became nan", failed_step=7, label=spec.label))
        (base / "seeded").write_text("1")
    result = run_study(study, store, base / "out", n_jobs=1, quiet=True, suite=suite)
    write_report(result, base / "out", quiet=True)
    return result, base / "store", base / "out"


def _separate(suite):
    from taskrel.layout import SharingLayout

    return SharingLayout.separate(TASKS, suite.n_stages)


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    return small_study(tmp_path_factory.getbasetemp() / "small-study")


# ---------------------------------------------------------------------- the study file
def test_default_study_is_valid_and_matches_the_shipped_file():
    shipped = Path(__file__).resolve().parents[2] / "studies" / "default.toml"
    study = load_study()
    assert to_toml(load_study(shipped)) == to_toml(study)
    before = to_toml(study)
    suite = validate_study(study)
    assert to_toml(study) == before  # checking changes nothing
    assert suite.name == "digits" and 6 <= len(suite.check_tasks(study.tasks)) <= 8
    assert study.grouping.budget in study.grouping.budgets


@pytest.mark.parametrize(
    "patch, field",
    [
        (("[suite]", "[suite]\nsize = 3"), "suite.size"),
        (('name = "planted"', 'name = "nope"'), "suite.name"),
        (('"c0t0", "c0t1"', '"c0t0", "c9t9"'), "suite.tasks"),
        (("[probes.gradient]", "[probes.gradient]\nevry = 3"), "probes.gradient.evry"),
        (("[probes.gradient]", "[probes.magic]\n[probes.gradient]"), "probes.magic"),
        (("budget = 2", "budget = 0"), "analysis.grouping.budget"),
        (("budgets = [1, 2, 3]", "budgets = [1, -2]"), "analysis.grouping.budgets"),
        (("budget = 2", "budget = 9"), "analysis.grouping.budget"),
        (('primary = "c0t0"', 'primary = "zzz"'), "analysis.auxiliary.primary"),
        (("epochs = 4", "epochs = 0"), "train"),
        (("[probes.similarity]", '[probes.broken]\nkind = "similarity"\nseeds = []\n[probes.similarity]'), "probes.broken.seeds"),
        (("[probes.similarity]", '[probes.broken]\nkind = "similarity"\nkinds = ["no-such-kind"]\n[probes.similarity]'), "probes.broken"),
        (("[probes.gradient]", "[probes.gradient]\nmethod = \"magic\""), "probes.gradient"),
        (('affinity = "pairwise"', 'affinity = "nope"'), "analysis.affinity"),
        (("[validation]", "[validation]\nepochs = 3"), "validation.epochs"),
        (("[probes.pairwise]", "[probes.pairwise]\ncheap = { epochs = 2 }"), "probes.pairwise"),
    ],
)
def test_bad_study_files_name_the_field_before_training(tmp_path, patch, field):
    text = SMALL.replace(*patch)
    assert text != SMALL
    store = RunStore(tmp_path / "store")
    with pytest.raises(TaskrelError, match=f"field '{field}'"):
        study = parse_study(text)
        run_study(study, store, tmp_path / "out", quiet=True, suite=None if field == "suite.name" else hostile_suite())
    assert len(store) == 0


def test_missing_study_file_and_bad_toml(tmp_path):
    with pytest.raises(TaskrelError, match="does not exist"):
        load_study(tmp_path / "none.toml")
    with pytest.raises(TaskrelError, match="not valid TOML"):
        parse_study("name = ")


# ---------------------------------------------------------------------- running
def test_study_runs_end_to_end(study_run):
    result, store_path, out = study_run
    assert result.tasks == TASKS
    assert {"pairwise", "gradient", "similarity"} <= set(result.affinities)
    assert result.affinity("similarity").is_staged
    assert all("error" not in info for info in result.probes.values()), result.probes
    # recommendation: a partition of the tasks into budget-many groups at most
    rec = result.recommended
    assert sorted(t for b in rec.blocks(0) for t in b) == sorted(TASKS)
    assert len(rec.blocks(0)) <= result.grouping["budget"]
    for name in ("all-shared", "all-separate", "recommended"):
        assert name in {r["layout"] for r in result.validation}
    # the equal-budget control: random groupings with the recommendation's group sizes
    sizes = sorted(len(b) for b in rec.blocks(0))
    rand = [result.layout(n) for n in result.layouts if n.startswith("random ")]
    assert len(rand) == (0 if len(sizes) == 1 else 2)
    for lay in rand:
        assert sorted(len(b) for b in lay.blocks(0)) == sizes and lay.partitions != rec.partitions
        assert sorted(t for b in lay.blocks(0) for t in b) == sorted(TASKS)
    if rand:
        from taskrel.report.figures import headline

        assert "random groupings" in headline(result)["gain_vs"]
    # the seeded failed run is listed, and its validation rows say so
    assert any(r["error"] == "training loss became nan" for r in result.failed_runs)
    failed = [r for r in result.validation if r["status"] == "failed"]
    assert failed and all(r["layout"] == "all-separate" and r["seed"] == 1 for r in failed)
    # outputs
    for f in ("report.html", "report.md", "summary.json", "layout.json", "study_result.json"):
        assert (out / f).is_file(), f
    assert (store_path / "studies").is_dir()
    assert StudyResult.load(out).to_dict() == result.to_dict()


def test_rerun_trains_nothing_and_resumes_after_a_crash(study_run, tmp_path_factory, monkeypatch):
    result, store_path, out = study_run
    store = RunStore(store_path)
    n = len(store)
    import taskrel.runner as runner_module

    trained = []
    real = runner_module.run_spec
    monkeypatch.setattr(runner_module, "run_spec", lambda *a, **k: trained.append(a[1].label) or real(*a, **k))
    again, _, _ = small_study(store_path.parent)
    assert trained == [] and len(store) == n
    assert again.layouts["recommended"] == result.layouts["recommended"]
    np.testing.assert_allclose(again.affinity("pairwise").values, result.affinity("pairwise").values)
    # a crash lost two records: only those two train again
    lost = [k for k in store.keys() if (store.get(k).label or "").startswith("validate recommended")][:2]
    for k in lost:
        (store_path / "runs" / f"{k}.json").unlink()
    small_study(store_path.parent)
    assert len(trained) == 2 and len(store) == n


def test_cli_study_check_and_errors(tmp_path, capsys):
    from taskrel.cli import main

    f = tmp_path / "s.toml"
    f.write_text(SMALL.replace(f', "{XSS}"', "").replace("x<script>", "c1t1"))
    assert main(["study", str(f), "--check"]) == 0
    assert "valid" in capsys.readouterr().out
    f.write_text(SMALL.replace("[suite]", "[suite]\nsize = 3"))
    assert main(["study", str(f), "--store", str(tmp_path / "runs")]) == 2
    assert "suite.size" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or len(RunStore(tmp_path / "runs")) == 0


def test_a_diverging_task_is_recorded_as_failed_and_the_study_completes(tmp_path):
    """A real divergence (a regression target of 1e30 overflows the loss): every run holding
    that task is recorded as failed with its step and reason, the runs without it finish and
    are kept, and the report lists the failures."""
    from taskrel.suites import get_suite

    s = get_suite("planted", n_clusters=2, n_examples=240, label_fraction=0.6)
    targets = {**s.targets, "boom": (s.inputs[:, 0] * 1e30).astype(np.float32)}
    suite = Suite("planted", s.inputs, [*s.tasks, Task("boom", "regression")], targets, s.stages,
                  split=s.split, stage_names=s.stage_names)
    study = parse_study("""
name = "diverging"
[suite]
name = "planted"
tasks = ["c0t0", "c0t1", "boom"]
[train]
epochs = 2
[probes.pairwise]
[validation]
seeds = [0]
""")
    result = run_study(study, tmp_path / "store", tmp_path / "out", quiet=True, suite=suite)
    write_report(result, tmp_path / "out", quiet=True)
    assert result.failed_runs and all("boom" in r["tasks"] for r in result.failed_runs)
    assert all(r["step"] is not None and "inf" in r["error"] for r in result.failed_runs)
    ok = [rec for rec in RunStore(tmp_path / "store").records() if rec.ok]
    assert {tuple(rec.tasks) for rec in ok} >= {("c0t0",), ("c0t1",), ("c0t0", "c0t1")}
    # the probe gives its affinity without the diverging task, which the analyses leave out
    assert not any(e["part"] == "probe pairwise" for e in result.errors)
    assert list(result.left_out) == ["boom"] and "became inf" in result.left_out["boom"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "became inf" in page and "boom" in page


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_study_file_is_valid(path):
    """The study files under studies/ (and their suites) pass the checks that run before training."""
    study = load_study(path)
    needs = {"qm9": ("rdkit", "qm9pack"), "yeast": ("river",), "moleculeace": ("rdkit", "MoleculeACE")}.get(study.suite_name())
    if needs:
        import importlib.util

        if any(importlib.util.find_spec(m) is None for m in needs):
            pytest.skip(f"the {study.suite_name()} suite needs the 'studies' extra"
                        + (" and pip install --no-deps MoleculeACE==3.0.0" if "MoleculeACE" in needs else ""))
    suite = validate_study(study)
    assert suite.check_tasks(study.tasks) if study.tasks else suite.task_names
    if study.validation is not None:
        assert study.validation.seeds


# ---------------------------------------------------------------------- the Python API
def test_the_api_study_gives_the_answers_of_its_study_file(study_run):
    """Study(...) built by hand = the same study file: the same runs (nothing trains) and the
    same recommendation; fitting changes nothing in the study."""
    from taskrel.analysis import GroupingSearch, TaskClustering
    from taskrel.probes import GradientProbe, PairwiseProbe, SimilarityProbe
    from taskrel.runner import Runner
    from taskrel.train import TrainConfig

    result, store_path, _ = study_run
    probes = {"pairwise": PairwiseProbe(seeds=[0, 1]), "gradient": GradientProbe(every=3),
              "similarity": SimilarityProbe(kinds=["linear"])}
    study = Study(probes=probes, clustering=TaskClustering(),
                  grouping=Grouping(GroupingSearch(budget=2, partition=True), budgets=[1, 2, 3]),
                  validation=Validation(seeds=[0, 1], random=2), auxiliary=["c0t0"], affinity="pairwise", tasks=TASKS, config=TrainConfig(epochs=4, lr=0.01, batch_size=32),
                  name=result.name, verbose=False)
    before = {n: p.get_params() for n, p in study.named_probes().items()}
    runner = Runner(store_path, n_jobs=1, progress=False)
    n = len(runner.store)
    assert study.fit(hostile_suite(), runner) is study  # fit returns the study
    again = study.result_
    assert isinstance(again, StudyResult)
    assert len(runner.store) == n  # every run came from the store
    assert again.layouts["recommended"] == result.layouts["recommended"]
    np.testing.assert_allclose(again.affinity("pairwise").values, result.affinity("pairwise").values)
    assert {n: p.get_params() for n, p in study.named_probes().items()} == before
    assert not hasattr(probes["pairwise"], "affinity_")  # the study fitted copies


def test_from_toml_only_constructs(monkeypatch):
    import taskrel.suites as suites

    monkeypatch.setattr(suites, "get_suite", lambda *a, **k: pytest.fail("from_toml must not build a suite"))
    study = Study.from_toml()
    assert study.suite == "digits" and study.grouping.budget == 3 and study.file_text.startswith("#")
    assert [p.kind for p in study.named_probes().values()][:1] == ["pairwise"]


def test_cli_exits_1_when_the_study_gives_no_recommendation(tmp_path, capsys):
    """Groups of at most one task cannot fit two networks for three tasks: no recommendation,
    the report still written, and the exit code says so."""
    from taskrel.cli import main

    f = tmp_path / "none.toml"
    f.write_text("""
name = "no-advice"
validation = false
[suite]
name = "planted"
options = { n_clusters = 1, n_examples = 200 }
tasks = ["c0t0", "c0t1", "conflict"]
[train]
epochs = 1
[probes.pairwise]
[analysis.grouping]
budgets = [2]
budget = 2
max_size = 1
""")
    out = tmp_path / "out"
    assert main(["study", str(f), "--store", str(tmp_path / "runs"), "--out", str(out), "--quiet", "--n-jobs", "1"]) == 1
    assert "no recommendation" in capsys.readouterr().err
    assert (out / "report.html").is_file()


# ---------------------------------------------------------------------- the study file's errors
def test_a_misspelt_key_lists_the_real_keys_with_the_nearest():
    with pytest.raises(TaskrelError) as e:
        parse_study(SMALL.replace("[probes.pairwise]\nseeds = [0, 1]", "[probes.pairwise]\nseed = [0, 1]"))
    msg = str(e.value)
    assert "field 'probes.pairwise.seed'" in msg and "did you mean 'seeds'?" in msg
    assert "'cheap'" in msg and "'kind'" in msg and "'train'" in msg  # the real keys, not one


def test_check_toml_lists_every_error_at_once():
    from taskrel.study import check_toml

    bad = (SMALL.replace("[suite]", "[suite]\nsize = 3").replace("budget = 2", "budget = 0")
           .replace("[validation]", "[validation]\nrandom_ = 1").replace("every = 3", "evry = 3"))
    errors = check_toml(text=bad)
    fields = {e.split("'")[1] for e in errors}
    assert {"suite.size", "validation.random_", "probes.gradient.evry"} <= fields, errors
    assert check_toml(text=SMALL.replace(f', "{XSS}"', "")) == []
    assert check_toml(text=SMALL.replace("budget = 2", "budget = 0").replace(f', "{XSS}"', "")) == [
        "study: field 'analysis.grouping.budget': must be a number >= 1 (networks trained), got 0"]


def test_a_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.toml"
    f.write_bytes("\ufeff".encode() + SMALL.encode())
    assert load_study(f).name == parse_study(SMALL).name


def test_to_toml_round_trips_every_shipped_study():
    for path in sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.toml")):
        study = load_study(path)
        again = parse_study(to_toml(study))
        assert to_toml(again) == to_toml(study), path


# ---------------------------------------------------------------------- parameters and their homes
def _structure(x):
    """An object's parameters, recursively (estimators by class and parameters, configs as dicts)."""
    from taskrel.train import TrainConfig

    if isinstance(x, TrainConfig):
        return x.to_dict()
    if hasattr(x, "get_params"):
        return (type(x).__name__, _structure(x.get_params()))
    if isinstance(x, dict):
        return {k: _structure(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_structure(v) for v in x]
    return x


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.toml")), ids=lambda p: p.stem)
def test_study_to_toml_to_study_gives_equal_parameters(path):
    study = load_study(path)
    again = parse_study(to_toml(study))
    assert _structure(again) == _structure(study)
    assert study.file_text == path.read_text(encoding="utf-8").lstrip("\ufeff") and again.file_text == to_toml(study)


def test_stability_lives_on_the_clustering_and_the_suite_is_one_parameter():
    from taskrel.analysis import GroupingSearch, TaskClustering
    from taskrel.probes import PairwiseProbe
    from taskrel.study import Clustering

    study = Study(probes=[PairwiseProbe(seeds=[0, 1])], clustering=Clustering(n_clusters=2, stability=False),
                  grouping=GroupingSearch(budget=2), suite={"name": "planted", "options": {"n_examples": 120}},
                  max_runs=50, verbose=False)
    text = to_toml(study)
    assert "stability = false" in text and "n_examples = 120" in text
    again = parse_study(text)
    assert again.stability is False and again.clustering.n_clusters == 2
    assert again.suite_name() == "planted" and again.suite_options() == {"n_examples": 120}
    assert _structure(parse_study(to_toml(again))) == _structure(again)
    assert Study(probes=[], clustering=TaskClustering()).stability is True  # a plain clustering measures it
    assert Study(probes=[], clustering=None).stability is False
    with pytest.raises(TaskrelError, match="field 'suite.size': unknown key"):
        Study(probes=[], suite={"name": "planted", "size": 3}).build_suite()
    suite = study.build_suite()
    assert len(suite.inputs) == 120
    # bad forms are refused before training, also when fit gets a suite
    for bad, field in (({"name": "planted", "size": 3}, "suite.size"), ({"name": "planted", "options": 3}, "suite.options"),
                       (["planted"], "suite")):
        with pytest.raises(TaskrelError, match=f"field '{field}'"):
            study.copy_with(suite=bad).fit(suite, "/nonexistent/never-written")
    with pytest.raises(TaskrelError, match="field 'analysis.clustering.stability'"):
        study.copy_with(clustering=Clustering(stability="no")).fit(suite, "/nonexistent/never-written")
    # old files' keys keep their meaning: stability under [analysis.clustering], options under [suite]
    old = parse_study(SMALL.replace("[analysis.auxiliary]", "[analysis.clustering]\nstability = false\n[analysis.auxiliary]"))
    assert old.stability is False and isinstance(old.clustering, Clustering)


def test_the_study_clustering_has_every_task_clustering_parameter():
    """Clustering is TaskClustering plus ``stability``: same parameters, same defaults."""
    import inspect

    from taskrel.analysis import TaskClustering
    from taskrel.study import Clustering

    def defaults(cls):
        return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"}

    assert defaults(Clustering) == {**defaults(TaskClustering), "stability": True}


def test_a_study_files_text_reaches_its_result_through_run_studys_copies(tmp_path):
    """The file's text is not a parameter: from_toml keeps it, the study's copies (quiet, a
    device) keep it, and the result records it (the report's Reproduce needs it)."""
    text = ('name = "t"\nvalidation = false\n[suite]\nname = "planted"\noptions = { n_examples = 100 }\n'
            'tasks = ["c0t0", "c0t1"]\n[train]\nepochs = 1\n[probes.pairwise]\n[analysis]\nclustering = false\n'
            '[analysis.grouping]\nbudget = 1\n')
    study = parse_study(text)
    assert study.with_device("cpu").copy_with(verbose=False).file_text == text
    result = run_study(study, tmp_path / "store", tmp_path / "out", n_jobs=1, quiet=True)
    assert result.study["source"] == text


def test_no_run_limit_survives_a_study_file():
    """max_runs=None (no limit) is written as max_runs = "none" and read back as None; the
    default 2,000 is left out; any other limit is kept."""
    study = load_study(Path(__file__).resolve().parents[2] / "studies" / "default.toml")
    for limit in (None, 2000, 50):
        text = to_toml(study.copy_with(max_runs=limit))
        assert ("max_runs" in text) == (limit != 2000)
        assert parse_study(text).max_runs == limit
