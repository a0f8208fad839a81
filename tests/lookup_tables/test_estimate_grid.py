"""The estimator and the grid on their own, on hand-made inputs whose answers are known."""
from __future__ import annotations

import pandas as pd
import pytest

from lookup_tables.config import GridConfig
from lookup_tables.estimate import Estimator, work
from lookup_tables.grid import GridError, backbone_key, grid_entries, user_grid
from search_spaces.shapes import OpShape


def _rows(shapes, latency):
    return pd.DataFrame([{"latency_ms": latency(s), "activation_peak_bytes": float(s.channels * s.tokens)}
                         for s in shapes], index=[s.key for s in shapes])


def test_estimator_recovers_a_latency_proportional_to_work():
    shapes = [OpShape("conv1d", c, 8, h, h, 8, 32, 1) for c in (16, 32, 64, 128) for h in (4, 8)]
    per_flop = 3e-7
    est = Estimator(_rows(shapes, lambda s: per_flop * work(s, "flops")))
    unseen = OpShape("conv1d", 48, 8, 6, 6, 8, 32, 1)
    e = est.estimate(unseen, "latency_ms")
    assert e is not None and e.value == pytest.approx(per_flop * work(unseen, "flops"), rel=0.05)
    assert e.error >= 0 and unseen.key not in e.neighbours
    assert est.relative_error("conv1d", "float32", "latency_ms") < 0.05  # leave-one-out on an exact law


def test_estimator_says_nothing_for_an_operator_it_never_saw():
    shapes = [OpShape("conv1d", c, 8, 8, 8, 8, 32, 1) for c in (16, 32)]
    est = Estimator(_rows(shapes, lambda s: 1.0))
    assert est.estimate(OpShape("self_attn1d", 32, 8, 8, 8, 8, 32, 2), "latency_ms") is None


def test_grid_puts_the_backbone_first_and_never_twice(tiny_space):
    grid = GridConfig(ops=("conv1d",), channels=(32, 32), frames=(8,), height=(8,), width=(8,), text_tokens=(8,))
    entries = grid_entries(tiny_space, grid)
    keys = [e.key for e in entries]
    assert keys[0] == backbone_key(tiny_space) and entries[0].shape is None
    assert len(keys) == len(set(keys))
    assert {s.key for s in tiny_space.op_shapes()} <= set(keys)
    assert len(user_grid(tiny_space, grid)) == 2  # the grid's own product, duplicates included


def test_grid_names_an_unknown_operator(tiny_space):
    with pytest.raises(GridError, match="conv9d.*allowed"):
        user_grid(tiny_space, GridConfig(ops=("conv9d",), channels=(32,), frames=(8,), height=(8,), width=(8,),
                                         text_tokens=(8,)))
