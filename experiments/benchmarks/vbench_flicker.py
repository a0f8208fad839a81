"""The real VBench's temporal_flickering against the project's flicker, on the same videos.

Pre-trains the tiny experiment's backbone (small data, short pre-training), trains one
architecture briefly, samples ``--prompts`` held-out captions with the Euler sampler and
writes them as H.264 mp4s (``evaluators.sample.write_video``), then runs VBench 0.1.5's
``temporal_flickering`` on them (the ``vbench`` extra). Beside VBench's number, read back
from the mp4s, it records the project's ``1 − mean |frame_t − frame_{t−1}|`` of the frames
before encoding, for the sampled clips and for the same clips frozen (first frame
repeated) and made to flicker (odd frames inverted): per clip and their mean.

    python experiments/benchmarks/vbench_flicker.py            # ~3 min on 2 cores

Writes results/vbench_flicker.json.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import torch
from _machine import machine, write

from evaluators import CandidateRunner
from evaluators.config import DataConfig, EvaluatorConfig, PretrainConfig, TrainConfig
from evaluators.sample import write_video
from evaluators.scores import vbench as vb
from evaluators.scores.prompt_suite import flicker_score
from nas.config import Experiment


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--arch", default="mid:conv1d:1")
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    exp = Experiment.load(ROOT / "experiments" / "tiny.yaml")
    result = {"machine": machine(), "arch": args.arch, "steps": args.steps, "prompts": args.prompts}
    with tempfile.TemporaryDirectory(prefix="vbench-flicker-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"  # empty: temporal_flickering needs no weights
        evaluator = EvaluatorConfig().switch("vbench", prompts=args.prompts, sample_steps=8,
                                             dimensions=("temporal_flickering",), mode="custom_input",
                                             cache_dir=str(cache))
        runner = CandidateRunner(exp.space, DataConfig(videos=192, val_videos=max(32, args.prompts)),
                                 TrainConfig(steps=args.steps, batch=4, pretrain=PretrainConfig(steps=100, batch=16)),
                                 evaluator, tmp / "work", seed=0)
        runner.prepare()
        start = time.perf_counter()
        scored = runner.run(args.arch, steps=args.steps)
        result["evaluator"] = {"status": scored.status, "breakdown": scored.breakdown,
                               "seconds": round(time.perf_counter() - start, 2)}
        model = runner.build(runner.space.parse(args.arch), None, 0)
        folders = {"sampled": tmp / "sampled"}
        folders["sampled"].mkdir()
        captions = runner.evaluator.captions[: args.prompts]
        frames = runner.evaluator.write_videos(model, captions, folders["sampled"])
        names = [vb.video_name(c, 0) for c in captions]
        clips = {"sampled": frames, "static": frames[:, :1].expand_as(frames).clone(), "flickering": frames.clone()}
        clips["flickering"][:, 1::2] = 1.0 - clips["flickering"][:, 1::2]
        for name in ("static", "flickering"):
            folders[name] = tmp / name
            folders[name].mkdir()
            for i, clip in enumerate(clips[name]):
                write_video(clip, folders[name] / vb.video_name(f"clip {i}", 0), fps=8, scale=1)
        result["variants"] = {}
        for name, folder in folders.items():
            start = time.perf_counter()
            value, per_video = vb.run_vbench(folder, "temporal_flickering", False, cache, tmp / "results")
            ours = flicker_score(clips[name])
            files = names if name == "sampled" else [vb.video_name(f"clip {i}", 0) for i in range(len(ours))]
            diffs = [per_video[f] - o for f, o in zip(files, ours.tolist())]
            result["variants"][name] = {
                "vbench": value, "hwnas": ours.mean().item(), "max_abs_diff_per_clip": max(map(abs, diffs)),
                "mean_diff_per_clip": sum(diffs) / len(diffs), "clips": len(diffs),
                "vbench_seconds": round(time.perf_counter() - start, 2)}
    print(write("vbench_flicker", result))
    for name, row in result["variants"].items():
        print(f"{name:>10}: VBench {row['vbench']:.4f}  hwnas {row['hwnas']:.4f}  "
              f"max |diff| per clip {row['max_abs_diff_per_clip']:.4f}")


if __name__ == "__main__":
    main()
