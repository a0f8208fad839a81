"""MobileVD supernet runs for the tabulated benchmark: the ``mobilevd`` strategy's supernet
segments trained live under the table's protocol (same data, backbone, K), one run per seed;
the importances after each segment are written beside the table, so ``TabularPool`` answers
``mobilevd``'s supernet candidates from them (its snapshots and fine-tune from the table).

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/build_tabular_supernet.py --seeds 0,1 --segments 3
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import RESULTS, machine
from tabular_compare import setup

from core.io import atomic_json
from nas.config import Experiment
from nas.engine import RunnerSpec
from nas.strategies import Outcome, SearchState, create_strategy
from nas.workers import InlinePool, Job


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", default=str(RESULTS / "tabular_tiny.parquet"))
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "tabular_tiny_supernet.json"))
    ap.add_argument("--workdir", default=str(Path(__file__).resolve().parents[2] / "runs" / "tabular_work"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    table, protocol, space, budgets = setup(Path(args.table))
    exp = Experiment.from_dict(protocol["experiment"])
    k = table.steps
    pool = InlinePool(RunnerSpec(exp, args.workdir))
    pool.start()
    runs, t0, n, blocks = [], time.time(), None, None
    for seed in [int(s) for s in args.seeds.split(",")]:
        strat = create_strategy("mobilevd", {"segments": args.segments, "segment_steps": k}, seed, k)
        state = SearchState(space, table.predict, budgets)
        run, last_state = [], None
        while True:
            (c,) = strat.propose(state)
            if c.task != "supernet":
                break
            job = Job(c.id, c.arch, c.steps, c.seed, last_state, task=c.task, options=c.task_options)
            (_, res), = list(pool.evaluate([job]))
            if res.status != "ok":
                raise SystemExit(f"supernet segment {c.id} failed: {res.reason}")
            last_state = res.state
            strat.update([Outcome(c, res, state.predict(c.arch))])
            run.append({b: strat.importance[i] for i, b in enumerate(strat.blocks)})
            print(f"seed {seed} segment {c.id}: snapshot {c.arch} q={res.quality:.5f} {res.seconds:.0f}s "
                  f"importances {[round(v, 3) for v in strat.importance]}", flush=True)
        runs.append(run)
        n, blocks = strat.n, strat.blocks
    out = Path(args.out)
    atomic_json(out, {"n": n, "segment_steps": k, "blocks": blocks, "runs": runs,
                      "options": {"segments": args.segments},
                      "command": "PYTHONPATH=. .venv/bin/python experiments/benchmarks/build_tabular_supernet.py "
                                 + " ".join(sys.argv[1:]),
                      "wall_s": time.time() - t0, "machine": machine()})
    print(out)


if __name__ == "__main__":
    main()
