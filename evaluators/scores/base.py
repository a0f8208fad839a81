"""The evaluator base class and its registry."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.registry import Registry


@dataclass(frozen=True)
class Score:
    """``quality``: higher is better, comparable across architectures of one experiment;
    ``breakdown``: the named parts it was computed from."""

    quality: float
    breakdown: dict[str, float] = field(default_factory=dict)


class Evaluator:
    """Scores a trained video UNet. Built once per worker from the experiment's
    ``evaluator`` section and the dataset (so fixed noise and validation subsets are drawn
    once); ``score`` must be deterministic for a given model."""

    name: str = ""

    def __init__(self, config, data, device: str | torch.device = "cpu"):
        self.config, self.data, self.device = config, data, torch.device(device)

    def score(self, model) -> Score:
        raise NotImplementedError


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", "evaluators.scores")
register_evaluator = EVALUATORS.register


def create_evaluator(config, data, device: str | torch.device = "cpu") -> Evaluator:
    return EVALUATORS.get(config.name)(config, data, device)
