"""``hwnas cost MODEL``: FLOPs, parameters and peak activation memory of one forward.

MODEL is an experiment YAML (with ``--arch``) or a diffusers model class
(``diffusers:UNet2DConditionModel``) built from ``--config`` (a JSON file or inline JSON) or
the class defaults. Everything is built and run on the meta device, so an SD-1.5-sized
UNet costs in about a second and no memory.
"""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import torch

from core.errors import one_line
from nas.cli.common import CliError, emit_json
from search_spaces.cost import model_cost

FRAMES_FIRST_5D = {"UNetSpatioTemporalConditionModel"}  # (B, F, C, H, W)
CHANNELS_FIRST_5D = {"UNetMotionModel", "UNet3DConditionModel", "I2VGenXLUNet"}  # (B, C, F, H, W)


def register(sub) -> None:
    p = sub.add_parser("cost", help="FLOPs / params / activation memory of any model")
    p.add_argument("model", help="experiment YAML, or diffusers:ClassName")
    p.add_argument("--arch", default="empty", help="architecture (with an experiment): canonical string, 'empty' or 'full'")
    p.add_argument("--config", help="diffusers model config: a JSON file or an inline JSON object")
    p.add_argument("--input", action="append", default=[], metavar="NAME=AxBxC",
                   help="shape of a forward input (repeatable); 'NAME=' alone gives a scalar")
    p.add_argument("--frames", type=int, default=16, help="frames for video diffusers classes without --input")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def parse_inputs(items: list[str]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for item in items:
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=((?:\d+)(?:x\d+)*)?", item.strip())
        if not m:
            raise CliError(f"--input {item!r} does not parse; expected NAME=AxBxC, e.g. sample=1x4x64x64")
        dims = tuple(int(d) for d in m.group(2).split("x")) if m.group(2) else ()
        if any(d < 1 for d in dims):
            raise CliError(f"--input {item!r}: every dimension must be at least 1")
        shapes[m.group(1)] = dims
    return shapes


def _config_arg(text: str | None) -> dict:
    if text is None:
        return {}
    path = Path(text)
    raw = path.read_text() if path.is_file() else text
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        what = f"file {text}" if path.is_file() else "--config"
        raise CliError(f"{what} is neither a JSON file nor inline JSON") from None
    if not isinstance(data, dict):
        raise CliError("--config must be a JSON object")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _meta(shape) -> torch.Tensor:
    return torch.empty(shape, device="meta")


def _diffusers_model(name: str, config: dict):
    import diffusers

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise CliError(f"diffusers has no model class {name!r} (e.g. diffusers:UNet2DConditionModel)")
    try:
        with torch.device("meta"):
            return cls.from_config(config) if config else cls()
    except (TypeError, ValueError) as exc:
        raise CliError(f"{name} cannot be built from this config: {one_line(exc)}") from None


def _default_input(name: str, model, cls_name: str, frames: int):
    cfg = getattr(model, "config", {})
    size = (cfg.get("sample_size") if hasattr(cfg, "get") else None) or 64
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if name == "sample":
        c = cfg.get("in_channels", 4)
        if cls_name in FRAMES_FIRST_5D:
            return _meta((1, frames, c, h, w))
        if cls_name in CHANNELS_FIRST_5D:
            return _meta((1, c, frames, h, w))
        return _meta((1, c, h, w))
    if name == "timestep":
        return torch.tensor(1.0, device="meta")
    if name == "encoder_hidden_states":
        dim = cfg.get("cross_attention_dim", 768)
        dim = dim[0] if isinstance(dim, (list, tuple)) else dim
        return _meta((1, 77, dim))
    if name == "added_time_ids":
        return _meta((1, 3))
    return None


def _forward_inputs(model, cls_name: str, shapes: dict, frames: int) -> dict:
    params = inspect.signature(model.forward).parameters
    unknown = [n for n in shapes if n not in params]
    if unknown:
        raise CliError(f"--input {unknown[0]}: {cls_name}.forward has no such argument; "
                       f"arguments: {', '.join(p for p in params if p not in ('self', 'kwargs'))}")
    kwargs = {}
    for name, p in params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in shapes:
            kwargs[name] = _meta(shapes[name]) if shapes[name] else torch.tensor(1.0, device="meta")
        elif p.default is inspect.Parameter.empty:
            value = _default_input(name, model, cls_name, frames)
            if value is None:
                raise CliError(f"{cls_name}.forward needs {name!r}: give --input {name}=AxBxC")
            kwargs[name] = value
    return kwargs


def run(args) -> int:
    shapes = parse_inputs(args.input)
    if args.model.startswith("diffusers:"):
        cls_name = args.model.split(":", 1)[1]
        model = _diffusers_model(cls_name, _config_arg(args.config))
        kwargs = _forward_inputs(model, cls_name, shapes, args.frames)
        label = args.model
    else:
        from nas.cli.common import load_experiment
        from search_spaces.backbones import build_unet
        from search_spaces.space import SearchSpace

        exp = load_experiment(args.model)
        if args.config:
            raise CliError("--config applies to diffusers:CLASS models; an experiment carries its own backbone")
        space = SearchSpace(exp.space)
        arch = space.parse(args.arch)
        dtype = getattr(torch, space.config.dtype)  # cost at the target's inference dtype
        model = space.build(arch, unet=build_unet(exp.space.backbone, "meta").to(dtype))
        defaults = {"sample": space.video_shape, "timestep": (space.config.batch,),
                    "encoder_hidden_states": space.text_shape}
        kwargs = _forward_inputs(model, "VideoUNet", {**defaults, **shapes}, args.frames)
        kwargs = {k: v.to(dtype) if k != "timestep" else v for k, v in kwargs.items()}
        label = f"{args.model} --arch {arch}"
    try:
        cost = model_cost(model, **kwargs)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise CliError(f"forward of {label} failed with these inputs: {one_line(exc)}") from None
    if args.json:
        emit_json(cost.as_dict())
    else:
        print(f"{label}\n  FLOPs: {cost.flops:,} ({cost.flops / 1e9:.2f} GFLOPs)\n"
              f"  params: {cost.params:,}\n  activation peak: {cost.activation_peak_bytes / 2**20:,.1f} MiB")
    return 0
