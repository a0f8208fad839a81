"""``vbench``: an adapter over the real VBench package (extra ``vbench``; METHOD.md §5).

For each chosen dimension it samples videos with the project's Euler sampler, writes them
as ``{prompt}-{i}.mp4`` (H.264, :func:`evaluators.sample.write_video`), calls
``VBench(device, full_info_json, output_dir).evaluate(...)`` and normalises each score
``(x − min)/(max − min)`` with VBench's published bounds. In ``custom_input`` mode the
prompts are the dataset's held-out captions, in ``standard`` mode VBench's own prompt suite
(``evaluator.options.mode``; ``auto``: custom where VBench allows it). Quality is VBench's: the
weighted mean of the chosen quality dimensions (dynamic degree weighs 0.5), the mean of
the chosen semantic ones, and ``(4·Q + S)/5`` when both occur. ``temporal_flickering`` is
reported beside the project's own flicker of the same videos (``prompt_suite``'s
``flicker_score`` on the frames before they were encoded).

VBench downloads its models at evaluation time, which these machines cannot do: the
adapter reads them from a local cache directory (``evaluator.options.cache_dir``, else
``$VBENCH_CACHE_DIR``, else ``~/.cache/vbench``) and refuses, in one line naming the file
and the dimension, when one is missing, before VBench is imported (some of its modules
download at import). ``temporal_flickering`` needs no weights. A dimension whose Python
requirements are not installed (GRiT's detectron2, pyiqa, fairscale) is refused in one line
too.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from core.errors import HwnasError, one_line
from evaluators.config import at_least
from evaluators.data import latents_to_frames
from evaluators.flow import euler_sample, video_noise
from evaluators.sample import write_video
from evaluators.scores.base import Evaluator, SamplingOptions, Score, register_evaluator
from evaluators.scores.prompt_suite import flicker_score
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
# VBench's custom_input mode refuses these (its check_dimension_requires_extra_info): they
# need its standard prompts and their metadata.
STANDARD_ONLY = frozenset({"object_class", "multiple_objects", "scene", "appearance_style", "color",
                           "spatial_relationship"})
MODES = ("auto", "custom_input", "standard")
TORCH_HUB = "$TORCH_HUB/"  # a path under torch.hub.get_dir() rather than the VBench cache
# What each dimension reads in VBench 0.1.5 (utils.init_submodules with local=True, and the
# dimension's own module); VBench would download each of them when it is missing.
WEIGHT_FILES = {
    "subject_consistency": ("dino_model/facebookresearch_dino_main/hubconf.py",
                            "dino_model/dino_vitbase16_pretrain.pth",
                            # DINO's hubconf loads its weights through torch.hub's own cache
                            TORCH_HUB + "checkpoints/dino_vitbase16_pretrain.pth"),
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


def check_dimensions(dimensions, mode: str = "auto") -> None:
    if not dimensions:
        raise ValueError("dimensions: give at least one dimension")
    for dim in dimensions:
        if dim not in BOUNDS:
            raise ValueError(f"dimensions: unknown dimension {dim!r}; allowed: {', '.join(BOUNDS)}")
    if mode not in MODES:
        raise ValueError(f"mode: unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    refused = [d for d in dimensions if d in STANDARD_ONLY]
    if mode == "custom_input" and refused:
        raise ValueError(f"mode: custom_input cannot score {', '.join(refused)}: they need VBench's standard "
                         "prompts and their metadata (VBench refuses them on custom prompts); use mode standard "
                         "or auto")


def uses_standard_prompts(dimension: str, mode: str) -> bool:
    return mode == "standard" or (mode == "auto" and dimension in STANDARD_ONLY)


def cache_dir(configured: str | None) -> Path:
    return Path(configured or os.environ.get("VBENCH_CACHE_DIR") or Path.home() / ".cache" / "vbench")


def weight_path(rel: str, root: Path) -> Path:
    if rel.startswith(TORCH_HUB):
        return Path(torch.hub.get_dir()) / rel[len(TORCH_HUB):]
    return root / rel


def check_weights(dimensions, root: Path) -> None:
    """One clear line for the first weight file missing from the local cache."""
    for dim in dimensions:
        for rel in WEIGHT_FILES[dim]:
            path = weight_path(rel, root)
            if not path.is_file():
                where = "torch.hub's cache" if rel.startswith(TORCH_HUB) else "evaluator.options.cache_dir"
                raise VBenchError(f"vbench dimension {dim} needs {path}, which is missing; put VBench's "
                                  f"weights in {where} (nothing is downloaded)")


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


def _point_at(root: Path) -> None:
    """VBench reads its cache directory from the environment when imported, and some of its
    modules keep a copy: point them all at ``root``."""
    os.environ["VBENCH_CACHE_DIR"] = str(root)
    for name, module in list(sys.modules.items()):
        if (name == "vbench" or name.startswith("vbench.")) and hasattr(module, "CACHE_DIR"):
            module.CACHE_DIR = str(root)


def import_vbench(dimensions=(), root: Path | None = None):
    """The ``VBench`` class and each dimension's module, imported with the cache at ``root``
    (check the weights first: some modules download at import when a file is missing)."""
    if root is not None:
        _point_at(root)
    try:
        from vbench import VBench
    except ImportError as exc:
        raise VBenchError(f"the vbench evaluator needs the VBench package: pip install -c constraints.txt "
                          f"'hwnas[vbench]' && pip install --no-deps -c constraints.txt vbench "
                          f"({one_line(exc, with_type=True)})") from None
    if root is not None:
        _point_at(root)
    for dim in dimensions:
        try:
            importlib.import_module(f"vbench.{dim}")
        except ImportError as exc:
            raise VBenchError(f"vbench dimension {dim} cannot be imported here: {one_line(exc, with_type=True)}"
                              ) from None
    return VBench


def full_info_path() -> Path:
    import vbench

    return Path(vbench.__file__).parent / "VBench_full_info.json"


def standard_prompts(full_info: Path, dimension: str, limit: int | None) -> list[str]:
    """VBench's standard prompt suite of one dimension, from its full-info JSON."""
    entries = json.loads(full_info.read_text())
    prompts = [e["prompt_en"] for e in entries if dimension in e["dimension"]]
    return prompts[:limit]


def run_vbench(videos: Path, dimension: str, standard: bool, root: Path, out: Path,
               device: str = "cpu") -> tuple[float, dict[str, float]]:
    """The real VBench on a folder of ``{prompt}-{i}.mp4``: (its score, {video file: score})."""
    check_weights([dimension], root)
    bench = import_vbench([dimension], root)(device, str(full_info_path()), str(out))
    bench.evaluate(videos_path=str(videos), name=dimension, dimension_list=[dimension], local=True,
                   mode="vbench_standard" if standard else "custom_input")
    result = json.loads((out / f"{dimension}_eval_results.json").read_text())[dimension]
    value, per_video = (result[0], result[1]) if isinstance(result, list) else (result, [])
    return float(value), {Path(v["video_path"]).name: float(v["video_results"]) for v in per_video
                          if isinstance(v.get("video_results"), (int, float))}


@dataclass(frozen=True)
class VBenchOptions(SamplingOptions):
    """VBench ``dimensions``; ``mode``: ``custom_input`` prompts every dimension with the
    dataset's held-out captions (VBench refuses it for object class, colour, …), ``standard``
    with VBench's own prompt suite, ``auto`` the first where VBench allows it and the second
    otherwise; the local weight cache ``cache_dir`` (default: $VBENCH_CACHE_DIR or
    ~/.cache/vbench), ``videos_per_prompt``, ``max_prompts`` per dimension (None: the whole
    standard suite) and the written videos' ``fps``; sampling as ``prompt_suite``."""

    dimensions: tuple[str, ...] = ("overall_consistency", "object_class", "color")
    mode: Literal["auto", "custom_input", "standard"] = "auto"
    cache_dir: str | None = None
    videos_per_prompt: int = 1
    max_prompts: int | None = None
    fps: int = 8

    def __post_init__(self):
        super().__post_init__()
        check_dimensions(self.dimensions, self.mode)
        at_least(self, ("videos_per_prompt", "max_prompts", "fps"), 1)


@register_evaluator("vbench")
class VBenchEvaluator(Evaluator):
    Options = VBenchOptions

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.root = cache_dir(self.options.cache_dir)
        check_weights(self.options.dimensions, self.root)
        import_vbench(self.options.dimensions, self.root)  # fails here, before any sampling
        val = data.load("val", self.options.prompts)
        self.captions = list(dict.fromkeys(val.captions))
        encoder = str(data.meta.get("encoder", "builtin")).split("(")[0]
        self.encode = text_encoder(encoder, *data.text_shape)

    def write_videos(self, model, prompts: list[str], out: Path) -> torch.Tensor:
        """Sample ``videos_per_prompt`` clips of each prompt, write them to ``out``; the frames
        (N, T, 3, H, W) in [0, 1] as sampled, before encoding."""
        gen = torch.Generator().manual_seed(self.config.noise_seed)
        shape = self.data.latent_shape
        frames = []
        for i in range(self.options.videos_per_prompt):
            for start in range(0, len(prompts), 16):
                chunk = prompts[start:start + 16]
                noise = video_noise((len(chunk), *shape), gen, self.config.noise_correlation).to(self.device)
                latents = euler_sample(model, noise, self.encode(chunk).to(self.device), self.options.sample_steps,
                                       self.options.guidance_scale)
                for prompt, video in zip(chunk, latents_to_frames(latents).cpu()):
                    write_video(video, out / video_name(prompt, i), fps=self.options.fps, scale=1)
                    frames.append(video)
        return torch.stack(frames)

    def score(self, model) -> Score:
        raw: dict[str, float] = {}
        extra: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="hwnas-vbench-") as tmp:
            full_info = full_info_path()
            for dim in self.options.dimensions:
                standard = uses_standard_prompts(dim, self.options.mode)
                prompts = (standard_prompts(full_info, dim, self.options.max_prompts) if standard
                           else self.captions[: self.options.max_prompts])
                videos = Path(tmp) / dim
                videos.mkdir()
                frames = self.write_videos(model, prompts, videos)
                raw[dim], _ = run_vbench(videos, dim, standard, self.root, Path(tmp) / "results", str(self.device))
                if dim == "temporal_flickering":
                    extra["temporal_flickering_hwnas"] = flicker_score(frames).mean().item()
        normalised = {d: normalise(d, v) for d, v in raw.items()}
        summary = aggregate(normalised)
        breakdown = {**{f"{d}_raw": v for d, v in raw.items()}, **extra, **normalised, **summary}
        return Score(summary["total_score"], breakdown)
