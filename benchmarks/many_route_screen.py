"""Screen cheap-probe routes on planted-many: fit the gradient probe (full trajectory, with the
TAG lookahead) and dump every probe step's matrices for offline analysis.

    nice -n 10 python benchmarks/many_route_screen.py --sizes 24,48,96 --data-seed 1 \
        --seeds 10,11,12 --train '{"batch_size": 600}' --out /tmp/h7/screen

Writes one ``.npz`` per size (``cosine`` and ``lookahead``: seeds x steps x n x n, the steps cut
to the shortest run's when early stopping ends runs at different steps; ``tasks``,
``truth`` as JSON) and prints one JSON line per size with the seconds and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    import torch

    from taskrel.probes.gradient import GradientProbe
    from taskrel.probes.trajectory import trajectory_arrays
    from taskrel.runner import Runner
    from taskrel.suites import get_suite
    from taskrel.suites.planted_many import TRAIN
    from taskrel.train import TrainConfig

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="24,48,96")
    ap.add_argument("--data-seed", type=int, default=1)
    ap.add_argument("--relatedness", type=float, default=0.8)
    ap.add_argument("--seeds", default="10,11,12")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--train", default="{}", help="JSON: TrainConfig fields over planted_many.TRAIN")
    ap.add_argument("--no-lookahead", action="store_true", help="cosines only (no TAG lookahead: faster)")
    ap.add_argument("--store", default="/tmp/h7/store")
    ap.add_argument("--out", default="/tmp/h7/screen")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = TrainConfig(**{**TRAIN, **json.loads(args.train)})
    for n in (int(x) for x in args.sizes.split(",")):
        suite = get_suite("planted-many", n_tasks=n, seed=args.data_seed, relatedness=args.relatedness)
        t0 = time.perf_counter()
        p = GradientProbe(every=args.every, config=cfg, seeds=seeds, trajectory="full", lookahead=not args.no_lookahead)
        p = p.fit(suite, Runner(args.store, n_jobs=1, progress=False))
        names = list(p.affinity_.tasks)
        trs = [trajectory_arrays(r, names) for r in p.records_]
        m = min(len(t["steps"]) for t in trs)
        out = f"{args.out}-n{n}.npz"
        np.savez_compressed(out, cosine=np.stack([t["cosine"][:m] for t in trs]),
                            lookahead=np.stack([t["lookahead"][:m] for t in trs]) if "lookahead" in trs[0] else np.zeros(0),
                            log_norm=np.stack([t["log_norm"][:m] for t in trs]),
                            tasks=np.array(names), truth=json.dumps(suite.truth))
        print(json.dumps({"n": n, "steps": [len(t["steps"]) for t in trs], "out": out,
                          "seconds": round(time.perf_counter() - t0, 1), "load": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
