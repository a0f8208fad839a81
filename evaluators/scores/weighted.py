"""``weighted``: one quality from several evaluators, as VBench weights its dimensions.

``evaluator.options.components`` lists the evaluators with their weights and their own
options, e.g. ``[{name: flow_loss, weight: 0.5}, {name: caption_discrimination, weight:
0.5, options: {quality: margin}}]``; each component shares the section's ``noise_seed``,
and the quality is ``Σ wᵢ·qualityᵢ / Σ wᵢ``. The breakdown keeps each component's quality
and breakdown under ``name/``. Components' qualities have different scales (flow_loss ≈
0.9–0.95, an accuracy in [0, 1], a margin ×1000): choose weights with that in mind.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from core.config import PluginSection
from evaluators.scores.base import Evaluator, Score, register_evaluator


@dataclass(frozen=True)
class Component(PluginSection):
    """One evaluator of the weighted sum: its ``name``, ``weight`` and ``options``."""

    registry: ClassVar[str] = "evaluators.scores:EVALUATORS"
    section: ClassVar[str] = "evaluator.options.components[]"

    name: str
    options: Any = None
    weight: float = 1.0

    def __post_init__(self):
        if not self.weight > 0:
            raise ValueError(f"weight must be positive, got {self.weight!r}")
        super().__post_init__()


@dataclass(frozen=True)
class WeightedOptions:
    components: tuple[Component, ...] = ()

    def __post_init__(self):
        names = [c.name for c in self.components]
        if not names:
            raise ValueError("components: give at least one, e.g. [{name: flow_loss, weight: 0.5}, "
                             "{name: caption_discrimination, weight: 0.5}]")
        if len(set(names)) != len(names):
            raise ValueError(f"components: each evaluator at most once, got {', '.join(names)}")


@register_evaluator("weighted")
class WeightedEvaluator(Evaluator):
    Options = WeightedOptions

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.weights = {c.name: c.weight for c in self.options.components}
        self.parts = {c.name: c.plugin()(dataclasses.replace(config, name=c.name, options=c.options), data, device)
                      for c in self.options.components}

    def score(self, model) -> Score:
        total, breakdown = 0.0, {}
        for name, ev in self.parts.items():
            score = ev.score(model)
            total += self.weights[name] * score.quality
            breakdown[f"{name}/quality"] = score.quality
            breakdown.update({f"{name}/{k}": v for k, v in score.breakdown.items()})
        return Score(total / sum(self.weights.values()), breakdown)
