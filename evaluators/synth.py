"""The built-in captioned video set: a coloured shape that moves (or stays) on a black frame.

Each caption names an object class, a colour and a motion — "a red circle moving left
fast", "a blue square staying still" — so a model without temporal layers cannot satisfy
it (a single frame does not tell the direction). Frames are RGB in [0, 1], rendered with
anti-aliased edges (4× supersampling) and mapped to latents by the exact transform
``x = 2·rgb − 1`` (``evaluators.data.frames_to_latents``); ``labels`` keep the
ground truth of each caption for the offline prompt suite.
"""
from __future__ import annotations

from pathlib import Path

import torch

from evaluators.data import DatasetWriter, frames_to_latents
from evaluators.text import text_encoder

OBJECTS = ("circle", "square", "triangle", "cross")
COLOURS = {
    "red": (1.0, 0.15, 0.15), "green": (0.15, 0.9, 0.15), "blue": (0.2, 0.3, 1.0),
    "yellow": (1.0, 0.9, 0.1), "magenta": (1.0, 0.2, 1.0), "cyan": (0.1, 0.9, 1.0),
}
MOTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0), "none": (0.0, 0.0)}
SPEEDS = {"slowly": 0.6, "fast": 1.2}  # pixels per frame at 16×16; scaled with the frame size
RADIUS = 0.2  # of the frame size
SUPERSAMPLE = 4


def caption_of(obj: str, colour: str, motion: str, speed: str) -> str:
    if motion == "none":
        return f"a {colour} {obj} staying still"
    return f"a {colour} {obj} moving {motion} {speed}"


def shape_mask(obj: str, cx: float, cy: float, radius: float, height: int, width: int) -> torch.Tensor:
    """Coverage in [0, 1] of ``obj`` centred at pixel (cx, cy), anti-aliased, (H, W)."""
    s = SUPERSAMPLE
    ys = (torch.arange(height * s, dtype=torch.float32) + 0.5) / s - 0.5
    xs = (torch.arange(width * s, dtype=torch.float32) + 0.5) / s - 0.5
    dy, dx = ys[:, None] - cy, xs[None, :] - cx
    if obj == "circle":
        inside = dx ** 2 + dy ** 2 <= radius ** 2
    elif obj == "square":
        inside = (dx.abs() <= 0.8 * radius) & (dy.abs() <= 0.8 * radius)
    elif obj == "triangle":  # apex up
        inside = (dy <= 0.8 * radius) & (dy >= -radius) & (dx.abs() <= (dy + radius) * 0.55)
    elif obj == "cross":
        arm = 0.3 * radius
        inside = ((dx.abs() <= arm) & (dy.abs() <= radius)) | ((dy.abs() <= arm) & (dx.abs() <= radius))
    else:
        raise ValueError(f"unknown object {obj!r}; allowed: {', '.join(OBJECTS)}")
    return inside.float().reshape(height, s, width, s).mean(dim=(1, 3))


def step_of(speed: str, size: int, speed_scale: float = 1.0) -> float:
    """Pixels per frame of ``speed`` on a ``size``-pixel frame (``speed_scale`` × the 16×16 figures)."""
    return SPEEDS[speed] * speed_scale * size / 16


def render(obj: str, colour: str, motion: str, speed: str, frames: int, height: int, width: int,
           start: tuple[float, float], speed_scale: float = 1.0) -> torch.Tensor:
    """RGB clip (T, 3, H, W) in [0, 1]; ``start`` is the centre in frame 0, in pixels."""
    size = min(height, width)
    radius, step = RADIUS * size, step_of(speed, size, speed_scale)
    vx, vy = MOTIONS[motion]
    rgb = torch.tensor(COLOURS[colour])[:, None, None]
    clip = torch.empty(frames, 3, height, width)
    for t in range(frames):
        mask = shape_mask(obj, start[0] + vx * step * t, start[1] + vy * step * t, radius, height, width)
        clip[t] = rgb * mask
    return clip


def sample_specs(count: int, frames: int, height: int, width: int, generator: torch.Generator,
                 speed_scale: float = 1.0):
    """Random (object, colour, motion, speed, start) so the shape stays inside every frame."""
    specs = []
    size = min(height, width)
    radius = RADIUS * size
    for _ in range(count):
        pick = lambda seq: seq[int(torch.randint(len(seq), (1,), generator=generator))]  # noqa: E731
        obj, colour, motion, speed = pick(OBJECTS), pick(list(COLOURS)), pick(list(MOTIONS)), pick(list(SPEEDS))
        travel = step_of(speed, size, speed_scale) * (frames - 1)
        vx, vy = MOTIONS[motion]
        lo_x = radius + max(0.0, -vx * travel) - 0.5
        hi_x = width - 1 - radius - max(0.0, vx * travel) + 0.5
        lo_y = radius + max(0.0, -vy * travel) - 0.5
        hi_y = height - 1 - radius - max(0.0, vy * travel) + 0.5
        u = torch.rand(2, generator=generator).tolist()
        start = (lo_x + u[0] * max(hi_x - lo_x, 0.0), lo_y + u[1] * max(hi_y - lo_y, 0.0))
        specs.append((obj, colour, motion, speed, start))
    return specs


def synthesise(out: str | Path, videos: int = 512, val_videos: int = 64, frames: int = 8, height: int = 16,
               width: int = 16, tokens: int = 8, text_dim: int = 32, seed: int = 0,
               encoder: str = "builtin", speed_scale: float = 1.0) -> Path:
    """Write the built-in dataset (``videos`` clips, the last ``val_videos`` held out) to ``out``.
    ``speed_scale`` multiplies both speeds (1: 0.6 and 1.2 px/frame at 16×16, scaled with the
    frame size); a speed whose path does not fit in the frame is refused."""
    size = min(height, width)
    travel = step_of("fast", size, speed_scale) * (frames - 1) + 2 * RADIUS * size
    if travel > size + 1:
        raise ValueError(f"speed_scale {speed_scale}: a fast shape travels {travel - 2 * RADIUS * size:.1f} px over "
                         f"{frames} frames and leaves a {size}-px frame; lower speed_scale or use fewer frames")
    gen = torch.Generator().manual_seed(seed)
    specs = sample_specs(videos, frames, height, width, gen, speed_scale)
    clips = torch.stack([render(o, c, m, s, frames, height, width, st, speed_scale) for o, c, m, s, st in specs])
    captions = [caption_of(o, c, m, s) for o, c, m, s, _ in specs]
    labels = {"object": [s[0] for s in specs], "colour": [s[1] for s in specs],
              "motion": [s[2] for s in specs], "speed": [s[3] if s[2] != "none" else "none" for s in specs]}
    encode = text_encoder(encoder, tokens, text_dim)
    text = encode(captions)
    latents = frames_to_latents(clips)
    writer = DatasetWriter(out, latents.shape[1:], text.shape[1:], encode.name,
                           "x = 2*rgb - 1 (pixel space, exact)")
    n = videos - val_videos
    writer.add("train", latents[:n], text[:n], captions[:n], {k: v[:n] for k, v in labels.items()})
    writer.add("val", latents[n:], text[n:], captions[n:], {k: v[n:] for k, v in labels.items()})
    return writer.close()
