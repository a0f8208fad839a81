"""``caption_discrimination``: text alignment without sampling — a "diffusion classifier"
(Li et al. 2023) over the caption's attributes.

For each of the first ``clips`` held-out clips and each attribute (motion direction,
speed, colour, object), the clip's conditional flow loss under its true caption is
compared with its loss under every caption that changes only that attribute (same clip,
same noise, same t; the loss summed over ``t_values``). The model "reads" the attribute
on a clip when the true caption has the lowest loss. Captions are re-encoded with the
dataset's own text encoder (``meta.json``'s ``encoder``) from the clip's labels.

* motion: the other directions and "staying still" at the clip's speed (a still clip:
  the four directions at the slower speed) — 5 captions, chance 0.2, the same as the
  sampled motion accuracy of ``prompt_suite``;
* speed: moving clips only, the other speed (chance 0.5);
* colour: the other colours (chance 1/6); object: the other objects (chance 1/4).

With ``subtract_backbone`` (default) each loss has the frozen backbone's own loss for the
same (clip, caption, noise, t) subtracted: the spatial backbone already prefers some
captions per clip (STACK.md), and what a search action changes is the temporal layers.
The backbone's losses are computed once per backbone and cached.

Quality: ``accuracy`` (mean over attributes) or ``margin`` (mean over attributes of the
mean, over clips and alternatives, of L(alternative) − L(true) relative to L₀ = ‖ε − x0‖²,
×1000; smooth in the weights, so better for small differences). The breakdown has both,
per attribute, plus the chance level of each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from evaluators.config import at_least
from evaluators.data import DataError
from evaluators.flow import TIMESTEP_SCALE, interpolate, velocity_target, video_noise
from evaluators.scores.base import Evaluator, Score, check_t_values, register_evaluator
from evaluators.synth import COLOURS, MOTIONS, OBJECTS, SPEEDS, caption_of
from evaluators.text import ENCODERS, text_encoder

CHUNK = 64  # (clip, caption) pairs per forward
LABELS = {"motion": ("motion", "speed"), "speed": ("motion", "speed"), "colour": ("colour",), "object": ("object",)}
ATTRIBUTES = tuple(LABELS)


@dataclass(frozen=True)
class DiscriminationOptions:
    """``attributes`` to discriminate; the first ``clips`` held-out clips at ``t_values``;
    ``subtract_backbone`` and ``quality`` (``accuracy`` or ``margin``) as the module says."""

    attributes: tuple[str, ...] = ATTRIBUTES
    t_values: tuple[float, ...] = (0.3, 0.5, 0.7)
    clips: int = 32
    subtract_backbone: bool = True
    quality: Literal["accuracy", "margin"] = "accuracy"

    def __post_init__(self):
        if not self.attributes or any(a not in ATTRIBUTES for a in self.attributes):
            raise ValueError(f"attributes must be a non-empty subset of {', '.join(ATTRIBUTES)}, "
                             f"got {self.attributes!r}")
        check_t_values(self.t_values)
        at_least(self, ("clips",), 1)


def alternatives(attribute: str, obj: str, colour: str, motion: str, speed: str) -> list[str]:
    """Captions that differ from the true one only in ``attribute`` (empty: not applicable)."""
    if attribute == "motion":
        sp = speed if motion != "none" else next(iter(SPEEDS))
        return [caption_of(obj, colour, m, sp) for m in MOTIONS if m != motion]
    if attribute == "speed":
        return [] if motion == "none" else [caption_of(obj, colour, motion, s) for s in SPEEDS if s != speed]
    if attribute == "colour":
        return [caption_of(obj, c, motion, speed) for c in COLOURS if c != colour]
    if attribute == "object":
        return [caption_of(o, colour, motion, speed) for o in OBJECTS if o != obj]
    raise ValueError(f"unknown attribute {attribute!r}")


def backbone_only(model):
    """The model's frozen spatial backbone applied frame by frame (no temporal layers)."""
    unet = model.unet

    def forward(sample, timestep, text):
        b, t = sample.shape[:2]
        out = unet(sample.flatten(0, 1), timestep.repeat_interleave(t),
                   encoder_hidden_states=text.repeat_interleave(t, dim=0)).sample
        return out.reshape(b, t, *out.shape[1:])

    return forward


@register_evaluator("caption_discrimination")
class CaptionDiscriminationEvaluator(Evaluator):
    Options = DiscriminationOptions

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.attributes = self.options.attributes
        self.t_values = self.options.t_values
        val = data.load("val", self.options.clips)
        needed = sorted({k for a in self.attributes for k in LABELS[a]})
        missing = [k for k in needed if k not in val.labels]
        if missing:
            raise DataError(f"evaluator caption_discrimination needs the attribute labels {', '.join(missing)} "
                            f"(missing in {data.root}); flow_loss needs none")
        encoder = str(data.meta.get("encoder", "builtin")).split("(")[0]
        if encoder not in ENCODERS:
            raise DataError(f"evaluator caption_discrimination re-encodes captions, but {data.root} was encoded "
                            f"with {encoder!r}; allowed: {', '.join(ENCODERS)}; flow_loss needs no encoder")
        self.x0 = val.latents
        n = len(self.x0)
        captions, clip_of, items = [], [], {}  # items: attribute -> list of (clip, [row of true, rows of alts])
        for i in range(n):
            lab = {k: val.labels[k][i] for k in ("object", "colour", "motion", "speed") if k in val.labels}
            true = caption_of(lab.get("object", OBJECTS[0]), lab.get("colour", next(iter(COLOURS))),
                              lab.get("motion", "none"), lab.get("speed", "none"))
            rows = {}

            def row(caption):
                if caption not in rows:
                    rows[caption] = len(captions)
                    captions.append(caption)
                    clip_of.append(i)
                return rows[caption]

            true_row = row(true)
            for a in self.attributes:
                alts = alternatives(a, lab.get("object", OBJECTS[0]), lab.get("colour", next(iter(COLOURS))),
                                    lab.get("motion", "none"), lab.get("speed", "none"))
                if alts:
                    items.setdefault(a, []).append((i, true_row, [row(c) for c in alts]))
        self.items = items
        self.chance = {a: sum(1 / (1 + len(alt)) for _, _, alt in v) / len(v) for a, v in items.items()}
        self.captions = captions
        self.clip_of = torch.tensor(clip_of)
        self.text = text_encoder(encoder, *data.text_shape)(captions)
        gen = torch.Generator().manual_seed(config.noise_seed)
        self.noise = video_noise((len(self.t_values), *self.x0.shape), gen, config.noise_correlation)
        self.baseline = ((self.noise - self.x0) ** 2).flatten(2).mean(-1).mean(0)  # L₀ per clip, mean over t
        self._backbone_cache: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def pair_losses(self, forward) -> torch.Tensor:
        """Loss of every (clip, caption) row, summed over ``t_values``: (rows,)."""
        total = torch.zeros(len(self.captions), dtype=torch.float64)
        for ti, t in enumerate(self.t_values):
            for start in range(0, len(self.captions), CHUNK):
                sl = slice(start, start + CHUNK)
                clips = self.clip_of[sl]
                x0 = self.x0[clips].to(self.device)
                noise = self.noise[ti, clips].to(self.device)
                tt = torch.full((len(x0),), float(t), device=self.device)
                pred = forward(interpolate(x0, noise, tt), tt * TIMESTEP_SCALE, self.text[sl].to(self.device))
                err = ((pred - velocity_target(x0, noise)) ** 2).flatten(1).mean(1)
                total[sl] += err.double().cpu()
        return total / len(self.t_values)

    def losses(self, model) -> torch.Tensor:
        loss = self.pair_losses(model)
        if self.options.subtract_backbone and hasattr(model, "unet"):
            key = id(model.unet)
            if key not in self._backbone_cache:
                self._backbone_cache[key] = self.pair_losses(backbone_only(model))
            loss = loss - self._backbone_cache[key]
        return loss

    def score(self, model) -> Score:
        loss = self.losses(model)
        breakdown, accs, margins = {}, [], []
        for a in self.attributes:
            if a not in self.items:
                continue
            hits, margin = [], []
            for clip, true_row, alt_rows in self.items[a]:
                alt, true = loss[alt_rows], loss[true_row]
                # a tie for the lowest loss (e.g. temporal layers that are still the identity)
                # counts as a guess among the tied captions, so it scores chance, not zero
                hits.append(0.0 if (alt < true).any() else 1.0 / (1 + int((alt == true).sum())))
                margin.append(((alt - loss[true_row]).mean() / self.baseline[clip]).item() * 1000)
            acc, m = sum(hits) / len(hits), sum(margin) / len(margin)
            breakdown[f"acc_{a}"], breakdown[f"margin_{a}"], breakdown[f"chance_{a}"] = acc, m, self.chance[a]
            accs.append(acc)
            margins.append(m)
        if not accs:
            raise DataError("caption_discrimination: no held-out clip has an alternative caption for "
                            f"{', '.join(self.attributes)}")
        breakdown["accuracy"], breakdown["margin"] = sum(accs) / len(accs), sum(margins) / len(margins)
        quality = breakdown["margin"] if self.options.quality == "margin" else breakdown["accuracy"]
        return Score(quality, breakdown)
