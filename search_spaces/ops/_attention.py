"""Shared attention pieces: video ↔ token sequences, QK-norm and temporal RoPE (SnapGen-V
adds both for stability)."""
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
    """Rotate channel pairs (x[i], x[i + d/2]) of the last dim by each token's position angle.

    ``x``: (..., N, d); ``cos``/``sin``: (N, d // 2). An odd last channel is left as is.
    Rank-preserving (no unflatten), so Core ML's rank-5 limit holds for 5-D queries.
    """
    d = x.shape[-1]
    half = d // 2
    x1, x2 = x[..., :half], x[..., half:2 * half]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    parts = [x1 * cos - x2 * sin, x1 * sin + x2 * cos]
    if 2 * half < d:
        parts.append(x[..., 2 * half:])
    return torch.cat(parts, dim=-1)


def to_sequences(x: torch.Tensor, spatial_tokens: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, C, H, W) -> token sequences (B, G, N, C) and each token's frame index (N,):
    one sequence of T·H·W tokens per clip (G = 1, ``spatial_tokens``), or H·W sequences of T
    frames (1-D temporal attention). Every tensor stays at rank ≤ 5 for Core ML."""
    b, t, c, h, w = x.shape
    if spatial_tokens:
        seq = x.permute(0, 1, 3, 4, 2).reshape(b, 1, t * h * w, c)
        frame = torch.arange(t, device=x.device).repeat_interleave(h * w)
    else:
        seq = x.permute(0, 3, 4, 1, 2).reshape(b, h * w, t, c)
        frame = torch.arange(t, device=x.device)
    return seq, frame


def from_sequences(y: torch.Tensor, shape: torch.Size, spatial_tokens: bool) -> torch.Tensor:
    """The inverse of :func:`to_sequences`: (B, G, N, C) -> (B, T, C, H, W)."""
    b, t, c, h, w = shape
    if spatial_tokens:
        return y.reshape(b, t, h, w, c).permute(0, 1, 4, 2, 3)
    return y.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)
