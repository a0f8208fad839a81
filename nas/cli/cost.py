"""``hwnas cost MODEL``: FLOPs, parameters and peak activation memory of one forward.

MODEL is an experiment YAML (with ``--arch``) or a diffusers UNet class
(``diffusers:UNet2DConditionModel``, the video UNets ``UNetSpatioTemporalConditionModel``,
``UNet3DConditionModel``, ``UNetMotionModel``) built from ``--config`` (a JSON file or inline
JSON) or the class defaults, with inputs shaped per class (``search_spaces.video_cost``); it
reports a breakdown by module kind. Everything is built and run on the meta device, so an SD-1.5-sized
UNet costs in about a second and no memory.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from nas.cli.common import CliError, emit_json


def register(sub) -> None:
    p = sub.add_parser("cost", help="FLOPs / params / activation memory of any model")
    p.add_argument("model", help="experiment YAML, or diffusers:ClassName")
    p.add_argument("--arch", default="empty",
                   help="architecture (with an experiment only): canonical string, 'empty' or 'full'")
    p.add_argument("--config", help="diffusers model config: a JSON file or an inline JSON object")
    p.add_argument("--input", action="append", default=[], metavar="NAME=AxBxC",
                   help="shape of a forward input (repeatable); 'NAME=' alone gives a scalar")
    p.add_argument("--frames", type=int,
                   help="frames for video diffusers classes without --input sample=... (default: the class's)")
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


def run(args) -> int:
    shapes = parse_inputs(args.input)
    if args.frames is not None and args.frames < 1:
        raise CliError(f"--frames {args.frames}: a count of frames, 1 or more")
    if args.model.startswith("diffusers:"):
        from search_spaces.video_cost import diffusers_cost

        if args.arch != "empty":
            raise CliError("--arch applies to an experiment's search space, not to a diffusers:CLASS model")
        if args.frames is not None and "sample" in shapes:
            raise CliError("--frames sets the default sample's frames; with --input sample=... give them there")

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
    from nas.cli.common import load_experiment
    from search_spaces.space import SearchSpace
    from search_spaces.video_cost import architecture_cost

    exp = load_experiment(args.model)
    if args.config:
        raise CliError("--config applies to diffusers:CLASS models; an experiment carries its own backbone")
    if args.frames is not None:
        raise CliError("--frames applies to diffusers:CLASS models; an experiment sets space.video.frames")
    space = SearchSpace(exp.space)
    arch = space.parse(args.arch)
    cost = architecture_cost(space, arch, shapes)
    if args.json:
        emit_json(cost.as_dict())
    else:
        print(f"{args.model} --arch {arch}\n  FLOPs: {cost.flops:,} ({cost.flops / 1e9:.2f} GFLOPs)\n"
              f"  params: {cost.params:,}\n  activation peak: {cost.activation_peak_bytes / 2**20:,.1f} MiB")
    return 0
