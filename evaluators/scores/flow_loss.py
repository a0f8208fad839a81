"""``flow_loss``: the rectified-flow validation loss at fixed t and fixed noise.

The first ``val_clips`` clips of the held-out split, each at every t of ``t_values``, with
noise drawn once from ``noise_seed``: the score is a deterministic function of the model,
so two candidates differ only by what they learned. Quality is the fraction of the
velocity target's energy the model explains, ``1 − L / L₀``, where ``L₀ = ‖ε − x0‖²`` is
the loss of predicting zero velocity on the same clips and noise (higher is better, 1 is
perfect). The breakdown holds the loss at each t and, on data with motion labels, on
moving and on static clips (the cheap proxy for motion that STACK.md suggests).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluators.config import at_least
from evaluators.flow import flow_loss, video_noise
from evaluators.scores.base import Evaluator, Score, check_t_values, register_evaluator

CHUNK = 16  # clips per forward


@dataclass(frozen=True)
class FlowLossOptions:
    t_values: tuple[float, ...] = (0.3, 0.5, 0.7)
    val_clips: int = 32

    def __post_init__(self):
        check_t_values(self.t_values)
        at_least(self, ("val_clips",), 1)


@register_evaluator("flow_loss")
class FlowLossEvaluator(Evaluator):
    Options = FlowLossOptions

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        val = data.load("val", self.options.val_clips)
        self.x0, self.text = val.latents, val.text
        gen = torch.Generator().manual_seed(config.noise_seed)
        self.noise = video_noise((len(self.options.t_values), *self.x0.shape), gen, config.noise_correlation)
        self.moving = None
        if "motion" in val.labels:
            self.moving = torch.tensor([m != "none" for m in val.labels["motion"]])
        self.baseline = ((self.noise - self.x0) ** 2).flatten(2).mean(-1)  # L₀ per (t, clip)

    @torch.no_grad()
    def per_clip_loss(self, model) -> torch.Tensor:
        """(len(t_values), clips) losses."""
        out = torch.empty(len(self.options.t_values), len(self.x0))
        for i, t in enumerate(self.options.t_values):
            for start in range(0, len(self.x0), CHUNK):
                sl = slice(start, start + CHUNK)
                x0, text = self.x0[sl].to(self.device), self.text[sl].to(self.device)
                tt = torch.full((len(x0),), float(t), device=self.device)
                out[i, sl] = flow_loss(model, x0, text, tt, self.noise[i, sl].to(self.device), reduce=False).cpu()
        return out

    def score(self, model) -> Score:
        loss = self.per_clip_loss(model).double()
        base = self.baseline.double()
        breakdown = {"loss": loss.mean().item()}
        for i, t in enumerate(self.options.t_values):
            breakdown[f"loss_t{t:g}"] = loss[i].mean().item()
        if self.moving is not None and self.moving.any() and (~self.moving).any():
            breakdown["loss_moving"] = loss[:, self.moving].mean().item()
            breakdown["loss_static"] = loss[:, ~self.moving].mean().item()
        quality = 1.0 - loss.mean().item() / base.mean().item()
        return Score(quality, breakdown)
