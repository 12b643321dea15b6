"""Throughput of training runs: runs per second, per-run overhead, parallel efficiency, load.

    nice -n 10 python benchmarks/throughput.py > benchmarks/results/throughput.json
    python benchmarks/throughput.py --quick      # a smoke run: tiny runs, a minute or so

The work is the planted study's (``studies/planted.toml``: its suite options and ``[train]``
config): the single-task run of every task, then pair runs, ``--runs`` of them, each
measurement from an empty store, so every run trains. Measurements, all in one process
(so the ratios are taken side by side, on the same machine at the same time):

* ``sequential``, ``loky_2``, ``dask_2``: the plan at ``n_jobs=1`` (in this process), at
  ``n_jobs=2`` with local worker processes, and on a ``LocalCluster`` of two one-thread
  workers on 127.0.0.1 (one client, the cluster started before the clock), ``--rounds``
  times in turn. Parallel efficiency at k workers = (runs/s at k) / (k x runs/s at 1), per
  round, then the median over rounds. Workers are warmed up (imports, first run) before
  each measurement, untimed: a fresh worker spends seconds importing torch (the pool keeps
  its workers ``taskrel.workers.IDLE_TIMEOUT`` s between runs). ``loky_2_cold`` is measured
  once with that start-up inside the clock, to show what it costs.
* ``overhead``: the plan once more in this process with a step-timing callback. Per run:
  wall time, the time in training steps (forward, backward, update: the intervals between
  consecutive steps of an epoch, the last step of each epoch counted at the epoch's median),
  the rest of ``train`` (validation every epoch, final evaluation, best-state copies) and
  what happens outside ``train`` (planning, model build, store writes).
* ``neighbour``: ``sequential`` and ``loky_2`` again with a busy-loop process per core beside
  them (started and stopped here, at this process's priority). The CPU time of this process
  and its children (psutil) gives the cores the study got; the study "was slowed by no more
  than the share of CPU it lost" when wall(loaded) / wall(alone) <= cores(alone) / cores(loaded).
* ``threads``: a short plan at ``n_jobs=1`` with torch's default intra-op threads
  (``TrainConfig(threads=0)``) and with one thread, alone and beside the busy loops.
* ``idle``: the plan as a study runs it: ``--phases`` waves through one runner, with
  ``--gap`` seconds between waves (the study's own work between its probes and its
  validation; this process sleeps), from a pool that is not yet started (its start-up inside
  the clock, once, as in a study). The clock counts the waves only. Measured side by side,
  ``--rounds`` times in turn: ``sequential`` (in this process), local workers with the old
  setting (loky's 10 s idle timeout, no warm-up) and with the current one
  (``taskrel.workers.IDLE_TIMEOUT``, ``warm_worker`` in each new worker); ``--idle-settings``
  picks them. Each arm counts the worker processes it started (their pids), and each
  process's first run is timed apart from its later ones (the span of ``train()``, optimizer
  construction included, from a callback that notes the pid and the clock).

The machine's load average (``os.getloadavg()``) is recorded before and after every
measurement: other processes share the machine, so absolute rates move with them, and the
ratios are the numbers to read. Parallel efficiency also depends on how much CPU the machine
grants: with Linux's autogroup on (recorded as ``machine.sched_autogroup``), CPU is shared
between sessions first, so beside other busy sessions two workers get little more CPU than one
process. ``cores_used`` per measurement and ``runs_per_cpu_second_vs_sequential`` (runs per CPU
second at 2 workers over that of one process; 1.0 = no work lost to parallelism) separate
the two.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "planted.toml"
TIMER = "throughput_step_timer"
WORKER = "throughput_worker_span"


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# ----------------------------------------------------------------- the plan
def planted_plan(n_runs: int, quick: bool, threads: int = 1):
    """The planted study's suite and ``n_runs`` of its pairwise probe's specs (singles first)."""
    from itertools import combinations

    from taskrel.layout import SharingLayout
    from taskrel.store import RunSpec
    from taskrel.suites import get_suite
    from taskrel.train import TrainConfig

    study = tomllib.loads(STUDY.read_text())
    options = dict(study["suite"].get("options", {}))
    train = dict(study["train"])
    if quick:
        options["n_examples"], train["epochs"] = 200, 3
    suite = get_suite(study["suite"]["name"], **options)
    config = TrainConfig(**train, threads=threads)
    names, stages = suite.task_names, suite.n_stages
    specs = [RunSpec(SharingLayout.separate([t], stages), config, 0, label=t) for t in names]
    specs += [RunSpec(SharingLayout.shared(list(p), stages), config, 0, label="+".join(p))
              for p in combinations(names, 2)]
    return suite, specs[:n_runs], {"suite": suite.name, "options": options, "train": train}


def run_plan(suite, specs, store_path: str, n_jobs: int, backend: str, scheduler: str | None):
    """Train ``specs`` into a store at ``store_path`` with a :class:`taskrel.runner.Runner`."""
    from taskrel.runner import Runner

    with Runner(store_path, n_jobs=n_jobs, backend=backend, scheduler=scheduler, progress=False) as runner:
        return list(runner.run(suite, specs))


# ----------------------------------------------------------------- CPU accounting and load
class CpuMeter:
    """CPU seconds used by this process and its children (busy loops excluded) over a block.

    Children are sampled every 0.2 s, so a worker that exits (loky retires idle workers)
    keeps the CPU time it had at its last sample.
    """

    def __init__(self, exclude: frozenset[int] = frozenset()):
        import threading

        self.exclude = exclude
        self.first: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, baseline: bool) -> None:
        import psutil

        me = psutil.Process()
        for p in [me, *me.children(recursive=True)]:
            if p.pid in self.exclude:
                continue
            with contextlib.suppress(psutil.Error):
                key, t = (p.pid, p.create_time()), p.cpu_times()
                self.last[key] = t.user + t.system
                self.first.setdefault(key, self.last[key] if baseline else 0.0)

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self._sample(False)

    def __enter__(self) -> CpuMeter:
        self._sample(True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self._sample(False)

    @property
    def seconds(self) -> float:
        return sum(self.last[k] - self.first[k] for k in self.last)


def _spin() -> None:  # pragma: no cover - runs in the busy-loop processes
    while True:
        pass


@contextlib.contextmanager
def busy_loops(n: int):
    """``n`` busy-loop processes beside us for the duration of the block; their pids."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let them start spinning
    try:
        yield {p.pid for p in procs}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


def measure(name: str, suite, specs, n_jobs: int = 1, backend: str = "loky",
            scheduler: str | None = None, exclude: frozenset[int] = frozenset()) -> dict:
    """Train the plan from an empty store; wall time, runs/s, CPU time and cores used."""
    with tempfile.TemporaryDirectory(prefix="taskrel-throughput-") as tmp:
        with CpuMeter(exclude) as meter:
            load0, t0 = _load(), time.perf_counter()
            recs = run_plan(suite, specs, tmp, n_jobs, backend, scheduler)
            wall = time.perf_counter() - t0
        cpu = meter.seconds
    failed = [r.error for r in recs if not r.ok]
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} run(s) failed, first: {failed[0]}")
    out = {"name": name, "n_jobs": n_jobs, "backend": backend, "runs": len(recs),
           "wall_s": round(wall, 3), "runs_per_s": round(len(recs) / wall, 4),
           "cpu_s": round(cpu, 3), "cores_used": round(cpu / wall, 3),
           "train_s_sum": round(sum(r.seconds for r in recs), 3),
           "load_average_start": load0, "load_average_end": _load()}
    print(f"throughput: {name}: {out['runs_per_s']:.3f} runs/s, {out['cores_used']:.2f} cores, "
          f"load {load0[0]}", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------- per-run overhead
def register_timer() -> None:
    from taskrel.train import Callback, register_callback

    @register_callback(TIMER)
    class StepTimer(Callback):
        """Time between consecutive training steps of one epoch: forward, backward, update."""

        def __init__(self) -> None:
            self.last: float | None = None
            self.epoch = -1
            self.per_epoch: list[list[float]] = []

        def on_step(self, state) -> None:
            now = time.perf_counter()
            if state.epoch != self.epoch:
                self.per_epoch.append([])
            elif self.last is not None:
                self.per_epoch[-1].append(now - self.last)
            self.last, self.epoch = now, state.epoch

        def result(self) -> dict:
            # each epoch's last step is followed by validation: count it at the epoch's median
            steps = [sum(e) + (statistics.median(e) if e else 0.0) for e in self.per_epoch]
            return {"step_seconds": sum(steps), "steps": sum(len(e) + 1 for e in self.per_epoch)}


    @register_callback(WORKER)
    class WorkerSpan(Callback):
        """Which process trained a run, and when its ``train()`` began and ended (epoch seconds)."""

        def __init__(self) -> None:
            self.pid, self.start = os.getpid(), time.time()

        def on_step(self, state) -> None:
            pass

        def result(self) -> dict:
            return {"pid": self.pid, "start": self.start, "end": time.time()}


def first_runs(recs) -> dict:
    """Each worker's first run against its later ones: ``train()`` span (seconds) per run."""
    by_pid: dict[int, list[dict]] = {}
    for r in recs:
        span = r.extras[WORKER]
        by_pid.setdefault(span["pid"], []).append(span)
    first, later = [], []
    for spans in by_pid.values():
        spans.sort(key=lambda x: x["start"])
        first.append(spans[0]["end"] - spans[0]["start"])
        later += [x["end"] - x["start"] for x in spans[1:]]
    mean = statistics.mean
    return {"processes": len(by_pid), "first_run_mean_s": round(mean(first), 3),
            "later_run_mean_s": round(mean(later), 3) if later else None}


def overhead(suite, specs) -> dict:
    """Per-run time split into training steps, the rest of train(), and outside train()."""
    from dataclasses import replace

    timed = [replace(s, probes=((TIMER, ()),)) for s in specs]
    with tempfile.TemporaryDirectory(prefix="taskrel-overhead-") as tmp:
        load0, t0 = _load(), time.perf_counter()
        recs = run_plan(suite, timed, tmp, 1, "loky", None)
        wall = time.perf_counter() - t0
    n = len(recs)
    step = sum(r.extras[TIMER]["step_seconds"] for r in recs) / n
    in_train = sum(r.seconds for r in recs) / n
    per_run = wall / n
    return {
        "runs": n, "steps_per_run": round(sum(r.steps for r in recs) / n, 1),
        "wall_per_run_s": round(per_run, 4),
        "training_steps_per_run_s": round(step, 4),
        "rest_of_train_per_run_s": round(in_train - step, 4),
        "outside_train_per_run_s": round(per_run - in_train, 4),
        "overhead_per_run_s": round(per_run - step, 4),
        "overhead_fraction": round((per_run - step) / per_run, 4),
        "outside_train_fraction": round((per_run - in_train) / per_run, 4),
        "load_average_start": load0, "load_average_end": _load(),
    }


# ----------------------------------------------------------------- the measurements
@contextlib.contextmanager
def local_cluster(n_workers: int):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        yield cluster.scheduler_address


def warm(suite, specs, n_jobs: int = 1, backend: str = "loky", scheduler: str | None = None) -> None:
    """Two one-epoch runs, untimed: imports and worker processes are up before a measurement.

    Local workers also warm themselves as they start (``taskrel.workers.warm_worker``); Dask
    workers that joined after the client connected do not.
    """
    from dataclasses import replace

    tiny = [replace(s, config=s.config.with_(epochs=1)) for s in specs[:2]]
    with tempfile.TemporaryDirectory() as tmp:
        run_plan(suite, tiny, tmp, n_jobs, backend, scheduler)


def _descendants() -> frozenset[int]:
    import psutil

    return frozenset(p.pid for p in psutil.Process().children(recursive=True))


def efficiency_rounds(suite, specs, rounds: int, scheduler: str, dask_pids: frozenset[int]) -> list[dict]:
    """Rounds of sequential / loky / dask; the idle Dask processes are not counted in the first two."""
    out = []
    for _ in range(rounds):
        row = {"sequential": measure("sequential", suite, specs, exclude=dask_pids)}
        warm(suite, specs, 2)
        row["loky_2"] = measure("loky_2", suite, specs, n_jobs=2, exclude=dask_pids)
        row["dask_2"] = measure("dask_2", suite, specs, n_jobs=2, backend="dask", scheduler=scheduler)
        out.append(row)
    return out


def neighbour(suite, specs, cores: int) -> dict:
    with busy_loops(cores) as pids:
        out = {"busy_loops": cores, "sequential": measure("sequential+load", suite, specs, exclude=frozenset(pids))}
        warm(suite, specs, 2)
        out["loky_2"] = measure("loky_2+load", suite, specs, n_jobs=2, exclude=frozenset(pids))
    return out


def threads_side_by_side(quick: bool, n_runs: int, cores: int) -> dict:
    out: dict[str, Any] = {"runs": n_runs}
    for loaded in (False, True):
        ctx = busy_loops(cores) if loaded else contextlib.nullcontext(set())
        with ctx as pids:
            for threads, label in ((0, "torch_default"), (1, "one_thread")):
                suite, specs, _ = planted_plan(n_runs, quick, threads=threads)
                key = f"{label}{'+load' if loaded else ''}"
                out[key] = measure(key, suite, specs, exclude=frozenset(pids))
    import torch

    out["torch_default_threads"] = torch.get_num_threads()
    return out


# ----------------------------------------------------------------- idle workers between waves
IDLE_SETTINGS = {"old": (10.0, False), "new": (None, True)}  # (idle timeout s, warm-up); None: the package's


def _loky_workers() -> set[int]:
    """Pids of this process's loky worker processes."""
    import psutil

    out = set()
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("loky" in part for part in p.cmdline()) and not any("resource_tracker" in part for part in p.cmdline()):
                out.add(p.pid)
    return out


def _stop_local_pool() -> None:
    """Shut the reusable loky pool down: the next local measurement starts from no workers."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)


def waves(name: str, suite, specs, phases: int, gap: float, n_jobs: int, setting: str | None = None) -> dict:
    """The plan in ``phases`` waves through one runner, ``gap`` s apart; only the waves are timed."""
    import taskrel.workers as workers
    from taskrel.runner import Runner

    old = workers.IDLE_TIMEOUT, workers.WARM_WORKERS
    if setting is not None:
        _stop_local_pool()
        timeout, warm_up = IDLE_SETTINGS[setting]
        workers.IDLE_TIMEOUT = old[0] if timeout is None else timeout
        workers.WARM_WORKERS = warm_up
    from dataclasses import replace

    spanned = [replace(sp, probes=((WORKER, ()),)) for sp in specs]
    chunks = [spanned[i::phases] for i in range(phases)]
    walls, pids, recs = [], set(), []
    try:
        with tempfile.TemporaryDirectory(prefix="taskrel-waves-") as tmp, \
                Runner(tmp, n_jobs=n_jobs, progress=False) as runner:
            load0 = _load()
            for i, chunk in enumerate(chunks):
                if i:
                    time.sleep(gap)
                t0 = time.perf_counter()
                got = runner.run(suite, chunk)
                walls.append(time.perf_counter() - t0)
                pids |= _loky_workers()
                recs += list(got)
        timeout = workers.IDLE_TIMEOUT
    finally:
        workers.IDLE_TIMEOUT, workers.WARM_WORKERS = old
    if any(not r.ok for r in recs):
        raise RuntimeError(f"{name}: a run failed: {next(r.error for r in recs if not r.ok)}")
    wall = sum(walls)
    out = {"name": name, "n_jobs": n_jobs, "runs": len(recs), "phases": phases, "gap_s": gap,
           "wave_runs": [len(c) for c in chunks], "wave_wall_s": [round(w, 3) for w in walls], "wall_s": round(wall, 3),
           "runs_per_s": round(len(recs) / wall, 4), "train_s_sum": round(sum(r.seconds for r in recs), 3),
           "runs_by_process": first_runs(recs), "load_average_start": load0, "load_average_end": _load()}
    if setting is not None:
        out.update(setting=setting, idle_timeout_s=timeout, warm_workers=IDLE_SETTINGS[setting][1],
                   worker_processes_started=len(pids))
    print(f"throughput: {name}: {out['runs_per_s']:.3f} runs/s, waves {out['wave_wall_s']}, "
          f"workers started {out.get('worker_processes_started', '-')}, load {load0[0]}", file=sys.stderr, flush=True)
    return out


def idle_rounds(suite, specs, rounds: int, phases: int, gap: float, settings: list[str]) -> dict:
    """Rounds of sequential and local-worker waves, each setting in turn (order alternating)."""
    out = []
    for i in range(rounds):
        row = {"sequential": waves("waves_sequential", suite, specs, phases, gap, 1)}
        for setting in (settings if i % 2 == 0 else settings[::-1]):
            row[f"loky_2_{setting}"] = waves(f"waves_loky_2_{setting}", suite, specs, phases, gap, 2, setting)
        out.append(row)
    return {"rounds": out, **idle_efficiency(out, settings), "settings": {s: IDLE_SETTINGS[s] for s in settings}}


def idle_efficiency(rounds: list[dict], settings: list[str]) -> dict:
    """Median parallel efficiency of each setting over all waves, and over the waves after the
    first (the pool's one start-up left out); from the recorded wave times."""
    def rate(m: dict, skip: int) -> float:
        n = m.get("wave_runs") or [len(range(i, m["runs"], m["phases"])) for i in range(m["phases"])]
        return sum(n[skip:]) / sum(m["wave_wall_s"][skip:])

    def eff(s: str, skip: int) -> float:
        return round(statistics.median(rate(r[f"loky_2_{s}"], skip) / (2 * rate(r["sequential"], skip)) for r in rounds), 3)

    return {"parallel_efficiency_2": {s: eff(s, 0) for s in settings},
            "parallel_efficiency_2_after_first_wave": {s: eff(s, 1) for s in settings}}


def summarise(rounds: list[dict], over: dict, nb: dict, th: dict, cold: dict, idle: dict | None = None) -> dict:
    med = statistics.median

    def eff(k: str) -> float:
        return round(med(r[k]["runs_per_s"] / (2 * r["sequential"]["runs_per_s"]) for r in rounds), 3)

    def alone(k: str, field: str) -> float:
        return med(r[k][field] for r in rounds)

    load_effect = {}
    for k in ("sequential", "loky_2"):
        slowdown = nb[k]["wall_s"] / alone(k, "wall_s")
        cpu_lost = alone(k, "cores_used") / nb[k]["cores_used"]
        load_effect[k] = {"slowdown": round(slowdown, 3), "cpu_share_lost_factor": round(cpu_lost, 3),
                          "slowdown_over_cpu_lost": round(slowdown / cpu_lost, 3)}
    speed = {k: round(th[f"one_thread{s}"]["runs_per_s"] / th[f"torch_default{s}"]["runs_per_s"], 2)
             for k, s in (("alone", ""), ("with_load", "+load"))}
    def per_cpu(k: str) -> float:  # runs per CPU second against sequential's: the work, not the share of CPU granted
        return round(med((r[k]["runs_per_s"] / r[k]["cores_used"]) / (r["sequential"]["runs_per_s"] / r["sequential"]["cores_used"])
                         for r in rounds), 3)

    eff_loky, eff_dask = eff("loky_2"), eff("dask_2")
    goals = [
        {"goal": "parallel efficiency >= 0.85 at 2 local workers", "value": eff_loky, "met": eff_loky >= 0.85},
        {"goal": "parallel efficiency >= 0.85 at 2 dask workers", "value": eff_dask, "met": eff_dask >= 0.85},
        {"goal": "per-run overhead (outside forward/backward/update) <= 10% of a planted run",
         "value": over["overhead_fraction"], "met": over["overhead_fraction"] <= 0.10},
    ]
    for k, v in load_effect.items():
        goals.append({"goal": f"{k}: slowed by a neighbour's load no more than the CPU share it lost",
                      "value": v["slowdown_over_cpu_lost"], "met": v["slowdown_over_cpu_lost"] <= 1.0})
    if idle is not None:
        for setting, value in idle["parallel_efficiency_2"].items():
            goals.append({"goal": f"parallel efficiency >= 0.85 at 2 local workers, a study's waves {idle['rounds'][0]['sequential']['gap_s']:g} s apart ({setting} setting)",
                          "value": value, "met": value >= 0.85})
    return {
        "runs_per_s_alone": {k: round(alone(k, "runs_per_s"), 4) for k in ("sequential", "loky_2", "dask_2")},
        "parallel_efficiency_2": {"loky": eff_loky, "dask": eff_dask,
                                  "loky_cold": round(cold["runs_per_s"] / (2 * alone("sequential", "runs_per_s")), 3)},
        "cores_used_alone": {k: round(alone(k, "cores_used"), 3) for k in ("sequential", "loky_2", "dask_2")},
        "runs_per_cpu_second_vs_sequential": {"loky": per_cpu("loky_2"), "dask": per_cpu("dask_2")},
        "overhead_fraction": over["overhead_fraction"],
        "neighbour_load": load_effect,
        "one_thread_speedup_over_torch_default": speed,
        **({"parallel_efficiency_2_waves": idle["parallel_efficiency_2"],
            "parallel_efficiency_2_waves_after_first": idle["parallel_efficiency_2_after_first_wave"]}
           if idle is not None else {}),
        "goals": goals,
    }


def _autogroup() -> str | None:
    """Linux's autogroup setting: when on ("1"), CPU time is shared fairly between sessions first,
    so more processes in one session get no more CPU while other sessions keep every core busy."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return None


def resummarise(report: dict) -> dict:
    """The report with its idle efficiencies and summary computed again from its measurements."""
    idle = report.get("idle")
    if idle is not None:
        idle.update(idle_efficiency(idle["rounds"], list(idle["parallel_efficiency_2"])))
    report["summary"] = summarise(report["rounds"], report["overhead"], report["neighbour"], report["threads"],
                                  report["loky_2_cold"], idle)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny runs: a smoke test of the script")
    ap.add_argument("--runs", type=int, default=16, help="runs in the plan (default 16)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of sequential/loky/dask (default 2)")
    ap.add_argument("--thread-runs", type=int, default=4, help="runs in the threads comparison (default 4)")
    ap.add_argument("--phases", type=int, default=3, help="waves the plan is split into in the idle measurement (default 3)")
    ap.add_argument("--gap", type=float, default=15.0,
                    help="seconds between waves in the idle measurement (default 15: longer than loky's 10 s idle timeout)")
    ap.add_argument("--idle-settings", default="old,new",
                    help="local-pool settings compared side by side: old (10 s idle timeout, no warm-up), "
                         "new (taskrel.workers' settings); comma-separated, empty to skip (default old,new)")
    ap.add_argument("--only-idle", action="store_true", help="measure the idle comparison only (and the machine)")
    ap.add_argument("--summarise", metavar="JSON", default=None,
                    help="measure nothing: recompute the summary of a JSON this script wrote, and print it")
    args = ap.parse_args()
    if args.summarise:
        print(json.dumps(resummarise(json.loads(Path(args.summarise).read_text())), indent=1))
        return
    settings = [s for s in args.idle_settings.split(",") if s]
    if any(s not in IDLE_SETTINGS for s in settings):
        ap.error(f"--idle-settings: use names from {sorted(IDLE_SETTINGS)}, got {args.idle_settings!r}")
    import torch

    cores = os.cpu_count() or 1
    report: dict[str, Any] = {"machine": {"cpus": cores, "torch": torch.__version__,
                                          "python": sys.version.split()[0], "nice": os.nice(0),
                                          "sched_autogroup": _autogroup(), "load_average_at_start": _load()}}
    register_timer()
    suite, specs, plan = planted_plan(args.runs, args.quick)
    report["plan"] = {**plan, "runs": len(specs), "study_file": str(STUDY.relative_to(ROOT))}
    if args.only_idle:
        warm(suite, specs)  # this process's first run (torch's imports) stays out of the clock
        report["idle"] = idle_rounds(suite, specs, args.rounds, args.phases, args.gap, settings)
        report["machine"]["load_average_at_end"] = _load()
        print(json.dumps(report, indent=1))
        return
    with local_cluster(2) as scheduler:
        dask_pids = _descendants()  # the cluster's processes (started before any other child)
        warm(suite, specs)
        cold = measure("loky_2_cold", suite, specs, n_jobs=2, exclude=dask_pids)  # workers start inside
        warm(suite, specs, 2, "dask", scheduler)
        rounds = efficiency_rounds(suite, specs, args.rounds, scheduler, dask_pids)
    over = overhead(suite, specs)
    nb = neighbour(suite, specs, cores)
    th = threads_side_by_side(args.quick, args.thread_runs, cores)
    idle = idle_rounds(suite, specs, args.rounds, args.phases, args.gap, settings) if settings else None
    report.update(loky_2_cold=cold, rounds=rounds, overhead=over, neighbour=nb, threads=th)
    if idle is not None:
        report["idle"] = idle
    report["summary"] = summarise(rounds, over, nb, th, cold, idle)
    report["machine"]["load_average_at_end"] = _load()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
