"""`hwnas cost` of diffusers video UNets (meta device) against published figures.

Each row costs one denoising step at batch 1 (no classifier-free guidance) with the
class's default config and inputs (search_spaces.video_cost) and prints the difference to a
figure published for that model. Sources:

* SVD UNet FLOPs per function evaluation, batch 1: 45.43 TFLOPs at 14 x 1024 x 576 px and
  8.6 TFLOPs at 14 x 512 x 256 px — MobileVD (Ben Yahia et al., "Mobile Video Diffusion",
  arXiv 2412.07583), Table 1 / project page qualcomm-ai-research.github.io/mobile-video-diffusion.
* ModelScope T2V (UNet3DConditionModel): "0.5 billion parameters are dedicated to temporal
  capabilities" — ModelScope Text-to-Video Technical Report (Wang et al., arXiv 2308.06571),
  abstract. Compared with our temporal-layer parameters.
* AnimateDiff (UNetMotionModel = SD 1.5 UNet + MotionAdapter): the spatial part is the SD 1.5
  UNet, "860M UNet" — CompVis/stable-diffusion README (model card). Compared with our
  non-temporal parameters.

Writes results/cost_video_unets.json.

    .venv/bin/python experiments/benchmarks/cost_video_unets.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, write  # noqa: E402

from search_spaces.video_cost import diffusers_cost  # noqa: E402

ROWS = [
    # (label, class, inputs, metric, published value, source)
    ("SVD 14x576x1024 px", "UNetSpatioTemporalConditionModel", {"sample": (1, 14, 8, 72, 128)}, "flops",
     45.43e12, "MobileVD arXiv 2412.07583 Table 1: SVD, 1024x576, 45.43 TFLOPs per NFE"),
    ("SVD 14x256x512 px", "UNetSpatioTemporalConditionModel", {"sample": (1, 14, 8, 32, 64)}, "flops",
     8.6e12, "MobileVD arXiv 2412.07583 Table 1: SVD, 512x256, 8.6 TFLOPs per NFE"),
    ("ModelScope T2V 16x256x256 px", "UNet3DConditionModel", {}, "temporal_params",
     0.5e9, "ModelScope T2V report arXiv 2308.06571: 0.5 B parameters for temporal capabilities"),
    ("AnimateDiff SD1.5 16x512x512 px", "UNetMotionModel", {}, "spatial_params",
     860e6, "CompVis/stable-diffusion README: 860M UNet (SD 1.x), the frozen spatial part"),
]


def main() -> None:
    result = {"machine": machine(), "rows": []}
    for label, cls, inputs, metric, published, source in ROWS:
        t0 = time.perf_counter()
        r = diffusers_cost(cls, None, inputs)
        seconds = time.perf_counter() - t0
        temporal = r.breakdown["temporal"]["params"]
        ours = {"flops": r.flops, "temporal_params": temporal, "spatial_params": r.params - temporal}[metric]
        diff = (ours - published) / published
        row = {"label": label, "class": cls, "metric": metric, "ours": ours, "published": published,
               "relative_difference": diff, "source": source, "seconds": seconds, **r.as_dict()}
        result["rows"].append(row)
        print(f"{label:34s} {metric:16s} ours {ours:.4g}  published {published:.4g}  difference {diff:+.1%}  "
              f"({seconds:.0f} s)  breakdown TFLOPs "
              + ", ".join(f"{k} {v['flops'] / 1e12:.2f}" for k, v in r.breakdown.items()), flush=True)
    print(write("cost_video_unets", result))


if __name__ == "__main__":
    main()
