"""An experiment: the sections each package owns, composed and validated in one place.

``space`` and ``budgets`` belong to ``search_spaces``, ``lut`` to ``lookup_tables``,
``data``/``train``/``evaluator`` to ``evaluators``, ``search`` to ``nas``. Every error
names the dotted key and the allowed keys or values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from evaluators.config import DataConfig, EvaluatorConfig, TrainConfig
from lookup_tables.config import LutConfig
from search_spaces.budgets import Budgets
from search_spaces.config import load_yaml, parse, to_dict
from search_spaces.space import SpaceConfig


@dataclass(frozen=True)
class SearchConfig:
    strategy: str = "snapgen"


@dataclass(frozen=True)
class Experiment:
    space: SpaceConfig
    name: str = "experiment"
    seed: int = 0
    budgets: Budgets = field(default_factory=Budgets)
    lut: LutConfig = field(default_factory=LutConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Experiment":
        return parse(cls, data, "")

    @classmethod
    def load(cls, path: str | Path) -> "Experiment":
        return cls.from_dict(load_yaml(path))

    def to_dict(self) -> dict:
        return to_dict(self)
