"""``onnxruntime``: each subject exported to ONNX (opset 18) and timed with ONNX Runtime, the
runtime an ONNX deployment uses.

Device ``cpu`` is the CPU execution provider (``threads`` intra-op threads, one inter-op);
``cuda`` the CUDA provider where the installed onnxruntime has it. Protocol as the torch
backend: ``warmup`` untimed runs, then ``repeats`` timed ones (wall clock); median, p10,
p90. Memory: ONNX Runtime's arena does not report a per-call peak, so the memory fields
come from the torch live-tensor meter on the same subject (the table's memory model is the
network's, not the runtime's allocator's).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import one_line
from lookup_tables.errors import LutError
from lookup_tables.profilers.base import Measurement, Profiler, cpu_model, register_profiler
from lookup_tables.profilers.torch_backend import NetworkCall, TorchProfiler, percentile
from search_spaces.architecture import Architecture
from search_spaces.ops import create_op
from search_spaces.shapes import OpShape
from search_spaces.space import SearchSpace

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPSET = 18


def to_onnx(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: str | Path) -> None:
    """torch's TorchScript exporter (quick, takes attention over any rank), else the dynamo one."""
    errors = []
    for dynamo in (False, True):
        try:
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()), \
                    contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module.eval(), tuple(inputs), str(path), opset_version=OPSET, dynamo=dynamo)
            return
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    raise errors[-1]


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    threads: int = 1  # intra-op threads of the CPU provider

    def __post_init__(self):
        if self.threads < 1:
            raise ValueError("threads must be at least 1")


@register_profiler("onnxruntime")
class OnnxRuntimeProfiler(Profiler):
    Options = OnnxRuntimeOptions

    def __init__(self, config, dtype, op_options=None):
        super().__init__(config, dtype, op_options)
        try:
            import onnxruntime as ort
        except ImportError:
            raise LutError("the onnxruntime backend needs the onnxruntime package (pip install onnxruntime)") from None
        device = config.device.split(":")[0]
        if device not in PROVIDERS:
            raise LutError(f"lut.device {config.device!r} for onnxruntime; allowed: {', '.join(PROVIDERS)}")
        self.provider = PROVIDERS[device]
        if self.provider not in ort.get_available_providers():
            raise LutError(f"lut.device {config.device!r}: this onnxruntime has no {self.provider} "
                           f"(available: {', '.join(ort.get_available_providers())})")
        if dtype != "float32":
            raise LutError(f"the onnxruntime backend measures float32 here, the space has {dtype}")
        self._ort = ort
        self._dir = Path(tempfile.mkdtemp(prefix="hwnas-onnx-"))
        # memory from the torch meter on the same subject, timing with few repeats (unused)
        self._memory = TorchProfiler(dataclasses.replace(config, backend="torch", device="cpu", warmup=0, repeats=3,
                                                         options={"threads": config.options.threads}),
                                     dtype, op_options)

    def device_name(self) -> str:
        return f"{cpu_model()} (onnxruntime {self._ort.__version__}, {self.provider})"

    def fingerprint(self) -> dict:
        out = super().fingerprint()
        out["versions"]["onnxruntime"] = self._ort.__version__
        return out

    def _session(self, path: Path):
        opts = self._ort.SessionOptions()
        opts.intra_op_num_threads = self.config.options.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        return self._ort.InferenceSession(str(path), opts, providers=[self.provider])

    def _time(self, module, inputs, name: str, memory: Measurement) -> Measurement:
        if memory.status != "ok":
            return memory
        try:
            path = self._dir / f"{name}.onnx"
            to_onnx(module, inputs, path)
            sess = self._session(path)
            feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
            for _ in range(self.config.warmup):
                sess.run(None, feed)
            times = []
            for _ in range(self.config.repeats):
                t0 = time.perf_counter()
                sess.run(None, feed)
                times.append((time.perf_counter() - t0) * 1e3)
        except Exception as exc:  # noqa: BLE001 - one subject failing is one row's error
            return Measurement(status="error", reason=one_line(exc, with_type=True)[:300])
        return dataclasses.replace(memory, latency_ms=statistics.median(times),
                                   latency_p10_ms=percentile(times, 0.1), latency_p90_ms=percentile(times, 0.9),
                                   repeats=len(times))

    def _inputs(self, video_shape, text_shape):
        g = torch.Generator().manual_seed(0)
        return torch.randn(video_shape, generator=g), torch.randn(text_shape, generator=g)

    def measure_op(self, shape: OpShape) -> Measurement:
        memory = self._memory.measure_op(shape)
        torch.manual_seed(0)
        try:
            op = create_op(shape.op, shape, **self.op_options)
        except Exception as exc:  # noqa: BLE001
            return Measurement(status="error", reason=one_line(exc, with_type=True)[:300])
        # Identity-initialised outputs would let ONNX Runtime fold the whole residual away.
        torch.nn.init.normal_(op.proj_out.weight, std=0.02)
        return self._time(op, self._inputs(shape.video_shape, shape.text_shape), shape.key.replace("|", "_")
                          .replace("/", "_"), memory)

    def measure_backbone(self, space: SearchSpace) -> Measurement:
        memory = self._memory.measure_backbone(space)
        return self._time(*self._network(space, space.empty), name="backbone", memory=memory)

    def measure_network(self, space: SearchSpace, arch: Architecture) -> Measurement:
        memory = self._memory.measure_network(space, arch)
        return self._time(*self._network(space, arch), name=f"net_{abs(hash(str(arch)))}", memory=memory)

    def _network(self, space: SearchSpace, arch: Architecture):
        torch.manual_seed(0)
        model = space.build(arch, "cpu").eval()
        for m in model.temporal.modules():
            if hasattr(m, "proj_out"):
                torch.nn.init.normal_(m.proj_out.weight, std=0.02)
        return NetworkCall(model, torch.full((space.config.batch,), 500.0)), \
            self._inputs(space.video_shape, space.text_shape)
