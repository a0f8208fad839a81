"""Training throughput of the tiny experiment: spatial pre-training steps/s, brief-training
steps/s per architecture, scoring time, and seconds per candidate at the search budget.

    .venv/bin/python experiments/benchmarks/train_throughput.py                # CPU, 1 thread
    python experiments/benchmarks/train_throughput.py --device cuda            # a GPU (< 1 min)

Writes results/train_throughput_<device>.json (medians with min/max over repeats).
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
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import machine, write  # noqa: E402

from evaluators import CandidateRunner  # noqa: E402
from evaluators.config import PretrainConfig  # noqa: E402
from evaluators.pretrain import pretrain_spatial  # noqa: E402
from evaluators.training import train_temporal  # noqa: E402
from nas.config import Experiment  # noqa: E402

ARCHS = ("empty", "mid:conv1d:1", "mid:self_attn1d:1", "down0:conv1d:1,mid:conv1d:1,up1:conv1d:1",
         "down0:self_attn1d:2,mid:self_attn1d:2,up1:self_attn1d:2", "full")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[2] / "experiments" / "tiny.yaml"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    exp = Experiment.load(args.config)
    train = dataclasses.replace(exp.train, device=args.device, threads=None,
                                pretrain=dataclasses.replace(exp.train.pretrain, steps=3))
    work = Path(tempfile.mkdtemp(prefix="hwnas-throughput-"))
    runner = CandidateRunner(exp.space, exp.data, train, exp.evaluator, work)
    runner.prepare()
    out = {"config": args.config, "device": args.device, "threads": args.threads,
           "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
           "train": dataclasses.asdict(exp.train), "evaluator": exp.evaluator.name, "machine": machine()}

    # spatial pre-training steps/s (single frames, batch train.pretrain.batch)
    pre = exp.train.pretrain
    times = []
    for _ in range(args.repeats):
        sync(device)
        t0 = time.perf_counter()
        pretrain_spatial(runner.unet, runner.dataset, PretrainConfig(steps=args.steps, batch=pre.batch, lr=1e-5),
                         exp.train, 0, device)
        sync(device)
        times.append((time.perf_counter() - t0) / args.steps)
    out["pretrain"] = {"batch": pre.batch, "seconds_per_step": stats(times),
                       "steps_per_s": 1 / statistics.median(times),
                       "seconds_for_configured_steps": pre.steps * statistics.median(times)}

    out["archs"] = {}
    for text in ARCHS:
        arch = runner.space.parse(text)
        model = runner.build(arch, None, 0)
        step_times, score_times = [], []
        for r in range(args.repeats):
            sync(device)
            t0 = time.perf_counter()
            done = train_temporal(model, runner.dataset, args.steps, train, r, device)
            sync(device)
            if done.steps:
                step_times.append((time.perf_counter() - t0) / args.steps)
            t0 = time.perf_counter()
            runner.evaluator.score(model)
            sync(device)
            score_times.append(time.perf_counter() - t0)
        row = {"score_seconds": stats(score_times)}
        if step_times:
            step = statistics.median(step_times)
            row |= {"seconds_per_step": stats(step_times), "steps_per_s": 1 / step}
        else:
            step = 0.0
        row["seconds_per_candidate"] = exp.train.steps * step + statistics.median(score_times)
        out["archs"][text] = row
        print(text, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                     if not isinstance(v, dict)}, flush=True)
    print("pretrain", out["pretrain"], flush=True)
    print("wrote", write(f"train_throughput_{device.type}", out))


if __name__ == "__main__":
    main()
