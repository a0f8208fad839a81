"""The operator base class, its registry and the analytic cost record."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.registry import Registry
from search_spaces.shapes import OpShape

OPS: Registry[type["TemporalOp"]] = Registry("operator", "search_spaces.ops")
register_op = OPS.register


@dataclass(frozen=True)
class OpCost:
    """Analytic cost of one forward at an OpShape.

    ``flops`` counts multiply-accumulates of matmuls, convolutions and attention as 2
    FLOPs each (what ``torch.utils.flop_counter`` counts; norms and activations are not
    counted). ``activation_bytes`` is the peak of live intermediate tensors of one
    inference forward with the math attention kernel, the input excluded.
    """

    flops: int
    params: int
    activation_bytes: int


class TemporalOp(nn.Module):
    """A residual temporal layer. Subclasses build ``self.proj_out`` (zero-initialised, so a
    freshly inserted layer is the identity) and implement ``residual`` and ``cost``."""

    name: str = ""
    needs_context: bool = False  # cross-attention reads the text tokens

    def __init__(self, channels: int, heads: int = 1, text_dim: int = 1,
                 qk_norm: bool = True, rope: bool = True, frame_embedding: bool = False):
        super().__init__()
        self.channels, self.heads, self.text_dim = channels, heads, text_dim
        self.qk_norm, self.rope, self.frame_embedding = qk_norm, rope, frame_embedding

    def with_frame_code(self, tokens: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """AnimateDiff-style absolute frame position: with ``frame_embedding`` on, add a fixed
        sinusoidal code of each token's frame index (``frames``: (N,)) to ``tokens`` (..., N, C),
        the normalised input of the residual branch. No parameters, so weights inherit as
        before; off, ``tokens`` come back untouched."""
        if not self.frame_embedding:
            return tokens
        return tokens + frame_position_code(frames, self.channels).to(tokens.dtype)

    def zero_init_output(self) -> None:
        nn.init.zeros_(self.proj_out.weight)
        if self.proj_out.bias is not None:
            nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.residual(x, context)

    def residual(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def cost(cls, shape: OpShape) -> OpCost:
        raise NotImplementedError

    @classmethod
    def from_shape(cls, shape: OpShape, **options) -> "TemporalOp":
        return cls(shape.channels, heads=shape.heads, text_dim=shape.text_dim, **options)


def frame_position_code(frames: torch.Tensor, channels: int, base: float = 100.0) -> torch.Tensor:
    """Sinusoidal code of the frame indices ``frames`` (N,), shape (N, channels), values in [−1, 1]."""
    half = (channels + 1) // 2
    freq = base ** (-torch.arange(half, dtype=torch.float32, device=frames.device) / max(half, 1))
    angles = frames.float()[:, None] * freq[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)[:, :channels]


def list_ops() -> list[str]:
    return OPS.names()


def op_class(name: str) -> type[TemporalOp]:
    return OPS.get(name)


def create_op(name: str, shape: OpShape, **options) -> TemporalOp:
    """Build operator ``name`` for ``shape`` (options: ``qk_norm``, ``rope``, ``frame_embedding``)."""
    return OPS.get(name).from_shape(shape, **options)


def group_count(channels: int) -> int:
    """Groups for GroupNorm: the largest of 32, 16, … that divides ``channels``."""
    groups = 32
    while channels % groups:
        groups //= 2
    return groups
