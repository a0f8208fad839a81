"""The profiler base class, its registry and the record one measurement produces.

A backend measures three kinds of subject with one protocol: one temporal operator at an
OpShape, the backbone without temporal layers (whole, at the space's input, with the bytes
it holds at each slot), and a whole network (for validation). Failures are data: an OOM
gives status ``oom``, anything else that breaks one subject gives ``error`` with the reason.
"""
from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata

from core.config import NoOptions, to_dict
from core.registry import Registry
from lookup_tables.config import LutConfig
from search_spaces.architecture import Architecture
from search_spaces.shapes import OpShape
from search_spaces.space import SearchSpace

PROFILERS: Registry[type["Profiler"]] = Registry("profiler backend", "lookup_tables.profilers")
register_profiler = PROFILERS.register

STATUSES = ("ok", "oom", "error")


@dataclass
class Measurement:
    """Latency statistics in milliseconds, memory in bytes.

    ``memory_bytes`` = parameter bytes + input bytes + ``activation_peak_bytes`` (the peak
    beyond parameters and inputs). ``slot_live_bytes`` (backbone only): bytes the backbone
    holds beyond its inputs when each slot's block has produced its output.
    """

    status: str = "ok"
    latency_ms: float = float("nan")
    latency_p10_ms: float = float("nan")
    latency_p90_ms: float = float("nan")
    repeats: int = 0
    flops: int = 0
    param_bytes: int = 0
    input_bytes: int = 0
    activation_peak_bytes: int = 0
    memory_bytes: int = 0
    slot_live_bytes: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def software_versions() -> dict:
    import numpy
    import torch

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__}
    for name in ("diffusers", "coremltools"):
        try:  # metadata, not an import: importing coremltools prints warnings on Linux
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Profiler:
    """Measures subjects on one device with one protocol. Subclasses set ``name`` through
    ``@register_profiler`` and implement the three ``measure_*`` methods and ``device_name``;
    backend-only settings are the subclass's ``Options`` (parsed from ``lut.options``), and
    ``check_config(lut)`` may refuse a ``lut.device`` the backend cannot use."""

    name: str = ""
    Options: type = NoOptions

    def __init__(self, config: LutConfig, dtype: str, op_options: dict | None = None):
        self.config = config
        self.dtype = dtype
        self.op_options = dict(op_options or {})

    def device_name(self) -> str:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """What identifies the device and the measurement: tables merge only when equal on
        ``identity()``."""
        # threads and clock are part of every table's identity; a backend without these options
        # measures (or models) one thread's elapsed time
        options = to_dict(self.config.options)
        return {"backend": self.name, "device": self.config.device, "device_name": self.device_name(),
                "cpu": cpu_model(), "platform": platform.platform(), "dtype": self.dtype,
                "threads": options.get("threads", 1), "clock": options.get("clock", "wall"),
                "versions": software_versions()}

    def measure_op(self, shape: OpShape) -> Measurement:
        raise NotImplementedError

    def measure_backbone(self, space: SearchSpace) -> Measurement:
        raise NotImplementedError

    def measure_network(self, space: SearchSpace, arch: Architecture) -> Measurement:
        raise NotImplementedError


def identity(fingerprint: dict) -> dict:
    """The part of a fingerprint two tables must share to merge or to price one model."""
    return {k: fingerprint.get(k) for k in ("backend", "device", "device_name", "dtype", "threads", "clock")}


def create_profiler(config: LutConfig, dtype: str, op_options: dict | None = None) -> Profiler:
    return PROFILERS.get(config.backend)(config, dtype, op_options)
