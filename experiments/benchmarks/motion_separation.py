"""At what training does the prompt_suite motion score start to separate architectures?

Trains the backbone alone and architectures with temporal layers for increasing numbers of
steps (one continuous run per architecture and seed, scored at each checkpoint) and records
the prompt_suite breakdown (motion accuracy on ``--prompts`` held-out captions, 16-step
Euler samples) and the flow_loss quality at each checkpoint. Too long for the 2-core CPU
(STACK.md: ≈ 2,000+ steps, 15–20 min per architecture there); meant for a GPU:

    python experiments/benchmarks/motion_separation.py --device cuda      # ~5 min on an H100

Writes results/motion_separation_<device>.json and .md, updated after every checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _machine import machine, write  # noqa: E402

from evaluators import CandidateRunner  # noqa: E402
from evaluators.config import DataConfig, PretrainConfig  # noqa: E402
from evaluators.scores import create_evaluator  # noqa: E402
from evaluators.training import train_temporal  # noqa: E402
from nas.config import Experiment  # noqa: E402

ARCHS = ("empty", "down0:conv1d:2,mid:conv1d:2,up1:conv1d:2",
         "down0:self_attn1d:2,mid:self_attn1d:2,up1:self_attn1d:2")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "experiments" / "tiny.yaml"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--archs", default=";".join(ARCHS), help="';'-separated architectures")
    ap.add_argument("--checkpoints", default="40,200,500,1000,2000,3000")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--videos", type=int, default=2048)
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--pretrain-steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--budget-s", type=float, default=420, help="stop adding checkpoints after this")
    args = ap.parse_args()
    torch.set_num_threads(1 if args.device == "cpu" else 8)
    start = time.perf_counter()
    exp = Experiment.load(args.config)
    data = DataConfig(videos=args.videos, val_videos=args.prompts)
    train = dataclasses.replace(exp.train, device=args.device, batch=args.batch, threads=None,
                                pretrain=PretrainConfig(steps=args.pretrain_steps, batch=64, lr=2e-3))
    suite = exp.evaluator.switch("prompt_suite", prompts=args.prompts, sample_steps=16)
    runner = CandidateRunner(exp.space, data, train, suite, Path(tempfile.mkdtemp(prefix="hwnas-motion-")))
    info = runner.prepare()
    flow = create_evaluator(exp.evaluator.switch("flow_loss", val_clips=args.prompts), runner.dataset,
                            runner.device)
    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    out = {"device": args.device, "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
           "prepare": info, "pretrain": dataclasses.asdict(train.pretrain), "batch": args.batch,
           "lr": train.lr, "prompts": args.prompts, "sample_steps": 16, "rows": [], "machine": machine()}

    def record(arch, seed, steps, model, seconds):
        s, f = runner.evaluator.score(model), flow.score(model)
        row = {"arch": arch, "seed": seed, "steps": steps, "train_seconds": seconds, "suite_quality": s.quality,
               **{f"suite_{k}": v for k, v in s.breakdown.items()}, "flow_quality": f.quality}
        out["rows"].append(row)
        print(f"{arch} seed {seed} K={steps}: motion {row['suite_motion']:.3f} (moving "
              f"{row['suite_motion_moving']:.3f}) colour {row['suite_colour']:.3f} object {row['suite_object']:.3f} "
              f"flicker {row['suite_flicker']:.4f} flow {f.quality:.5f}", flush=True)
        write(f"motion_separation_{runner.device.type}", dict(out))

    for seed in range(args.seeds):
        for arch in args.archs.split(";"):
            model = runner.build(runner.space.parse(arch), None, seed)
            if arch == "empty":
                record(arch, seed, 0, model, 0.0)
                continue
            done, spent = 0, 0.0
            for i, k in enumerate(checkpoints):
                if time.perf_counter() - start > args.budget_s:
                    break
                # one optimizer per segment (AdamW state restarts at each checkpoint)
                stats = train_temporal(model, runner.dataset, k - done, train, 1000 * seed + i, runner.device)
                done, spent = k, spent + stats.seconds
                record(arch, seed, k, model, spent)
    path = write(f"motion_separation_{runner.device.type}", out)
    lines = [f"# prompt_suite motion vs training ({args.device}, {out['gpu'] or 'cpu'})", "",
             f"{args.prompts} held-out captions, 16 Euler steps, batch {args.batch}, lr {train.lr}; backbone "
             f"pre-trained {args.pretrain_steps} steps (batch 64). Chance motion accuracy ≈ 0.2.", "",
             "| arch | seed | steps | motion | motion (moving) | colour | object | flicker | flow quality |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['arch']} | {r['seed']} | {r['steps']} | {r['suite_motion']:.3f} | {r['suite_motion_moving']:.3f} "
              f"| {r['suite_colour']:.3f} | {r['suite_object']:.3f} | {r['suite_flicker']:.4f} | "
              f"{r['flow_quality']:.5f} |" for r in out["rows"]]
    (Path(path).parent / (Path(path).stem + ".md")).write_text("\n".join(lines) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
