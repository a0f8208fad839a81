"""MobileVD learned pruning (METHOD.md §6): the projection, the supernet's gradients and
optimiser, determinism and resuming a segment; the strategy's budget checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.budgets import Budgets
from core.errors import ConfigError
from evaluators.config import TrainConfig
from evaluators.supernet import (
    Supernet,
    kept_architecture,
    project,
    project_torch,
    supernet_blocks,
    systematic_sample,
    train_segment,
)
from nas.strategies import SearchState, create_strategy
from search_spaces.backbones import build_unet


def _reference(v: np.ndarray, n: float) -> np.ndarray:
    """Generic solver: scipy's SLSQP on the same problem."""
    from scipy.optimize import minimize

    m = len(v)
    res = minimize(lambda p: ((p - v) ** 2).sum(), np.full(m, n / m), jac=lambda p: 2 * (p - v),
                   bounds=[(0, 1)] * m, constraints=[{"type": "eq", "fun": lambda p: p.sum() - n}],
                   method="SLSQP", options={"ftol": 1e-12, "maxiter": 500})
    return res.x


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.001, 0.999), min_size=2, max_size=9), st.data(), st.floats(0.2, 4.0))
def test_projection_matches_a_generic_constrained_solver(q, data, c):
    q = np.array(q)
    n = data.draw(st.integers(1, len(q)))
    p = project(q, n, c)
    assert abs(p.sum() - n) < 1e-7 and (p >= -1e-9).all() and (p <= 1 + 1e-9).all()
    ref = _reference(c * q, n)
    obj = lambda x: ((x - c * q) ** 2).sum()
    assert obj(p) <= obj(ref) + 1e-6  # optimal: no worse than the generic solver
    assert np.abs(p - ref).max() < 1e-3  # and the same point (the problem is strictly convex)


def test_default_scale_keeps_proportions_when_nothing_clamps():
    q = np.array([0.1, 0.2, 0.3, 0.4])
    assert np.allclose(project(q, 2), q * 2 / q.sum())


def test_systematic_sampling_has_the_inclusion_probabilities():
    p = project(np.array([0.9, 0.5, 0.3, 0.2, 0.1]), 2)
    rng = np.random.default_rng(0)
    counts = np.zeros(5)
    for _ in range(4000):
        picks = systematic_sample(p, rng)
        assert len(picks) == 2
        counts[picks] += 1
    assert np.abs(counts / 4000 - p).max() < 0.03


class FakeData:
    def __init__(self, space):
        self.shape, self.text = space.video_shape[1:], space.text_shape[1:]

    def batches(self, split, batch, gen):
        from types import SimpleNamespace

        while True:
            yield SimpleNamespace(latents=torch.randn((batch, *self.shape), generator=gen),
                                  text=torch.randn((batch, *self.text), generator=gen))


@pytest.fixture(scope="module")
def net_parts(tiny_space):
    torch.manual_seed(0)
    return tiny_space, build_unet(tiny_space.config.backbone, "cpu").eval(), FakeData(tiny_space)


def _net(parts, seed=0):
    space, unet, _ = parts
    torch.manual_seed(seed)
    return Supernet(space, unet)


OPTS = {"n": 2, "temperature": 0.1, "gate_lr": 1e-2, "weight_lr": 1e-3}
CFG = TrainConfig(batch=1)


def test_gradients_reach_the_importances(net_parts):
    net = _net(net_parts)
    for layer in net.temporal.values():  # zero-initialised outputs would give a zero residual
        for p in layer.parameters():
            torch.nn.init.normal_(p, std=0.05)
    q = net.importances(0.1)
    p = project_torch(q, 2)
    net.active = {0: 1.0 + p[0] - p[0].detach(), 3: 1.0 + p[3] - p[3].detach()}
    space = net_parts[0]
    x = torch.randn(1, *space.video_shape[1:])
    text = torch.randn(1, *space.text_shape[1:])
    net(x, torch.tensor([0.5]), text).square().mean().backward()
    assert net.logits.grad is not None and net.logits.grad.abs().sum() > 0
    assert net.logits.grad[0] != 0 and net.logits.grad[3] != 0


def test_segment_is_deterministic_and_unsampled_blocks_keep_their_moments(net_parts):
    states = [train_segment(_net(net_parts), net_parts[2], 1, CFG, 5, None, {**OPTS, "n": 1}) for _ in range(2)]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    # one step with n = 1: AdamW holds moments for exactly one block's parameters (and the logits)
    with_state = {int(k.split(".")[2]) for k in states[0] if k.startswith("_opt.0.")}
    net = _net(net_parts)
    owner = [b for b in net.blocks for _ in net.layer(b).parameters()]  # parameter index -> its block
    assert len(owner) == len(list(net.temporal.parameters()))
    assert with_state and len({owner[i] for i in with_state}) == 1


def test_resume_mid_training_continues_logits_moments_and_step(net_parts):
    data = net_parts[2]
    first = train_segment(_net(net_parts), data, 1, CFG, 3, None, OPTS)
    resumed = train_segment(_net(net_parts, seed=9), data, 1, CFG, 3, first, OPTS)
    again = train_segment(_net(net_parts, seed=9), data, 1, CFG, 3, first, OPTS)
    assert int(resumed["_step"]) == 2
    assert all(torch.equal(resumed[k], again[k]) for k in resumed)  # a resume is reproducible
    fresh = train_segment(_net(net_parts, seed=9), data, 1, CFG, 3, {k: v for k, v in first.items()
                                                                    if not k.startswith("_")}, OPTS)
    # the optimiser's moments and step really carried over (AdamW's logits group: 2 steps, not 1),
    # so the weights after the resumed step differ from a restart with the same weights alone
    assert int(resumed["_opt.1.0.step"]) == 2 and int(fresh["_opt.1.0.step"]) == 1
    assert any(not torch.equal(resumed[k], fresh[k]) for k in resumed if not k.startswith("_"))


def test_kept_set_one_operator_per_slot_and_within_budget(tiny_space):
    blocks = supernet_blocks(tiny_space)
    imp = [1.0 - 0.01 * i for i in range(len(blocks))]
    arch = kept_architecture(blocks, imp, n=3)
    assert arch.total_layers == 3 and len(arch.items()) <= len(tiny_space.slots)
    tiny_space.validate(arch)
    assert kept_architecture(blocks, imp, n=3, fits=lambda a: a.total_layers <= 1).total_layers == 1


def test_memory_budget_broken_by_the_supernet_is_named(world, tiny_space):
    from tests.nas.conftest import BACKBONE_BYTES, analytic_cost

    state = SearchState(tiny_space, lambda a: analytic_cost(tiny_space, a),
                        Budgets(latency_ms=1e9, memory_mib=(BACKBONE_BYTES + 1) / 2**20))
    s = create_strategy("mobilevd", {"n": 4}, 0, 10)
    with pytest.raises(ConfigError, match=r"search.options.n: mobilevd's supernet \(\d+ blocks: .*predicted to hold "
                                          r"up to [\d.]+ MiB during training, over the memory budget"):
        s.propose(state)


def test_auto_n_never_breaks_the_budgets(world):
    s = create_strategy("mobilevd", {}, 0, 100)
    world.drive(s)
    assert s.n >= 1
    for c in world.proposed:
        assert world.state().fits(c.arch)
    assert [c.role for c in world.proposed] == ["supernet"] * 3 + ["finetune"]
