"""The cost of any diffusers UNet, video UNets included, on the meta device.

``diffusers_cost("UNetSpatioTemporalConditionModel")`` builds the class on the meta device
(no memory, no weights), makes the inputs its forward takes (per class: frames first or
channels first, added time ids, text states of its cross-attention width), runs one forward
and reports FLOPs per denoising step, parameters, the activation peak, and a breakdown by
module kind: spatial convolution, spatial attention, temporal layers, other.

Classes users start from: ``UNet2DConditionModel`` (image), ``UNetSpatioTemporalConditionModel``
(Stable Video Diffusion), ``UNet3DConditionModel`` (ModelScope T2V), ``UNetMotionModel`` built
from a ``UNet2DConditionModel`` and a ``MotionAdapter`` (AnimateDiff; config
``{"unet": {...}, "motion_adapter": {...}}``).
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from core.errors import HwnasError, one_line
from search_spaces.cost import FusedAttention, LiveTensorTracker

KINDS = ("spatial_conv", "spatial_attention", "temporal", "other")
# Path components that mark a temporal module in diffusers' video UNets: SVD's
# TransformerSpatioTemporalModel / SpatioTemporalResBlock, UNet3D's temp_convs /
# temp_attentions / transformer_in, AnimateDiff's motion_modules.
TEMPORAL_PARTS = {"temporal_transformer_blocks", "temporal_res_block", "time_mixer", "time_pos_embed",
                  "temp_convs", "temp_attentions", "transformer_in", "motion_modules"}
SPATIAL_ATTENTION_PARTS = {"attentions", "transformer_blocks", "attn1", "attn2"}


class CostError(HwnasError, ValueError):
    """A model or an input the cost cannot be taken of."""


@dataclass(frozen=True)
class VideoSpec:
    layout: str  # "frames_first" (B, F, C, H, W), "channels_first" (B, C, F, H, W) or "image" (B, C, H, W)
    frames: int
    height: int  # latent
    width: int
    text_tokens: int
    note: str = ""
    text_per_frame: bool = False  # encoder states repeated per frame by the pipeline (AnimateDiff)


SPECS = {
    # SVD: 14 frames at 1024x576 px (latent 128x72); one image embedding as text state.
    "UNetSpatioTemporalConditionModel": VideoSpec("frames_first", 14, 72, 128, 1, "SVD, 14 x 576 x 1024 px"),
    # ModelScope T2V: 16 frames at 256x256 px.
    "UNet3DConditionModel": VideoSpec("channels_first", 16, 32, 32, 77, "ModelScope T2V, 16 x 256 x 256 px"),
    # AnimateDiff on SD 1.5: 16 frames at 512x512 px.
    "UNetMotionModel": VideoSpec("channels_first", 16, 64, 64, 77, "AnimateDiff (SD 1.5), 16 x 512 x 512 px",
                                 text_per_frame=True),
    "I2VGenXLUNet": VideoSpec("channels_first", 16, 64, 64, 77, "I2VGen-XL"),
    "UNet2DConditionModel": VideoSpec("image", 1, 64, 64, 77, "SD 1.5-sized image UNet, 512 x 512 px"),
}
# UNetMotionModel's default parts: an SD 1.5 UNet and diffusers' default MotionAdapter.
SD15_UNET = {"cross_attention_dim": 768, "attention_head_dim": 8, "sample_size": 64}


@dataclass
class CostReport:
    model: str
    flops: int
    params: int
    activation_peak_bytes: int
    inputs: dict[str, list[int]]
    breakdown: dict[str, dict[str, int]] = field(default_factory=dict)
    activation_peak_fused_bytes: int = 0  # the same with a fused attention kernel (no score matrix held)

    def as_dict(self) -> dict:
        return {"model": self.model, "flops": self.flops, "params": self.params,
                "activation_peak_bytes": self.activation_peak_bytes,
                "activation_peak_fused_bytes": self.activation_peak_fused_bytes, "inputs": self.inputs,
                "breakdown": self.breakdown}


def _class(name: str):
    import diffusers

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise CostError(f"diffusers has no model class {name!r} (e.g. diffusers:UNet2DConditionModel)")
    if "UNet" not in name or "sample" not in inspect.signature(cls.forward).parameters:
        unets = [n for n in SPECS]
        raise CostError(f"diffusers:{name} is not a UNet (a denoiser taking `sample`); "
                        f"video UNets: {', '.join(unets)}")
    return cls


def _check_keys(part, settings, where: str) -> None:
    """Every key of ``settings`` a setting of the diffusers class ``part``: diffusers ignores
    unknown keys with a warning, and a misspelt one would cost another model."""
    if not isinstance(settings, dict):
        raise CostError(f"{where} must be a JSON object of {part.__name__} settings")
    unknown = sorted(part.extract_init_dict(dict(settings))[1])
    if unknown:
        raise CostError(f"{where}: {', '.join(map(repr, unknown))} "
                        f"{'is not a setting' if len(unknown) == 1 else 'are not settings'} of {part.__name__}")


def build_diffusers_unet(name: str, config: dict | None = None) -> torch.nn.Module:
    """The class built on the meta device from ``config`` (its defaults when empty)."""
    import diffusers

    cls = _class(name)
    config = dict(config or {})
    logging.getLogger("diffusers").setLevel(logging.ERROR)  # as build_unet: its notes become our errors or nothing
    motion = name == "UNetMotionModel" and (not config or {"unet", "motion_adapter"} & set(config))
    if motion:
        extra = sorted(set(config) - {"unet", "motion_adapter"})
        if extra:
            raise CostError(f"config: takes 'unet' and 'motion_adapter', not {', '.join(map(repr, extra))}")
        _check_keys(diffusers.UNet2DConditionModel, config.get("unet", {}), "config['unet']")
        _check_keys(diffusers.MotionAdapter, config.get("motion_adapter", {}), "config['motion_adapter']")
    else:
        _check_keys(cls, config, "config")
    try:
        with torch.device("meta"):
            if motion:
                unet = diffusers.UNet2DConditionModel.from_config({**SD15_UNET, **config.get("unet", {})})
                adapter = diffusers.MotionAdapter.from_config(config.get("motion_adapter", {}))
                model = cls.from_unet2d(unet, adapter)
            else:
                model = cls.from_config(config) if config else cls()
    except (TypeError, ValueError, KeyError) as exc:
        raise CostError(f"{name} cannot be built from this config: {str(exc).splitlines()[0]}") from None
    # Some diffusers layers create parameters with the legacy torch.Tensor([...]) constructor,
    # which ignores the device context (SVD's AlphaBlender.mix_factor): move what stayed on cpu.
    return model.to("meta").eval()


def default_shapes(model, name: str, frames: int | None = None, height: int | None = None,
                   width: int | None = None) -> dict[str, tuple[int, ...]]:
    """The inputs ``name``'s forward takes, shaped the way the model was trained to take them."""
    spec = SPECS.get(name, VideoSpec("image", 1, 64, 64, 77))
    cfg = model.config
    size = cfg.get("sample_size")
    h, w = (size, size) if isinstance(size, int) else (tuple(size) if size else (spec.height, spec.width))
    h, w = height or h, width or w
    if frames is not None and frames < 1:
        raise CostError(f"frames {frames}: a count of frames, 1 or more")
    f = spec.frames if frames is None else frames
    c = cfg.get("in_channels", 4)
    dim = cfg.get("cross_attention_dim", 768)
    dim = dim[0] if isinstance(dim, (list, tuple)) else dim
    shapes = {"timestep": (1,), "encoder_hidden_states": (f if spec.text_per_frame else 1, spec.text_tokens, dim)}
    shapes["sample"] = {"frames_first": (1, f, c, h, w), "channels_first": (1, c, f, h, w),
                        "image": (1, c, h, w)}[spec.layout]
    if name == "UNetSpatioTemporalConditionModel":
        n_ids = cfg.get("projection_class_embeddings_input_dim", 768) // cfg.get("addition_time_embed_dim", 256)
        shapes["added_time_ids"] = (1, n_ids)  # fps, motion bucket id, noise augmentation
    return shapes


def _meta(shape) -> torch.Tensor:
    return torch.empty(shape, device="meta") if shape else torch.tensor(1.0, device="meta")


def forward_kwargs(model, name: str, shapes: dict, frames=None, height=None, width=None) -> dict:
    params = inspect.signature(model.forward).parameters
    unknown = [n for n in shapes if n not in params]
    if unknown:
        raise CostError(f"--input {unknown[0]}: {name}.forward has no such argument; "
                        f"arguments: {', '.join(p for p in params if p not in ('self', 'kwargs'))}")
    defaults = default_shapes(model, name, frames, height, width)
    out = {}
    for arg, p in params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if arg in shapes:
            out[arg] = shapes[arg]
        elif arg in defaults and (p.default is inspect.Parameter.empty or arg == "added_time_ids"):
            out[arg] = defaults[arg]
        elif p.default is inspect.Parameter.empty:
            raise CostError(f"{name}.forward needs {arg!r}: give --input {arg}=AxBxC")
    return out


def classify(path: str) -> str:
    """Module kind of a module's dotted path (its own operations, children excluded)."""
    parts = path.split(".")
    if TEMPORAL_PARTS & set(parts):
        return "temporal"
    if SPATIAL_ATTENTION_PARTS & set(parts):
        return "spatial_attention"
    if {"resnets", "downsamplers", "upsamplers", "conv_in", "conv_out"} & set(parts):
        return "spatial_conv"
    return "other"


def _run(model, kwargs):
    with torch.no_grad():
        return model(**{k: _meta(v) for k, v in kwargs.items()})


def _failing_input(model, name: str, kwargs: dict, given: dict) -> str | None:
    """The given input whose own shape breaks the forward: swapping it for the default makes it run."""
    defaults = default_shapes(model, name)
    for arg in given:
        if arg in defaults and given[arg] != defaults[arg]:
            trial = dict(kwargs, **{arg: defaults[arg]})
            try:
                with sdpa_kernel(SDPBackend.MATH):
                    _run(model, trial)
                return arg
            except Exception:  # noqa: BLE001 - still failing: not this one alone
                continue
    return None


def cost(model, name: str, kwargs: dict, given: dict | None = None) -> CostReport:
    """FLOPs (math attention, counted on meta), parameters, activation peak and the breakdown."""
    given = given or {}
    try:
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            _run(model, kwargs)
    except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as exc:
        bad = _failing_input(model, name, kwargs, given)
        shapes = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in kwargs.items())
        if bad is not None:
            raise CostError(f"--input {bad}={'x'.join(map(str, given[bad]))}: {name} rejects this shape "
                            f"(it takes e.g. {bad}={'x'.join(map(str, default_shapes(model, name)[bad]))}): "
                            f"{str(exc).splitlines()[0]}") from None
        raise CostError(f"forward of {name} failed with inputs {shapes}: {str(exc).splitlines()[0]}") from None
    tracker = LiveTensorTracker()
    with sdpa_kernel(SDPBackend.MATH), tracker:
        _run(model, kwargs)
    fused = LiveTensorTracker()
    with FusedAttention(), fused:
        _run(model, kwargs)
    flops_by_path = {k: sum(v.values()) for k, v in counter.get_flop_counts().items() if k != "Global"}
    breakdown = {k: {"flops": 0, "params": 0} for k in KINDS}
    prefix = type(model).__name__
    own_flops = dict(flops_by_path)
    for path, total in flops_by_path.items():  # a module's own FLOPs: minus its nearest recorded descendants'
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            parent = ".".join(parts[:i])
            if parent in flops_by_path:
                own_flops[parent] -= total
                break
    for path, own in own_flops.items():
        rel = path[len(prefix) + 1:] if path.startswith(prefix + ".") else ("" if path == prefix else path)
        breakdown[classify(rel)]["flops"] += own
    for pname, p in model.named_parameters():
        breakdown[classify(pname.rsplit(".", 1)[0])]["params"] += p.numel()
    return CostReport(name, int(counter.get_total_flops()), sum(p.numel() for p in model.parameters()),
                      tracker.peak_bytes, {k: list(v) for k, v in kwargs.items()}, breakdown, fused.peak_bytes)


def diffusers_cost(name: str, config: dict | None = None, inputs: dict | None = None, frames: int | None = None,
                   height: int | None = None, width: int | None = None) -> CostReport:
    """Build ``diffusers.<name>`` on meta and cost one denoising step (batch 1, no CFG)."""
    model = build_diffusers_unet(name, config)
    inputs = dict(inputs or {})
    kwargs = forward_kwargs(model, name, inputs, frames, height, width)
    return cost(model, name, kwargs, inputs)


def architecture_cost(space, arch, shapes: dict | None = None):
    """FLOPs / params / activation peak of one of ``space``'s video UNets (``arch`` on its
    backbone), on the meta device at the target's inference dtype; ``shapes`` override the
    space's own inputs (sample, timestep, encoder_hidden_states)."""
    from search_spaces.backbones import build_unet
    from search_spaces.cost import model_cost

    dtype = getattr(torch, space.config.dtype)
    model = space.build(arch, unet=build_unet(space.config.backbone, "meta").to(dtype))
    defaults = {"sample": space.video_shape, "timestep": (space.config.batch,),
                "encoder_hidden_states": space.text_shape}
    given = dict(shapes or {})
    params = inspect.signature(model.forward).parameters
    unknown = [n for n in given if n not in params]
    if unknown:
        raise CostError(f"--input {unknown[0]}: the video UNet's forward has no such argument; "
                        f"arguments: {', '.join(p for p in params if p not in ('self', 'kwargs'))}")
    kwargs = {k: _meta(v) for k, v in {**defaults, **given}.items()}
    kwargs = {k: v.to(dtype) if k != "timestep" else v for k, v in kwargs.items()}
    try:
        return model_cost(model, **kwargs)
    except (RuntimeError, ValueError, IndexError) as exc:
        bad = next(iter(given), None)
        where = f" (--input {bad}={'x'.join(map(str, given[bad]))}?)" if bad else ""
        raise CostError(f"forward of {arch} failed with these inputs{where}: {one_line(exc)}") from None
