"""A study's probes: every probe's runs in one queue, then each probe measures.

All the probes' runs go to the runner at once (one queue: a run several probes need trains
once, and parallel workers never wait for a probe to finish), then each probe is fitted on
the filled store, training nothing more. A probe that fails is recorded and the study goes on.
"""

from __future__ import annotations

import time
from typing import Any

from taskrel.affinity import Affinity
from taskrel.errors import TaskrelError
from taskrel.probes import Probe
from taskrel.study.context import StudyContext


def run_probes(ctx: StudyContext, probes: dict[str, Probe]) -> dict[str, Probe]:
    """Fit every probe (one queue of runs first); the probes that gave an affinity."""
    specs = [s for p in probes.values() for s in p.plan(ctx.suite)]
    ctx.say(f"{len(probes)} probes, {len(specs)} runs planned ({len(set(specs))} distinct)")
    ctx.guard("probe runs", lambda: ctx.runner.run(ctx.suite, specs, desc="probe runs"))
    fitted: dict[str, Probe] = {}
    for name, probe in probes.items():
        ctx.say(f"probe {name} ({probe.kind}, seeds {probe.seed_list()})")
        t0 = time.perf_counter()
        ok = ctx.guard(f"probe {name}", lambda p=probe: p.fit(ctx.suite, ctx.runner))
        info: dict[str, Any] = {"kind": probe.kind, "seeds": probe.seed_list(), "params": _params(probe),
                                "seconds": time.perf_counter() - t0}
        if ok is None:
            info["error"] = ctx.result.errors[-1]["error"]
        else:
            fitted[name] = probe
            aff: Affinity = probe.affinity_
            ctx.result.affinities[name] = aff.to_dict()
            info["cost"] = {"steps": aff.cost.steps, "examples": aff.cost.examples,
                            "seconds": aff.cost.seconds, "runs": aff.cost.runs,
                            "measure_seconds": float(aff.meta.get("measure_seconds", 0.0))}
            info["measure"] = aff.measure
            info["failed"] = len(probe.failed_)
            if aff.missing is not None:  # entries no seed measured: their tasks are left out of the analyses
                info["missing"] = int(aff.missing.sum())
            traj = getattr(probe, "trajectory_", None)
            if traj is not None and "cosine" in traj:
                ctx.result.trajectories[name] = cosine_trajectory(traj)
        ctx.result.probes[name] = info
    return fitted


def _params(probe: Probe) -> dict[str, Any]:
    out = {}
    for k, v in probe.get_params().items():
        if k in ("tasks", "config", "seeds", "settings"):
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def cosine_trajectory(frame: Any) -> dict[str, list]:
    """Gradient cosines over training, one row per (seed, step, pair), source < target."""
    import pandas as pd

    df = pd.DataFrame(frame)
    if not {"seed", "step", "source", "target", "cosine"} <= set(df.columns):
        raise TaskrelError("study: a cosine trajectory needs columns seed, step, source, target, cosine")
    order = {t: i for i, t in enumerate(dict.fromkeys(df["source"]))}
    df = df[[order[s] < order.get(t, -1) for s, t in zip(df["source"], df["target"])]]
    return {c: df[c].tolist() for c in ("seed", "step", "source", "target", "cosine")}


__all__ = ["cosine_trajectory", "run_probes"]
