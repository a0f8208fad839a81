"""Temporal operators, slots of a backbone, architectures and model building."""
from search_spaces.architecture import Action, Architecture, Layer
from search_spaces.budgets import Budgets
from search_spaces.errors import ArchitectureError, ConfigError, HwnasError
from search_spaces.shapes import OpShape
from search_spaces.space import SearchSpace, Slot, SpaceConfig

__all__ = ["Action", "Architecture", "ArchitectureError", "Budgets", "ConfigError", "HwnasError", "Layer",
           "OpShape", "SearchSpace", "Slot", "SpaceConfig"]
