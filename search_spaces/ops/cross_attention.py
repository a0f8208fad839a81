"""Temporal cross-attention to the text tokens. Queries are video tokens, keys and values
the L text tokens (projected once per clip and broadcast). ``cross_attn1d`` groups the
queries as H·W sequences of T frames, ``cross_attn3d`` as one sequence of T·H·W tokens;
both cost T·H·W·L·C (METHOD.md §1) but run as very different kernels, which is what the
lookup table measures. With ``rope`` the queries carry their frame index (text tokens have
no frame), so a layer can condition differently on each frame."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from search_spaces.ops._attention import HeadRMSNorm, apply_rope, from_sequences, rope_tables, to_sequences
from search_spaces.ops.base import OpCost, TemporalOp, register_op
from search_spaces.shapes import OpShape


class _CrossAttention(TemporalOp):
    needs_context = True
    spatial_tokens: bool = False

    def __init__(self, channels: int, heads: int = 1, text_dim: int = 1,
                 qk_norm: bool = True, rope: bool = True, frame_embedding: bool = False):
        super().__init__(channels, heads, text_dim, qk_norm, rope, frame_embedding)
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        head_dim = channels // heads
        self.norm = nn.LayerNorm(channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_kv = nn.Linear(text_dim, 2 * channels, bias=False)
        self.q_norm = HeadRMSNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = HeadRMSNorm(head_dim) if qk_norm else nn.Identity()
        self.proj_out = nn.Linear(channels, channels)
        self.zero_init_output()

    def residual(self, x, context=None):
        if context is None:
            raise ValueError(f"{self.name} needs the text tokens (context)")
        b, c = x.shape[0], x.shape[2]
        heads, d = self.heads, c // self.heads
        seq, frame = to_sequences(x, self.spatial_tokens)  # (B, G, N, C)
        groups, n = seq.shape[1], seq.shape[2]
        q = self.to_q(self.with_frame_code(self.norm(seq), frame)).reshape(b, groups, n, heads, d).transpose(2, 3)
        kv = self.to_kv(context).reshape(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
        k, v = kv[0].unsqueeze(1), kv[1].unsqueeze(1)  # (B, 1, heads, L, d), broadcast over groups
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            cos, sin = rope_tables(frame, d)
            q = apply_rope(q, cos, sin)
        shape = (b, groups, heads, k.shape[-2], d)
        y = F.scaled_dot_product_attention(q, k.expand(shape), v.expand(shape))
        y = self.proj_out(y.transpose(2, 3).reshape(b, groups, n, c))
        return from_sequences(y, x.shape, self.spatial_tokens)

    @classmethod
    def cost(cls, shape: OpShape) -> OpCost:
        c, l, dim, nb = shape.channels, shape.text_tokens, shape.text_dim, shape.dtype_bytes
        tokens = shape.batch * shape.tokens
        flops = 2 * tokens * c * c + 2 * shape.batch * l * dim * 2 * c + 4 * tokens * l * c + 2 * tokens * c * c
        head_dim = c // shape.heads
        params = 2 * c + c * c + dim * 2 * c + c * c + c + 2 * head_dim
        # Token-width tensors live at the peak (normed x, q, its rotated copy, the kernel's
        # output; one more when all T·H·W queries form one sequence) plus scores and softmax.
        scores = tokens * shape.heads * l
        widths = 5 if cls.spatial_tokens else 4
        activation = (widths * tokens * c + 2 * scores) * nb
        return OpCost(flops, params, activation)


@register_op("cross_attn1d")
class CrossAttention1d(_CrossAttention):
    spatial_tokens = False


@register_op("cross_attn3d")
class CrossAttention3d(_CrossAttention):
    spatial_tokens = True
