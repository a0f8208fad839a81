"""``weighted``: one quality from several evaluators, as VBench weights its dimensions.

``evaluator.components`` maps evaluator names to weights, e.g. ``{flow_loss: 0.5,
caption_discrimination: 0.5}``; each component is built from the same ``evaluator``
section (so they share ``val_clips``, ``noise_seed``, …) and the quality is
``Σ wᵢ·qualityᵢ / Σ wᵢ``. The breakdown keeps each component's quality and breakdown under
``name/``. Components' qualities have different scales (flow_loss ≈ 0.9–0.95, an accuracy
in [0, 1], a margin ×1000): choose weights with that in mind.
"""
from __future__ import annotations

import dataclasses

from evaluators.scores.base import EVALUATORS, Evaluator, Score, register_evaluator


@register_evaluator("weighted")
class WeightedEvaluator(Evaluator):
    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.weights = dict(config.components)
        self.parts = {name: EVALUATORS.get(name)(dataclasses.replace(config, name=name, components={}), data, device)
                      for name in self.weights}

    def score(self, model) -> Score:
        total, breakdown = 0.0, {}
        for name, ev in self.parts.items():
            score = ev.score(model)
            total += self.weights[name] * score.quality
            breakdown[f"{name}/quality"] = score.quality
            breakdown.update({f"{name}/{k}": v for k, v in score.breakdown.items()})
        return Score(total / sum(self.weights.values()), breakdown)
