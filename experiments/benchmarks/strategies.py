"""Strategies at equal training budget on the tiny space: hypervolume, best quality within
the budgets, wall time; several seeds.

Every strategy gets the same number of training steps (``--candidates`` × K) on the same
space, lookup table, budgets, data, pre-trained backbone and evaluator, through one shared
pool of two Ray workers. The hypervolume of each run is taken against one reference point
for all runs (quality: the lowest any run measured; latency and memory: the budgets) and
normalised by the box between that reference and the best values any run reached, so 1.0
would be a single point best in all three objectives.

    .venv/bin/python experiments/benchmarks/strategies.py            # writes results/strategies.json

K and the validation set are smaller than experiments/tiny.yaml's (see ``--steps``) so
that 4 strategies x 3 seeds fit in about 20 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from lookup_tables import build_table  # noqa: E402
from nas.campaign import Campaign  # noqa: E402
from nas.config import Experiment, RescoreConfig  # noqa: E402
from nas.engine import RunnerSpec, Search  # noqa: E402
from nas.pareto import compute_front  # noqa: E402
from nas.workers import Job, RayPool  # noqa: E402
from search_spaces.architecture import Architecture  # noqa: E402
from search_spaces.space import SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = {"snapgen": ("snapgen", {}), "random": ("random", {}),
              "nsga2": ("optuna", {"sampler": "nsga2"}), "tpe": ("optuna", {"sampler": "tpe"})}


def experiment(args, strategy: str, options: dict, seed: int, lut: Path, workdir: Path) -> Experiment:
    base = Experiment.load(ROOT / "experiments" / "tiny.yaml")
    train = dataclasses.replace(base.train, steps=args.steps)
    evaluator = base.evaluator.with_options(val_clips=args.val_clips)
    search = dataclasses.replace(base.search, strategy=strategy, options=options, steps=args.steps,
                                 max_train_steps=args.candidates * args.steps, workdir=str(workdir))
    # the search's own front is compared: no final stage (rescore)
    return dataclasses.replace(base, seed=seed, train=train, evaluator=evaluator, search=search,
                               lut=dataclasses.replace(base.lut, path=str(lut)), rescore=RescoreConfig())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="K per candidate")
    ap.add_argument("--val-clips", type=int, default=16)
    ap.add_argument("--candidates", type=int, default=28, help="training budget, in candidates of K steps")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "bench_work"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = {"machine": machine(), "args": vars(args), "runs": []}
    tmp = Path(tempfile.mkdtemp(prefix="hwnas_bench_"))
    workdir = Path(args.workdir)
    lut = tmp / "tiny.parquet"
    first = experiment(args, "random", {}, 0, lut, workdir)
    # one lookup table and one pool of prepared workers for every run
    build_table(SearchSpace(first.space), first.lut, lut, progress=False)
    RunnerSpec(first, str(workdir))().prepare()
    pool = RayPool(RunnerSpec(first, str(workdir)), workers=2, timeout_s=600)
    with pool:
        list(pool.evaluate([Job(f"warm{i}", Architecture(), 1, 0) for i in range(2)]))  # both actors up
        for seed in range(args.seeds):
            for label in args.strategies.split(","):
                name, options = STRATEGIES[label]
                exp = experiment(args, name, options, seed, lut, workdir)
                camp = Campaign.create(tmp / f"{label}-{seed}", exp.to_dict())
                search = Search(camp, exp, pool=pool)
                t0 = time.perf_counter()
                reason = search.run()
                wall = time.perf_counter() - t0
                points = camp.points()
                budgets = exp.budgets
                feasible = [p for p in points if not budgets.violations(p.latency_ms, p.memory_bytes)]
                run = {"strategy": label, "seed": seed, "stop_reason": reason, "wall_s": wall,
                       "candidates": len(points), "steps_used": search.steps_used,
                       "best_feasible_quality": max((p.quality for p in feasible), default=None),
                       "points": [dataclasses.asdict(p) | {"breakdown": None} for p in points]}
                result["runs"].append(run)
                print(f"{label:8s} seed {seed}: {len(points)} candidates, best feasible "
                      f"{run['best_feasible_quality']:.5f}, {wall:.0f} s ({reason})", flush=True)
                write("strategies", summarise(result, budgets))
    print(write("strategies", summarise(result, budgets)))


def summarise(result: dict, budgets) -> dict:
    from nas.pareto import Point

    runs = result["runs"]
    all_points = [Point(**p) for r in runs for p in r["points"]]
    q_ref = min(p.quality for p in all_points)
    ref = (q_ref, budgets.latency_ms_per_step, budgets.memory_bytes)
    feasible = [p for p in all_points if not budgets.violations(p.latency_ms, p.memory_bytes)]
    ideal = (max(p.quality for p in feasible), min(p.latency_ms for p in feasible),
             min(p.memory_bytes for p in feasible))
    box = (ideal[0] - ref[0]) * (ref[1] - ideal[1]) * (ref[2] - ideal[2])
    for r in runs:
        front = compute_front([Point(**p) for p in r["points"]], ref)
        r["hypervolume"] = front.hypervolume
        r["hypervolume_normalised"] = front.hypervolume / box if box > 0 else 0.0
        r["front_size"] = len(front.points)
    table = {}
    for label in dict.fromkeys(r["strategy"] for r in runs):
        rs = [r for r in runs if r["strategy"] == label]
        hv = [r["hypervolume_normalised"] for r in rs]
        best = [r["best_feasible_quality"] for r in rs if r["best_feasible_quality"] is not None]
        wall = [r["wall_s"] for r in rs]
        table[label] = {"seeds": len(rs), "hypervolume_normalised_median": statistics.median(hv),
                        "hypervolume_normalised_min": min(hv), "hypervolume_normalised_max": max(hv),
                        "best_feasible_quality_median": statistics.median(best) if best else None,
                        "best_feasible_quality_min": min(best, default=None),
                        "best_feasible_quality_max": max(best, default=None),
                        "wall_s_median": statistics.median(wall), "wall_s_min": min(wall), "wall_s_max": max(wall),
                        "candidates_median": statistics.median(r["candidates"] for r in rs)}
    result["reference_point"] = {"quality": ref[0], "latency_ms": ref[1], "memory_bytes": ref[2]}
    result["ideal_point"] = {"quality": ideal[0], "latency_ms": ideal[1], "memory_bytes": ideal[2]}
    result["summary"] = table
    return result


if __name__ == "__main__":
    main()
