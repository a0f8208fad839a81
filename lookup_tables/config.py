"""The ``lut`` section of an experiment: how the lookup table is built or where it is loaded.

The dtype of every measurement is the space's (``space.dtype``); the measurement protocol
(warm-up, repeats, threads) is recorded in the table's sidecar.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

COREML_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")  # Core ML compute units


def _positive_ints(values, name: str) -> None:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"grid.{name}: {v!r} is not a positive integer")


@dataclass(frozen=True)
class GridConfig:
    """An extra grid of shapes to measure (for reuse by other spaces): the product of the
    lists, for each of ``ops`` (default: the space's operators). Heads follow ``head_dim``;
    ``text_dim``, ``head_dim``, ``batch`` and ``dtype`` default to the space's (without a
    space: 64 / 64 / 1 / float32)."""

    ops: tuple[str, ...] | None = None
    channels: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()
    height: tuple[int, ...] = ()
    width: tuple[int, ...] = ()
    text_tokens: tuple[int, ...] = ()
    text_dim: int | None = None
    head_dim: int | None = None
    batch: int | None = None
    dtype: Literal["float32", "float16", "bfloat16"] | None = None

    def __post_init__(self):
        _positive_ints([v for v in (self.text_dim, self.head_dim, self.batch) if v is not None], "dims")
        lists = {n: getattr(self, n) for n in ("channels", "frames", "height", "width", "text_tokens")}
        for name, values in lists.items():
            _positive_ints(values, name)
        given = [n for n, v in lists.items() if v]
        if given and len(given) != len(lists):
            missing = [n for n, v in lists.items() if not v]
            raise ValueError(f"grid: give every list or none; missing: {', '.join(missing)}")

    @property
    def empty(self) -> bool:
        return not self.channels


@dataclass(frozen=True)
class LutConfig:
    """``backend`` (torch, coreml, analytic) on ``device`` (cpu, cuda, cuda:N, mps; for
    analytic a device spec name). ``path``: an existing table to load (None: build one)."""

    backend: str = "torch"
    device: str = "cpu"
    path: str | None = None
    warmup: int = 10
    repeats: int = 50
    threads: int = 1  # CPU threads while measuring: 1 gives 3-5 % noise, 2 gives 13-26 %
    # wall: elapsed time. thread: CPU time of the measuring thread (cpu, one thread only), what
    # the work takes when nothing else preempts it: on a shared machine the stable choice.
    clock: Literal["wall", "thread"] = "wall"
    memory_limit_mib: float | None = None  # measured or estimated peak above this: status oom
    # during a campaign, measure an estimated entry whose stated latency error exceeds this
    # (ms) on the campaign's device before deciding on it (None: decide on the estimate)
    measure_unsure_ms: float | None = None
    device_spec: str | None = None  # analytic: a spec in lookup_tables/device_specs (default: device)
    grid: GridConfig | None = None

    def __post_init__(self):
        from lookup_tables.profilers.base import PROFILERS

        if self.backend not in PROFILERS:
            raise ValueError(f"backend {self.backend!r}; allowed: {', '.join(PROFILERS.names())}")
        if self.backend == "torch" and not _torch_device_ok(self.device):
            raise ValueError(f"device {self.device!r}; allowed for torch: cpu, cuda, cuda:N, mps")
        if self.backend == "coreml" and self.device.upper() not in COREML_UNITS:
            raise ValueError(f"device {self.device!r}; allowed for coreml: {', '.join(COREML_UNITS)}")
        if self.warmup < 0:
            raise ValueError("warmup must be non-negative")
        if self.repeats < 3:
            raise ValueError("repeats must be at least 3 (median, p10, p90)")
        if self.threads < 1:
            raise ValueError("threads must be at least 1")
        if self.clock == "thread" and (self.backend != "torch" or self.device != "cpu" or self.threads != 1):
            raise ValueError("clock 'thread' needs backend torch on device cpu with threads 1 "
                             "(other threads' and devices' time is not the measuring thread's)")
        if self.memory_limit_mib is not None and self.memory_limit_mib <= 0:
            raise ValueError("memory_limit_mib must be positive")
        if self.measure_unsure_ms is not None and self.measure_unsure_ms < 0:
            raise ValueError("measure_unsure_ms must be non-negative")

    @property
    def memory_limit_bytes(self) -> int | None:
        return None if self.memory_limit_mib is None else int(self.memory_limit_mib * 1024 * 1024)

    def protocol(self) -> dict:
        return {"warmup": self.warmup, "repeats": self.repeats, "threads": self.threads, "clock": self.clock,
                "memory_limit_mib": self.memory_limit_mib, "statistic": "median (p10, p90)"}


def _torch_device_ok(device: str) -> bool:
    if device in ("cpu", "cuda", "mps"):
        return True
    return device.startswith("cuda:") and device[5:].isdigit()
