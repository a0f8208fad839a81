"""Device budgets: latency per denoising step and peak memory (METHOD.md §2).

A user may state the latency budget per denoising step, as a whole-video figure with
the number of steps and the fixed costs, from which the per-step budget follows
(``(total_s·1000 − text_encoder_ms − decoder_ms) / steps``), or relative to the backbone
alone as the campaign's lookup table measures it on the device
(``latency_over_backbone_pct: 5``: a step may cost at most 5 % more than the image UNet
without temporal layers). Relative budgets travel between machines: an absolute figure
measured on one processor model binds differently on the next. A campaign resolves them
against its own table (:meth:`Budgets.resolve`), once, and prices everything from that
table, so the backbone's drift between table builds cannot flip feasibility.
"""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class VideoLatency:
    total_s: float
    steps: int
    text_encoder_ms: float = 0.0
    decoder_ms: float = 0.0

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError("video.steps must be at least 1")
        if self.per_step_ms <= 0:
            raise ValueError(
                f"video: total_s {self.total_s} leaves no time for denoising after the text encoder "
                f"({self.text_encoder_ms} ms) and the decoder ({self.decoder_ms} ms)")

    @property
    def per_step_ms(self) -> float:
        return (self.total_s * 1000.0 - self.text_encoder_ms - self.decoder_ms) / self.steps


@dataclass(frozen=True)
class Budgets:
    """``latency_ms`` per denoising step (or ``video``, or ``latency_over_backbone_pct``),
    ``memory_mib`` peak (or ``memory_over_backbone_pct``); None = no budget."""

    latency_ms: float | None = None
    memory_mib: float | None = None
    video: VideoLatency | None = None
    latency_over_backbone_pct: float | None = None
    memory_over_backbone_pct: float | None = None

    def __post_init__(self):
        latency_forms = [k for k in ("latency_ms", "video", "latency_over_backbone_pct") if getattr(self, k) is not None]
        if len(latency_forms) > 1:
            raise ValueError(f"give one latency budget, not {' and '.join(latency_forms)}")
        if self.memory_mib is not None and self.memory_over_backbone_pct is not None:
            raise ValueError("give one memory budget, not memory_mib and memory_over_backbone_pct")
        if self.latency_ms is not None and self.latency_ms <= 0:
            raise ValueError("latency_ms must be positive")
        if self.memory_mib is not None and self.memory_mib <= 0:
            raise ValueError("memory_mib must be positive")
        for k in ("latency_over_backbone_pct", "memory_over_backbone_pct"):
            if getattr(self, k) is not None and getattr(self, k) < 0:
                raise ValueError(f"{k} must be non-negative (a percentage above the backbone alone)")

    @property
    def relative(self) -> bool:
        """Stated relative to the backbone: needs :meth:`resolve` before it can judge a cost."""
        return self.latency_over_backbone_pct is not None or self.memory_over_backbone_pct is not None

    def resolve(self, backbone_latency_ms: float | None, backbone_memory_bytes: float | None) -> "Budgets":
        """Absolute budgets from the backbone's own measured cost (what relative ones mean)."""
        latency, memory = self.latency_ms, self.memory_mib
        if self.latency_over_backbone_pct is not None:
            latency = backbone_latency_ms * (1 + self.latency_over_backbone_pct / 100)
        if self.memory_over_backbone_pct is not None:
            memory = backbone_memory_bytes * (1 + self.memory_over_backbone_pct / 100) / MIB
        return Budgets(latency_ms=latency, memory_mib=memory, video=self.video)

    def _absolute(self) -> None:
        if self.relative:
            raise ValueError("budgets relative to the backbone must be resolved against a lookup table first")

    @property
    def latency_ms_per_step(self) -> float | None:
        self._absolute()
        return self.video.per_step_ms if self.video is not None else self.latency_ms

    @property
    def memory_bytes(self) -> int | None:
        self._absolute()
        return None if self.memory_mib is None else int(self.memory_mib * MIB)

    def violations(self, latency_ms: float, memory_bytes: float) -> list[str]:
        """Which budgets a (latency, memory) pair breaks: [] when it fits."""
        out = []
        if self.latency_ms_per_step is not None and latency_ms > self.latency_ms_per_step:
            out.append("latency")
        if self.memory_bytes is not None and memory_bytes > self.memory_bytes:
            out.append("memory")
        return out
