"""Temporal operators, slots of a backbone, architectures and model building."""
from search_spaces.architecture import Action, Architecture, Layer
from search_spaces.shapes import OpShape
from search_spaces.space import SearchSpace, Slot, SpaceConfig

__all__ = ["Action", "Architecture", "Layer", "OpShape", "SearchSpace", "Slot", "SpaceConfig"]
