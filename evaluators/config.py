"""The ``data``, ``train`` and ``evaluator`` sections of an experiment (each evaluator's
options are declared beside it, in ``evaluators.scores``).

Defaults are the tiny experiment's: one candidate (K = 40 steps of batch 4 clips, then the
``flow_loss`` score on 32 fixed validation clips at t ∈ {0.3, 0.5, 0.7}) takes ≈ 15–25 s on
one CPU thread, and its quality separates add/remove actions from seed noise
(experiments/benchmarks/results/signal_to_noise.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from core.config import PluginSection


def at_least(obj, names, low) -> None:
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
        at_least(self, ("videos", "val_videos"), 1)
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
        at_least(self, ("steps", "batch"), 1)
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
        at_least(self, ("steps", "batch", "threads"), 1)
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
class EvaluatorConfig(PluginSection):
    """How a trained candidate is scored: the evaluator ``name`` (a registered
    ``evaluators.scores`` entry) and its ``options`` (that evaluator's ``Options``, e.g.
    ``flow_loss``: ``t_values``, ``val_clips``; see ``evaluators/README.md``). Shared by every
    evaluator: the fixed noise's seed ``noise_seed`` and the noise prior ``noise_correlation``
    (CandidateRunner sets it to train.noise_correlation, the prior the model was trained with)."""

    registry: ClassVar[str] = "evaluators.scores:EVALUATORS"
    section: ClassVar[str] = "evaluator"
    formerly: ClassVar[dict[str, str]] = {"discrimination": "caption_discrimination"}

    name: str = "flow_loss"
    options: Any = None  # parsed by the evaluator's Options
    noise_seed: int = 1234
    noise_correlation: float = 0.0
