"""Ray worker pool: candidates per minute with 1 and 2 workers, and the per-candidate
overhead of dispatch (object store transfer of the parent's weights, the call, the result
and the child's weights coming back) as a share of the candidate's own training time.

The same jobs (one architecture, its parent's weights, K steps, distinct seeds) run on
InlinePool (in this process: no dispatch at all), then RayPool with 1 and 2 workers, all
in one run on the same machine. Overhead per candidate = wall time from dispatch to result
minus the seconds the worker itself spent training and scoring.

    .venv/bin/python experiments/benchmarks/ray_throughput.py    # writes results/ray_throughput.json
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from nas.config import Experiment  # noqa: E402
from nas.engine import RunnerSpec  # noqa: E402
from nas.workers import InlinePool, Job, RayPool  # noqa: E402
from search_spaces.architecture import Architecture  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def measure(pool, jobs) -> dict:
    with pool:
        list(pool.evaluate(jobs[:1]))  # warm: actors up, first batch compiled
        t0 = time.perf_counter()
        results = [r for _, r in pool.evaluate(jobs)]
        wall = time.perf_counter() - t0
    assert all(r.status == "ok" for r in results), [r.reason for r in results]
    overhead = [r.wall_s - r.seconds for r in results]
    return {"wall_s": wall, "candidates_per_min": 60 * len(jobs) / wall,
            "train_and_score_s": stats([r.seconds for r in results]),
            "dispatch_overhead_s": stats(overhead),
            "dispatch_overhead_share": stats([o / r.seconds for o, r in zip(overhead, results)])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--arch", default="down0:self_attn1d:1,mid:conv1d:2,up1:cross_attn1d:1")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "bench_work"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    exp = Experiment.load(ROOT / "experiments" / "tiny.yaml")
    exp = dataclasses.replace(exp, evaluator=exp.evaluator.with_options(val_clips=16))
    spec = RunnerSpec(exp, args.workdir)
    runner = spec()
    runner.prepare()
    arch = Architecture.parse(args.arch)
    parent = runner.run(arch, None, 2, 0).state  # real temporal weights to send along
    jobs = [Job(f"j{i}", arch, args.steps, i, parent) for i in range(args.jobs)]
    result = {"machine": machine(), "args": vars(args),
              "parent_state_bytes": sum(t.numel() * t.element_size() for t in parent.values())}
    result["inline"] = measure(InlinePool(spec), jobs)
    for workers in (1, 2):
        result[f"ray_{workers}_workers"] = measure(RayPool(spec, workers=workers, timeout_s=600), jobs)
        print(workers, result[f"ray_{workers}_workers"], flush=True)
    result["speedup_2_over_1_workers"] = (result["ray_2_workers"]["candidates_per_min"]
                                         / result["ray_1_workers"]["candidates_per_min"])
    print(write("ray_throughput", result))


if __name__ == "__main__":
    main()
