"""Temporal self-attention. ``self_attn1d`` attends over the T frames at each pixel (H·W
sequences of T tokens); ``self_attn3d`` over all T·H·W tokens of a clip — quadratic in them
(METHOD.md §1). QK-norm and RoPE over the frame index are optional."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.ops._attention import HeadRMSNorm, apply_rope, rope_tables
from search_spaces.ops.base import OpCost, TemporalOp, register_op
from search_spaces.shapes import OpShape


class _SelfAttention(TemporalOp):
    spatial_tokens: bool = False  # True: one sequence of T·H·W tokens per clip

    def __init__(self, channels: int, heads: int = 1, text_dim: int = 1,
                 qk_norm: bool = True, rope: bool = True, frame_embedding: bool = False):
        super().__init__(channels, heads, text_dim, qk_norm, rope, frame_embedding)
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        head_dim = channels // heads
        self.norm = nn.LayerNorm(channels)
        self.to_qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.q_norm = HeadRMSNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = HeadRMSNorm(head_dim) if qk_norm else nn.Identity()
        self.proj_out = nn.Linear(channels, channels)
        self.zero_init_output()

    def _sequences(self, x):
        """(B, T, C, H, W) -> (S, N, C) token sequences and the frame index of each token."""
        b, t, c, h, w = x.shape
        if self.spatial_tokens:
            seq = x.permute(0, 1, 3, 4, 2).reshape(b, t * h * w, c)
            frame = torch.arange(t, device=x.device).repeat_interleave(h * w)
        else:
            seq = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
            frame = torch.arange(t, device=x.device)
        return seq, frame

    def _unsequence(self, y, shape):
        b, t, c, h, w = shape
        if self.spatial_tokens:
            return y.reshape(b, t, h, w, c).permute(0, 1, 4, 2, 3)
        return y.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)

    def residual(self, x, context=None):
        seq, frame = self._sequences(x)
        s, n, c = seq.shape
        qkv = self.to_qkv(self.with_frame_code(self.norm(seq), frame)).reshape(s, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (S, heads, N, d)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            cos, sin = rope_tables(frame, c // self.heads)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj_out(y.transpose(1, 2).reshape(s, n, c))
        return self._unsequence(y, x.shape)

    @classmethod
    def cost(cls, shape: OpShape) -> OpCost:
        c, nb = shape.channels, shape.dtype_bytes
        n = shape.tokens if cls.spatial_tokens else shape.frames
        s = shape.batch * (1 if cls.spatial_tokens else shape.height * shape.width)
        tokens = s * n
        flops = 2 * tokens * c * 3 * c + 4 * s * n * n * c + 2 * tokens * c * c
        head_dim = c // shape.heads
        params = 2 * c + 3 * c * c + c * c + c + 2 * head_dim
        # About eight token-width tensors at the peak (qkv, normed/rotated q and k, their
        # copies for the kernel) plus the score matrix and its softmax under the math kernel.
        scores = s * shape.heads * n * n
        activation = (8 * tokens * c + 2 * scores) * nb
        return OpCost(flops, params, activation)


@register_op("self_attn1d")
class SelfAttention1d(_SelfAttention):
    spatial_tokens = False


@register_op("self_attn3d")
class SelfAttention3d(_SelfAttention):
    spatial_tokens = True
