"""A short snapgen_v-shaped campaign on GPU Ray workers, every input real in form:

1. an SD-1.5-sized pipeline (UNet 860M, SD VAE, CLIP-L text encoder), randomly initialised
   and written with ``save_pretrained`` (``evaluators.pipelines``);
2. generated videos (moving bars and squares over noise, mp4) encoded by ``data encode``'s
   library call on the GPU into 15×4×64×64 latents and 77×768 CLIP token states;
3. ``Search`` on ``space.backbone.weights`` = that pipeline, ``data.dir`` = those latents,
   snapgen strategy, K small, ``search.gpus_per_worker`` each, analytic iPhone table.

Records seconds per candidate (wall and the runner's own), the encode rate, GPU utilisation
and memory sampled from ``nvidia-smi`` every second, and the actors' assigned GPUs.

    python experiments/benchmarks/gpu_campaign.py                    # a GPU node: results/gpu_campaign_cuda.json
    python experiments/benchmarks/gpu_campaign.py --gpus-per-worker 0.5
    python experiments/benchmarks/gpu_campaign.py --smoke            # CPU, tiny shapes: checks the script runs

NOT YET RUN ON A GPU (no GPU was lent to the session that wrote it); ``--smoke`` ran on CPU.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import machine, write  # noqa: E402


class GpuSampler(threading.Thread):
    """``nvidia-smi`` every ``interval_s``: utilisation (%) and memory used (MiB) per GPU."""

    def __init__(self, interval_s: float = 1.0):
        super().__init__(daemon=True)
        self.interval_s, self.samples, self._halt = interval_s, [], threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
                rows = [[float(x) for x in line.split(",")] for line in out.stdout.strip().splitlines()]
                self.samples.append({"t": time.time(), "gpus": rows})
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return  # no nvidia-smi (CPU smoke run)
            self._halt.wait(self.interval_s)

    def stop(self) -> dict:
        self._halt.set()
        self.join(timeout=5)
        if not self.samples:
            return {"samples": 0}
        util = [g[1] for s in self.samples for g in s["gpus"]]
        mem = [g[2] for s in self.samples for g in s["gpus"]]
        per_gpu = {}
        for s in self.samples:
            for idx, u, m in s["gpus"]:
                d = per_gpu.setdefault(int(idx), {"util": [], "mem": []})
                d["util"].append(u)
                d["mem"].append(m)
        return {"samples": len(self.samples), "util_mean_pct": statistics.mean(util), "util_max_pct": max(util),
                "memory_max_mib": max(mem),
                "per_gpu": {i: {"util_mean_pct": statistics.mean(d["util"]), "memory_max_mib": max(d["mem"])}
                            for i, d in per_gpu.items()}}


def make_videos(root: Path, n: int, frames: int, size: int, seed: int = 0) -> Path:
    from evaluators.video_io import write_video

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["video,caption"]
    motions = ["left", "right", "up", "down"]
    for i in range(n):
        motion = motions[i % 4]
        clip = rng.integers(0, 80, (frames, size, size, 3), dtype=np.uint8)
        box = size // 6
        for k in range(frames):
            off = int((size - box) * k / max(1, frames - 1))
            x, y = {"left": (size - box - off, size // 3), "right": (off, size // 3),
                    "up": (size // 3, size - box - off), "down": (size // 3, off)}[motion]
            clip[k, y:y + box, x:x + box] = (230, 60 + 40 * (i % 4), 40)
        write_video(root / f"clip{i:04d}.mp4", clip, fps=8)
        rows.append(f"clip{i:04d},a square moving {motion}")
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/hwnas_gpu_campaign")
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="K per candidate")
    ap.add_argument("--batch", type=int, default=2, help="clips per training step")
    ap.add_argument("--max-train-steps", type=int, default=400)
    ap.add_argument("--gpus-per-worker", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=0, help="default: every GPU / gpus-per-worker")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny pipeline and shapes: checks the script runs")
    args = ap.parse_args()

    import torch

    from evaluators.encode import EncodeSettings, encode_dataset
    from evaluators.pipelines import SD15_TEXT, SD15_VAE, save_pipeline
    from nas.campaign import Campaign
    from nas.config import Experiment
    from nas.engine import Observer, Search

    device = "cpu" if args.smoke else "cuda"
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if device == "cuda" and not gpus:
        sys.exit("no CUDA GPU here; run with --smoke on a CPU")
    work = Path(args.work + ("_smoke" if args.smoke else ""))
    shutil.rmtree(work / "campaign", ignore_errors=True)
    timings: dict = {}

    t0 = time.perf_counter()
    pipe = work / "pipe"
    if not (pipe / "model_index.json").is_file():
        if args.smoke:
            save_pipeline(pipe)
        else:
            save_pipeline(pipe, unet_preset="sd15", vae=SD15_VAE, text=SD15_TEXT)
    timings["pipeline_s"] = time.perf_counter() - t0

    frames, size = (4, 16) if args.smoke else (15, 512)
    t0 = time.perf_counter()
    videos = work / "videos"
    if not (videos / "captions.csv").is_file():
        make_videos(videos, args.videos, 20 if not args.smoke else 8, size)
    timings["videos_s"] = time.perf_counter() - t0

    data = work / "latents"
    t0 = time.perf_counter()
    if not (data / "meta.json").is_file():
        settings = EncodeSettings(frames, size, size, fps=4.0 if not args.smoke else 8.0,
                                  val_videos=max(2, args.videos // 8), batch=4 if args.smoke else 1,  # 15 frames
                                  tokens=None if not args.smoke else 8)  # of 512x512 per SD-VAE call
        encode_dataset(videos, videos / "captions.csv", pipe, str(pipe), data, settings, device)
        timings["encode_s"] = time.perf_counter() - t0  # only when encoded now (not a cached set)
        timings["encode_clips_per_s"] = args.videos / timings["encode_s"]

    sampler = GpuSampler()
    sampler.start()
    workers = args.workers or (max(1, int(gpus / args.gpus_per_worker)) if gpus else 1)
    exp = Experiment.from_dict({
        "name": "gpu_campaign" + ("_smoke" if args.smoke else ""), "seed": 0,
        "space": {"backbone": {"weights": str(pipe)},
                  "video": {"frames": frames, "height": size // (2 if args.smoke else 8),
                            "width": size // (2 if args.smoke else 8)},
                  "text": {"tokens": 8 if args.smoke else 77}, "dtype": "float16",
                  "ops": ["conv1d", "conv3d", "self_attn1d", "self_attn3d", "cross_attn1d", "cross_attn3d"]
                  if not args.smoke else ["conv1d", "self_attn1d"],
                  "max_layers": 2 if not args.smoke else 1, "op_options": {"head_dim": 64 if not args.smoke else 16}},
        "budgets": {} if args.smoke else {"video": {"total_s": 5.0, "steps": 4, "text_encoder_ms": 6.0,
                                                    "decoder_ms": 500.0}, "memory_mib": 4096},
        "lut": {"backend": "analytic", "device": "iphone16_pro_max_ane"},
        "data": {"dir": str(data)},
        "train": {"steps": args.steps, "batch": args.batch, "lr": 1e-4, "device": device,
                  **({"threads": 1} if args.smoke else {})},
        "evaluator": {"name": "flow_loss", "options": {"t_values": [0.5, 0.7], "val_clips": 4 if args.smoke else 8}},
        "search": {"strategy": "snapgen", "options": {"combine": "rank", "evaluate": "eligible"},
                   "max_train_steps": args.max_train_steps, "workers": workers,
                   "gpus_per_worker": args.gpus_per_worker if device == "cuda" else 0.0,
                   "workdir": str(work / "runner"), "timeout_s": 3600},
    })
    candidates: list[dict] = []

    class Record(Observer):
        def event(self, kind, fields):
            if kind == "candidate":
                candidates.append(fields)
                print(f"{fields['id']} {fields['arch']} {fields['status']} q={fields['quality']} "
                      f"wall {fields['wall_s']:.1f}s", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    campaign = Campaign.create(work / "campaign", exp.to_dict())
    search = Search(campaign, exp)
    reason = search.run(Record())
    timings["search_s"] = time.perf_counter() - t0
    gpu = sampler.stop()
    ok = [c for c in candidates if c["status"] == "ok"]
    result = {
        "machine": machine() | {"gpus": [torch.cuda.get_device_name(i) for i in range(gpus)]},
        "smoke": args.smoke, "device": device, "workers": workers, "gpus_per_worker": args.gpus_per_worker,
        "steps_per_candidate": args.steps, "batch": args.batch, "videos": args.videos,
        "latent_shape": json.loads((data / "meta.json").read_text())["latent_shape"], "stop_reason": reason,
        "timings": timings, "candidates": len(candidates), "failed": [c for c in candidates if c["status"] != "ok"],
        "seconds_per_candidate": {"wall_median": statistics.median([c["wall_s"] for c in ok]) if ok else None,
                                  "runner_median": statistics.median([c["seconds"] for c in ok]) if ok else None,
                                  "campaign_wall_per_candidate": timings["search_s"] / max(1, len(candidates))},
        "gpu": gpu, "front": campaign.front().to_dict(exp.budgets) if ok else None,
    }
    path = write(f"gpu_campaign_{'smoke_cpu' if args.smoke else 'cuda'}", result)
    print(f"wrote {path}: {len(candidates)} candidates, median {result['seconds_per_candidate']['wall_median']} s "
          f"each, GPU {gpu}", file=sys.stderr)


if __name__ == "__main__":
    main()
