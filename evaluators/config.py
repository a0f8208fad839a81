"""The ``data``, ``train`` and ``evaluator`` sections of an experiment.

Defaults are the tiny experiment's: one candidate (K = 40 steps of batch 4 clips, then the
``flow_loss`` score on 32 fixed validation clips at t ∈ {0.3, 0.5, 0.7}) takes ≈ 15–25 s on
one CPU thread, and its quality separates add/remove actions from seed noise
(experiments/benchmarks/results/signal_to_noise.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def _at_least(obj, names, low) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value < low:
            raise ValueError(f"{name} must be at least {low}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Precomputed video latents (``evaluators.data``). ``dir`` unset: the built-in synthetic
    set of ``videos`` clips (``val_videos`` of them held out) is written into the workdir:
    ``set: shapes`` (coloured shapes, RGB pixels as latents) or ``realistic`` (pans, zooms and
    cut-outs over bundled photos through a small VAE: 4-channel latents; ``evaluators.realistic``)."""

    dir: str | None = None
    set: Literal["shapes", "realistic"] = "shapes"
    videos: int = 512
    val_videos: int = 64
    seed: int = 0
    text_encoder: Literal["builtin", "minilm"] = "builtin"
    speed_scale: float = 1.0  # × both speeds of the built-in set (0.6 and 1.2 px/frame at 16×16)

    def __post_init__(self):
        _at_least(self, ("videos", "val_videos"), 1)
        if self.speed_scale <= 0:
            raise ValueError(f"speed_scale must be positive, got {self.speed_scale}")
        if self.val_videos >= self.videos:
            raise ValueError(f"val_videos {self.val_videos} must be below videos {self.videos}")


@dataclass(frozen=True)
class PretrainConfig:
    """Single-frame training of the spatial (image) backbone, cached and reused by every
    candidate (SnapGen-V trains the image model first, then freezes it). Ignored when
    ``space.backbone.weights`` points to pre-trained weights."""

    steps: int = 600
    batch: int = 32
    lr: float = 2e-3
    cache_dir: str | None = None  # default: WORKDIR/cache
    # t ~ logit-normal of the image model's own training; None: train.logit_mean/logit_std.
    # The temporal layers may need another range (motion is decided at high t) than the
    # image model, which must denoise at every t.
    logit_mean: float | None = None
    logit_std: float | None = None

    def __post_init__(self):
        _at_least(self, ("steps", "batch"), 1)
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class TrainConfig:
    """Brief rectified-flow training of the temporal layers (METHOD.md §4): ``steps`` K of
    AdamW on ``batch`` clips, t ~ logit-normal(``logit_mean`` m, ``logit_std`` s)."""

    steps: int = 40
    batch: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    logit_mean: float = -1.0
    logit_std: float = 1.0
    max_grad_norm: float | None = 1.0
    noise_correlation: float = 0.0  # ρ of the frame-shared noise prior (evaluators.flow.video_noise)
    lr_scale: dict[str, float] = field(default_factory=dict)  # op name -> multiplier of lr (e.g. cross_attn1d: 10)
    device: str = "cpu"
    threads: int | None = None  # torch threads during run(); None leaves the caller's
    pretrain: PretrainConfig = PretrainConfig()

    def __post_init__(self):
        _at_least(self, ("steps", "batch", "threads"), 1)
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.logit_std <= 0:
            raise ValueError(f"logit_std must be positive, got {self.logit_std}")
        for op, scale in self.lr_scale.items():
            if not scale > 0:
                raise ValueError(f"lr_scale.{op}: must be positive, got {scale!r}")
        if not 0.0 <= self.noise_correlation < 1.0:
            raise ValueError(f"noise_correlation must be in [0, 1), got {self.noise_correlation}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive, got {self.max_grad_norm}")


@dataclass(frozen=True)
class VBenchConfig:
    """The ``vbench`` evaluator: dimensions, the local weight cache, videos per prompt.
    ``mode``: ``custom_input`` prompts every dimension with the dataset's held-out captions
    (VBench refuses it for object class, colour, …), ``standard`` with VBench's own prompt
    suite, ``auto`` the first where VBench allows it and the second otherwise."""

    dimensions: tuple[str, ...] = ("overall_consistency", "object_class", "color")
    mode: Literal["auto", "custom_input", "standard"] = "auto"
    cache_dir: str | None = None  # default: $VBENCH_CACHE_DIR or ~/.cache/vbench
    videos_per_prompt: int = 1
    max_prompts: int | None = None  # per dimension; None: the whole standard suite
    fps: int = 8

    def __post_init__(self):
        from evaluators.scores.vbench import check_dimensions

        check_dimensions(self.dimensions, self.mode)
        _at_least(self, ("videos_per_prompt", "max_prompts", "fps"), 1)


ATTRIBUTES = ("motion", "speed", "colour", "object")


@dataclass(frozen=True)
class DiscriminationConfig:
    """The ``caption_discrimination`` evaluator ("diffusion classifier", Li et al. 2023): each
    held-out clip's flow loss under its true caption vs captions that change one of
    ``attributes``, same noise and t. ``t_values`` / ``clips`` unset: the evaluator section's
    ``t_values`` / ``val_clips``. ``subtract_backbone``: compare losses minus the frozen
    backbone's own loss for the same (clip, caption, t), so what is scored is what the
    temporal layers add. ``quality``: ``accuracy`` (mean over attributes of the fraction of
    clips whose true caption has the lowest loss) or ``margin`` (mean over attributes and
    clips of the loss of the alternatives minus the true caption's, relative to L₀ — smooth)."""

    attributes: tuple[str, ...] = ATTRIBUTES
    t_values: tuple[float, ...] | None = None
    clips: int | None = None
    subtract_backbone: bool = True
    quality: Literal["accuracy", "margin"] = "accuracy"

    def __post_init__(self):
        if not self.attributes or any(a not in ATTRIBUTES for a in self.attributes):
            raise ValueError(f"attributes must be a non-empty subset of {', '.join(ATTRIBUTES)}, got {self.attributes!r}")
        if self.t_values is not None and (not self.t_values or any(not 0.0 < t <= 1.0 for t in self.t_values)):
            raise ValueError(f"t_values must be non-empty and in (0, 1], got {self.t_values!r}")
        _at_least(self, ("clips",), 1)


@dataclass(frozen=True)
class EvaluatorConfig:
    """How a trained candidate is scored. ``flow_loss``: validation flow-matching loss on
    ``val_clips`` fixed clips at the fixed ``t_values`` with fixed noise (``noise_seed``).
    ``prompt_suite``: ``prompts`` held-out captions sampled with ``sample_steps`` Euler
    steps (``guidance_scale`` > 1 turns on classifier-free guidance). ``caption_discrimination``:
    see :class:`DiscriminationConfig`. ``weighted``: ``Σ wᵢ·qualityᵢ / Σ wᵢ`` over the evaluators
    named in ``components`` (name → weight), each built from this same section, every
    component's breakdown kept under ``name/``."""

    name: str = "flow_loss"
    t_values: tuple[float, ...] = (0.3, 0.5, 0.7)
    val_clips: int = 32
    noise_seed: int = 1234
    prompts: int = 64
    sample_steps: int = 8
    guidance_scale: float = 1.0
    vbench: VBenchConfig = VBenchConfig()
    discrimination: DiscriminationConfig = DiscriminationConfig()
    components: dict[str, float] = field(default_factory=dict)
    # The noise prior scoring and sampling use; CandidateRunner sets it to train.noise_correlation,
    # the prior the model was trained with.
    noise_correlation: float = 0.0

    def __post_init__(self):
        from evaluators.scores import EVALUATORS

        if self.name not in EVALUATORS:
            raise ValueError(f"name: unknown evaluator {self.name!r}; allowed: {', '.join(EVALUATORS.names())}")
        for comp, weight in self.components.items():
            if comp not in EVALUATORS or comp == "weighted":
                allowed = ", ".join(n for n in EVALUATORS.names() if n != "weighted")
                raise ValueError(f"components: unknown evaluator {comp!r}; allowed: {allowed}")
            if not weight > 0:
                raise ValueError(f"components.{comp}: weight must be positive, got {weight!r}")
        if self.name == "weighted" and not self.components:
            raise ValueError("components: evaluator weighted needs at least one component, "
                             "e.g. {flow_loss: 0.5, caption_discrimination: 0.5}")
        if not self.t_values or any(not 0.0 < t <= 1.0 for t in self.t_values):
            raise ValueError(f"t_values must be non-empty and in (0, 1], got {self.t_values!r}")
        _at_least(self, ("val_clips", "prompts", "sample_steps"), 1)
        if self.guidance_scale < 1.0:
            raise ValueError(f"guidance_scale must be at least 1 (1 = no guidance), got {self.guidance_scale}")
