"""Which group-value estimator chooses good groupings from singles, pairs and a few larger groups?

The issue's held-out protocol, on tables that can be built here (the 27-task clinical table is
held out and never seen): measure every single task, every pair and ``--larger`` (200)
groups of three or more drawn at random from the table's larger groups; fit each estimator;
predict every group of the table; choose the best partition of the tasks (exact MILP over the
table's groups) on those predictions; score it on held-out measurements (other seeds, or the
test split). Regret is in points of mean gain over the held-out optimum, where a task's gain is
its relative improvement over its single-task value, in percent.

Tables:

* **semi-synthetic** (``--draws`` draws of ``--tasks`` tasks): clusters of 3 to 6 related tasks,
  unrelated and harmful tasks, pair effects summed with diminishing returns in group size
  (``sum / mates**p``, ``p`` drawn per task between 0.2 and 1), a capacity cost past a
  group size, sparse interactions of two mates on a target, seed noise; its table lists every
  single and pair and 2,800 larger groups (half random, half built around the clusters), like
  the held-out table's 3,185 groups. Choice data: the mean of 2 seeds; held-out: 3 other seeds.
* **standley** (real, measured): Standley et al.'s released Taskonomy tables (5 tasks, 31
  networks, 4 settings): choose on validation losses, score on test losses; 6 of the 16 larger
  groups measured, 10 seeded draws.

Estimators: ``exact`` (every group of the table measured on the choice seeds), ``hoa`` (mean
of pair gains), ``random`` (a random partition into groups of the table, no budget), and
:class:`~taskrel.tables.SubsetSurrogate` with ``effects`` ``mean`` and ``sum`` (alpha 1e-3, the
issue's settings), ``both`` (the default: sum and mean nested, the penalty per task by
leave-one-group-out error), ``auto`` (form and penalty per task by that error),
``auto-pooled`` (one form for all tasks), ``both+kernel`` (RBF kernel ridge on the default's
residuals, Li et al. 2026's kernel surrogate, width and penalty by leave-one-out error) and
``both+active`` (the default from 100 random larger groups, then 4 x 25 the table's larger
groups the model is least sure of). ``cheap`` / ``cheap+corrected``: a simulated
biased estimate of every group, alone and corrected by
:class:`~taskrel.tables.combined.CorrectedModel` from 177 measured groups. With
``--gradfeature``, groups/second of the batched gradient-feature estimate against group by group.

Usage: ``nice -n 10 python benchmarks/group_values.py [--draws 10] [--gradfeature] [--quick]
[--out FILE]``; ``--pricing`` times exact pricing only; ``--table FILE`` prints the docs table
of a result. Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp

from taskrel.tables import CandidateTable, SubsetSurrogate

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
SURROGATES = {"mean": dict(effects="mean", alpha=1e-3), "sum": dict(effects="sum", alpha=1e-3),
              "both": dict(effects="both", alpha="auto"),  # the default
              "auto": dict(effects="auto", alpha="auto"), "auto-pooled": dict(effects="auto", alpha="auto", choose="pooled")}


# ---------------------------------------------------------------------- choice and scoring
def best_partition(members: np.ndarray, gains: np.ndarray, budget: int | None = None) -> np.ndarray:
    """Rows of ``members`` forming the partition with the largest total gain (exact MILP)."""
    value = np.nansum(np.where(members, gains, 0.0), axis=1)
    A = [members.T.astype(float)]
    lo, hi = [np.ones(members.shape[1])], [np.ones(members.shape[1])]
    if budget is not None:
        A.append(np.ones((1, len(members))))
        lo.append([1.0])
        hi.append([float(budget)])
    res = milp(-value, constraints=LinearConstraint(np.vstack(A), np.concatenate(lo), np.concatenate(hi)),
               integrality=np.ones(len(members)), bounds=Bounds(0, 1), options={"time_limit": 60})
    return np.nonzero(res.x > 0.5)[0]


def mean_gain(members, gains, rows) -> float:
    return float(np.nansum(np.where(members[rows], gains[rows], 0.0)) / members.shape[1])


def to_gain(losses: np.ndarray, single: np.ndarray) -> np.ndarray:
    return 100.0 * (single[None, :] - losses) / np.abs(single[None, :])


def regrets(members, predicted_gain, score_gain, budgets) -> list[float]:
    out = []
    for b in budgets:
        best = mean_gain(members, score_gain, best_partition(members, score_gain, b))
        out.append(best - mean_gain(members, score_gain, best_partition(members, predicted_gain, b)))
    return out


def random_regret(members, score_gain, budgets, rng, tries: int = 200) -> list[float]:
    """Mean regret of random partitions built from the table's groups (greedy random cover,
    no budget: ``budgets`` should be ``(None,)``)."""
    out = []
    for b in budgets:
        best = mean_gain(members, score_gain, best_partition(members, score_gain, b))
        vals = []
        for _ in range(tries):
            free, rows = np.ones(members.shape[1], bool), []
            for r in rng.permutation(len(members)):
                if not (members[r] & ~free).any():
                    rows.append(r)
                    free &= ~members[r]
                if not free.any():
                    break
            vals.append(best - mean_gain(members, score_gain, np.array(rows)))
        out.append(float(np.mean(vals)) if vals else float("nan"))
    return out


# ---------------------------------------------------------------------- estimators
def table(tasks, members, values) -> CandidateTable:
    return CandidateTable.from_arrays(tasks, members, np.ones(len(members)), np.where(members, values, np.nan),
                                      higher_is_better=False, check_duplicates=False)


def predict_gains(name, tasks, members, choice, measured_rows, single):
    """Predicted gains of every row of ``members`` by estimator ``name``."""
    if name == "exact":
        return to_gain(choice, single)
    if name == "hoa":
        n = len(tasks)
        pair = np.zeros((n, n))
        for r in np.nonzero(members.sum(1) == 2)[0]:
            a, b = np.nonzero(members[r])[0]
            pair[a, b], pair[b, a] = to_gain(choice[r : r + 1], single)[0, [b, a]]
        m = members.astype(float)
        mates = np.maximum(m.sum(1, keepdims=True) - 1, 1)
        return np.where(members, (m @ pair) / mates, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sur = SubsetSurrogate(**SURROGATES[name.replace("+kernel", "")]).fit(
            table(tasks, members[measured_rows], choice[measured_rows]))
        loss, _ = sur.predict_members(members)
    if name.endswith("+kernel"):
        loss = loss + kernel_residual(members, choice, measured_rows, loss)
    return to_gain(loss, single)


def active_gains(tasks, members, choice, base_rows, single, rounds: int = 4, step: int = 25):
    """The default surrogate (``both``) from singles, pairs and 100 random larger groups, then ``rounds``
    times the ``step`` larger groups of the table it is least sure of (the same 200 in all)."""
    from taskrel.tables.active import most_uncertain

    rows = np.asarray(base_rows)
    larger = np.nonzero(members.sum(1) >= 3)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(rounds + 1):
            sur = SubsetSurrogate(**SURROGATES["both"]).fit(table(tasks, members[rows], choice[rows]))
            if len(rows) >= len(base_rows) + rounds * step:
                break
            pick = most_uncertain(sur.group_model(), members[larger], step, measured=members[rows])
            rows = np.concatenate([rows, larger[pick]])
        loss, _ = sur.predict_members(members)
    return to_gain(loss, single)


def kernel_residual(members, choice, rows, fitted) -> np.ndarray:
    """Kernel ridge (RBF on the mates' membership, Li et al. 2026's kernel surrogate) on the
    surrogate's residuals, per target; kernel width and penalty by leave-one-out error."""
    out = np.zeros(members.shape)
    for j in range(members.shape[1]):
        tr = rows[members[rows, j]]
        X, Xall = np.delete(members[tr], j, 1).astype(float), np.delete(members, j, 1).astype(float)
        r = choice[tr, j] - fitted[tr, j]
        D = X.sum(1)[:, None] + X.sum(1)[None, :] - 2 * X @ X.T
        best = (np.inf, None)
        for gamma in (0.05, 0.2, 0.5):
            K = np.exp(-gamma * D)
            for lam in (0.1, 1.0, 10.0):
                H = K @ np.linalg.inv(K + lam * np.eye(len(K)))
                loo = (r - H @ r) / np.maximum(1 - np.diag(H), 1e-6)
                if np.mean(loo**2) < best[0]:
                    best = (float(np.mean(loo**2)), (gamma, np.linalg.solve(K + lam * np.eye(len(K)), r)))
        if np.mean(loo**2) >= np.mean(r**2) and best[0] >= np.mean(r**2):
            continue  # the kernel does not beat no correction out of sample
        gamma, coef = best[1]
        hold = members[:, j]
        Dall = Xall[hold].sum(1)[:, None] + X.sum(1)[None, :] - 2 * Xall[hold] @ X.T
        out[hold, j] = np.exp(-gamma * Dall) @ coef
    return out


# ---------------------------------------------------------------------- semi-synthetic tables
def world(n: int, rng: np.random.Generator) -> dict:
    """A semi-synthetic truth; its regime (noise, interactions, returns in size) drawn broadly."""
    n_harm = int(rng.integers(1, 3))
    labels, c = [], 0
    while len(labels) < n - n_harm - 2:
        labels += [c] * int(rng.integers(3, 7))
        c += 1
    labels = np.array(labels[: n - n_harm - 2] + [-1, -2] + [-3] * n_harm)  # -1, -2 unrelated; -3 harmful
    strength = rng.uniform(2, 8, c)
    same = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    between = rng.uniform(-1.5, 2.0)
    pair = np.where(same, rng.normal(strength[np.maximum(labels, 0)][None, :], 2.0, (n, n)), rng.normal(between, 1.5, (n, n)))
    pair[labels == -3] = rng.normal(-6.0, 2.0, ((labels == -3).sum(), n))
    np.fill_diagonal(pair, 0.0)
    density, scale = rng.uniform(0.0, 0.15), rng.uniform(0.5, 4.0)
    inter = np.where(rng.random((n, n, n)) < density, rng.normal(0, scale, (n, n, n)), 0.0)
    inter = (inter + inter.transpose(1, 0, 2)) / 2
    crowd = rng.uniform(0.0, 1.0, n) * rng.uniform(0.0, 3.0)
    return {"labels": labels, "single": rng.uniform(0.5, 2.0, n), "pair": pair, "inter": inter,
            "power": rng.uniform(0.0, 1.2, n), "cap": rng.integers(3, 10, n), "cap_cost": rng.uniform(0.0, 2.0, n),
            "crowd": crowd, "crowd_power": rng.uniform(0.5, 1.5),
            "noise": rng.uniform(0.3, 1.0, n) * rng.uniform(1.0, 4.0),
            "regime": {"between": round(float(between), 2), "crowding": round(float(crowd.mean()), 2), "interaction_density": round(float(density), 3),
                       "interaction_sd": round(float(scale), 2)}}


def true_gains(w: dict, members: np.ndarray) -> np.ndarray:
    m = members.astype(float)
    mates = m.sum(1, keepdims=True) - 1
    summed = m @ w["pair"] + 0.5 * np.einsum("gs,gu,sut->gt", m, m, w["inter"])
    gain = summed / np.maximum(mates, 1) ** w["power"][None, :]
    gain -= w["cap_cost"][None, :] * np.maximum(mates + 1 - w["cap"][None, :], 0)
    gain -= w["crowd"][None, :] * mates ** w["crowd_power"]  # every mate takes capacity, whoever it is
    return np.where(members, gain, np.nan)


def synthetic_table(w: dict, rng, n_larger: int = 2800) -> np.ndarray:
    n = len(w["labels"])
    rows = {tuple([i]) for i in range(n)} | set(combinations(range(n), 2))
    clusters = [np.nonzero(w["labels"] == c)[0] for c in range(max(w["labels"].max() + 1, 1))]
    while len(rows) < n + n * (n - 1) // 2 + n_larger:
        if rng.random() < 0.5:
            g = rng.choice(n, int(rng.integers(3, 11)), replace=False)
        else:
            base = clusters[int(rng.integers(len(clusters)))]
            keep = base[rng.random(len(base)) < 0.8]
            g = np.union1d(keep, rng.choice(n, int(rng.integers(0, 3)), replace=False))
        if len(g) >= 3:
            rows.add(tuple(sorted(int(i) for i in g)))
    members = np.zeros((len(rows), n), dtype=bool)
    for r, g in enumerate(sorted(rows, key=lambda g: (len(g), g))):
        members[r, list(g)] = True
    return members


def noisy_losses(w, members, gains, seeds, rng) -> np.ndarray:
    noise = rng.normal(0, 1, members.shape) * w["noise"][None, :] / np.sqrt(seeds)
    return np.where(members, w["single"][None, :] * (1 - (gains + noise) / 100), np.nan)


def synthetic_draw(n, seed, n_larger, estimators, budgets) -> dict:
    rng = np.random.default_rng(seed)
    w = world(n, rng)
    members = synthetic_table(w, rng)
    truth = true_gains(w, members)
    choice, held = noisy_losses(w, members, truth, 2, rng), noisy_losses(w, members, truth, 3, rng)
    singles = members.sum(1) == 1
    single_choice = np.nanmean(np.where(members[singles], choice[singles], np.nan), axis=0)
    single_held = np.nanmean(np.where(members[singles], held[singles], np.nan), axis=0)
    score = to_gain(held, single_held)
    larger = np.nonzero(members.sum(1) >= 3)[0]
    measured = np.concatenate([np.nonzero(members.sum(1) <= 2)[0], rng.choice(larger, min(n_larger, len(larger)), replace=False)])
    tasks = [f"t{i}" for i in range(n)]
    out = {"groups": int(len(members)), "measured": int(len(measured)), "regime": w["regime"]}
    for name in [e for e in estimators if e != "both+active"]:
        t0 = time.perf_counter()
        pred = predict_gains(name, tasks, members, choice, measured, single_choice)
        out[name] = {"regret": regrets(members, pred, score, budgets), "seconds": round(time.perf_counter() - t0, 2)}
    if "both+active" in estimators:
        half = np.concatenate([np.nonzero(members.sum(1) <= 2)[0], measured[-n_larger:][: n_larger // 2]])
        t0 = time.perf_counter()
        pred = active_gains(tasks, members, choice, half, single_choice, step=max(n_larger // 8, 1))
        out["both+active"] = {"regret": regrets(members, pred, score, budgets), "seconds": round(time.perf_counter() - t0, 2)}
    out["random"] = {"regret": random_regret(members, score, (None,), rng), "note": "no budget only"}
    out.update(corrected_cheap(w, tasks, members, truth, choice, single_choice, score, budgets, rng))
    return out


def corrected_cheap(w, tasks, members, truth, choice, single, score, budgets, rng) -> dict:
    """A cheap estimate for every group (biased: shrunk gains, summed errors per pair that on
    average flatter larger groups, a fixed error per group), alone and corrected by a few measured groups (singles, 50 pairs and
    50 larger groups) with :class:`~taskrel.tables.combined.CorrectedModel`."""
    from taskrel.tables.combined import CorrectedModel
    from taskrel.tables.group_values import GroupValues

    n = len(tasks)
    bias = rng.normal(0.3, 1.0, (n, n))  # errors per pair, on average flattering larger groups
    np.fill_diagonal(bias, 0.0)
    wrong = 0.6 * truth + members.astype(float) @ bias + rng.normal(0, 1.0, truth.shape)
    cheap_loss = np.where(members, w["single"][None, :] * (1 - wrong / 100), np.nan)
    index = {row.tobytes(): r for r, row in enumerate(members)}

    def predict(m):
        rows = [index[row.tobytes()] for row in np.asarray(m, dtype=bool)]
        return cheap_loss[rows], np.where(m, 0.0, np.nan)

    gv = GroupValues(tasks, False, predict, estimator="simulated cheap estimate")
    size = members.sum(1)
    rows = np.concatenate([np.nonzero(size == 1)[0], rng.choice(np.nonzero(size == 2)[0], 50, replace=False),
                           rng.choice(np.nonzero(size >= 3)[0], 50, replace=False)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CorrectedModel(gv).fit(table(tasks, members[rows], choice[rows]))
        fixed, _ = model.predict_members(members)
    return {"cheap": {"regret": regrets(members, to_gain(cheap_loss, single), score, budgets)},
            "cheap+corrected": {"regret": regrets(members, to_gain(fixed, single), score, budgets),
                                "measured": int(len(rows))}}


# ---------------------------------------------------------------------- Standley et al. (real)
def standley_draws(draws: int, n_larger: int, estimators) -> dict:
    frame = pd.read_csv(DATA / "standley2020_network_selection.csv", comment="#")
    out = {}
    for setting in (1, 2, 3, 4):
        part = frame[(frame["setting"] == setting) & (frame["width"] == 1)]
        val = CandidateTable.from_frame(part[part["split"] == "val"].drop(columns=["setting", "split"]).reset_index(drop=True))
        test = CandidateTable.from_frame(part[part["split"] == "test"].drop(columns=["setting", "split"]).reset_index(drop=True))
        order = [val.names.index(nm) for nm in test.names]
        members, choice, held = test.members, val.values[order], test.values
        singles = members.sum(1) == 1
        single_choice = np.nanmean(np.where(members[singles], choice[singles], np.nan), axis=0)
        score = to_gain(held, np.nanmean(np.where(members[singles], held[singles], np.nan), axis=0))
        larger = np.nonzero(members.sum(1) >= 3)[0]
        rows = {name: [] for name in estimators}
        for d in range(draws):
            rng = np.random.default_rng(d)
            measured = np.concatenate([np.nonzero(members.sum(1) <= 2)[0], rng.choice(larger, n_larger, replace=False)])
            for name in estimators:
                pred = predict_gains(name, list(test.tasks), members, choice, measured, single_choice)
                rows[name].append(float(np.mean(regrets(members, pred, score, (None, 2, 3)))))
        out[f"setting{setting}"] = {name: round(float(np.mean(v)), 3) for name, v in rows.items()}
    return out


def throughput(n_tasks: int, dim: int = 128, n_examples: int = 512, quick: bool = False) -> dict:
    """Groups per second of the gradient-feature estimate, batched and group by group.

    The feature model is built from random features of the probe's default size (``dim``
    128, 512 examples per split, regression tasks): the arithmetic of an estimate does not
    depend on the values. One torch thread.
    """
    import torch

    from taskrel.probes.gradfeature import FeatureModel, TaskFeatures
    from taskrel.probes.linearised import predict_losses
    from taskrel.suite import Task

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(n_tasks)
    tasks = [Task(f"t{i}", "regression") for i in range(n_tasks)]

    def feats():
        return {t.name: TaskFeatures(torch.randn(n_examples, 1, dim, generator=gen, dtype=torch.float64) / dim**0.5,
                                     torch.randn(n_examples, 1, generator=gen, dtype=torch.float64),
                                     torch.randn(n_examples, generator=gen, dtype=torch.float64), n_examples) for t in tasks}

    fm = FeatureModel(tasks, feats(), feats(), ridge=1.0, newton_steps=1)
    rng = np.random.default_rng(0)
    m = 200 if quick else 2000
    members = np.zeros((m, n_tasks), dtype=bool)
    for r in range(m):
        members[r, rng.choice(n_tasks, int(rng.integers(2, 9)), replace=False)] = True
    t0 = time.perf_counter()
    batched = predict_losses(fm, members)
    t_batch = time.perf_counter() - t0
    k = 50 if quick else 200
    t0 = time.perf_counter()
    for row in members[:k]:
        fm.losses([f"t{i}" for i in np.nonzero(row)[0]])
    t_loop = (time.perf_counter() - t0) / k
    return {"n_tasks": n_tasks, "dim": dim, "examples": n_examples, "groups": m, "sizes": "2 to 8",
            "groups_per_second_batched": round(m / t_batch, 1), "groups_per_second_one_by_one": round(1 / t_loop, 1),
            "speedup": round(t_loop * m / t_batch, 2), "finite": bool(np.isfinite(batched[members]).all())}


def summarise(draws: list[dict], names) -> dict:
    out = {}
    for name in names:
        per = np.array([np.mean(d[name]["regret"]) for d in draws])
        se = float(per.std(ddof=1) / np.sqrt(len(per))) if len(per) > 1 else float("nan")
        out[name] = {"regret_mean": round(float(per.mean()), 3), "regret_se": round(se, 3),
                     "interval95": [round(float(per.mean() - 1.96 * se), 3), round(float(per.mean() + 1.96 * se), 3)],
                     "per_draw": [round(float(x), 3) for x in per]}
    return out


def pricing_times(n: int = 27, time_limit: float = 5.0) -> list[dict]:
    """Seconds of one exact-pricing call of the default surrogate (fitted on one semi-synthetic
    draw's singles, pairs and 200 larger groups) by largest group size, and whether it proved
    optimality within ``time_limit``."""
    rng = np.random.default_rng(0)
    w = world(n, rng)
    members = synthetic_table(w, rng)
    choice = noisy_losses(w, members, true_gains(w, members), 2, rng)
    small = np.nonzero(members.sum(1) <= 2)[0]
    rows = np.r_[small, rng.choice(np.nonzero(members.sum(1) >= 3)[0], 200, replace=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sur = SubsetSurrogate().fit(table([f"t{i}" for i in range(n)], members[rows], choice[rows]))
    weights = 1.1 * np.abs(np.nanmean(np.where(members[small], choice[small], np.nan), axis=0))
    out = []
    for max_size in (3, 4, 6, 10):
        gm = sur.group_model(time_limit=time_limit)
        t0 = time.perf_counter()
        gm.price(weights, np.r_[0.0, np.full(n, -0.05)], max_size, 5)
        out.append({"tasks": n, "max_size": max_size, "seconds": round(time.perf_counter() - t0, 2),
                    "proven": gm.price_exact, "time_limit": time_limit})
    return out


def markdown(res: dict) -> str:
    """The docs table (docs/group-values.md) from a result of this benchmark."""
    syn, std = res["synthetic"]["estimators"], res["standley"]
    names = {"exact": "exact choice on every group of the table", "hoa": "HOA from the pairs",
             "mean": "surrogate, effects='mean' (old default)", "sum": "surrogate, effects='sum'",
             "both": "**surrogate, default (effects='both')**", "auto": "surrogate, effects='auto'",
             "auto-pooled": "surrogate, effects='auto', choose='pooled'",
             "both+kernel": "default (both) + RBF kernel ridge on its residuals",
             "both+active": "default (both), half the larger groups chosen where it is least sure",
             "random": "random groupings (no budget)",
             "cheap": "simulated cheap estimate alone", "cheap+corrected": "cheap + CorrectedModel (177 groups)"}
    n = res["protocol"]["tasks"]
    lines = [f"| estimator | semi-synthetic, {n} tasks: regret (95% interval) | Standley settings 1-4 |",
             "| --- | --- | --- |"]
    for key, label in names.items():
        if key not in syn:
            continue
        r = syn[key]
        real = " / ".join(f"{std[s][key]:.2f}" for s in sorted(std) if key in std[s]) or "-"
        lines.append(f"| {label} | {r['regret_mean']:.2f} ({r['interval95'][0]:.2f} to {r['interval95'][1]:.2f}) | {real} |")
    lines += ["", "Paired over the same draws (regret of the first minus the second; 95% interval):", ""]
    for a, b in (("both", "auto"), ("both", "mean"), ("both", "sum"), ("both", "hoa"), ("both", "exact"),
                 ("both+active", "both"), ("both+kernel", "both"), ("cheap+corrected", "cheap")):
        if a in syn and b in syn:
            d = np.array(syn[a]["per_draw"]) - np.array(syn[b]["per_draw"])
            se = d.std(ddof=1) / np.sqrt(len(d))
            lines.append(f"- {a} - {b}: {d.mean():+.2f} ({d.mean() - 1.96 * se:+.2f} to {d.mean() + 1.96 * se:+.2f}),"
                         f" first lower in {int((d < 0).sum())}, higher in {int((d > 0).sum())} of {len(d)} draws")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=27)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--larger", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="12 tasks, 2 draws: a smoke test")
    ap.add_argument("--gradfeature", action="store_true", help="also groups/second of the gradient-feature estimator")
    ap.add_argument("--out", default=None)
    ap.add_argument("--table", default=None, help="print the docs table of a result JSON and stop")
    ap.add_argument("--pricing", action="store_true", help="only time exact pricing (27 tasks) and stop")
    a = ap.parse_args(argv)
    if a.table:
        print(markdown(json.loads(Path(a.table).read_text())))
        return {}
    if a.pricing:
        load0 = os.getloadavg()
        res = {"benchmark": "group_values --pricing", "pricing": pricing_times(),
               "machine": {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load0],
                           "loadavg_end": [round(x, 2) for x in os.getloadavg()]}}
        text = json.dumps(res, indent=1)
        if a.out:
            Path(a.out).write_text(text + "\n")
        print(text)
        return res
    n, draws = (12, 2) if a.quick else (a.tasks, a.draws)
    estimators = ["exact", "hoa", "mean", "sum", "both", "auto", "auto-pooled", "both+kernel", "both+active"]
    budgets = (None, -(-n // 4))
    t0, load0 = time.time(), os.getloadavg()
    synth = [synthetic_draw(n, 100 + d, a.larger, estimators, budgets) for d in range(draws)]
    res = {"benchmark": "group_values", "command": "python benchmarks/group_values.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "protocol": {"tasks": n, "draws": draws, "larger_measured": a.larger, "budgets": ["none", budgets[1]],
                        "regret": "points of mean gain below the held-out optimum (mean over budgets), per draw; "
                                  "interval: mean +- 1.96 se over draws"},
           "synthetic": {"groups_per_table": synth[0]["groups"], "measured_per_table": synth[0]["measured"],
                         "estimators": summarise(synth, estimators + ["random", "cheap", "cheap+corrected"]),
                         "regimes": [d["regime"] for d in synth]},
           "standley": standley_draws(2 if a.quick else 10, 6, [e for e in estimators if e != "both+active"])}
    if a.gradfeature:
        res["gradfeature_throughput"] = [throughput(n_tasks, quick=a.quick) for n_tasks in ((8,) if a.quick else (24, 96))]
    res["machine"] = {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load0],
                      "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
    res["wall_seconds"] = round(time.time() - t0, 1)
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text)
    return res


if __name__ == "__main__":
    main()
