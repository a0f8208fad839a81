"""How a candidate becomes an Optuna trial, in one place: the objectives (names and
directions) and the architecture ↔ parameters codec.

An architecture is one categorical per slot over that slot's states (``none``,
``conv1d:1``, ``conv1d:2``, ...), so every parameter set decodes to a valid architecture
of the space. The campaign store writes trials with it; the ``optuna`` strategy samples
with it.
"""
from __future__ import annotations

from typing import Mapping

from optuna.distributions import CategoricalDistribution

from search_spaces.architecture import Architecture, Layer

NONE = "none"
# (name, direction) of each objective, in the order of a trial's values
OBJECTIVES = (("quality", "maximize"), ("latency_ms", "minimize"), ("memory_bytes", "minimize"))
OBJECTIVE_NAMES = [name for name, _ in OBJECTIVES]
DIRECTIONS = [direction for _, direction in OBJECTIVES]


def distributions(space) -> dict[str, CategoricalDistribution]:
    """One categorical per slot of ``space`` over its states."""
    return {s.name: CategoricalDistribution([NONE] + [f"{l.op}:{l.count}" for l in space.slot_states(s)[1:]])
            for s in space.slots}


def encode(space, arch: Architecture) -> dict[str, str]:
    params = {s.name: NONE for s in space.slots}
    params.update({slot: f"{layer.op}:{layer.count}" for slot, layer in arch.items()})
    return params


def decode(params: Mapping[str, str]) -> Architecture:
    layers = {}
    for slot, state in params.items():
        if state != NONE:
            op, count = state.split(":")
            layers[slot] = Layer(op, int(count))
    return Architecture(layers)
