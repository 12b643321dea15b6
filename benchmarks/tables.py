"""Render the README's results tables from the JSON that the benchmarks and studies wrote.

    python benchmarks/tables.py                  # reads benchmarks/results/*.json and
                                                 # studies/results/*/summary.json
    python benchmarks/tables.py --results DIR    # another folder of benchmark JSON
    python benchmarks/tables.py --docs docs/results   # write the docs site's results pages

Each benchmark's JSON is its own stdout, saved as ``benchmarks/results/<benchmark>.json``
(re-run a benchmark with ``> benchmarks/results/<name>.json`` and re-render). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _f(x, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def gradient(d: dict) -> str:
    rows = [[r["tasks"], r["shared_parameters"], _f(r["gradients_batched_s"] * 1e3, ".2f"),
             _f(r["gradients_loop_s"] * 1e3, ".2f"), f"**{r['gradients_speedup']:.1f}x**", _f(r["max_abs_difference"], ".1e")]
            for r in d["per_task_gradients"]]
    a = _table(["tasks", "shared params", "batched (ms)", "loop of autograd.grad (ms)", "speed-up", "max abs diff"], rows)
    rows = [[r["tasks"], r["steps"], _f(r["plain_s"]), f"{r['ratio_cosine']:.2f}x", f"{r['ratio_cosine_lookahead']:.2f}x"]
            for r in d["training"]]
    b = _table(["tasks", "steps", "plain training (s)", "+ cosine every 10 steps", "+ cosine + lookahead"], rows)
    return f"Per-task gradients on the shared encoder ({d['threads']} thread):\n\n{a}\n\nTraining time with the probe on, relative to off:\n\n{b}"


def cka(d: dict) -> str:
    rows = []
    for size, kinds in d["sizes"].items():
        for kind, body in kinds.items():
            for name, r in sorted(body["impls"].items(), key=lambda kv: (kv[0] != "taskrel", kv[0])):
                if r["status"] == "ok":
                    rows.append([size, kind, name, f"{r['seconds']:.3f}", f"{r['ratio']:.1f}x", _f(r.get("peak_mb"), ".0f"), _f(r["rel_err"], ".1e")])
                else:
                    rows.append([size, kind, name, "—", "—", "—", r["status"]])
    a = _table(["n x d", "CKA", "implementation", "seconds", "time vs taskrel", "peak MB", "rel. error vs float64"], rows)
    ap = d["all_pairs"]
    rows = [[k, f"{v['prepared_split_s']:.1f}", f"{v['pairwise_calls_s']:.1f}", f"{v['speedup']:.1f}x"]
            for k, v in ap.items() if isinstance(v, dict)]
    b = _table(["CKA", "prepared once per model (s)", "one call per pair (s)", "speed-up"], rows)
    m = d["matmul"]
    frac = ", ".join(f"{k}: {v:.2f}" for k, v in m["linear_cka_fraction_of_square_rate"].items())
    load = d["machine"].get("load_average_at_start")
    if "goal" in d:
        a = f"{cka_vs_numpy(d)}\n\nAgainst the PyPI peers:\n\n{a}"
    return (f"{a}\n\nAll pairs of {ap['models']} models at {ap['n']}x{ap['d']}:\n\n{b}\n\n"
            f"Linear CKA's achieved rate as a fraction of this machine's float32 matmul rate "
            f"({m['square_4096_gflops']:.0f} GFLOP/s on 4096x4096): {frac}. Load average at start: {load}.")


def cka_vs_numpy(d: dict) -> str:
    """taskrel against the plain float32 NumPy computation, calls alternated in one process."""
    rows = []
    for size, kinds in d["sizes"].items():
        for kind, body in kinds.items():
            v = body.get("vs_numpy", {})
            if v.get("status") != "ok":
                rows.append([size, kind, "—", "—", "—", v.get("status", "not measured"), "—", "—"])
                continue
            lo, hi = v["ratio_range"]
            rows.append([size, kind, f"{v['taskrel_s']:.3f}", f"{v['numpy_s']:.3f}",
                         f"**{v['ratio']:.2f}x** ({lo:.2f}-{hi:.2f})", "yes" if v["met"] else "**no**",
                         _f(v["taskrel_abs_err"], ".1e"), _f(v["numpy_abs_err"], ".1e")])
    g = d["goal"]
    head = ["n x d", "CKA", "taskrel (s)", "NumPy float32 (s)", "taskrel / NumPy, median over pairs (range)",
            f"within {g['ratio']}x", "taskrel abs. error", "NumPy abs. error"]
    return (f"{_table(head, rows)}\n\nGoal ({g['goal']}): {'met' if g['met'] else '**not met**'} "
            f"(worst ratio {_f(g['worst_ratio'])}); taskrel's promised absolute error: "
            f"{g['promised_abs_error']:.0e} (worst measured {_f(g['worst_taskrel_abs_err'], '.1e')}).")


def throughput(d: dict) -> str:
    s = d["summary"]
    r = s["runs_per_s_alone"]
    nb, th, ov = s["neighbour_load"], s["one_thread_speedup_over_torch_default"], d["overhead"]
    rows = [["sequential (n_jobs=1)", f"{r['sequential']:.3f}", "1.00"],
            ["2 local worker processes", f"{r['loky_2']:.3f}", f"{s['parallel_efficiency_2']['loky']:.2f}"],
            ["2 Dask workers (LocalCluster, 127.0.0.1)", f"{r['dask_2']:.3f}", f"{s['parallel_efficiency_2']['dask']:.2f}"]]
    a = _table(["how", "runs/s", "parallel efficiency"], rows)
    rows = [[k, f"{v['slowdown']:.2f}x", f"{v['cpu_share_lost_factor']:.2f}x", f"{v['slowdown_over_cpu_lost']:.2f}"]
            for k, v in nb.items()]
    b = _table(["study", "slowed by busy loops", "CPU share lost (factor)", "slowdown / CPU lost"], rows)
    goals = "; ".join(f"{g['goal']}: {_f(g['value'])} ({'met' if g['met'] else '**not met**'})" for g in s["goals"])
    p, m = d["plan"], d["machine"]
    return (f"{p['runs']} runs of the planted study ({p['study_file']}), each measurement from an empty store; "
            f"load average {m['load_average_at_start'][0]} at start, {m['load_average_at_end'][0]} at end, "
            f"{m['cpus']} cores.\n\n{a}\n\nPer planted run: {ov['wall_per_run_s']:.2f} s, of which "
            f"{ov['training_steps_per_run_s']:.2f} s in training steps; overhead {ov['overhead_fraction']:.0%} "
            f"(validation and evaluation {ov['rest_of_train_per_run_s']:.2f} s, outside train() "
            f"{ov['outside_train_per_run_s']:.2f} s).\n\nWith a busy-loop process per core beside the study:\n\n{b}\n\n"
            f"One thread vs torch's default threads: {th['alone']:.2f}x the runs/s alone, "
            f"{th['with_load']:.2f}x beside the busy loops.\n\nGoals: {goals}.")


def grouping(d: dict) -> str:
    rows = [[r["n"], r["mode"], r["exact_over"], r["n_candidates"], r["budget"], f"{r['milp_s']:.2f}",
             f"{r['total_s']:.2f}", _f(r.get("exhaustive_s")),
             "yes" if r.get("agree") else ("—" if "agree" not in r else "**no**")]
            for r in d["results"]]
    return _table(["tasks", "mode", "groups allowed", "candidate networks", "budget (networks)", "MILP (s)",
                   "HOA table + MILP (s)", "exhaustive (s)", "same optimum"], rows)


def _mean(curve: dict) -> float | None:
    vals = [v for v in curve.values() if v is not None]
    return sum(vals) / len(vals) if vals else None


def _regrets(partition: dict, overlap: dict, validated: dict | None = None, columns: int = 2) -> list[str]:
    """Mean regret cells: partition, overlap and (``columns=3``) overlap assigned on validation."""
    cells = [_f(_mean(partition), ".1f") + "%", _f(_mean(overlap), ".1f") + "%"]
    if columns == 3:
        cells.append("—" if validated is None else _f(_mean(validated), ".1f") + "%")
    return cells


def fidelity_heldout(d: dict) -> str:
    """The held-out protocol's table: choices on some seeds, scores on others (fidelity.py)."""
    o, p, checks = d["oracle"], d["protocol"], d["testbed_checks"]
    cols = 3 if "heldout_regret_overlap_validated" in o else 2  # results written before the validated column: two
    head = ["probe", "group rule", "runs", "examples vs oracle", "seconds vs oracle", "examples vs pairwise",
            "Spearman (ceiling)", "regret, partition", "regret, overlap"] + (["regret, overlap (assigned on val)"] if cols == 3 else [])
    rows = [["oracle (held-out seeds)", "measured groups", o["runs_choice_seeds"], "1.000", "1.000", "—",
             f"{o['split_half_reliability']:.2f} (split-half)"]
            + _regrets(o["heldout_regret"], o["heldout_regret_overlap"], o.get("heldout_regret_overlap_validated"), cols)]
    for name, r in d["probes"].items():
        if "error" in r:
            rows.append([name, "failed: " + r["error"][:80]] + [""] * (len(head) - 2))
            continue
        rows.append([name, r["rule"], r["runs"], f"{r['examples_vs_oracle']:.3f}", f"{r['seconds_vs_oracle']:.3f}",
                     _f(r.get("examples_vs_pairwise"), ".3f"), f"{r['spearman']:.2f} ({r['spearman_ceiling']:.2f})"]
                    + _regrets(r["regret_partition"], r["regret_overlap"], r.get("regret_overlap_validated"), cols))
    rows.append(["random groupings", "—", "—", "—", "—", "—", "—"] + _regrets(o["random_regret"], o["random_regret_overlap"], None, cols))
    verdict = ", ".join(f"{k} {_f(v['value'], '.2f')} ({v['need']}: {'pass' if v['pass'] else 'FAIL'})"
                        for k, v in checks.items() if k != "testbed")
    load = d.get("machine", {}).get("loadavg_start", ["?"])[0]
    return (f"Suite {d['suite']}, tasks {', '.join(d['tasks'])}: choices on seeds {p['choose_seeds']} (val), scores on "
            f"seeds {p['score_seeds']} (test), losses normalised by each task's single-task loss; regret is the mean "
            f"over budgets {p['budgets'][0]}..{p['budgets'][-1]} networks, in % above the best on the scoring seeds"
            + ("; 'assigned on val': the overlap choice's networks, each task served by the one with its lowest validation "
               "loss on the scoring seeds (overlap otherwise assigns by the estimate). " if cols == 3 else ". ")
            + f"Testbed checks: {verdict}; testbed: {'yes' if checks['testbed'] else 'no'}. "
            f"Oracle: {o['networks']} networks, {o['runs']} runs in all, {o['seconds_choice_seeds'] / 60:.0f} min of training on the "
            f"choice seeds (sum over runs); this invocation {d['wall_seconds'] / 60:.0f} min wall (finished runs come from the "
            f"store), load {load} on {d.get('machine', {}).get('cpus', '?')} cores.\n\n" + _table(head, rows))


def fidelity(d: dict) -> str:
    if "protocol" in d:
        return fidelity_heldout(d)
    budgets = [b for b in d["random_regret_pct"] if b != "1"]
    head = ["probe", "runs", "examples vs oracle", "seconds vs oracle", "Spearman vs oracle pairs"] + [f"regret @{b}" for b in budgets]
    rows = []
    for name, r in d["probes"].items():
        if "error" in r:
            rows.append([name, "failed: " + r["error"]] + [""] * (len(head) - 2))
            continue
        rows.append([name, r["runs"], f"{r['examples_vs_oracle']:.3f}", f"{r['seconds_vs_oracle']:.3f}", f"{r['spearman']:.2f}"]
                    + [_f(r["regret_pct"].get(b), ".1f") + "%" for b in budgets])
    rows.append(["random networks", "—", "—", "—", "—"] + [f"{d['random_regret_pct'][b]:.1f}%" for b in budgets])
    o = d["oracle"]
    return (f"Suite {d['suite']}, tasks {', '.join(d['tasks'])}; oracle: {o['networks']} networks x {o['seeds']} seeds "
            f"= {o['runs']} runs, {o['seconds']:.0f} s of training.\n\n" + _table(head, rows))


def study(d: dict) -> str:
    rows = [[r["layout"], r.get("groups", ""), f"{r['test_loss_mean']:.4f} ± {r['test_loss_std']:.4f}",
             f"{r['test_metric_mean']:.3f} ± {r['test_metric_std']:.3f}", int(r["n_seeds"]), int(r["n_parameters"])]
            for r in d["validation"] if r.get("test_loss_mean") is not None]
    return f"{d['answer']['verdict']}\n\n" + _table(["layout", "groups", "test loss per task", "test metric", "seeds", "parameters"], rows)


def studies_overview(summaries: list[dict], link: str | None = "studies/results") -> str:
    """One row per study: the recommendation and the measured test loss of it and the baselines."""
    rows = []
    for d in summaries:
        m = d["answer"]["measured"]
        val = {r["layout"]: r for r in d["validation"]}
        best = min(val.values(), key=lambda r: r["test_loss_mean"])["layout"] if val else "—"

        def cell(name, m=m):
            return f"{m[name]['test_loss']:.4f} ± {m[name]['std']:.4f}" if name in m else "—"

        groups = " \\| ".join("+".join(g) for g in d["answer"].get("groups") or [])
        name = f"[{d['study']}]({link}/{d['study']}/report.md)" if link else f"{d['study']} (`studies/results/{d['study']}/report.md`)"
        rows.append([name, len(d["tasks"]),
                     f"{d['seconds']['total'] / 60:.1f}", groups, cell("recommended"), cell("all-shared"),
                     cell("all-separate"), cell("random groupings"), best])
    return _table(["study", "tasks", "minutes (last run)", "recommended groups", "recommended", "all-shared", "all-separate",
                   "random, same sizes", "best layout measured"], rows)


def _interval(per_seed: list[float]) -> tuple[float, float, float] | None:
    """Mean of paired per-seed differences and its 95% t interval (None with fewer than 2)."""
    import math

    from scipy import stats

    n = len(per_seed)
    if n < 2:
        return None
    mean = sum(per_seed) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def capacity(d: dict) -> str:
    """A width study (capacity.py): the front with widths, then every validated layout's
    parameters and the recommendation's paired difference from it with its 95% interval."""
    front = [[_f(r["budget"], "g"), _f(r["cost"], ".3f"), _f(r["objective"], ".3f"), " \\| ".join(r["networks"] or [])]
             for r in d["front"]]
    unit = "parameters / width-1 all-shared" if d["capacity"]["cost"] == "params" else "networks"
    a = _table([f"budget ({unit})", "cost", "predicted total val loss", "networks (@width)"], front)
    rows = []
    for name, r in d["layouts"].items():
        if name == "recommended":
            ci, outcome = "—", "—"
        else:
            m = _interval(r["recommended_minus_this"]["per_seed"])
            ci = "—" if m is None else f"{m[0]:+.3f} [{m[1]:+.3f}, {m[2]:+.3f}]"
            outcome = "—" if m is None else ("recommended better" if m[2] < 0 else "this better" if m[1] > 0 else "cannot tell")
        groups = (r["layout"] or "").split(" | ")[0].removeprefix("stage0: ").replace(" ", " \\| ")
        rows.append([name, groups, r["n_parameters"], f"{r['mean_total_test_loss']:.3f}", ci, outcome])
    n = len(next(iter(d["layouts"].values()))["recommended_minus_this"]["per_seed"])
    b = _table(["layout", "groups (@width)", "parameters", "mean total test loss", f"recommended − this, 95% interval ({n} seeds)",
                "paired outcome"], rows)
    m = d["machine"]
    return (f"{d['what']}; {d['epochs']} epochs, budget {d['budget']:g}; {d['seconds'] / 60:.0f} min on {m['cpus']} cores "
            f"(load {m['load_at_start'][0]:.1f} at start). Networks without @ are at width 1.\n\n{a}\n\n{b}")


def fidelity_curves(d: dict) -> str:
    """The planted regime sweeps (fidelity_curves.py prints the same table with --table)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fidelity_curves import markdown

    return markdown(d)


def testbed_screen(d: dict) -> str:
    """Variants screened by testbed_screen.py: the checks' numbers on one or two seeds."""
    head = ["variant", "options", "runs", "reliability", "held-out regret %", "random regret %",
            "margin over all-separate", "margin over all-shared", "best grouping"]
    rows = []
    for name, v in d["variants"].items():
        opts = ", ".join(f"{k}={val}" for k, val in v["options"].items() if k != "tasks")
        rows.append([name, opts or "defaults", v["runs_trained_or_read"], _f(v["split_half_reliability"]),
                     _f(v["heldout_regret_mean"], ".1f"), _f(v["random_regret_mean"], ".1f"),
                     _f(v["margin_over_all_separate"]), _f(v["margin_over_all_shared"]),
                     " ".join("{" + ", ".join(g) + "}" for g in v["best_grouping"])])
    first = next(iter(d["variants"].values()), {})
    seeds = first.get("seeds", {})
    cfg = first.get("config")
    return (f"`{d['command']}`: suite {d['suite']}, choice seed(s) {seeds.get('choose')}, scoring seed(s) {seeds.get('score')}"
            + (", training regime " + ", ".join(f"{k} {cfg[k]}" for k in ("epochs", "batch_size", "lr", "patience")) if cfg else "") + ". Margins are in normalised-loss units (a task alone scores 1), "
            "positive when the best grouping is better.\n\n" + _table(head, rows))


def tracker(d: dict) -> str:
    """AffinityTracker overhead (tracker.py): step time with the tracker on, relative to off."""
    rows = [[r["model"], r["tasks"], _f(r["plain_step_ms"], ".1f"), f"{r['ratio_cosine_every10']:.2f}x",
             f"{r['ratio_lookahead_every10']:.2f}x", r["goal_lookahead_every10"], "yes" if r["same_final_parameters"] else "**no**"]
            for r in d["results"]]
    load = d.get("loadavg_before", [None])[0]
    return (f"`{d['command']}` ({d['threads']} thread, load average {_f(load, '.1f')} at start on {d['cpu_count']} cores).\n\n"
            + _table(["model", "tasks", "plain step (ms)", "cosine every 10 steps", "+ lookahead every 10 steps",
                      "goal", "same final parameters"], rows))


def aggregator(d: dict) -> str:
    """Conflict-aware aggregation (aggregator.py): seconds per step and test loss, mean over seeds."""
    rows = [[*name.split(" ", 1), _f(v["seconds_per_step"], ".3f"), _f(v["test_loss_total"], ".3f")]
            for name, v in d["summary"].items()]
    seeds = len({r["seed"] for r in d["rows"]})
    load = (d.get("loadavg_before") or [None])[0]
    return (f"All-shared networks, mean over {seeds} seeds; {d.get('note', '')} (load average {_f(load, '.1f')} at start).\n\n"
            + _table(["suite", "aggregator", "seconds per step", "total test loss"], rows))


def concurrency(d: dict) -> str:
    """Two processes given one plan on one store (concurrency.py)."""
    two = d["two_processes"]
    return (f"`{d['command'].strip()}`: two processes given the same {d['plan_runs']}-run plan on one store trained "
            f"{' and '.join(map(str, two['trained_each']))} runs, {two['duplicated']} trained twice, and each ended with "
            f"{' and '.join(map(str, two['records_each']))} records (load average {d['machine']['loadavg_before'][0]:.1f} at start).")


def first_run(d: dict) -> str:
    """The default study from an empty store (first_run.py)."""
    g, m = d["goal"], d["machine"]
    judged = ("**met**" if g["met"] else "**not met**") if g["met"] is not None else \
        f"not judged: the machine was not quiet ({g['note']})"
    return (f"`python benchmarks/first_run.py`: `{d['command']}` ({d['study']}, {len(d['tasks'])} tasks) trained "
            f"{d['runs_trained']} runs in {d['wall_seconds']:.0f} s of wall time and {d['cpu_seconds']:.0f} s of CPU time, "
            f"load average {m['load_before'][0]:.1f} at start and {m['load_after'][0]:.1f} at the end on {m['cpus']} cores. "
            f"Decision: {d['verdict']}\n\nGoal, at most {g['wall_seconds_at_most']:.0f} s on two quiet cores: {judged}.")


def scale(d: dict) -> str:
    """Whole studies on planted-many at several sizes (scale.py)."""
    rows = []
    for r in d["rows"]:
        if "error" in r:
            rows.append([r["n_tasks"], _f(r["wall_seconds"], ".0f"), "failed", "", "", "", "", "", "", "", "", "", ""])
            continue
        p = r.get("paired", {})

        def cell(name: str, p: dict = p) -> str:
            x = p.get(name)
            return "" if x is None else f"{x['mean']:+.3f} [{x['interval'][0]:+.3f}, {x['interval'][1]:+.3f}]"

        rnd = next((k for k in sorted(p) if k.startswith("random")), None)
        rows.append([r["n_tasks"], _f(r["wall_seconds"], ".0f"), r["runs"], r["pair_runs_avoided"], _f(r["peak_mb"], ".0f"),
                     _f(r.get("ari"), ".2f"), " / ".join(f"{a:.2f}" for a in (r.get("per_seed") or {}).get("ari", [])),
                     "yes" if r.get("harmful_apart") else "no", cell("all-shared"),
                     cell(rnd) if rnd else "", cell("planted"), (r.get("decision") or {}).get("decision", ""),
                     f"{r['load']['before'][0]:.1f}"])
    head = ["tasks", "wall s", "runs", "pair runs (one seed)", "peak MB", "ARI", "ARI per probe seed", "harmful apart",
            "vs all-shared", "vs random", "vs planted", "decision", "load"]
    return (f"`python benchmarks/scale.py --json benchmarks/results/scale.json` on `{d['study']}` ({d['n_jobs']} jobs, "
            f"{d['cores']} cores): each study from an empty store to its report. The paired columns are the recommendation "
            "minus each layout in test loss normalised by all-separate's, mean over seeds and 95% interval (negative: the "
            "recommendation is better). ARI per probe seed: each seed's affinity clustered alone (for the prediction probe, "
            "each seed is a bootstrap sample of every task's labels; the study clusters the full-sample affinity)." + (f" {d['note']}" if d.get("note") else "") + "\n\n" + _table(head, rows))


def prediction_route(d: dict) -> str:
    """The prediction probe's clusters on draws of planted-many (prediction_route.py)."""
    sizes = sorted({r["n"] for r in d["rows"]})
    settings = list(dict.fromkeys(r["setting"] for r in d["rows"]))
    rows = []
    for n in sizes:
        cells = []
        for s in settings:
            got = [r for r in d["rows"] if r["n"] == n and r["setting"] == s and r["role"] == "choose"]
            cells.append(" / ".join(f"{r['ari']:.2f}" for r in got))
        rep = next((r for r in d["rows"] if r["n"] == n and r["role"] == "report"), None)
        chosen = [r for r in d["rows"] if r["n"] == n and r["setting"] == settings[0] and r["role"] == "choose"]
        cells.append(f"{sum(r['harmful_apart'] for r in chosen)} of {len(chosen)}")
        rows.append([n, *cells, "" if rep is None else f"{rep['ari']:.2f} ({'yes' if rep['harmful_apart'] else 'no'})",
                     "" if rep is None else _f(rep["seconds"], ".1f")])
    head = ["tasks", *[f"ARI, {s} (draws {'/'.join(str(r['data_seed']) for r in d['rows'] if r['n'] == sizes[0] and r['setting'] == s and r['role'] == 'choose')})" for s in settings],
            f"harmful apart, {settings[0]}", "ARI on the study's draw (harmful apart)", "probe seconds"]
    return (f"`{d['command'].strip()}`: the prediction probe's affinity clustered as a study does (hierarchical, k by "
            "silhouette) and scored against the planted clusters; its setting chosen on the draws in the middle columns, "
            f"then scored once on the study's draw (load average {d['load'][0]:.1f}).\n\n" + _table(head, rows))


def bayesnet_probes(d: dict) -> str:
    """Cheap probes against a Bayesian network's structure (bayesnet_probes.py)."""
    rows = [[r["network"], r["tasks"], r["probe"], r["runs"], _f(r["seconds"], ".1f"), r["near_pairs"], _f(r["auc_near"], ".3f"),
             _f(r["spearman_distance"], ".3f"), " / ".join(f"{v:+.3f}" for v in r["mean_by_distance"].values())]
            for r in d["rows"]]
    return (f"`{d['command'].strip()}`: on the `bayesnet` suite, how well each probe's affinity ranks the pairs of "
            "tasks near in the network (graph distance 1 or 2) above the others (ROC AUC), its Spearman correlation "
            "with minus the distance, and its mean at distances 1, 2, 3, ...; structure, not whether sharing helps "
            f"(load average {d['load'][0]:.1f}).\n\n"
            + _table(["network", "tasks", "probe", "runs", "seconds", "near pairs", "AUC near", "Spearman", "mean by distance"], rows))


def clustering_scale(d: dict) -> str:
    """Automatic k on planted affinities at many tasks (clustering_scale.py)."""
    rows = [[r["n_tasks"], r["planted_clusters"], r["method"], r["clusters"], _f(r["ari"], ".2f"), _f(r["seconds"], ".2f")]
            for r in d["rows"]]
    return ("`python benchmarks/clustering_scale.py`: clusters of 4 to 8 tasks with noisy symmetric affinities; "
            "`dense-eigengap` is the spectral rule taskrel used before, kept for comparison.\n\n"
            + _table(["tasks", "planted clusters", "method", "clusters found", "ARI", "seconds"], rows))


RENDER = {"scale": scale, "prediction_route": prediction_route, "bayesnet_probes": bayesnet_probes, "clustering_scale": clustering_scale, "first_run": first_run, "gradient_probe": gradient, "cka": cka, "grouping": grouping, "throughput": throughput, "capacity": capacity,
          "tracker": tracker, "aggregator": aggregator, "concurrency": concurrency}


def renderer(stem: str):
    """The function that renders ``benchmarks/results/<stem>.json``, or None."""
    if stem.startswith("fidelity_curves"):
        return fidelity_curves
    if stem.startswith("testbed_screen"):
        return testbed_screen
    if stem.startswith("fidelity"):
        return fidelity
    return RENDER.get(stem)


# The docs pages: page -> (title, what the page is about, the result files it renders in order).
# The prose here carries no number: every number on a page comes from a committed JSON file.
PAGES = {
    "fidelity.md": ("Fidelity of cheap probes",
                    "Do cheap probes find the groupings an oracle finds? Each benchmark trains every subset of a small "
                    "suite (the oracle), chooses groupings on some seeds and scores them on others; regret is the loss "
                    "above the best grouping, in percent.",
                    ["fidelity_qm9-scarce", "fidelity_qm9-scarce-s4", "fidelity_qm9-scarce-nodesc", "fidelity_mnist-scarce",
                     "fidelity_curves_planted", "testbed_screen_qm9-scarce", "testbed_screen_mnist-scarce",
                     "testbed_screen_mnist-scarce-long", "fidelity_digits"]),
    "scale.md": ("Many tasks",
                 "Studies at 12 to 192 tasks on planted-many, whose truth is known, from an empty store to the report; "
                 "the prediction probe's clusters on several draws and sizes, and cheap probes against a Bayesian "
                 "network's structure; "
                 "and automatic k for clustering at up to 611 tasks. See the user guide's many-tasks page for the route "
                 "a study takes at scale.",
                 ["scale", "prediction_route", "bayesnet_probes", "clustering_scale"]),
    "capacity.md": ("Width studies",
                    "Groups and encoder widths chosen together under a parameter budget, then checked against "
                    "all-shared and all-separate at the recommendation's parameter count (see the user guide's "
                    "width studies page).",
                    ["capacity"]),
    "performance.md": ("Speed and overhead",
                       "The default study's first run, throughput of the runner, the cost of the gradient probe and the tracker, conflict-aware "
                       "aggregation, CKA against plain NumPy, the grouping search against Standley et al.'s published "
                       "selections, and the run store shared by two processes. Most were measured on a shared 2-core "
                       "machine: each file records its load, and timings are ratios measured side by side.",
                       ["first_run", "throughput", "gradient_probe", "tracker", "aggregator", "cka", "grouping", "concurrency"]),
}


def docs_pages(results: Path, studies: Path) -> dict[str, str]:
    """Every results page of the docs site, as Markdown, from the committed JSON."""
    pages = {}
    for page, (title, about, stems) in PAGES.items():
        parts = [f"# {title}\n\n{about}\n\nRendered by `python benchmarks/tables.py --docs docs/results` from "
                 "`benchmarks/results/`; rerun a benchmark with the command shown to reproduce its table."]
        for stem in stems:
            path = results / f"{stem}.json"
            fn = renderer(stem)
            if path.exists() and fn is not None:
                parts.append(f"## {stem}\n\nFrom `benchmarks/results/{path.name}`.\n\n{fn(json.loads(path.read_text()))}")
        pages[page] = "\n\n".join(parts) + "\n"
    summaries = [json.loads(p.read_text()) for p in sorted(studies.glob("*/summary.json"))]
    parts = ["# What the studies found\n\n`taskrel study studies/<name>.toml` (the `digits-default` row is `taskrel study`). "
             "Each study picks groups on validation losses; every layout is then trained on the seeds of its "
             "`[validation]` table and scored on the held-out test split. Values are test loss per task, mean ± std "
             "over seeds. Rendered by `python benchmarks/tables.py --docs docs/results` from "
             "`studies/results/*/summary.json`.",
             studies_overview(summaries, link=None)]
    for d in summaries:
        a = d["answer"]
        parts.append(f"## {d['study']} (suite {d['suite']})\n\nConfidence {a['confidence']}: {a['confidence_why']}.\n\n{study(d)}")
    pages["studies.md"] = "\n\n".join(parts) + "\n"
    return pages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--studies", default=str(ROOT / "studies" / "results"))
    ap.add_argument("--docs", default=None, metavar="DIR", help="write the docs site's results pages into DIR "
                    "(docs/results) instead of printing")
    a = ap.parse_args()
    if a.docs:
        out = Path(a.docs)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in docs_pages(Path(a.results), Path(a.studies)).items():
            (out / name).write_text(text, encoding="utf-8")
            print(out / name)
        return
    for path in sorted(Path(a.results).glob("*.json")):
        d = json.loads(path.read_text())
        fn = renderer(path.stem)
        if fn is not None:
            print(f"### {path.stem} (`{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`)\n\n{fn(d)}\n")
    summaries = [json.loads(p.read_text()) for p in sorted(Path(a.studies).glob("*/summary.json"))]
    if summaries:
        print(f"### studies (test loss per task, mean ± std over seeds)\n\n{studies_overview(summaries)}\n")
    for d in summaries:
        print(f"### study {d['study']} (suite {d['suite']})\n\n{study(d)}\n")


if __name__ == "__main__":
    main()
