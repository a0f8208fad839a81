"""A cheap, deterministic stand-in objective for the strategy contract tests.

Quality is a fixed function of the architecture (each slot/operator has its own gain,
with diminishing returns per extra layer, plus a small seed-dependent wobble); latency
and memory come from the operators' analytic cost (``op_class(op).cost(shape)``). It
replaces the trainer only: strategies, Optuna samplers and the space are the real ones.
"""
from __future__ import annotations

import random
import zlib

import pytest

from nas.strategies import Cost, Outcome, SearchState
from search_spaces.budgets import Budgets
from search_spaces.config import load_yaml
from search_spaces.ops.base import op_class
from search_spaces.space import SearchSpace, SpaceConfig

BACKBONE_MS, BACKBONE_BYTES = 5.0, 4 * 2**20


@pytest.fixture(scope="session")
def tiny_space(tiny_config_path):
    return SearchSpace(SpaceConfig.from_dict(load_yaml(tiny_config_path)["space"]))


def analytic_cost(space, arch) -> Cost:
    latency, memory = BACKBONE_MS, BACKBONE_BYTES
    for slot_name, layer in arch.items():
        c = op_class(layer.op).cost(space.slot(slot_name).shape(layer.op))
        latency += layer.count * c.flops / 2e6  # 2 GFLOP/s
        memory += layer.count * (4 * c.params + c.activation_bytes)
    return Cost(latency, memory)


def synthetic_quality(arch, seed: int) -> float:
    q = 0.0
    for slot_name, layer in arch.items():
        gain = (zlib.crc32(f"{slot_name}/{layer.op}".encode()) % 1000) / 1000.0
        q += gain * (1 - 0.5 ** layer.count)
    return q + random.Random(seed).gauss(0.0, 0.005)


class World:
    """Budgets that the full architecture breaks but most small ones meet."""

    def __init__(self, space, latency_ms=20.0, memory_mib=None):
        self.space = space
        self.budgets = Budgets(latency_ms=latency_ms, memory_mib=memory_mib)
        self.proposed = []

    def state(self, steps_left=None) -> SearchState:
        return SearchState(self.space, lambda a: analytic_cost(self.space, a), self.budgets, steps_left=steps_left)

    def evaluate(self, candidates) -> list[Outcome]:
        out = []
        for c in candidates:
            self.proposed.append(c)
            cost = analytic_cost(self.space, c.arch)
            out.append(Outcome(c, True, synthetic_quality(c.arch, c.seed), cost.latency_ms, cost.memory_bytes))
        return out

    def drive(self, strategy, max_rounds=30, max_train_steps=3000) -> list[Outcome]:
        outcomes, used = [], 0
        for _ in range(max_rounds):
            batch = strategy.propose(self.state(max_train_steps - used))
            if not batch:
                break
            used += sum(c.steps for c in batch)
            results = self.evaluate(batch)
            strategy.update(results)
            outcomes += results
        return outcomes


@pytest.fixture
def world(tiny_space):
    return World(tiny_space)
