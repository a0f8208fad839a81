"""Video backbones: a diffusers ``UNet2DConditionModel`` inflated into a video UNet.

Frames are folded into the batch for the spatial layers, which are frozen; at each slot
(the output of a down block, the mid block or an up block) the slot's temporal layers run
on the unfolded ``(B, T, C, H, W)`` tensor. For a down block the skip connection it hands
to the decoder is that same output, so it is replaced too.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import ConfigError, one_line
from search_spaces.architecture import Architecture
from search_spaces.ops import TemporalOp, create_op
from search_spaces.shapes import OpShape

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class BackboneConfig:
    """``preset`` names a bundled diffusers config (``tiny``, ``sd15``); ``config`` is a path to
    a diffusers ``config.json`` instead; ``weights`` a local diffusers UNet folder or a whole
    pipeline folder (its ``unet/`` is used; the config there wins); ``overrides`` change
    single keys of the config. With both ``weights`` and a ``preset``/``config``, a weights
    folder that is not there yet (a cluster path) leaves the preset to plan with
    (``--dry-run``, the lookup table); loading the weights to train then fails with its path."""

    preset: str | None = None  # none of the three given: "tiny"
    config: str | None = None
    weights: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.preset is None and self.config is None and self.weights is None:
            object.__setattr__(self, "preset", "tiny")
        if self.preset is not None and self.preset not in list_presets():
            raise ValueError(f"preset {self.preset!r} is not bundled; allowed: {', '.join(list_presets())}")


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConfigError(f"{what}: no such file {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path} must hold a JSON object")
    return data


def unet_folder(weights: str | Path) -> Path:
    """The UNet's folder: ``weights`` itself, or a pipeline's ``weights/unet``."""
    path = Path(weights)
    return path / "unet" if (path / "unet" / "config.json").is_file() else path


def pipeline_folder(weights: str | Path) -> Path | None:
    """The pipeline folder around a ``weights`` UNet (with ``vae/``, ``text_encoder/``), if any."""
    path = Path(weights)
    if (path / "unet" / "config.json").is_file():
        return path
    if path.name == "unet" and (path.parent / "model_index.json").is_file():
        return path.parent
    return None


def unet_config(cfg: BackboneConfig) -> dict:
    """The diffusers config dict the backbone is built from."""
    planned = cfg.preset is not None or cfg.config is not None
    if cfg.weights is not None and not (planned and not Path(cfg.weights).exists()):
        data = _read_json(unet_folder(cfg.weights) / "config.json", "space.backbone.weights")
    elif cfg.config is not None:
        data = _read_json(Path(cfg.config), "space.backbone.config")
    else:
        data = _read_json(PRESET_DIR / f"{cfg.preset}.json", "space.backbone.preset")
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    data.update(cfg.overrides)
    return data


def build_unet(cfg: BackboneConfig, device: str | torch.device = "cpu"):
    """Build the 2D UNet; with ``weights`` on a real device, load them from the local directory."""
    from diffusers import UNet2DConditionModel

    config = unet_config(cfg)
    logging.getLogger("diffusers").setLevel(logging.ERROR)
    try:
        if cfg.weights is not None and str(device) != "meta":
            if not Path(cfg.weights).exists():
                raise ConfigError(f"space.backbone.weights: {cfg.weights} does not exist")
            unet = UNet2DConditionModel.from_pretrained(unet_folder(cfg.weights), local_files_only=True,
                                                        **cfg.overrides)
            return unet.to(device)
        with torch.device(device):
            return UNet2DConditionModel.from_config(config)
    except (TypeError, ValueError, OSError, AttributeError) as exc:
        raise ConfigError(f"space.backbone: diffusers cannot build this UNet ({one_line(exc)})") from None


def slot_modules(unet) -> dict[str, nn.Module]:
    """Slot name -> the block whose output the slot's temporal layers transform."""
    out = {f"down{i}": b for i, b in enumerate(unet.down_blocks)}
    if unet.mid_block is not None:
        out["mid"] = unet.mid_block
    out.update({f"up{i}": b for i, b in enumerate(unet.up_blocks)})
    return out


class TemporalStack(nn.ModuleList):
    """The temporal layers at one slot, applied in order."""

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        for layer in self:
            x = layer(x, context)
        return x


@dataclass(frozen=True)
class SlotGeometry:
    """What a slot's temporal layers see per frame: channels and spatial size."""

    channels: int
    height: int
    width: int


class VideoUNet(nn.Module):
    """``forward(sample (B,T,C,H,W), timestep (B,), text (B,L,D)) -> (B,T,C,H,W)``.

    ``temporal`` holds one ``TemporalStack`` per occupied slot, keyed ``{slot}_{op}`` so a
    child's state dict shares keys with its parent exactly where the layers are the same.
    """

    def __init__(self, unet, architecture: Architecture, shapes: dict[str, OpShape] | None = None,
                 op_options: dict | None = None):
        super().__init__()
        self.unet = unet
        self.unet.requires_grad_(False)
        self.architecture = architecture
        self.temporal = nn.ModuleDict()
        self._frames = 1
        self._context: torch.Tensor | None = None
        modules = slot_modules(unet)
        first = next(unet.parameters())
        for slot, layer in architecture.items():
            if slot not in modules:
                raise ConfigError(f"slot {slot!r} does not exist in this backbone; slots: {', '.join(modules)}")
            shape = shapes[slot].replace(op=layer.op)
            with torch.device(first.device):  # new layers live where the backbone lives
                stack = TemporalStack([create_op(layer.op, shape, **(op_options or {})) for _ in range(layer.count)])
            self.temporal[f"{slot}_{layer.op}"] = stack.to(first.dtype)
        self._slot_modules = modules

    def _make_hook(self, slot: str):
        key = f"{slot}_{self.architecture[slot].op}"
        is_down = slot.startswith("down")

        def hook(module, args, output):
            stack = self.temporal[key]
            hidden = output[0] if is_down else output
            bt, c, h, w = hidden.shape
            video = hidden.reshape(bt // self._frames, self._frames, c, h, w)
            hidden = stack(video, self._context).reshape(bt, c, h, w)
            if is_down:
                res = output[1]
                return hidden, tuple(res[:-1]) + (hidden,)
            return hidden

        return hook

    def temporal_parameters(self):
        return self.temporal.parameters()

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor):
        b, t, c, h, w = sample.shape
        timestep = torch.as_tensor(timestep, device=sample.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(b)
        self._frames, self._context = t, encoder_hidden_states
        # Hooks live only for this call, so several VideoUNets can share one 2D backbone.
        hooks = [self._slot_modules[slot].register_forward_hook(self._make_hook(slot)) for slot in self.architecture]
        try:
            out = self.unet(
                sample.reshape(b * t, c, h, w),
                timestep.repeat_interleave(t),
                encoder_hidden_states=encoder_hidden_states.repeat_interleave(t, dim=0),
            ).sample
        finally:
            self._context = None
            for h in hooks:
                h.remove()
        return out.reshape(b, t, *out.shape[1:])


def probe_slot_geometry(unet, frames: int, height: int, width: int, text_tokens: int,
                        batch: int = 1) -> dict[str, SlotGeometry]:
    """Run the UNet once on the meta device and record what each slot's block outputs."""
    meta = unet if next(unet.parameters()).is_meta else None
    if meta is None:
        raise ValueError("probe on a meta-device UNet (build_unet(cfg, 'meta'))")
    seen: dict[str, SlotGeometry] = {}
    hooks = []
    for slot, module in slot_modules(unet).items():
        def hook(module, args, output, slot=slot):
            hidden = output[0] if slot.startswith("down") else output
            seen[slot] = SlotGeometry(hidden.shape[1], hidden.shape[2], hidden.shape[3])
        hooks.append(module.register_forward_hook(hook))
    cfg = unet.config
    try:
        with torch.no_grad():
            unet(torch.empty(batch * frames, cfg.in_channels, height, width, device="meta"),
                 torch.zeros(batch * frames, device="meta"),
                 encoder_hidden_states=torch.empty(batch * frames, text_tokens, cfg.cross_attention_dim, device="meta"))
    except RuntimeError as exc:
        raise ConfigError(
            f"space.video: the backbone cannot take {height}x{width} latents ({one_line(exc)})") from None
    finally:
        for h in hooks:
            h.remove()
    return seen


def temporal_ops(model: VideoUNet) -> list[TemporalOp]:
    return [m for m in model.temporal.modules() if isinstance(m, TemporalOp)]
