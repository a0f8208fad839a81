"""The evaluator base class and its registry."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.config import NoOptions
from core.registry import Registry
from evaluators.config import at_least


@dataclass(frozen=True)
class Score:
    """``quality``: higher is better, comparable across architectures of one experiment;
    ``breakdown``: the named parts it was computed from."""

    quality: float
    breakdown: dict[str, float] = field(default_factory=dict)


def check_t_values(t_values) -> None:
    if not t_values or any(not 0.0 < t <= 1.0 for t in t_values):
        raise ValueError(f"t_values must be non-empty and in (0, 1], got {t_values!r}")


@dataclass(frozen=True)
class SamplingOptions:
    """Options of an evaluator that samples videos: ``prompts`` held-out captions, each
    sampled with ``sample_steps`` Euler steps (``guidance_scale`` > 1 turns on
    classifier-free guidance)."""

    prompts: int = 64
    sample_steps: int = 8
    guidance_scale: float = 1.0

    def __post_init__(self):
        at_least(self, ("prompts", "sample_steps"), 1)
        if self.guidance_scale < 1.0:
            raise ValueError(f"guidance_scale must be at least 1 (1 = no guidance), got {self.guidance_scale}")


class Evaluator:
    """Scores a trained video UNet. Built once per worker from the experiment's
    ``evaluator`` section (``config``; its ``options`` are this class's ``Options``, parsed
    from ``evaluator.options``) and the dataset (so fixed noise and validation subsets are
    drawn once); ``score`` must be deterministic for a given model."""

    name: str = ""
    Options: type = NoOptions

    def __init__(self, config, data, device: str | torch.device = "cpu"):
        self.config, self.data, self.device = config, data, torch.device(device)
        self.options = config.options

    def score(self, model) -> Score:
        raise NotImplementedError


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", "evaluators.scores")
register_evaluator = EVALUATORS.register


def create_evaluator(config, data, device: str | torch.device = "cpu") -> Evaluator:
    return EVALUATORS.get(config.name)(config, data, device)
