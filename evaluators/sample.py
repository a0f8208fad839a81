"""Videos from a trained model: the Euler sampler on a prompt, decoded to RGB frames, and
written as an animated GIF, an MP4 or a PNG contact sheet.

Decoding: the shapes set's latents are pixels (``x = 2·rgb − 1``, exact), so frames are
``latents_to_frames``; other latents are decoded per frame by a diffusers ``AutoencoderKL``
from a local directory (``evaluators.vae.Vae``): ``--vae DIR``, else the data set's own
(the realistic set's small VAE).

A prompt longer than the text encoder takes (more words than its L tokens) is cut to L
with a warning, not an error: the model was trained on L tokens.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from core.errors import HwnasError
from evaluators.data import latents_to_frames
from evaluators.flow import euler_sample

FORMATS = ("gif", "mp4", "png")


class PromptTruncated(UserWarning):
    """A prompt with more words than the text encoder's tokens."""


def prompt_words(prompt: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", prompt.lower())


def encode_prompts(trained, prompts: list[str]) -> torch.Tensor:
    """(N, L, D) text conditioning; warns (``PromptTruncated``) for each prompt cut to L tokens."""
    for prompt in prompts:
        words = prompt_words(prompt)
        if len(words) > trained.tokens:
            warnings.warn(f"prompt {prompt!r} has {len(words)} words, the text encoder takes {trained.tokens}: "
                          f"cut to {' '.join(words[:trained.tokens])!r}", PromptTruncated, stacklevel=2)
    return trained.encoder(list(prompts))


def fixed_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def sample_latents(trained, prompts: list[str], frames: int | None = None, steps: int = 16,
                   guidance_scale: float = 1.0, seed: int = 0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """(N, T, C, H, W) latents for ``prompts``; the noise is fixed by ``seed`` (or given)."""
    if steps < 1:
        raise HwnasError(f"--steps {steps}: must be at least 1")
    if guidance_scale < 1.0:
        raise HwnasError(f"--cfg {guidance_scale}: must be at least 1 (1 = no guidance)")
    device = next(trained.model.parameters()).device
    text = encode_prompts(trained, prompts).to(device)
    shape = (len(prompts), *trained.latent_shape(frames))
    x1 = fixed_noise(shape, seed) if noise is None else noise
    return euler_sample(trained.model, x1.to(device), text, steps, guidance_scale).cpu()


def dataset_vae(trained) -> Path | None:
    """The VAE the model's built-in data set was encoded with (the realistic set's small
    VAE, as shipped), or None (pixels, a data set of its own, or settings not shipped)."""
    data = trained.meta["experiment"].get("data", {})
    if data.get("set") != "realistic" or data.get("dir"):
        return None
    from evaluators.realistic import small_vae

    try:
        return small_vae()
    except HwnasError:
        return None


def decode(trained, latents: torch.Tensor, vae: str | Path | None = None) -> torch.Tensor:
    """(N, T, 3, H, W) RGB in [0, 1]: pixel latents as they are, VAE latents through ``vae``
    (a local diffusers AutoencoderKL; default: the data set's own, ``dataset_vae``)."""
    if vae is None and trained.pixel_space:
        return latents_to_frames(latents)
    vae = vae or dataset_vae(trained)
    if vae is None:
        transform = trained.meta.get("latents", {}).get("transform")
        raise HwnasError(f"the model's latents are not pixels ({transform!r}): give --vae DIR "
                         "(a local diffusers AutoencoderKL) to decode them")
    from evaluators.vae import Vae

    model = Vae(vae)
    if model.channels != latents.shape[2]:
        raise HwnasError(f"--vae {vae}: its latents have {model.channels} channels, the model's "
                         f"{latents.shape[2]}: the VAE of another data set")
    n, t = latents.shape[:2]
    frames = model.decode(latents.flatten(0, 1))
    return frames.reshape(n, t, *frames.shape[1:])


def to_uint8(frames: torch.Tensor, scale: int = 1):
    """(T, 3, H, W) in [0, 1] -> numpy (T, H·scale, W·scale, 3) uint8, nearest-neighbour upscaled."""
    x = (frames.clamp(0, 1) * 255).round().to(torch.uint8)
    if scale > 1:
        x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def write_video(frames: torch.Tensor, path: str | Path, fps: int = 8, scale: int = 8) -> Path:
    """Write one clip (T, 3, H, W): ``.gif`` (animated, looping), ``.mp4`` (H.264 through PyAV),
    ``.png`` (the frames side by side). The file is written beside its name, then renamed."""
    import os
    import tempfile

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise HwnasError(f"--out {path}: unknown format {path.suffix!r}; allowed: .gif, .mp4, .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8(frames, scale)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        if kind == "png":
            from PIL import Image

            Image.fromarray(pixels.transpose(1, 0, 2, 3).reshape(pixels.shape[1], -1, 3)).save(tmp, format="PNG")
        elif kind == "gif":
            from PIL import Image

            images = [Image.fromarray(f) for f in pixels]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps),
                           loop=0, disposal=1)
        else:
            _write_mp4(pixels, tmp, fps)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a gallery is served to others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_mp4(pixels, path: str, fps: int) -> None:
    try:
        import av
    except ImportError:
        raise HwnasError("writing .mp4 needs PyAV (pip install av); .gif and .png need nothing more") from None
    t, h, w, _ = pixels.shape
    h2, w2 = h + h % 2, w + w % 2  # yuv420p needs even sizes
    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        stream.options = {"crf": "18"}
        import numpy as np

        for frame in pixels:
            if (h2, w2) != (h, w):
                frame = np.pad(frame, ((0, h2 - h), (0, w2 - w), (0, 0)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def sample_to_file(trained, prompt: str, out: str | Path, frames: int | None = None, steps: int = 16,
                   guidance_scale: float = 1.0, seed: int = 0, fps: int = 8, scale: int = 8,
                   vae: str | Path | None = None) -> dict:
    """Sample one prompt and write it; returns what was done (for --json)."""
    latents = sample_latents(trained, [prompt], frames, steps, guidance_scale, seed)
    clip = decode(trained, latents, vae)[0]
    path = write_video(clip, out, fps, scale)
    return {"out": str(path), "arch": str(trained.arch), "prompt": prompt, "frames": int(clip.shape[0]),
            "size": [int(clip.shape[2]), int(clip.shape[3])], "steps": steps, "cfg": guidance_scale, "seed": seed}
