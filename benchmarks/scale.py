"""Many tasks: a whole study on planted-many at n = 12, 24, 48, 96 tasks, from an empty store to
the report. Prints JSON (one row per study) and writes it with ``--json``.

    python benchmarks/scale.py                          # n = 12, 24, 48, 96
    python benchmarks/scale.py --sizes 24 --n-jobs 2    # one size
    python benchmarks/scale.py --json benchmarks/results/scale.json
    python benchmarks/scale.py --json out.json --add-per-seed KEPT   # per-seed rows of a kept run

Each row runs ``taskrel study`` in its own process on a copy of ``--study`` (default
``studies/planted-many.toml``) with ``n_tasks`` set, a fresh store and a fresh output folder,
exactly as a user would, and measures:

The front's ``budgets`` in the study file are replaced by about n/8 and n/4 networks (and
``budget`` by their middle).

* ``wall_seconds``: the study process from start to exit (probes, analyses, validation and the
  report); ``stages``: the study's own per-stage seconds and each probe's training seconds.
* ``runs``, ``examples``: training runs and examples behind the result (probes and validation,
  from the runs' records).
* ``peak_mb``: the largest resident memory of the study's process tree (the study and its
  worker processes, summed), sampled every 0.2 s with psutil.
* quality, against the suite's planted truth: ``ari`` (adjusted Rand index of the recommended
  grouping against the planted grouping: every cluster, each unrelated and harmful task alone),
  ``ari_clusters`` (the same for the study's clustering), ``harmful_apart`` (no harmful task
  shares a network with a task of the cluster it opposes, in the recommended grouping);
  ``per_seed``: the same two for each probe seed's affinity clustered alone (the spread over
  seeds of a one-seed probe; the study clusters their mean).
* paired validation: every validated layout's test loss per task, divided by all-separate's on
  the same seed and task, averaged over tasks: one number per seed. ``paired`` gives, for the
  recommendation against each baseline (all-shared, each random grouping of the same sizes,
  and the planted grouping, which this script trains on the same seeds and config through the
  same store), the mean difference over seeds (negative: the recommendation is better), its
  standard error and a 95% t-interval.

The machine's load average is recorded before and after every row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run_study(toml_text: str, n_jobs: int, work: Path) -> dict:
    """Run ``taskrel study`` on ``toml_text`` in a subprocess; wall time, peak memory, exit."""
    import psutil

    study = work / "study.toml"
    study.write_text(toml_text)
    cmd = [sys.executable, "-m", "taskrel", "study", str(study), "--store", str(work / "store"),
           "--out", str(work / "out"), "--n-jobs", str(n_jobs)]
    log = open(work / "study.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    ps, peak = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    log.close()
    return {"wall_seconds": round(wall, 1), "peak_mb": round(peak, 1), "exit": proc.returncode,
            "log_tail": (work / "study.log").read_text()[-3000:]}


def labels_of(groups, tasks) -> np.ndarray:
    where = {t: i for i, g in enumerate(groups) for t in g}
    return np.array([where[t] for t in tasks])


def paired_rows(norm: dict[str, dict[int, float]], against: list[str]) -> dict[str, dict]:
    """Recommendation minus each layout, paired over seeds: mean, SE, 95% t-interval."""
    from scipy import stats

    out = {}
    rec = norm.get("recommended", {})
    for name in against:
        other = norm.get(name, {})
        seeds = sorted(set(rec) & set(other))
        if len(seeds) < 2:
            continue
        d = np.array([rec[s] - other[s] for s in seeds])
        se = float(d.std(ddof=1) / np.sqrt(len(d)))
        half = float(stats.t.ppf(0.975, len(d) - 1) * se)
        out[name] = {"mean": round(float(d.mean()), 4), "se": round(se, 4),
                     "interval": [round(float(d.mean()) - half, 4), round(float(d.mean()) + half, 4)],
                     "seeds": seeds}
    return out


def normalised(rows: list[dict]) -> dict[str, dict[int, float]]:
    """Per layout and seed: mean over tasks of test loss / all-separate's test loss."""
    sep = {(r["seed"], r["task"]): r["test_loss"] for r in rows
           if r["layout"] == "all-separate" and r["status"] == "ok"}
    acc: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r["status"] != "ok" or (r["seed"], r["task"]) not in sep:
            continue
        acc.setdefault(r["layout"], {}).setdefault(r["seed"], []).append(r["test_loss"] / sep[(r["seed"], r["task"])])
    return {lay: {s: float(np.mean(v)) for s, v in by.items()} for lay, by in acc.items()}


def validation_rows(result: dict) -> list[dict]:
    """The study's validation rows (stored as columns since schema 3, as a list of rows before)."""
    v = result.get("validation") or []
    if isinstance(v, dict):
        keys = list(v)
        return [dict(zip(keys, vals)) for vals in zip(*(v[k] for k in keys))]
    return list(v)


def planted_rows(suite, result: dict, store: Path, n_jobs: int) -> list[dict]:
    """Train the planted grouping on the validation seeds and config (through the same store)."""
    import taskrel
    from taskrel.layout import SharingLayout
    from taskrel.store import RunSpec

    cfg = validation_config(result)
    seeds = sorted({r["seed"] for r in validation_rows(result)})
    tasks = result["tasks"]
    groups = [[t for t in g if t in tasks] for g in suite.truth["groups"]]
    lay = SharingLayout.from_groups([g for g in groups if g], suite.n_stages)
    specs = [RunSpec(lay, cfg, s, label=f"planted grouping seed{s}") for s in seeds]
    runner = taskrel.Runner(str(store), n_jobs=n_jobs, progress=False)
    try:
        records = runner.run(suite, specs, desc="planted grouping")
    finally:
        runner.close()
    return [{"layout": "planted", "seed": s, "task": t, "status": "ok" if rec.ok else "failed",
             "test_loss": rec.loss(t, "test") if rec.ok else None}
            for s, rec in zip(seeds, records) for t in tasks]


def validation_config(result: dict):
    """The config the study validated with (its [validation] config, else its [train])."""
    import taskrel

    study = result["study"]
    val = study.get("validation") or {}
    v = val.get("config") or val.get("train") or study.get("train") or study.get("config") or {}
    return taskrel.TrainConfig(**{k: v[k] for k in v if k in taskrel.TrainConfig.__dataclass_fields__})


def per_seed_quality(res: dict, truth: list[list[str]], hurts: list[list[str]]) -> dict | None:
    """Each probe seed's affinity clustered alone (as the study clusters the mean): its ARI
    against the planted grouping and whether harmful tasks stay apart; None without per-seed
    values. The spread says how much one seed's probe varies; the study averages them all."""
    from sklearn.metrics import adjusted_rand_score

    from taskrel.affinity import Affinity
    from taskrel.analysis.cluster import TaskClustering

    name = (res.get("clustering") or {}).get("probe")
    aff = (res.get("affinities") or {}).get(name) or {}
    per_seed, tasks = aff.get("per_seed"), aff.get("tasks")
    if not per_seed or not tasks:
        return None
    method = (res.get("clustering") or {}).get("method", "hierarchical")
    aris, apart = [], []
    for values in per_seed:
        v = np.array([[np.nan if x is None else x for x in row] for row in values], dtype=float)
        c = TaskClustering(method=method).fit(Affinity(tasks, np.nan_to_num(v)))
        aris.append(round(float(adjusted_rand_score(labels_of(truth, tasks), labels_of(c.clusters_, tasks))), 3))
        where = {t: i for i, b in enumerate(c.clusters_) for t in b}
        apart.append(all(where[a] != where[b] for a, b in hurts if a in where and b in where))
    return {"ari": aris, "harmful_apart": apart}


def summarise(n: int, res: dict, out: Path, suite, n_jobs: int, store: Path) -> dict:
    rec = res["layouts"].get("recommended")
    tasks = res["tasks"]
    truth = [[t for t in g if t in tasks] for g in suite.truth["groups"]]
    row: dict = {"n_tasks": n}
    if rec is not None:
        from taskrel.layout import SharingLayout

        blocks = SharingLayout.from_dict(rec).blocks(0)
        from sklearn.metrics import adjusted_rand_score

        row["ari"] = round(float(adjusted_rand_score(labels_of(truth, tasks), labels_of(blocks, tasks))), 3)
        where = {t: i for i, b in enumerate(blocks) for t in b}
        row["harmful_apart"] = all(where[a] != where[b] for a, b in suite.truth["hurts"] if a in where and b in where)
        row["networks"] = len(blocks)
    if res.get("clustering"):
        from sklearn.metrics import adjusted_rand_score

        cl = res["clustering"].get("clusters") or []
        if cl:
            row["ari_clusters"] = round(float(adjusted_rand_score(labels_of(truth, tasks), labels_of(cl, tasks))), 3)
        row["per_seed"] = per_seed_quality(res, truth, suite.truth["hurts"])
    validated = validation_rows(res)
    rows = validated + (planted_rows(suite, res, store, n_jobs) if validated else [])
    norm = normalised(rows)
    row["normalised_test_loss"] = {k: round(float(np.mean(list(v.values()))), 4) for k, v in norm.items()}
    against = ["all-shared", "planted"] + sorted(k for k in norm if k.startswith("random"))
    row["paired"] = paired_rows(norm, against)
    cost = [p.get("cost") or {} for p in res["probes"].values()] + [res.get("validation_cost") or {}]
    row["runs"] = int(sum(c.get("runs") or 0 for c in cost))
    row["examples"] = int(sum(c.get("examples") or 0 for c in cost))
    row["stages"] = {"study": res.get("seconds", {}),
                     "probe_training_seconds": {k: (p.get("cost") or {}).get("seconds") for k, p in res["probes"].items()},
                     "validation_training_seconds": (res.get("validation_cost") or {}).get("seconds")}
    decided = res.get("decided") or {}
    row["decision"] = {k: decided.get(k) for k in ("decision", "reason", "confidence", "confidence_why")}
    row["pair_runs_avoided"] = n + n * (n - 1) // 2
    return row


def add_per_seed(path: str, kept: str) -> None:
    """Add ``per_seed`` to the rows of the JSON at ``path`` from the study folders a run kept
    under ``kept`` (``--keep``), without running anything again."""
    from taskrel.suites import get_suite

    d = json.loads(Path(path).read_text())
    for row in d["rows"]:
        found = [f for w in sorted(Path(kept).glob(f"scale{row['n_tasks']}-*")) for f in (w / "out").rglob("study_result.json")]
        if not found:
            continue
        res = json.loads(found[-1].read_text())
        suite = get_suite("planted-many", n_tasks=row["n_tasks"])
        truth = [[t for t in g if t in res["tasks"]] for g in suite.truth["groups"]]
        row["per_seed"] = per_seed_quality(res, truth, suite.truth["hurts"])
    Path(path).write_text(json.dumps(d, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12,24,48,96")
    ap.add_argument("--study", default=str(ROOT / "studies" / "planted-many.toml"))
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the JSON here")
    ap.add_argument("--keep", default=None, help="keep each study's folder under this directory")
    ap.add_argument("--note", default=None, help="a note kept in the JSON (how it was run)")
    ap.add_argument("--add-per-seed", default=None, metavar="KEPT",
                    help="only add per_seed to the rows of --json from the folders a run kept here")
    args = ap.parse_args()
    if args.add_per_seed:
        return add_per_seed(args.json, args.add_per_seed)
    from taskrel.suites import get_suite

    text = Path(args.study).read_text()
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        toml_text = re.sub(r"n_tasks\s*=\s*\d+", f"n_tasks = {n}", text)
        # the front's budgets follow the number of tasks: about n/8 and n/4 networks
        toml_text = re.sub(r"^budgets\s*=.*$", f"budgets = [{-(-n // 8)}, {-(-n // 4)}]", toml_text, flags=re.M)
        toml_text = re.sub(r"^budget\s*=.*$", "", toml_text, flags=re.M)  # the middle of the budgets
        toml_text = re.sub(r'^name\s*=\s*"([^"]*)"', rf'name = "\1-{n}"', toml_text, count=1, flags=re.M)
        work = Path(tempfile.mkdtemp(prefix=f"scale{n}-", dir=args.keep))
        load_before = os.getloadavg()
        run = run_study(toml_text, args.n_jobs, work)
        found = list((work / "out").rglob("study_result.json"))
        row = {"n_tasks": n, **{k: run[k] for k in ("wall_seconds", "peak_mb", "exit")}}
        if run["exit"] != 0 or not found:
            row["error"] = run["log_tail"]
        else:
            res = json.loads(found[0].read_text())
            suite = get_suite("planted-many", n_tasks=n)
            row.update(summarise(n, res, found[0].parent, suite, args.n_jobs, work / "store"))
            row.update({k: run[k] for k in ("wall_seconds", "peak_mb")})
        row["load"] = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        out = {"benchmark": "scale", "study": os.path.relpath(args.study, ROOT), "n_jobs": args.n_jobs,
               "cores": os.cpu_count(), "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]),
               **({"note": args.note} if args.note else {}), "rows": sorted(rows, key=lambda r: r["n_tasks"])}
        dump = json.dumps(out, indent=1)
        if args.json:  # after every row: a run stopped part-way keeps the rows it measured
            Path(args.json).write_text(dump + "\n")
    print(dump)


if __name__ == "__main__":
    main()
