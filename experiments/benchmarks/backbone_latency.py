"""Whole video-UNet latency of one denoising step, backbone alone vs. with temporal layers.

On CUDA this prices the paper's setting for real: the SD-1.5-sized backbone at 15×64×64
latents in FP16, empty and with a light and a heavy temporal architecture. On CPU it runs
the tiny experiment only. Medians of timed repeats after warm-up, with p10/p90.

    python experiments/benchmarks/backbone_latency.py [--device cuda] [--repeats 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine, write  # noqa: E402

from nas.config import Experiment  # noqa: E402
from search_spaces.backbones import build_unet  # noqa: E402
from search_spaces.space import SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARCHS = {
    "tiny": ["empty", "full", "down0:self_attn1d:2,mid:cross_attn1d:2,up1:self_attn1d:2"],
    "snapgen_v": ["empty",
                  "down2:conv1d:1,down3:conv1d:1,mid:self_attn1d:1,up0:self_attn1d:1,up1:conv1d:1",
                  "down0:self_attn1d:2,down1:self_attn1d:2,down2:self_attn1d:2,down3:self_attn1d:2,mid:self_attn1d:2,"
                  "up0:self_attn1d:2,up1:self_attn1d:2,up2:self_attn1d:2,up3:self_attn1d:2"],
}


def time_ms(fn, device: str, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            out.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1 if args.device == "cpu" else torch.get_num_threads())
    experiments = ["tiny"] + (["snapgen_v"] if args.device == "cuda" else [])
    rows = []
    for name in experiments:
        exp = Experiment.load(ROOT / "experiments" / f"{name}.yaml")
        space = SearchSpace(exp.space)
        dtype = getattr(torch, space.config.dtype) if args.device == "cuda" else torch.float32
        unet = build_unet(exp.space.backbone, args.device).to(dtype).eval()
        x = torch.randn(space.video_shape, device=args.device, dtype=dtype)
        ctx = torch.randn(space.text_shape, device=args.device, dtype=dtype)
        t = torch.full((space.config.batch,), 500.0, device=args.device)
        for text in ARCHS[name]:
            arch = space.parse(text)
            model = space.build(arch, unet=unet).eval()
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with torch.inference_mode():
                times = time_ms(lambda: model(x, t, ctx), args.device, args.repeats, args.warmup)
            q = statistics.quantiles(times, n=10)
            row = {"experiment": name, "arch": str(arch), "dtype": str(dtype).split(".")[-1],
                   "median_ms": statistics.median(times), "p10_ms": q[0], "p90_ms": q[-1], "repeats": len(times)}
            if args.device == "cuda":
                row["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
            rows.append(row)
            print(f"{name:10s} {row['median_ms']:9.2f} ms  (p10 {q[0]:.2f}, p90 {q[-1]:.2f})  {arch}")
            del model
    info = machine()
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    path = write(f"backbone_latency_{args.device}", {"machine": info, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
