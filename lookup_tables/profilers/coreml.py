"""``coreml``: each subject converted with coremltools (mlprogram, FP16, iOS18) and timed
with Core ML per compute unit.

Core ML predicts only on macOS. There this backend converts and times in one go; elsewhere
``hwnas lut export-bundle`` writes the converted models with a manifest and a runner
(``lookup_tables.bundle``), and ``hwnas lut import-results`` merges what the runner measured.
Conversion goes through ``torch.export`` (STACK.md: TorchScript tracing breaks attention).
Memory is not observable through Core ML: rows carry the analytic figures of the operator.
"""
from __future__ import annotations

import contextlib
import io
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

from core.errors import one_line
from lookup_tables.errors import LutError
from lookup_tables.profilers.base import Measurement, Profiler, register_profiler
from search_spaces.architecture import Architecture
from search_spaces.ops import create_op
from search_spaces.shapes import OpShape
from search_spaces.space import SearchSpace

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


def convert(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: str | Path):
    """Convert ``module(*inputs)`` to an FP16 mlprogram saved at ``path`` (an .mlpackage)."""
    module = module.eval().float()
    inputs = tuple(t.float() for t in inputs)
    # coremltools writes progress bars and warnings to stderr: kept off the CLI's one line.
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import coremltools as ct

        ep = torch.export.export(module, inputs).run_decompositions({})
        model = ct.convert(ep, convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                           minimum_deployment_target=ct.target.iOS18)
        model.save(str(path))
    return model


def op_subject(shape: OpShape, op_options: dict) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    op = create_op(shape.op, shape, **op_options)
    return op, (torch.randn(shape.video_shape, generator=g), torch.randn(shape.text_shape, generator=g))


def network_subject(space: SearchSpace, arch: Architecture) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    from lookup_tables.profilers.torch_backend import NetworkCall

    g = torch.Generator().manual_seed(0)
    model = space.build(arch, "cpu")
    timestep = torch.full((space.config.batch,), 500.0)
    return NetworkCall(model, timestep), (torch.randn(space.video_shape, generator=g),
                                    torch.randn(space.text_shape, generator=g))


def time_mlmodel(path: str | Path, compute_unit: str, warmup: int, repeats: int) -> list[float]:
    """Prediction times in ms of a saved model with random inputs (macOS only)."""
    import coremltools as ct
    import numpy as np

    model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_unit))
    feed = {}
    for inp in model.get_spec().description.input:
        shape = tuple(inp.type.multiArrayType.shape)
        feed[inp.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(warmup):
        model.predict(feed)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(feed)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


@register_profiler("coreml")
class CoreMLProfiler(Profiler):
    @staticmethod
    def check_config(lut) -> None:
        if lut.device.upper() not in COMPUTE_UNITS:
            raise ValueError(f"device {lut.device!r}; allowed for coreml: {', '.join(COMPUTE_UNITS)}")

    def __init__(self, config, dtype, op_options=None):
        super().__init__(config, dtype, op_options)
        self.compute_unit = config.device.upper()
        if platform.system() != "Darwin":
            raise LutError("the coreml backend times models only on macOS; here, write a bundle with "
                           "'hwnas lut export-bundle CONFIG --out DIR', run it on a Mac, then "
                           "'hwnas lut import-results'")
        import tempfile

        self._dir = Path(tempfile.mkdtemp(prefix="hwnas-coreml-"))

    def device_name(self) -> str:
        return f"{platform.machine()} macOS {platform.mac_ver()[0]} ({self.compute_unit})"

    def _measure(self, module, inputs, name: str) -> Measurement:
        from lookup_tables.profilers.torch_backend import percentile

        try:
            convert(module, inputs, self._dir / f"{name}.mlpackage")
            times = time_mlmodel(self._dir / f"{name}.mlpackage", self.compute_unit, self.config.warmup,
                                 self.config.repeats)
        except Exception as exc:  # a conversion failure is one row's error, not the build's
            return Measurement(status="error", reason=f"{one_line(exc, with_type=True)}"[:300])
        return Measurement(latency_ms=statistics.median(times), latency_p10_ms=percentile(times, 0.1),
                           latency_p90_ms=percentile(times, 0.9), repeats=len(times))

    def measure_op(self, shape: OpShape) -> Measurement:
        from lookup_tables.memory import analytic_memory

        m = self._measure(*op_subject(shape, self.op_options), name=shape.key.replace("|", "_"))
        return analytic_memory(m, shape)

    def measure_backbone(self, space: SearchSpace) -> Measurement:
        return self.measure_network(space, space.empty)

    def measure_network(self, space: SearchSpace, arch: Architecture) -> Measurement:
        return self._measure(*network_subject(space, arch), name=f"net_{abs(hash(str(arch)))}")
