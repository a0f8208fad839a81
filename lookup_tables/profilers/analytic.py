"""``analytic``: a roofline estimate from FLOPs and bytes moved, with a device spec.

``latency = max(flops / peak_flops[dtype], bytes / memory_bandwidth) + launch_overhead``.
An operator's FLOPs and activation bytes come from its ``cost(shape)``; the backbone and
whole networks are run on the meta device (nothing is allocated) under the FLOP counter and
the live-tensor tracker, so an SD-1.5-sized space is priced in seconds. Bytes moved: the
weights once, every intermediate written once and read once. A peak above the device's
memory (or ``memory_limit_mib``) is status ``oom``. It is a lower bound: real kernels
reach a fraction of the peak.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from core.errors import UnknownNameError
from lookup_tables.errors import LutError
from lookup_tables.memory import TrackerMeter
from lookup_tables.profilers.base import Measurement, Profiler, register_profiler
from search_spaces.architecture import Architecture
from search_spaces.backbones import slot_modules
from search_spaces.cost import FusedAttention, count_flops
from search_spaces.ops import op_class
from search_spaces.shapes import OpShape
from search_spaces.space import SearchSpace

SPEC_DIR = Path(__file__).resolve().parent.parent / "device_specs"
_REQUIRED = ("name", "description", "peak_flops", "memory_bandwidth_bytes_per_s", "memory_bytes",
             "launch_overhead_ms", "sources")


def list_specs() -> list[str]:
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


def load_spec(name: str) -> dict:
    path = SPEC_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UnknownNameError(f"unknown device spec {name!r}; allowed: {', '.join(list_specs())}")
    spec = yaml.safe_load(path.read_text())
    missing = [k for k in _REQUIRED if k not in spec]
    if missing:
        raise LutError(f"device spec {path}: key {missing[0]!r} is missing")
    numbers = {f"peak_flops.{k}": v for k, v in spec["peak_flops"].items()}
    numbers.update({k: spec[k] for k in ("memory_bandwidth_bytes_per_s", "memory_bytes", "launch_overhead_ms")})
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise LutError(f"device spec {path}: {key} must be a non-negative number, got {value!r}")
    return spec


@dataclass(frozen=True)
class AnalyticOptions:
    device_spec: str | None = None  # a spec in lookup_tables/device_specs (default: lut.device)


@register_profiler("analytic")
class AnalyticProfiler(Profiler):
    Options = AnalyticOptions

    def __init__(self, config, dtype, op_options=None):
        super().__init__(config, dtype, op_options)
        self.spec = load_spec(config.options.device_spec or config.device)
        if dtype not in self.spec["peak_flops"]:
            raise LutError(f"device spec {self.spec['name']!r} has no peak for {dtype}; "
                           f"it has: {', '.join(self.spec['peak_flops'])}")

    def device_name(self) -> str:
        return self.spec["description"]

    def fingerprint(self) -> dict:
        out = super().fingerprint()
        out["device_spec"] = {k: self.spec[k] for k in ("name", "peak_flops", "memory_bandwidth_bytes_per_s",
                                                        "memory_bytes", "launch_overhead_ms")}
        return out

    def _finish(self, m: Measurement, flops: float, moved_bytes: float, launches: int) -> Measurement:
        spec = self.spec
        seconds = max(flops / float(spec["peak_flops"][self.dtype]),
                      moved_bytes / float(spec["memory_bandwidth_bytes_per_s"]))
        ms = seconds * 1e3 + launches * float(spec["launch_overhead_ms"])
        m.latency_ms = m.latency_p10_ms = m.latency_p90_ms = ms
        m.repeats, m.flops = 1, int(flops)
        m.memory_bytes = m.param_bytes + m.input_bytes + m.activation_peak_bytes
        limits = [(int(spec["memory_bytes"]), f"the device's {int(spec['memory_bytes']) / 2**30:g} GiB")]
        if self.config.memory_limit_bytes is not None:
            limits.append((self.config.memory_limit_bytes, f"memory_limit_mib {self.config.memory_limit_mib:g}"))
        for limit, what in limits:
            if m.memory_bytes > limit:
                m.status = "oom"
                m.reason = f"analytic peak {m.memory_bytes / 2**20:.1f} MiB is over {what}"
        return m

    def measure_op(self, shape: OpShape) -> Measurement:
        cost = op_class(shape.op).cost(shape)
        nb = shape.dtype_bytes
        video = shape.batch * shape.tokens * shape.channels * nb
        m = Measurement(param_bytes=cost.params * nb,
                        input_bytes=video + shape.batch * shape.text_tokens * shape.text_dim * nb,
                        activation_peak_bytes=cost.activation_bytes)
        moved = m.input_bytes + video + m.param_bytes + 2 * cost.activation_bytes
        return self._finish(m, cost.flops, moved, launches=1)

    def measure_backbone(self, space: SearchSpace) -> Measurement:
        return self.measure_network(space, space.empty, slots=True)

    def measure_network(self, space: SearchSpace, arch: Architecture, slots: bool = False) -> Measurement:
        dtype = getattr(torch, self.dtype)
        model = space.build(arch, "meta").to(dtype).eval()
        sample = torch.empty(space.video_shape, device="meta", dtype=dtype)
        text = torch.empty(space.text_shape, device="meta", dtype=dtype)
        timestep = torch.zeros(space.config.batch, device="meta")
        run = lambda: model(sample, timestep, text)  # noqa: E731
        live, hooks, meter = {}, [], TrackerMeter()
        if slots:
            for name, block in slot_modules(model.unet).items():
                if name in space.slot_names:
                    hooks.append(block.register_forward_hook(
                        lambda mod, a, o, name=name: live.__setitem__(name, meter.live_bytes())))
        try:
            # The device runs attention as one fused op: no score matrix in the peak.
            with FusedAttention(), meter:
                run()
        finally:
            for h in hooks:
                h.remove()
        with torch.no_grad():
            flops = count_flops(run)
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        m = Measurement(param_bytes=params, input_bytes=(sample.numel() + text.numel()) * sample.element_size(),
                        activation_peak_bytes=meter.peak_bytes, slot_live_bytes=live)
        launches = sum(1 for mod in model.modules() if not list(mod.children()))
        return self._finish(m, flops, params + 2 * meter.allocated_bytes, launches)
