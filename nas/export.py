"""``hwnas export``: a trained model folder to Core ML (FP16 mlprogram, iOS 18) or ONNX.

The whole video UNet is exported, temporal layers included, as the network of one
denoising step with the timestep embedding as an input: the embeddings of the Euler
sampler's steps are precomputed (``timestep_embeddings.npy``, one row per step, with the
t values in ``export.json``), so the time MLP is not in the program, as mobile diffusion
deployments do. ``parts`` > 1 cuts the network between consecutive stages (conv_in, each
down block, mid, each up block, the output head) into N programs of about equal weight
size; each part takes and returns the hidden state and the skip connections still needed.

Checks: ONNX Runtime against torch on the same inputs (max abs error); the Core ML program's
op listing against the architecture (each temporal layer's signature ops present as many
times as the architecture has such layers, and no op outside the iOS18 opset); Core ML
prediction against torch only where coremltools can predict (macOS), reported as skipped
elsewhere.
"""
from __future__ import annotations

import contextlib
import io
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.errors import HwnasError, one_line
from core.io import atomic_json

FORMATS = ("coreml", "onnx")
ONNX_OPSET = 18


class ExportError(HwnasError):
    """A model that cannot be exported: an operator that does not convert, a bad option."""


# The staged network ----------------------------------------------------------------------
def stage_names(unet) -> list[str]:
    names = ["in"] + [f"down{i}" for i in range(len(unet.down_blocks))]
    if unet.mid_block is not None:
        names.append("mid")
    return names + [f"up{i}" for i in range(len(unet.up_blocks))] + ["out"]


class StagedVideoUNet(nn.Module):
    """The VideoUNet's forward written as consecutive stages, with the time embedding given
    (not computed from t). ``run(first, last, hidden, emb, text, residuals)`` runs the stages
    in [first, last); the folded hidden state is (B·T, C, H, W)."""

    def __init__(self, video):
        super().__init__()
        self.video = video
        self.unet = video.unet
        self.names = stage_names(self.unet)

    def _temporal(self, slot: str, hidden, frames: int, text):
        arch = self.video.architecture
        if slot not in arch:
            return hidden
        stack = self.video.temporal[f"{slot}_{arch[slot].op}"]
        bt, c, h, w = hidden.shape
        return stack(hidden.reshape(bt // frames, frames, c, h, w), text).reshape(bt, c, h, w)

    def run(self, first: int, last: int, hidden, emb, text, residuals: list, frames: int):
        unet = self.unet
        ctx = text.repeat_interleave(frames, dim=0)
        for name in self.names[first:last]:
            if name == "in":
                hidden = unet.conv_in(hidden)
                residuals = [hidden]
            elif name.startswith("down"):
                block = unet.down_blocks[int(name[4:])]
                if getattr(block, "has_cross_attention", False):
                    hidden, res = block(hidden_states=hidden, temb=emb, encoder_hidden_states=ctx)
                else:
                    hidden, res = block(hidden_states=hidden, temb=emb)
                hidden = self._temporal(name, hidden, frames, text)
                residuals = residuals + list(res[:-1]) + [hidden]
            elif name == "mid":
                block = unet.mid_block
                if getattr(block, "has_cross_attention", False):
                    hidden = block(hidden, emb, encoder_hidden_states=ctx)
                else:
                    hidden = block(hidden, emb)
                hidden = self._temporal(name, hidden, frames, text)
            elif name.startswith("up"):
                block = unet.up_blocks[int(name[2:])]
                n = len(block.resnets)
                res, residuals = tuple(residuals[-n:]), residuals[:-n]
                if getattr(block, "has_cross_attention", False):
                    hidden = block(hidden_states=hidden, temb=emb, res_hidden_states_tuple=res,
                                   encoder_hidden_states=ctx)
                else:
                    hidden = block(hidden_states=hidden, temb=emb, res_hidden_states_tuple=res)
                hidden = self._temporal(name, hidden, frames, text)
            else:  # out
                if unet.conv_norm_out is not None:
                    hidden = unet.conv_act(unet.conv_norm_out(hidden))
                hidden = unet.conv_out(hidden)
        return hidden, residuals

    def stage_bytes(self) -> list[int]:
        """Weight bytes of each stage (its spatial block and its temporal layers)."""
        unet, arch, out = self.unet, self.video.architecture, []
        for name in self.names:
            if name == "in":
                mods = [unet.conv_in]
            elif name == "out":
                mods = [m for m in (unet.conv_norm_out, unet.conv_out) if m is not None]
            else:
                mods = [dict(zip(self.names, [None] + list(unet.down_blocks) + ([unet.mid_block] if unet.mid_block
                                                                                 is not None else [])
                                 + list(unet.up_blocks)))[name]]
                if name in arch:
                    mods.append(self.video.temporal[f"{name}_{arch[name].op}"])
            out.append(sum(p.numel() * p.element_size() for m in mods for p in m.parameters()))
        return out


def split_points(sizes: list[int], parts: int) -> list[tuple[int, int]]:
    """Contiguous ranges of stages, ``parts`` of them, each near an equal share of the bytes."""
    if parts < 1 or parts > len(sizes):
        raise ExportError(f"--parts {parts}: must be between 1 and the {len(sizes)} stages of this network")
    total, bounds, acc, start = sum(sizes), [], 0, 0
    for i, s in enumerate(sizes):
        acc += s
        left_parts = parts - len(bounds) - 1
        if left_parts and acc >= total * (len(bounds) + 1) / parts and len(sizes) - (i + 1) >= left_parts:
            bounds.append((start, i + 1))
            start = i + 1
    bounds.append((start, len(sizes)))
    while len(bounds) < parts:  # very uneven sizes: split the widest range
        k = max(range(len(bounds)), key=lambda j: bounds[j][1] - bounds[j][0])
        a, b = bounds[k]
        bounds[k:k + 1] = [(a, (a + b) // 2), ((a + b) // 2, b)]
    return bounds


class Part(nn.Module):
    """Stages [first, last) as one program: inputs (hidden or sample, emb, text, *residuals),
    outputs (hidden or output, *residuals). The first part folds (B, T, C, H, W), the last unfolds."""

    def __init__(self, staged: StagedVideoUNet, first: int, last: int, frames: int):
        super().__init__()
        self.staged, self.first, self.last, self.frames = staged, first, last, frames

    def forward(self, hidden, temb, text, *residuals):
        frames = self.frames
        if self.first == 0:
            b, t, c, h, w = hidden.shape
            hidden = hidden.reshape(b * t, c, h, w)
        emb = temb.repeat_interleave(frames, dim=0)
        hidden, res = self.staged.run(self.first, self.last, hidden, emb, text, list(residuals), frames)
        if self.last == len(self.staged.names):
            bt = hidden.shape[0]
            hidden = hidden.reshape(bt // frames, frames, *hidden.shape[1:])
            return hidden
        return (hidden, *res)


@torch.no_grad()
def timestep_embeddings(unet, steps: int) -> tuple[np.ndarray, list[float]]:
    """The time embedding of each Euler step's t (t_i = 1 − i/steps, the backbone sees 1000·t)."""
    from evaluators.flow import TIMESTEP_SCALE

    ts = torch.linspace(1.0, 0.0, steps + 1)[:-1]
    emb = unet.time_embedding(unet.time_proj(ts * TIMESTEP_SCALE).to(next(unet.parameters()).dtype))
    return emb.float().numpy(), ts.tolist()


def _example_inputs(trained, staged: StagedVideoUNet, bounds, emb_row: np.ndarray, seed: int = 0):
    """Per part: its example inputs (the previous part's outputs), from one fixed sample."""
    g = torch.Generator().manual_seed(seed)
    shape = (1, *trained.latent_shape())
    sample = torch.randn(shape, generator=g)
    text = trained.encoder(["a red circle moving left fast"])
    temb = torch.from_numpy(emb_row[None]).float()
    inputs, current = [], (sample,)
    for first, last in bounds:
        part = Part(staged, first, last, shape[1])
        args = (current[0], temb, text, *current[1:])
        inputs.append(args)
        with torch.no_grad():
            out = part(*args)
        current = out if isinstance(out, tuple) else (out,)
    return inputs, current[0]


def _names(args_count: int, first: bool) -> list[str]:
    return ["sample" if first else "hidden", "temb", "text"] + [f"res{i}" for i in range(args_count - 3)]


# Conversion ------------------------------------------------------------------------------
def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (converters wrap the real reason several times)."""
    seen = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return exc


def export_coreml(part: nn.Module, args, path: Path):
    with _quiet():
        import coremltools as ct

        ep = torch.export.export(part.eval(), tuple(args)).run_decompositions({})
        model = ct.convert(ep, convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                           minimum_deployment_target=ct.target.iOS18)
        model.save(str(path))
    return model


def coreml_ops(model) -> dict[str, int]:
    """Op type -> count in the program's main function (all blocks, nested ones too)."""
    spec = model.get_spec()
    counts: dict[str, int] = {}

    def walk(block):
        for op in block.operations:
            counts[op.type] = counts.get(op.type, 0) + 1
            for b in op.blocks:
                walk(b)

    fn = spec.mlProgram.functions["main"]
    for block in fn.block_specializations.values():
        walk(block)
    return counts


# What each temporal operator must leave in a converted program (per layer).
SIGNATURE = {"conv1d": "conv", "conv3d": "conv", "self_attn1d": "scaled_dot_product_attention",
             "self_attn3d": "scaled_dot_product_attention", "cross_attn1d": "scaled_dot_product_attention",
             "cross_attn3d": "scaled_dot_product_attention"}


def check_ops(counts: dict[str, int], arch, backbone_counts: dict[str, int]) -> dict:
    """Every temporal layer present: the program has, beyond the backbone's own program,
    at least one signature op per temporal layer of that kind."""
    need: dict[str, int] = {}
    for slot, layer in arch.items():
        op = SIGNATURE.get(layer.op)
        if op:
            need[op] = need.get(op, 0) + layer.count
    missing = {op: {"need_extra": n, "have_extra": counts.get(op, 0) - backbone_counts.get(op, 0)}
               for op, n in need.items() if counts.get(op, 0) - backbone_counts.get(op, 0) < n}
    return {"temporal_layers": arch.total_layers, "signature_ops": need, "missing": missing, "ok": not missing}


def export_model(model_dir: str | Path, fmt: str, out: str | Path, parts: int = 1, steps: int = 4,
                 check: bool = True) -> dict:
    """Export a model folder; returns the report (also written to ``out/export.json``)."""
    from evaluators.model_dir import load_model

    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if steps < 1:
        raise ExportError(f"--steps {steps}: must be at least 1")
    out = Path(out)
    trained = load_model(model_dir)
    video = trained.model.float().eval()
    staged = StagedVideoUNet(video)
    staged.geometry, staged.frames = trained.space.geometry, trained.latent_shape()[0]
    staged.text_shape = (trained.tokens, int(trained.meta["text"]["dim"]))
    bounds = split_points(staged.stage_bytes(), parts)
    embs, ts = timestep_embeddings(video.unet, steps)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "timestep_embeddings.npy", embs)
    inputs, reference = _example_inputs(trained, staged, bounds, embs[0])
    with torch.no_grad():  # the staged network is the model: same output as its own forward
        direct = video(inputs[0][0], torch.full((1,), ts[0] * 1000.0), inputs[0][2])
    report = {"format": fmt, "arch": str(trained.arch), "model": str(model_dir), "parts": [],
              "sampler": {"steps": steps, "t": ts, "timestep_embeddings": "timestep_embeddings.npy",
                          "embedding_dim": int(embs.shape[1])},
              "staged_vs_model_max_abs": float((reference - direct).abs().max()),
              "input_shape": list(inputs[0][0].shape), "text_shape": list(inputs[0][2].shape)}
    start = time.perf_counter()
    for k, ((first, last), args) in enumerate(zip(bounds, inputs)):
        part = Part(staged, first, last, inputs[0][0].shape[1]).eval()
        name = f"unet_part{k + 1}_of_{len(bounds)}" if len(bounds) > 1 else "unet"
        entry = {"name": name, "stages": staged.names[first:last], "inputs": _names(len(args), first == 0)}
        if fmt == "coreml":
            path = out / f"{name}.mlpackage"
            try:
                mlmodel = export_coreml(part, args, path)
            except Exception as exc:  # noqa: BLE001 - the converter's many errors: one line
                raise ExportError(_conversion_failure(exc, fmt, staged, first, last, export_coreml)) from None
            entry["ops"] = coreml_ops(mlmodel)
            entry["path"] = path.name
            entry["bytes"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            entry["weights_bytes"] = sum(f.stat().st_size for f in path.rglob("weight*.bin"))
            entry["macos_check"] = _coreml_numeric_check(mlmodel, part, args, entry["inputs"])
        else:
            path = out / f"{name}.onnx"
            try:
                entry["exporter"] = export_onnx(part, args, path, entry["inputs"])
            except ExportError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise ExportError(_conversion_failure(exc, fmt, staged, first, last, _onnx_only)) from None
            entry["path"] = path.name
            entry["bytes"] = path.stat().st_size + sum(p.stat().st_size for p in out.glob(f"{name}.onnx.data"))
            if check:
                entry["onnxruntime"] = onnxruntime_check(path, part, args, entry["inputs"])
        report["parts"].append(entry)
    if fmt == "coreml" and check:
        report["op_check"] = _coreml_op_check(report, trained, staged, bounds, inputs)
    if fmt == "onnx" and check:
        report["onnxruntime_max_abs_error"] = max(p["onnxruntime"]["max_abs_error"] for p in report["parts"])
    report["total_bytes"] = sum(p["bytes"] for p in report["parts"])
    report["seconds"] = round(time.perf_counter() - start, 2)
    atomic_json(out / "export.json", report)
    return report


def _conversion_failure(exc, fmt: str, staged, first, last, convert) -> str:
    """One line naming what does not convert: each temporal layer of the failing part is
    converted alone, and the first that fails is named with the converter's own reason."""
    import tempfile


    video = staged.video
    arch = video.architecture
    for slot in staged.names[first:last]:
        if slot not in arch:
            continue
        layer = video.temporal[f"{slot}_{arch[slot].op}"][0]
        g = staged.geometry[slot]
        x = torch.randn(1, staged.frames, layer.channels, g.height, g.width)
        ctx = torch.randn(1, *staged.text_shape)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                convert(layer.eval(), (x, ctx), Path(tmp) / ("op.mlpackage" if fmt == "coreml" else "op.onnx"))
        except Exception as op_exc:  # noqa: BLE001
            return (f"operator {arch[slot].op} (slot {slot}) does not convert to {fmt}: "
                    f"{one_line(root_cause(op_exc), with_type=True)[:300]}")
    return f"the backbone does not convert to {fmt}: {one_line(root_cause(exc), with_type=True)[:300]}"


def _coreml_op_check(report, trained, staged, bounds, inputs) -> dict:
    """The program's ops vs the architecture: compared with the backbone alone converted the
    same way, the temporal layers must add their signature ops; every op must be in iOS18's opset."""
    from search_spaces.architecture import Architecture
    from search_spaces.backbones import VideoUNet

    counts: dict[str, int] = {}
    for p in report["parts"]:
        for op, n in p["ops"].items():
            counts[op] = counts.get(op, 0) + n
    bare = VideoUNet(staged.unet, Architecture()).eval()
    bare_staged = StagedVideoUNet(bare)
    bare_counts: dict[str, int] = {}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args = inputs[0][:3]
        model = export_coreml(Part(bare_staged, 0, len(bare_staged.names), args[0].shape[1]), args,
                              Path(tmp) / "bare.mlpackage")
        bare_counts = coreml_ops(model)
    result = check_ops(counts, trained.arch, bare_counts)
    known = supported_ops()
    unsupported = sorted(op for op in counts if known and op not in known)
    result.update(unsupported=unsupported, ops=counts, backbone_ops=bare_counts,
                  ok=result["ok"] and not unsupported, opset_checked=bool(known))
    return result


def supported_ops() -> set[str]:
    """MIL op types the iOS 18 target has (coremltools' core op registry)."""
    with _quiet():
        from coremltools.converters.mil._deployment_compatibility import AvailableTarget
        from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

        return {name for name, versions in SSAOpRegistry.core_ops.items()
                if any(t is not None and t <= AvailableTarget.iOS18 for t in versions)}


def _coreml_numeric_check(mlmodel, part, args, names) -> dict:
    if platform.system() != "Darwin":
        return {"status": "skipped", "reason": "Core ML predicts only on macOS (coremltools on "
                                               f"{platform.system()} converts but cannot run a model)"}
    try:
        feed = {spec.name: a.numpy() for spec, a in zip(mlmodel.get_spec().description.input, args)}
        got = list(mlmodel.predict(feed).values())[0]
        with torch.no_grad():
            want = part(*args)
        want = want[0] if isinstance(want, tuple) else want
        return {"status": "ok", "max_abs_error": float(np.abs(np.asarray(got) - want.numpy()).max())}
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "reason": one_line(exc, with_type=True)[:300]}


def _torch_onnx(module, args, path: Path, names=None, output_names=None) -> str:
    """torch's TorchScript exporter (fast; takes attention over any rank), else the dynamo
    exporter (the one that stays); returns which one wrote ``path``."""
    errors = []
    for dynamo in (False, True):
        try:
            with _quiet():
                kw = {"external_data": False} if dynamo else {}
                torch.onnx.export(module, tuple(args), str(path), input_names=names, output_names=output_names,
                                  opset_version=ONNX_OPSET, dynamo=dynamo, **kw)
            return "dynamo" if dynamo else "torchscript"
        except Exception as exc:  # noqa: BLE001 - try the other exporter
            errors.append(exc)
    raise errors[-1] from errors[0]


def export_onnx(part: nn.Module, args, path: Path, names: list[str]) -> str:
    with torch.no_grad():
        out = part(*args)
    n_out = len(out) if isinstance(out, tuple) else 1
    output_names = ["out"] if n_out == 1 else ["hidden"] + [f"res_out{i}" for i in range(n_out - 1)]
    exporter = _torch_onnx(part, args, path, names, output_names)
    import onnx

    model = onnx.load(str(path))
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 17:
        raise ExportError(f"{path}: exported with opset {opset}, need at least 17")
    return exporter


def _onnx_only(module, args, path):
    _torch_onnx(module, args, path)


def onnxruntime_check(path: Path, part, args, names) -> dict:
    try:
        import onnxruntime as ort
    except ImportError:
        return {"status": "skipped", "reason": "onnxruntime is not installed"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
    got = sess.run(None, feed)
    with torch.no_grad():
        want = part(*args)
    want = list(want) if isinstance(want, tuple) else [want]
    err = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    scale = max(float(np.abs(w.numpy()).max()) for w in want)
    return {"status": "ok", "provider": "CPUExecutionProvider", "max_abs_error": err, "output_max_abs": scale,
            "inputs": [i.name for i in sess.get_inputs()]}
