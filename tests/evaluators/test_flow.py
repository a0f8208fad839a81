"""Rectified-flow math (SnapGen-V eq. 1-3) and the Euler sampler."""
import math

import torch

from evaluators.flow import TIMESTEP_SCALE, euler_sample, flow_loss, interpolate, logit_normal_t, velocity_target


def test_interpolation_endpoints_and_target():
    x0, eps = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    assert torch.equal(interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(interpolate(x0, eps, torch.ones(3)), eps)
    t = torch.tensor([0.25, 0.5, 0.9])
    assert torch.allclose(interpolate(x0, eps, t), (1 - t)[:, None, None] * x0 + t[:, None, None] * eps)
    assert torch.equal(velocity_target(x0, eps), eps - x0)


def test_loss_is_zero_for_the_true_velocity_and_mse_otherwise():
    x0, eps, text = torch.randn(4, 3, 2), torch.randn(4, 3, 2), torch.zeros(4, 1, 1)
    t = torch.rand(4)
    oracle = lambda x, ts, c: eps - x0  # noqa: E731
    assert flow_loss(oracle, x0, text, t, eps).item() == 0.0
    zero = lambda x, ts, c: torch.zeros_like(x)  # noqa: E731
    assert math.isclose(flow_loss(zero, x0, text, t, eps).item(), ((eps - x0) ** 2).mean().item(), rel_tol=1e-6)
    seen = {}
    flow_loss(lambda x, ts, c: x + 0 * seen.setdefault("t", ts).sum(), x0, text, t, eps)
    assert torch.allclose(seen["t"], t * TIMESTEP_SCALE)


def test_logit_normal_t_location_scale_and_determinism():
    a = logit_normal_t(20000, -1.0, 1.0, torch.Generator().manual_seed(0))
    b = logit_normal_t(20000, -1.0, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and bool(((a > 0) & (a < 1)).all())
    logits = torch.log(a / (1 - a))
    assert abs(logits.mean().item() + 1.0) < 0.03 and abs(logits.std().item() - 1.0) < 0.03
    assert abs(a.median().item() - 1 / (1 + math.e)) < 0.01  # median sigmoid(m)


def test_euler_sampler_follows_a_straight_path_from_noise_to_data():
    x0, eps, text = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.zeros(2, 1, 1)
    oracle = lambda x, ts, c: eps - x0  # noqa: E731 - the rectified path has constant velocity
    assert torch.allclose(euler_sample(oracle, eps, text, steps=1), x0, atol=1e-6)
    assert torch.allclose(euler_sample(oracle, eps, text, steps=7), x0, atol=1e-5)


def test_classifier_free_guidance_extrapolates_from_the_unconditional_velocity():
    eps, text = torch.zeros(1, 2), torch.ones(1, 1)
    model = lambda x, ts, c: c.expand(1, 2).clone()  # noqa: E731 - velocity 1 with text, 0 without
    assert torch.allclose(euler_sample(model, eps, text, steps=4), torch.full((1, 2), -1.0))
    assert torch.allclose(euler_sample(model, eps, text, steps=4, guidance_scale=3.0), torch.full((1, 2), -3.0))
