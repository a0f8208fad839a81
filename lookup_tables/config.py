"""The ``lut`` section of an experiment: how the lookup table is built or where it is loaded
(each backend's options are declared beside it, in ``lookup_tables.profilers``).

The dtype of every measurement is the space's (``space.dtype``); the measurement protocol
(warm-up, repeats, threads) is recorded in the table's sidecar.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from core.config import PluginSection, to_dict


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
class LutConfig(PluginSection):
    """``backend`` (a registered profiler: torch, onnxruntime, coreml, analytic) on ``device``
    (cpu, cuda, cuda:N, mps; coreml: a compute unit; analytic: a device spec name), with that
    backend's ``options`` (torch: ``threads``, ``clock``; onnxruntime: ``threads``; analytic:
    ``device_spec``). ``path``: an existing table to load (None: build one). Every backend
    shares the protocol (``warmup``, ``repeats``), the memory limit and the grid."""

    registry: ClassVar[str] = "lookup_tables.profilers.base:PROFILERS"
    plugin_key: ClassVar[str] = "backend"
    section: ClassVar[str] = "lut"

    backend: str = "torch"
    options: Any = None  # parsed by the backend's Options
    device: str = "cpu"
    path: str | None = None
    warmup: int = 10
    repeats: int = 50
    memory_limit_mib: float | None = None  # measured or estimated peak above this: status oom
    # during a campaign, measure an estimated entry whose stated latency error exceeds this
    # (ms) on the campaign's device before deciding on it (None: decide on the estimate)
    measure_unsure_ms: float | None = None
    # also measure one whose error exceeds the change of predicted latency that would change
    # the strategy's decision (snapgen: which action leads; strategies that do not rank on
    # latency state no gap). The table's protocol must match the campaign's device
    measure_unsure_gap: bool = False
    # the table's ΔLatency error per action (ms; `hwnas lut validate` states it): where a change
    # of a child's predicted latency smaller than this would change the strategy's decision, the
    # child is timed against its parent on the campaign's device and the decision uses that
    measure_actions_ms: float | None = None
    measure_actions_rounds: int = 300  # child, parent, backbone rounds per timed action (as lut_paired.py)
    grid: GridConfig | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.warmup < 0:
            raise ValueError("warmup must be non-negative")
        if self.repeats < 3:
            raise ValueError("repeats must be at least 3 (median, p10, p90)")
        if self.memory_limit_mib is not None and self.memory_limit_mib <= 0:
            raise ValueError("memory_limit_mib must be positive")
        if self.measure_actions_rounds < 2:
            raise ValueError("measure_actions_rounds must be at least 2")
        for name in ("measure_unsure_ms", "measure_actions_ms"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative")

    @property
    def memory_limit_bytes(self) -> int | None:
        return None if self.memory_limit_mib is None else int(self.memory_limit_mib * 1024 * 1024)

    def protocol(self) -> dict:
        return {"warmup": self.warmup, "repeats": self.repeats, **to_dict(self.options),
                "memory_limit_mib": self.memory_limit_mib, "statistic": "median (p10, p90)"}
