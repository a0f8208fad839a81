"""``vbench``: an adapter over the real VBench package (extra ``vbench``; METHOD.md §5).

For each chosen dimension it samples videos, writes them as ``{prompt}-{i}.mp4``, calls
``VBench(device, full_info_json, output_dir).evaluate(...)`` and normalises each score
``(x − min)/(max − min)`` with VBench's published bounds. Dimensions that VBench's
``custom_input`` mode accepts are prompted with the held-out captions of the dataset;
the others (object class, colour, …) run in standard mode on VBench's own prompt suite.
Quality is VBench's: the weighted mean of the chosen quality dimensions (dynamic degree
weighs 0.5), the mean of the chosen semantic ones, and ``(4·Q + S)/5`` when both occur.

VBench downloads its models at evaluation time, which these machines cannot do: the
adapter reads them from a local cache directory (``evaluator.options.cache_dir``, else
``$VBENCH_CACHE_DIR``, else ``~/.cache/vbench``) and refuses, in one line naming the file
and the dimension, when one is missing. ``temporal_flickering`` needs no weights.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import HwnasError, one_line
from evaluators.config import at_least
from evaluators.data import latents_to_frames
from evaluators.flow import euler_sample, video_noise
from evaluators.scores.base import Evaluator, SamplingOptions, Score, register_evaluator
from evaluators.text import text_encoder

# VBench's published normalisation bounds and weights (its scripts/constant.py).
BOUNDS = {
    "subject_consistency": (0.1462, 1.0), "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0), "motion_smoothness": (0.706, 0.9975),
    "dynamic_degree": (0.0, 1.0), "aesthetic_quality": (0.0, 1.0), "imaging_quality": (0.0, 1.0),
    "object_class": (0.0, 1.0), "multiple_objects": (0.0, 1.0), "human_action": (0.0, 1.0),
    "color": (0.0, 1.0), "spatial_relationship": (0.0, 1.0), "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855), "temporal_style": (0.0, 0.364), "overall_consistency": (0.0, 0.364),
}
QUALITY_DIMENSIONS = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
                      "aesthetic_quality", "imaging_quality", "dynamic_degree")
WEIGHTS = {"dynamic_degree": 0.5}
# VBench's custom_input mode refuses these: they need its standard prompts and metadata.
STANDARD_ONLY = {"background_consistency", "object_class", "multiple_objects", "scene", "appearance_style",
                 "color", "spatial_relationship"}
# Files each dimension reads from the cache directory (VBench's utils.init_submodules, local=True).
WEIGHT_FILES = {
    "subject_consistency": ("dino_model/dino_vitb16_pretrain.pth",),
    "background_consistency": ("clip_model/ViT-B-32.pt",),
    "temporal_flickering": (),
    "motion_smoothness": ("amt_model/amt-s.pth",),
    "dynamic_degree": ("raft_model/models/raft-things.pth",),
    "aesthetic_quality": ("clip_model/ViT-L-14.pt", "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth"),
    "imaging_quality": ("pyiqa_model/musiq_spaq_ckpt-358bb6af.pth",),
    "object_class": ("grit_model/grit_b_densecap_objectdet.pth",),
    "multiple_objects": ("grit_model/grit_b_densecap_objectdet.pth",),
    "color": ("grit_model/grit_b_densecap_objectdet.pth",),
    "spatial_relationship": ("grit_model/grit_b_densecap_objectdet.pth",),
    "human_action": ("umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth",),
    "scene": ("caption_model/tag2text_swin_14m.pth",),
    "appearance_style": ("clip_model/ViT-B-32.pt",),
    "temporal_style": ("ViCLIP/ViClip-InternVid-10M-FLT.pth", "ViCLIP/bpe_simple_vocab_16e6.txt.gz"),
    "overall_consistency": ("ViCLIP/ViClip-InternVid-10M-FLT.pth", "ViCLIP/bpe_simple_vocab_16e6.txt.gz"),
}


class VBenchError(HwnasError):
    """VBench is not installed, or a weight file it needs is not in the local cache."""


def check_dimensions(dimensions) -> None:
    if not dimensions:
        raise ValueError("dimensions: give at least one dimension")
    for dim in dimensions:
        if dim not in BOUNDS:
            raise ValueError(f"dimensions: unknown dimension {dim!r}; allowed: {', '.join(BOUNDS)}")


def cache_dir(configured: str | None) -> Path:
    return Path(configured or os.environ.get("VBENCH_CACHE_DIR") or Path.home() / ".cache" / "vbench")


def check_weights(dimensions, root: Path) -> None:
    """One clear line for the first weight file missing from the local cache."""
    for dim in dimensions:
        for rel in WEIGHT_FILES[dim]:
            if not (root / rel).is_file():
                raise VBenchError(f"vbench dimension {dim} needs {root / rel}, which is missing; put VBench's "
                                  f"weights in evaluator.options.cache_dir (nothing is downloaded)")


def normalise(dimension: str, value: float) -> float:
    low, high = BOUNDS[dimension]
    return (value - low) / (high - low)


def aggregate(normalised: dict[str, float]) -> dict[str, float]:
    """VBench's Quality (weighted mean of quality dimensions), Semantic and Total scores."""
    out = {}
    quality = {d: v for d, v in normalised.items() if d in QUALITY_DIMENSIONS}
    semantic = {d: v for d, v in normalised.items() if d not in QUALITY_DIMENSIONS}
    if quality:
        w = {d: WEIGHTS.get(d, 1.0) for d in quality}
        out["quality_score"] = sum(quality[d] * w[d] for d in quality) / sum(w.values())
    if semantic:
        out["semantic_score"] = sum(semantic.values()) / len(semantic)
    if quality and semantic:
        out["total_score"] = (4 * out["quality_score"] + out["semantic_score"]) / 5
    else:
        out["total_score"] = out.get("quality_score", out.get("semantic_score"))
    return out


def video_name(prompt: str, index: int) -> str:
    """VBench's standard-mode file name: ``{prompt}-{index}.mp4`` (slashes cannot be in a name)."""
    return f"{prompt.replace('/', ' ')}-{index}.mp4"


def write_mp4(path: Path, video: torch.Tensor, fps: int) -> None:
    """``video``: (T, 3, H, W) in [0, 1]. Written with OpenCV, which the vbench extra brings."""
    try:
        import cv2
    except ImportError:
        raise VBenchError("writing mp4 needs OpenCV (pip install 'hwnas[vbench]')") from None
    frames = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    t, h, w, _ = frames.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _import_vbench():
    try:
        from vbench import VBench
    except ImportError as exc:
        raise VBenchError(f"the vbench evaluator needs the VBench package: pip install 'hwnas[vbench]' "
                          f"({one_line(exc, with_type=True)})") from None
    return VBench


def standard_prompts(full_info: Path, dimension: str, limit: int | None) -> list[str]:
    """VBench's standard prompt suite of one dimension, from its full-info JSON."""
    entries = json.loads(full_info.read_text())
    prompts = [e["prompt_en"] for e in entries if dimension in e["dimension"]]
    return prompts[:limit]


@dataclass(frozen=True)
class VBenchOptions(SamplingOptions):
    """VBench ``dimensions``, the local weight cache ``cache_dir`` (default: $VBENCH_CACHE_DIR
    or ~/.cache/vbench), ``videos_per_prompt``, ``max_prompts`` per dimension (None: the whole
    standard suite) and the written videos' ``fps``; sampling as ``prompt_suite``."""

    dimensions: tuple[str, ...] = ("overall_consistency", "object_class", "color")
    cache_dir: str | None = None
    videos_per_prompt: int = 1
    max_prompts: int | None = None
    fps: int = 8

    def __post_init__(self):
        super().__post_init__()
        check_dimensions(self.dimensions)
        at_least(self, ("videos_per_prompt", "max_prompts", "fps"), 1)


@register_evaluator("vbench")
class VBenchEvaluator(Evaluator):
    Options = VBenchOptions

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.root = cache_dir(self.options.cache_dir)
        check_weights(self.options.dimensions, self.root)
        os.environ["VBENCH_CACHE_DIR"] = str(self.root)
        self.VBench = _import_vbench()
        import vbench

        self.full_info = Path(vbench.__file__).parent / "VBench_full_info.json"
        val = data.load("val", self.options.prompts)
        self.captions = list(dict.fromkeys(val.captions))
        encoder = str(data.meta.get("encoder", "builtin")).split("(")[0]
        self.encode = text_encoder(encoder, *data.text_shape)

    def _write_videos(self, model, prompts: list[str], out: Path) -> None:
        gen = torch.Generator().manual_seed(self.config.noise_seed)
        shape = self.data.latent_shape
        for i in range(self.options.videos_per_prompt):
            for start in range(0, len(prompts), 16):
                chunk = prompts[start:start + 16]
                noise = video_noise((len(chunk), *shape), gen, self.config.noise_correlation).to(self.device)
                latents = euler_sample(model, noise, self.encode(chunk).to(self.device), self.options.sample_steps,
                                       self.options.guidance_scale)
                for prompt, video in zip(chunk, latents_to_frames(latents).cpu()):
                    write_mp4(out / video_name(prompt, i), video, self.options.fps)

    def score(self, model) -> Score:
        raw: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="hwnas-vbench-") as tmp:
            for dim in self.options.dimensions:
                standard = dim in STANDARD_ONLY
                prompts = (standard_prompts(self.full_info, dim, self.options.max_prompts) if standard
                           else self.captions[: self.options.max_prompts])
                videos = Path(tmp) / dim
                videos.mkdir()
                self._write_videos(model, prompts, videos)
                bench = self.VBench(str(self.device), str(self.full_info), str(Path(tmp) / "results"))
                bench.evaluate(videos_path=str(videos), name=dim, dimension_list=[dim], local=True,
                               mode="vbench_standard" if standard else "custom_input")
                result = json.loads((Path(tmp) / "results" / f"{dim}_eval_results.json").read_text())
                value = result[dim][0] if isinstance(result[dim], list) else result[dim]
                raw[dim] = float(value)
        normalised = {d: normalise(d, v) for d, v in raw.items()}
        summary = aggregate(normalised)
        breakdown = {**{f"{d}_raw": v for d, v in raw.items()}, **normalised, **summary}
        return Score(summary["total_score"], breakdown)
