"""``hwnas cost MODEL``: FLOPs, parameters and peak activation memory of one forward.

MODEL is an experiment YAML (with ``--arch``) or a diffusers UNet class
(``diffusers:UNet2DConditionModel``, the video UNets ``UNetSpatioTemporalConditionModel``,
``UNet3DConditionModel``, ``UNetMotionModel``) built from ``--config`` (a JSON file or inline
JSON) or the class defaults, with inputs shaped per class (``search_spaces.video_cost``); it
reports a breakdown by module kind. Everything is built and run on the meta device, so an SD-1.5-sized
UNet costs in about a second and no memory.
"""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import torch

from nas.cli_common import CliError, emit_json
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
    p.add_argument("--frames", type=int, help="frames for video diffusers classes without --input (default: the class's)")
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
    inline = text.lstrip().startswith("{")  # long inline JSON is no file name (os.stat: name too long)
    raw = text if inline or not path.is_file() else path.read_text()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        what = "--config" if inline or not path.is_file() else f"file {text}"
        raise CliError(f"{what} is neither a JSON file nor inline JSON") from None
    if not isinstance(data, dict):
        raise CliError("--config must be a JSON object")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _meta(shape) -> torch.Tensor:
    return torch.empty(shape, device="meta")


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
        from search_spaces.video_cost import diffusers_cost

        report = diffusers_cost(args.model.split(":", 1)[1], _config_arg(args.config), shapes, args.frames)
        if args.json:
            emit_json(report.as_dict())
            return 0
        print(f"{args.model} ({', '.join(f'{k}={chr(120).join(map(str, v))}' for k, v in report.inputs.items())})\n"
              f"  FLOPs per step: {report.flops:,} ({report.flops / 1e12:.3f} TFLOPs)\n"
              f"  params: {report.params:,}\n  activation peak: {report.activation_peak_bytes / 2**20:,.1f} MiB "
              f"(math attention; {report.activation_peak_fused_bytes / 2**20:,.1f} MiB with a fused kernel)")
        for kind, b in report.breakdown.items():
            share = b["flops"] / report.flops if report.flops else 0
            print(f"  {kind:18s} {b['flops'] / 1e12:9.3f} TFLOPs ({share:5.1%})  {b['params'] / 1e6:9.1f} M params")
        return 0
    else:
        from nas.cli_common import load_experiment
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
        raise CliError(f"forward of {label} failed with these inputs: {str(exc).splitlines()[0]}") from None
    if args.json:
        emit_json(cost.as_dict())
    else:
        print(f"{label}\n  FLOPs: {cost.flops:,} ({cost.flops / 1e9:.2f} GFLOPs)\n"
              f"  params: {cost.params:,}\n  activation peak: {cost.activation_peak_bytes / 2**20:,.1f} MiB")
    return 0
