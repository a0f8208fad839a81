"""A diffusers ``AutoencoderKL`` from a local folder: frames in, scaled latents out.

``Vae(path)`` takes the VAE's own folder (``config.json`` + weights) or a pipeline folder
with a ``vae/`` subfolder. ``encode`` maps RGB frames in [0, 1] to
``(latent_dist.mean − shift_factor) · scaling_factor`` — the latents SD-style UNets are
trained on (SD-1.5: scaling 0.18215, no shift). Nothing is downloaded
(``local_files_only``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from core.errors import HwnasError, one_line


class ModelFolderError(HwnasError, ValueError):
    """A local model folder that is missing or cannot be loaded."""


def model_folder(path: str | Path, subfolder: str, what: str) -> Path:
    """``path`` itself when it holds ``config.json``, else its ``subfolder`` (a pipeline's)."""
    path = Path(path)
    if (path / subfolder / "config.json").is_file():
        return path / subfolder
    if (path / "config.json").is_file():
        return path
    if not path.exists():
        raise ModelFolderError(f"{what}: {path} does not exist")
    raise ModelFolderError(f"{what}: {path} has no config.json (nor {subfolder}/config.json of a pipeline)")


def read_config(path: Path, what: str) -> dict:
    try:
        data = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{what}: {path / 'config.json'} is unreadable ({one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{what}: {path / 'config.json'} must hold a JSON object")
    return data


def vae_geometry(config: dict) -> tuple[int, int]:
    """(latent channels, spatial downsampling factor) of an AutoencoderKL config."""
    return int(config.get("latent_channels", 4)), 2 ** (len(config.get("block_out_channels", [0])) - 1)


class Vae:
    def __init__(self, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.path = model_folder(path, "vae", "--vae")
        self.config = read_config(self.path, "--vae")
        self.channels, self.factor = vae_geometry(self.config)
        scale = self.config.get("scaling_factor")
        self.scale = 1.0 if scale is None else float(scale)
        shift = self.config.get("shift_factor")
        self.shift = 0.0 if shift is None else float(shift)
        self.device, self.dtype = torch.device(device), dtype
        self._model = None

    @property
    def name(self) -> str:
        return f"AutoencoderKL({self.path}, C={self.channels}, /{self.factor}, scale={self.scale:g})"

    def check_size(self, height: int, width: int) -> None:
        if height < self.factor or width < self.factor or height % self.factor or width % self.factor:
            raise ModelFolderError(f"--size {height}x{width}: this VAE downsamples by {self.factor} "
                                   f"({len(self.config.get('block_out_channels', []))} blocks); height and width "
                                   f"must be positive multiples of {self.factor}")

    def load(self) -> "Vae":
        if self._model is None:
            from diffusers import AutoencoderKL

            logging.getLogger("diffusers").setLevel(logging.ERROR)
            try:
                model = AutoencoderKL.from_pretrained(self.path, local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - diffusers raises many kinds
                raise ModelFolderError(f"--vae: {self.path} is not a loadable AutoencoderKL "
                                       f"({one_line(exc, with_type=True)[:200]})") from None
            self._model = model.to(self.device, self.dtype).eval().requires_grad_(False)
        return self

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] -> (N, C, H/f, W/f) float32 latents."""
        self.load()
        x = (frames.to(self.device, self.dtype) * 2.0 - 1.0)
        z = self._model.encode(x).latent_dist.mean
        return ((z - self.shift) * self.scale).float().cpu()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The inverse direction, (N, C, h, w) latents -> (N, 3, H, W) RGB in [0, 1]."""
        self.load()
        z = latents.to(self.device, self.dtype) / self.scale + self.shift
        return ((self._model.decode(z).sample.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
