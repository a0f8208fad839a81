"""Rectified flow (SnapGen-V eq. 1–3, METHOD.md §4) and its Euler sampler.

``x_t = (1 − t)·x0 + t·ε``, target velocity ``u = ε − x0``, loss ``‖v_θ(t, x_t) − u‖²``
(mean over elements), t ~ logit-normal(m, s). The backbone receives ``1000·t`` as its
timestep (diffusers' sinusoidal embedding expects the DDPM range). Sampling integrates
``dx/dt = v`` with Euler steps from t = 1 (noise) to t = 0 (data).
"""
from __future__ import annotations

import torch

TIMESTEP_SCALE = 1000.0


def logit_normal_t(n: int, m: float, s: float, generator: torch.Generator | None = None,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """t = sigmoid(m + s·z), z ~ N(0, 1): samples in (0, 1), median sigmoid(m)."""
    z = torch.randn(n, generator=generator)
    return torch.sigmoid(m + s * z).to(device)


def video_noise(shape, generator: torch.Generator | None = None, correlation: float = 0.0) -> torch.Tensor:
    """Gaussian noise for videos of ``shape`` (..., T, C, H, W), unit variance per element.
    ``correlation`` ρ > 0 mixes in a part shared by every frame of a clip (PYoCo's "mixed"
    noise prior, Ge et al. 2023): ε_k = √ρ·ε_shared + √(1−ρ)·ε_k, so a per-frame image model
    already puts the object in the same place in every frame and the temporal layers only
    have to move it. ρ = 0 draws exactly what ``torch.randn(shape)`` draws."""
    noise = torch.randn(shape, generator=generator)
    if correlation > 0:
        shared = torch.randn((*shape[:-4], 1, *shape[-3:]), generator=generator)
        noise = correlation ** 0.5 * shared + (1 - correlation) ** 0.5 * noise
    return noise


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 − t)·x0 + t·ε, with t of shape (B,) broadcast over the other dims."""
    t = t.reshape(-1, *([1] * (x0.ndim - 1)))
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def predict(model, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return model(x_t, t * TIMESTEP_SCALE, text)


def flow_loss(model, x0: torch.Tensor, text: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
              reduce: bool = True) -> torch.Tensor:
    """‖v_θ(t, x_t) − (ε − x0)‖², the mean over all elements (or per sample with ``reduce=False``)."""
    err = (predict(model, interpolate(x0, noise, t), t, text) - velocity_target(x0, noise)) ** 2
    return err.mean() if reduce else err.flatten(1).mean(1)


@torch.no_grad()
def euler_sample(model, noise: torch.Tensor, text: torch.Tensor, steps: int,
                 guidance_scale: float = 1.0, null_text: torch.Tensor | None = None) -> torch.Tensor:
    """x_1 = ε → x_0 by ``steps`` Euler steps of x ← x − Δt·v. With ``guidance_scale`` > 1,
    classifier-free guidance v = v_∅ + w·(v_c − v_∅) against ``null_text`` (zeros by default)."""
    x = noise
    ts = torch.linspace(1.0, 0.0, steps + 1, device=noise.device)
    for i in range(steps):
        t = ts[i].expand(x.shape[0])
        v = predict(model, x, t, text)
        if guidance_scale != 1.0:
            empty = torch.zeros_like(text) if null_text is None else null_text.expand_as(text)
            v_uncond = predict(model, x, t, empty)
            v = v_uncond + guidance_scale * (v - v_uncond)
        x = x - (ts[i] - ts[i + 1]) * v
    return x
