"""Temporal self-attention. ``self_attn1d`` attends over the T frames at each pixel (H·W
sequences of T tokens); ``self_attn3d`` over all T·H·W tokens of a clip — quadratic in them
(METHOD.md §1). QK-norm and RoPE over the frame index are optional."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from search_spaces.ops._attention import HeadRMSNorm, apply_rope, from_sequences, rope_tables, to_sequences
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

    def residual(self, x, context=None):
        seq, frame = to_sequences(x, self.spatial_tokens)  # (B, G, N, C): the B·G sequences attend alike
        b, g, n, c = seq.shape
        seq = seq.reshape(b * g, n, c)
        s = b * g
        qkv = self.to_qkv(self.with_frame_code(self.norm(seq), frame)).reshape(s, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (S, heads, N, d)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            cos, sin = rope_tables(frame, c // self.heads)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj_out(y.transpose(1, 2).reshape(b, g, n, c))
        return from_sequences(y, x.shape, self.spatial_tokens)

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
