"""Device budgets: latency per denoising step and peak memory (METHOD.md §2).

A user may state the latency budget per denoising step, or as a whole-video figure with
the number of steps and the fixed costs, from which the per-step budget follows:
``(total_s·1000 − text_encoder_ms − decoder_ms) / steps``.
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
    """``latency_ms`` per denoising step (or ``video``), ``memory_mib`` peak; None = no budget."""

    latency_ms: float | None = None
    memory_mib: float | None = None
    video: VideoLatency | None = None

    def __post_init__(self):
        if self.latency_ms is not None and self.video is not None:
            raise ValueError("give either latency_ms (per step) or video (whole clip), not both")
        if self.latency_ms is not None and self.latency_ms <= 0:
            raise ValueError("latency_ms must be positive")
        if self.memory_mib is not None and self.memory_mib <= 0:
            raise ValueError("memory_mib must be positive")

    @property
    def latency_ms_per_step(self) -> float | None:
        return self.video.per_step_ms if self.video is not None else self.latency_ms

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory_mib is None else int(self.memory_mib * MIB)

    def violations(self, latency_ms: float, memory_bytes: float) -> list[str]:
        """Which budgets a (latency, memory) pair breaks: [] when it fits."""
        out = []
        if self.latency_ms_per_step is not None and latency_ms > self.latency_ms_per_step:
            out.append("latency")
        if self.memory_bytes is not None and memory_bytes > self.memory_bytes:
            out.append("memory")
        return out
