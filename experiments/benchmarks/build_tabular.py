"""The tabulated benchmark (issue 14): every architecture of a small subspace of the tiny
space trained and scored under ONE fixed protocol, from the same starting weights, with
the lookup table's latency and memory. In the spirit of NAS-Bench-201 / HW-NAS-Bench: any
strategy then runs against the table (``nas.tabular.TabularPool``) in seconds.

Subspace: the tiny space (experiments/tiny.yaml: slots down0, mid, up1) at ``max_layers: 1``
with the operators ``--ops`` (each slot empty or one layer of one of them: 3^3 = 27
architectures for conv1d, self_attn1d; with cross_attn1d too, 4^3 = 64).

Protocol (also written beside the table as JSON): the tiny experiment's data, pre-trained
frozen backbone (cached) and training settings (batch, lr and lr_scale, logit-normal t);
every architecture starts from that backbone with freshly inserted identity temporal layers
(no weight inheritance), is trained K steps with the data seed ``s`` and scored by the
experiment's evaluator (today's tiny.yaml: flow_loss + 0.05 x the motion caption-
discrimination margin, fixed noise; ``--val-clips`` overrides flow_loss's clips) -- also after
K/4 and K/2 steps of the same run (the lower fidelities successive halving uses); seeds s in
``--seeds``. Jobs are split over Ray workers (``RayPool``); finished rows are appended to a
JSONL log so a killed build resumes.

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/build_tabular.py --workers 2 --steps 160 --seeds 0,1 \
        --ops conv1d,self_attn1d,cross_attn1d --name tabular_tiny8 --workdir runs/tiny/work
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import RESULTS, machine

from core.io import atomic_json
from lookup_tables import LookupTable, build_table
from nas.config import Experiment
from nas.engine import TableCost
from nas.tabular import FidelitySpec
from nas.workers import Job, RayPool
from search_spaces.space import SearchSpace

ROOT = Path(__file__).resolve().parents[2]


def protocol_experiment(args) -> Experiment:
    base = Experiment.load(ROOT / "experiments" / "tiny.yaml")
    space = dataclasses.replace(base.space, max_layers=1, ops=tuple(args.ops.split(",")))
    train = dataclasses.replace(base.train, steps=args.steps)
    evaluator = base.evaluator if args.val_clips is None else base.evaluator.with_options(val_clips=args.val_clips)
    search = dataclasses.replace(base.search, workers=args.workers, workdir=args.workdir, max_train_steps=None)
    return dataclasses.replace(base, name="tabular", space=space, train=train, evaluator=evaluator, search=search)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20, help="K, training steps per architecture")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--ops", default="conv1d,self_attn1d", help="the subspace's operators")
    ap.add_argument("--val-clips", type=int, help="flow_loss's val_clips (default: the experiment's evaluator as is)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "tabular_work"))
    ap.add_argument("--name", default="tabular_tiny")
    ap.add_argument("--limit", type=int, default=None, help="only the first N architectures (a smoke run)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    exp = protocol_experiment(args)
    space = SearchSpace(exp.space)
    archs = list(space)[: args.limit]
    seeds = [int(s) for s in args.seeds.split(",")]
    out = RESULTS / f"{args.name}.parquet"
    lut_path = RESULTS / f"{args.name}_lut.parquet"
    log = Path(args.workdir) / f"{args.name}_K{args.steps}_v{args.val_clips}_{args.ops}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    if not lut_path.is_file():
        build_table(space, exp.lut, lut_path, progress=False)
    cost = TableCost(LookupTable.load(lut_path), space)
    done = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            done[(r["arch"], r["seed"])] = r
    jobs = [Job(f"{a}|{s}", a, args.steps, s) for s in seeds for a in archs if (str(a), s) not in done]
    print(f"{len(archs)} architectures x {len(seeds)} seeds; {len(done)} rows logged, {len(jobs)} to run", flush=True)
    t0 = time.time()
    spec = FidelitySpec(exp, args.workdir)
    spec().prepare()  # data and backbone once, here; the workers find them cached
    if jobs:
        with RayPool(spec, workers=args.workers, timeout_s=1800) as pool, log.open("a") as fh:
            for i, (job, res) in enumerate(pool.evaluate(jobs)):
                row = {"arch": str(job.arch), "seed": job.seed, "status": res.status, "reason": res.reason,
                       "quality": res.quality, **{k: v for k, v in res.breakdown.items()
                                                  if k.startswith("quality@") or k.endswith("/quality")},
                       "loss": res.breakdown.get("loss"), "train_loss": res.train_loss,
                       "steps": res.steps, "seconds": res.seconds, "wall_s": job.wall_s}
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                done[(row["arch"], row["seed"])] = row
                print(f"[{i + 1}/{len(jobs)}] {row['arch']:45s} seed {job.seed} "
                      f"q={row['quality']} {res.seconds:.1f}s", flush=True)
    import pandas as pd

    rows = []
    names = {str(a) for a in archs}
    for (arch, seed), r in sorted(done.items()):
        if arch not in names or seed not in seeds:
            continue
        p = cost.prediction(space.parse(arch))
        rows.append({**r, "latency_ms": float(p.latency_ms), "memory_bytes": float(p.memory_bytes)})
    pd.DataFrame(rows).to_parquet(out, index=False)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    protocol = {
        "name": args.name, "architectures": len(archs), "seeds": seeds,
        "subspace": {"slots": space.slot_names, "ops": list(exp.space.ops), "max_layers": 1},
        "quality": f"the experiment's evaluator ({exp.evaluator.name}; experiment.evaluator), fixed noise",
        "start": "the tiny experiment's pre-trained frozen backbone; fresh identity temporal layers "
                 "(no inheritance); layers initialised and data drawn from the seed",
        "experiment": exp.to_dict(), "steps": args.steps, "lut": lut_path.name,
        "command": "PYTHONPATH=. .venv/bin/python experiments/benchmarks/build_tabular.py " + " ".join(sys.argv[1:]),
        "git_commit": commit, "build_wall_s": time.time() - t0, "machine": machine(),
    }
    atomic_json(out.with_suffix(".json"), protocol)
    print(f"wrote {out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
