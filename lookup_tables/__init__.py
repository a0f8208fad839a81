"""Lookup tables: profile temporal operators on a device, prune what cannot fit, predict
whole networks (METHOD.md §2).

``build_table(space, lut_config, out_path)`` measures; ``LookupTable.load(path)`` reads;
``table.predict(space, arch)`` prices an architecture; ``prune(space, table, budgets)``
removes the states that cannot fit; ``validate(...)`` checks predictions end to end.
"""
from lookup_tables.build import build_table
from lookup_tables.config import GridConfig, LutConfig
from lookup_tables.errors import DeviceMismatchError, LutError, MissingEntryError, TableFileError
from lookup_tables.predict import Prediction
from lookup_tables.profilers.base import PROFILERS, Measurement, Profiler, create_profiler
from lookup_tables.table import LookupTable

__all__ = ["build_table", "GridConfig", "LutConfig", "DeviceMismatchError", "LutError", "MissingEntryError",
           "TableFileError", "Prediction", "PROFILERS", "Measurement", "Profiler", "create_profiler",
           "LookupTable"]
