"""Temporal convolutions: ``conv1d`` mixes time at each pixel (k_t×1×1), ``conv3d`` time and
space (k_t×k×k). Cost grows with T·H·W·C²·kernel volume (METHOD.md §1)."""
from __future__ import annotations

import torch
from torch import nn

from search_spaces.ops.base import OpCost, TemporalOp, frame_position_code, group_count, register_op
from search_spaces.shapes import OpShape


class _TemporalConv(TemporalOp):
    kernel: tuple[int, int, int] = (3, 1, 1)

    def __init__(self, channels: int, heads: int = 1, text_dim: int = 1,
                 qk_norm: bool = True, rope: bool = True, frame_embedding: bool = False):
        super().__init__(channels, heads, text_dim, qk_norm, rope, frame_embedding)
        self.norm = nn.GroupNorm(group_count(channels), channels)
        self.act = nn.SiLU()
        # The convolution is the output projection: zero weights make the layer the identity.
        self.proj_out = nn.Conv3d(channels, channels, self.kernel, padding=tuple(k // 2 for k in self.kernel))
        self.zero_init_output()

    def residual(self, x, context=None):
        b, t, c, h, w = x.shape
        y = x.permute(0, 2, 1, 3, 4)  # (B, C, T, H, W)
        # Normalise as (B, C, T·H·W): GroupNorm on 5-D input decomposes to a rank-6
        # reshape, which Core ML cannot hold.
        y = self.norm(y.reshape(b, c, t * h * w)).reshape(b, c, t, h, w)
        if self.frame_embedding:
            y = y + frame_position_code(torch.arange(t, device=x.device), c).T[None, :, :, None, None].to(y.dtype)
        y = self.act(y)
        return self.proj_out(y).permute(0, 2, 1, 3, 4)

    @classmethod
    def cost(cls, shape: OpShape) -> OpCost:
        volume = cls.kernel[0] * cls.kernel[1] * cls.kernel[2]
        c = shape.channels
        elements = shape.batch * shape.tokens * c
        flops = 2 * elements * c * volume
        params = c * c * volume + c + 2 * c
        # At most two full-size tensors are live at once (norm->act, act->conv, conv->sum);
        # the permutes are views.
        activation = 2 * elements * shape.dtype_bytes
        return OpCost(flops, params, activation)


@register_op("conv1d")
class Conv1d(_TemporalConv):
    kernel = (3, 1, 1)


@register_op("conv3d")
class Conv3d(_TemporalConv):
    kernel = (3, 3, 3)
