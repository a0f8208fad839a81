"""A built-in dataset that looks like the world: camera pans, zooms and moving cut-outs over
natural photos that ship inside installed packages, captioned with the motion, encoded by a
small VAE into 4-channel latents.

* Photos: scikit-image's sample images (astronaut, cat, coffee, rocket, galaxies, …; extra
  ``realistic``), scikit-learn's two (china, flower) and matplotlib's (grace_hopper), as many
  as are installed (at least 3 are needed).
* A clip is one of: ``pan`` (the view slides left/right/up/down across a photo), ``zoom``
  (in/out), ``cutout`` (a soft-edged round cut-out of one photo moves left/right/up/down over
  another, which stays still) or ``still``. Captions name it: "the camera pans left over a
  cat", "the camera zooms in on a rocket", "a cup of coffee moving up over galaxies", "a still
  view of the moon". Labels (kind, direction, background, object) are stored.
* Frames are rendered with ``grid_sample`` (sub-pixel motion), RGB in [0, 1], then encoded by
  the small ``AutoencoderKL`` of :func:`small_vae` (32×32 pixels -> 4×16×16 latents, its
  scaling factor applied). Its weights are trained here, deterministically, by
  :func:`train_small_vae` (``experiments/benchmarks/train_realistic_vae.py``) and cached.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from core.errors import HwnasError

PHOTOS = {  # source, name -> what a caption calls it
    ("skimage", "astronaut"): "an astronaut", ("skimage", "chelsea"): "a cat", ("skimage", "coffee"): "a cup of coffee",
    ("skimage", "rocket"): "a rocket", ("skimage", "hubble_deep_field"): "galaxies",
    ("skimage", "immunohistochemistry"): "stained cells", ("skimage", "retina"): "a retina",
    ("skimage", "colorwheel"): "a colour wheel", ("skimage", "camera"): "a cameraman", ("skimage", "moon"): "the moon",
    ("skimage", "brick"): "a brick wall", ("skimage", "grass"): "grass", ("skimage", "gravel"): "gravel",
    ("skimage", "coins"): "coins", ("sklearn", "china.jpg"): "a temple", ("sklearn", "flower.jpg"): "a flower",
    ("matplotlib", "grace_hopper.jpg"): "a woman in uniform",
}
DIRECTIONS = ("left", "right", "up", "down")
KINDS = ("pan", "zoom", "cutout", "still")
# 159k parameters (640 KB): ~0.1 s per training step on an idle core, ~0.36 s at load 9.
VAE_CONFIG = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [16, 32],
              "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
              "layers_per_block": 1, "norm_num_groups": 4, "sample_size": 32, "mid_block_add_attention": False}
VAE_TRAIN = {"steps": 600, "batch": 16, "lr": 2e-3, "crop": 32, "kl": 1e-6, "seed": 0}


def _load(source: str, name: str):
    import numpy as np

    if source == "skimage":
        import skimage.data

        img = getattr(skimage.data, name)()
    elif source == "sklearn":
        from sklearn.datasets import load_sample_image

        img = load_sample_image(name)
    else:
        import matplotlib.cbook
        from PIL import Image

        with matplotlib.cbook.get_sample_data(name) as f:
            img = np.asarray(Image.open(f).convert("RGB"))
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = img[..., :3].astype(np.float32)
    if img.max() > 1.0:
        img = img / 255.0
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def load_photos(max_side: int = 256) -> list[tuple[str, torch.Tensor]]:
    """(caption name, (3, h, w) float in [0, 1]) of every bundled photo that is installed,
    downscaled so the longer side is ``max_side``."""
    out = []
    for (source, name), words in PHOTOS.items():
        try:
            img = _load(source, name)
        except Exception:  # noqa: BLE001 - a package or an image that is not installed
            continue
        scale = max_side / max(img.shape[1:])
        if scale < 1:
            img = F.interpolate(img[None], scale_factor=scale, mode="bilinear", antialias=True,
                                align_corners=False)[0]
        out.append((words, img.clamp(0, 1)))
    if len(out) < 3:
        raise HwnasError("the realistic set needs at least 3 bundled photos; install the extra: "
                         "pip install 'hwnas[realistic]' (scikit-image)")
    return out


def _view(img: torch.Tensor, cx: float, cy: float, scale: float, size: int) -> torch.Tensor:
    """A square view of ``img`` centred at (cx, cy) in [-1, 1] image coordinates, covering
    ``scale`` of the shorter side, rendered at size×size."""
    _, h, w = img.shape
    sx, sy = scale * min(h, w) / w, scale * min(h, w) / h
    theta = torch.tensor([[[sx, 0.0, cx], [0.0, sy, cy]]], dtype=img.dtype)
    grid = F.affine_grid(theta, (1, 3, size, size), align_corners=False)
    return F.grid_sample(img[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]


_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def render_clip(kind: str, direction: str | None, bg: torch.Tensor, obj: torch.Tensor | None, frames: int,
                size: int, gen: torch.Generator) -> torch.Tensor:
    """(T, 3, size, size) frames in [0, 1]. ``pan left``: the camera turns left, so the scene
    slides right across the frame; ``cutout left``: the cut-out moves left."""
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=gen))  # noqa: E731
    _, h, w = bg.shape
    scale = u(0.45, 0.65)
    zoom = 0.8 if kind == "zoom" else 0.0  # log of the view's size ratio, end to end
    big = scale * math.exp(zoom / 2)  # the widest view of the clip
    half_x, half_y = big * min(h, w) / w, big * min(h, w) / h  # its half extent in [-1, 1] coordinates
    dx, dy = _STEP.get(direction, (0, 0)) if kind == "pan" else (0, 0)
    travel = u(0.25, 0.4) * 2 * scale  # how far the view's centre moves, in the same coordinates
    travel = min(travel, 2 * (1 - (half_x if dx else half_y)) * 0.98) if kind == "pan" else 0.0

    def centre(half, moving):  # a start that keeps the whole path inside the photo (no reflections)
        room = max(0.0, 1 - half - (travel / 2 if moving else 0.0))
        return u(-room, room) * 0.9

    cx, cy = centre(half_x, bool(dx)), centre(half_y, bool(dy))
    out = []
    for k in range(frames):
        p = k / max(1, frames - 1) - 0.5
        if kind == "pan":
            out.append(_view(bg, cx + dx * p * travel, cy + dy * p * travel, scale, size))
        elif kind == "zoom":
            z = math.exp((1 if direction == "out" else -1) * p * zoom)  # in: the view shrinks
            out.append(_view(bg, cx, cy, scale * z, size))
        else:
            out.append(_view(bg, cx, cy, scale, size))
    video = torch.stack(out)
    if kind == "cutout":
        r = size * u(0.2, 0.28)
        patch = _view(obj, u(-0.3, 0.3), u(-0.3, 0.3), u(0.35, 0.6), int(2 * r) + 2)
        yy, xx = torch.meshgrid(torch.arange(patch.shape[1]), torch.arange(patch.shape[2]), indexing="ij")
        d = ((yy - (patch.shape[1] - 1) / 2) ** 2 + (xx - (patch.shape[2] - 1) / 2) ** 2).sqrt()
        alpha = (r - d).clamp(0, 1)
        dx, dy = _STEP[direction]
        span = size - patch.shape[1]
        start = (u(0.0, 0.2), u(0.3, 0.7))
        for k in range(frames):
            p = k / max(1, frames - 1)
            along = 0.1 + 0.8 * p if (dx > 0 or dy > 0) else 0.9 - 0.8 * p
            x = along if dx else start[1]
            y = along if dy else start[1]
            x0, y0 = int(round(x * span)), int(round(y * span))
            ph, pw = patch.shape[1:]
            region = video[k, :, y0:y0 + ph, x0:x0 + pw]
            video[k, :, y0:y0 + ph, x0:x0 + pw] = alpha * patch + (1 - alpha) * region
    return video.clamp(0, 1)


def make_clips(n: int, frames: int, size: int, seed: int, photos=None):
    """``n`` clips: (frames (n, T, 3, S, S), captions, labels)."""
    photos = photos or load_photos()
    gen = torch.Generator().manual_seed(seed)
    videos, captions = [], []
    labels: dict[str, list[str]] = {"kind": [], "direction": [], "background": [], "object": []}
    for i in range(n):
        kind = KINDS[int(torch.randint(len(KINDS), (), generator=gen))]
        b = int(torch.randint(len(photos), (), generator=gen))
        o = (b + 1 + int(torch.randint(len(photos) - 1, (), generator=gen))) % len(photos)
        bg_name, bg = photos[b]
        obj_name, obj = photos[o]
        if kind == "zoom":
            direction = ("in", "out")[int(torch.randint(2, (), generator=gen))]
            caption = f"the camera zooms {direction} on {bg_name}"
        elif kind == "still":
            direction = "none"
            caption = f"a still view of {bg_name}"
        else:
            direction = DIRECTIONS[int(torch.randint(4, (), generator=gen))]
            caption = (f"the camera pans {direction} over {bg_name}" if kind == "pan"
                       else f"{obj_name} moving {direction} over {bg_name}")
        videos.append(render_clip(kind, direction, bg, obj if kind == "cutout" else None, frames, size, gen))
        captions.append(caption)
        for key, value in (("kind", kind), ("direction", direction), ("background", bg_name),
                           ("object", obj_name if kind == "cutout" else "none")):
            labels[key].append(value)
    return torch.stack(videos), captions, labels


# --------------------------------------------------------------------------- the small VAE
def vae_key(config: dict = VAE_CONFIG, train: dict = VAE_TRAIN) -> str:
    blob = json.dumps({"config": config, "train": train, "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_small_vae(out: str | Path, config: dict = VAE_CONFIG, train: dict = VAE_TRAIN, progress=None) -> Path:
    """Train the small AutoencoderKL on random crops (random scale) of the bundled photos,
    deterministically (seeded, one thread), and ``save_pretrained`` it with the scaling factor
    that gives its latents unit standard deviation (as SD's 0.18215 does for SD's VAE)."""
    import logging

    from diffusers import AutoencoderKL

    logging.getLogger("diffusers").setLevel(logging.ERROR)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(train["seed"])
        gen = torch.Generator().manual_seed(train["seed"])
        photos = [img for _, img in load_photos()]
        vae = AutoencoderKL.from_config(config)
        opt = torch.optim.AdamW(vae.parameters(), lr=train["lr"], weight_decay=0.0)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=train["lr"], total_steps=train["steps"],
                                                    pct_start=0.1)
        crop = train["crop"]

        def batch():
            views = []
            for _ in range(train["batch"]):
                img = photos[int(torch.randint(len(photos), (), generator=gen))]
                c = lambda: float(torch.rand((), generator=gen)) * 1.4 - 0.7  # noqa: E731
                views.append(_view(img, c(), c(), 0.1 + 0.6 * float(torch.rand((), generator=gen)), crop))
            return torch.stack(views) * 2 - 1

        for step in range(train["steps"]):
            x = batch()
            post = vae.encode(x).latent_dist
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
            rec = vae.decode(z).sample
            loss = (rec - x).abs().mean() + ((rec - x) ** 2).mean() + train["kl"] * post.kl().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(step + 1, train["steps"], float(loss.detach()))
        vae.eval()
        with torch.no_grad():
            x_eval = torch.cat([batch() for _ in range(8)])
            z = vae.encode(x_eval).latent_dist.mean
            rec = vae.decode(z).sample  # heldout_l1: mean |error| of RGB in [0, 1]
        scale = float(1.0 / z.std())
        vae.register_to_config(scaling_factor=round(scale, 5))
        out = Path(out)
        vae.save_pretrained(out)
        (out / "training.json").write_text(json.dumps({
            "train": train, "key": vae_key(config, train), "final_loss": float(loss.detach()),
            "heldout_l1": float((rec - x_eval).abs().mean() / 2), "scaling_factor": scale}, indent=1))
        return out
    finally:
        torch.set_num_threads(threads)


def small_vae(cache_dir: str | Path | None = None, progress=None) -> Path:
    """The small VAE's folder: the shipped one (``evaluators/assets/realistic_vae``) when its
    training settings are the current ones, else trained into ``cache_dir`` once."""
    shipped = Path(__file__).parent / "assets" / "realistic_vae"
    key = vae_key()
    for folder in ([shipped] + ([Path(cache_dir) / f"realistic_vae-{key}"] if cache_dir else [])):
        meta = folder / "training.json"
        if meta.is_file() and json.loads(meta.read_text()).get("train") == VAE_TRAIN:
            return folder
    if cache_dir is None:
        raise HwnasError("the realistic set's VAE is not shipped for these settings; give a cache folder")
    import os
    import tempfile

    from core.io import atomic_write  # noqa: F401 - the folder appears by rename below

    target = Path(cache_dir) / f"realistic_vae-{key}"
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".realistic_vae-", dir=cache_dir))
    train_small_vae(tmp, progress=progress)
    try:
        os.replace(tmp, target)
    except OSError:  # another worker finished first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def synthesise_realistic(out: str | Path, videos: int, val_videos: int, frames: int, height: int, width: int,
                         tokens: int, dim: int, seed: int = 0, text_encoder: str = "builtin",
                         vae_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Write the realistic set (latents ``(T, 4, height, width)``) with ``DatasetWriter``."""
    from evaluators.data import DatasetWriter
    from evaluators.text import text_encoder as make_text
    from evaluators.vae import Vae

    vae = Vae(vae_dir or small_vae(cache_dir))
    size = height * vae.factor
    if height != width:
        raise HwnasError(f"the realistic set is square; space.video is {height}x{width}")
    encode = make_text(text_encoder, tokens, dim)
    import json as _json

    trained = _json.loads((vae.path / "training.json").read_text()) if (vae.path / "training.json").is_file() else {}
    writer = DatasetWriter(out, (frames, vae.channels, height, width), (tokens, dim), encode.name,
                           f"realistic: small VAE {trained.get('key', vae.path.name)} (C={vae.channels}, "
                           f"/{vae.factor}, scale={vae.scale:g})")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for split, count, split_seed in (("train", videos - val_videos, seed), ("val", val_videos, seed + 1_000_003)):
            for start in range(0, count, 64):
                n = min(64, count - start)
                clips, captions, labels = make_clips(n, frames, size, split_seed * 7919 + start)
                latents = vae.encode(clips.flatten(0, 1)).reshape(n, frames, vae.channels, height, width)
                writer.add(split, latents, encode(captions), captions, labels)
    finally:
        torch.set_num_threads(threads)
    return writer.close()
