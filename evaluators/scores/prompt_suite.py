"""``prompt_suite``: generate videos for held-out captions and check, offline, what they ask.

The offline counterpart of the VBench dimensions SnapGen-V searched with (object class,
colour, overall consistency), on the built-in captioned set (``evaluators.synth``):

* ``colour``: the mean colour of the foreground (pixels brighter than the black
  background) is nearest to the caption's colour;
* ``object``: the foreground best matches (cosine similarity over every position) the
  template of the caption's object class, by majority over frames;
* ``motion``: the least-squares velocity of the foreground centroid names the caption's
  direction (``none`` below 0.25 px/frame);
* ``flicker``: VBench's temporal flickering, ``1 − mean |frame_t − frame_{t−1}|``, on the
  clips whose caption says "staying still".

Quality is the mean of the four. Noise and captions are fixed, so the score is
deterministic. It needs the dataset's labels (object, colour, motion).
"""
from __future__ import annotations

import torch

from evaluators.data import DataError, latents_to_frames
from evaluators.flow import euler_sample, video_noise
from evaluators.scores.base import Evaluator, SamplingOptions, Score, register_evaluator
from evaluators.synth import COLOURS, MOTIONS, OBJECTS, RADIUS, shape_mask

FOREGROUND = 0.3  # brightest channel above this is foreground (the background is black)
STILL_PX_PER_FRAME = 0.25


def foreground(frames: torch.Tensor) -> torch.Tensor:
    """(N, T, 3, H, W) in [0, 1] -> soft foreground weights (N, T, H, W)."""
    return (frames.amax(dim=2) - FOREGROUND).clamp(min=0) / (1 - FOREGROUND)


def colour_of(frames: torch.Tensor, weight: torch.Tensor) -> list[str]:
    w = weight.unsqueeze(2)
    mean = (frames * w).sum(dim=(1, 3, 4)) / w.sum(dim=(1, 3, 4)).clamp(min=1e-6)  # (N, 3)
    palette = torch.tensor(list(COLOURS.values()))
    return [list(COLOURS)[i] for i in torch.cdist(mean, palette).argmin(1).tolist()]


def _templates(height: int, width: int) -> torch.Tensor:
    """(objects, positions, H·W) unit-norm masks of each class centred on a half-pixel grid."""
    radius = RADIUS * min(height, width)
    centres = [(x / 2, y / 2) for y in range(2 * height) for x in range(2 * width)]
    bank = torch.stack([torch.stack([shape_mask(o, cx, cy, radius, height, width).flatten() for cx, cy in centres])
                        for o in OBJECTS])
    return bank / bank.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def object_of(weight: torch.Tensor, templates: torch.Tensor) -> list[str]:
    n, t = weight.shape[:2]
    masks = weight.reshape(n * t, -1)
    masks = masks / masks.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    best = torch.einsum("fp,oqp->foq", masks, templates).amax(-1)  # (frames, objects)
    votes = best.argmax(-1).reshape(n, t)
    return [OBJECTS[int(torch.mode(v).values)] for v in votes]


def motion_of(weight: torch.Tensor) -> list[str]:
    n, t, h, w = weight.shape
    mass = weight.sum(dim=(2, 3)).clamp(min=1e-6)
    ys, xs = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    cx = (weight.sum(2) * xs).sum(-1) / mass
    cy = (weight.sum(3) * ys).sum(-1) / mass
    time = torch.arange(t, dtype=torch.float32) - (t - 1) / 2
    vx = (cx * time).sum(1) / (time ** 2).sum()
    vy = (cy * time).sum(1) / (time ** 2).sum()
    out = []
    for x, y in zip(vx.tolist(), vy.tolist()):
        if max(abs(x), abs(y)) < STILL_PX_PER_FRAME:
            out.append("none")
        elif abs(x) >= abs(y):
            out.append("right" if x > 0 else "left")
        else:
            out.append("down" if y > 0 else "up")
    return out


def flicker_score(frames: torch.Tensor) -> torch.Tensor:
    """Per clip: 1 − mean absolute difference of consecutive frames (VBench's temporal flickering)."""
    return 1.0 - (frames[:, 1:] - frames[:, :-1]).abs().flatten(1).mean(1)


def suite_scores(frames: torch.Tensor, labels: dict[str, list[str]], templates: torch.Tensor) -> dict[str, float]:
    """Scores of generated clips (N, T, 3, H, W) in [0, 1] against their captions' labels."""
    weight = foreground(frames)
    hits = {
        "colour": [a == b for a, b in zip(colour_of(frames, weight), labels["colour"])],
        "object": [a == b for a, b in zip(object_of(weight, templates), labels["object"])],
        "motion": [a == b for a, b in zip(motion_of(weight), labels["motion"])],
    }
    out = {k: sum(v) / len(v) for k, v in hits.items()}
    moving = torch.tensor([m != "none" for m in labels["motion"]])
    out["motion_moving"] = sum(h for h, m in zip(hits["motion"], moving.tolist()) if m) / max(1, int(moving.sum()))
    still = ~moving if (~moving).any() else torch.ones_like(moving)
    out["flicker"] = flicker_score(frames[still]).mean().item()
    return out


@register_evaluator("prompt_suite")
class PromptSuiteEvaluator(Evaluator):
    PARTS = ("colour", "object", "motion", "flicker")
    Options = SamplingOptions

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        val = data.load("val", self.options.prompts)
        missing = [k for k in ("object", "colour", "motion") if k not in val.labels]
        if missing:
            raise DataError(f"evaluator prompt_suite needs labels {', '.join(missing)} in {data.root}; it scores "
                            f"the built-in captioned set (hwnas data synth); use flow_loss or vbench for other data")
        unknown = sorted(set(val.labels["motion"]) - set(MOTIONS))
        if unknown:
            raise DataError(f"{data.root}: motion label {unknown[0]!r} unknown to prompt_suite; allowed: "
                            f"{', '.join(MOTIONS)}")
        self.text, self.labels, self.captions = val.text, val.labels, val.captions
        gen = torch.Generator().manual_seed(config.noise_seed)
        self.noise = video_noise((len(val.captions), *data.latent_shape), gen, config.noise_correlation)
        self.templates = _templates(*data.latent_shape[2:])

    def generate(self, model) -> torch.Tensor:
        out = []
        for start in range(0, len(self.noise), 16):
            sl = slice(start, start + 16)
            latents = euler_sample(model, self.noise[sl].to(self.device), self.text[sl].to(self.device),
                                   self.options.sample_steps, self.options.guidance_scale)
            out.append(latents_to_frames(latents).cpu())
        return torch.cat(out)

    def score(self, model) -> Score:
        breakdown = suite_scores(self.generate(model), self.labels, self.templates)
        quality = sum(breakdown[k] for k in self.PARTS) / len(self.PARTS)
        return Score(quality, breakdown)
