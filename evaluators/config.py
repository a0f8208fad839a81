"""The ``data``, ``train`` and ``evaluator`` sections of an experiment."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataConfig:
    dir: str | None = None  # precomputed video latents; None: synthesise the built-in set


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100


@dataclass(frozen=True)
class EvaluatorConfig:
    name: str = "flow_loss"
