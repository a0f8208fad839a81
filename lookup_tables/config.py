"""The ``lut`` section of an experiment: how the lookup table is built or where it is loaded."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LutConfig:
    backend: str = "torch"
    device: str = "cpu"
    path: str | None = None  # an existing table to load; None: build into the campaign
