"""Shared attention pieces: QK-norm and temporal RoPE (SnapGen-V adds both for stability)."""
from __future__ import annotations

import torch
from torch import nn


class HeadRMSNorm(nn.Module):
    """RMS normalisation over the head dimension with a learned scale (QK-norm).

    Written out rather than ``F.rms_norm`` so that every Core ML target converts it.
    """

    def __init__(self, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(head_dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (x.float() * scale).to(x.dtype) * self.weight


def rope_tables(positions: torch.Tensor, head_dim: int, base: float = 10000.0):
    """cos/sin tables of shape (len(positions), head_dim // 2) for rotary embeddings."""
    half = head_dim // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float32, device=positions.device) / max(half, 1))
    angles = positions.float()[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of the last dim by the angle of each token's position.

    ``x``: (..., N, d); ``cos``/``sin``: (N, d // 2). An odd last channel is left as is.
    """
    d = x.shape[-1]
    rot = 2 * (d // 2)
    x_rot = x[..., :rot].unflatten(-1, (rot // 2, 2))
    x1, x2 = x_rot[..., 0], x_rot[..., 1]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return torch.cat((out, x[..., rot:]), dim=-1) if rot < d else out
