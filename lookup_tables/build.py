"""Building a table: measure every grid entry the table does not hold yet, saving after each.

A killed build resumes where it stopped (rows already measured, whatever their status, are
skipped); building into an existing table of another device or dtype is refused.
"""
from __future__ import annotations

from pathlib import Path

from core.progress import as_progress
from lookup_tables.config import LutConfig
from lookup_tables.errors import DeviceMismatchError, LutError
from lookup_tables.grid import grid_entries
from lookup_tables.profilers.base import create_profiler, now_iso
from lookup_tables.table import LookupTable
from search_spaces.space import SearchSpace


def op_options(space: SearchSpace | None) -> dict:
    if space is None:
        return {"qk_norm": True, "rope": True}
    opts = space.config.op_options
    return {"qk_norm": opts.qk_norm, "rope": opts.rope}


def build_table(space: SearchSpace | None, lut_config: LutConfig, out_path: str | Path, progress: bool = True,
                allow_other_device: bool = False, remeasure: bool = False) -> LookupTable:
    """Measure the backbone and every OpShape of ``space`` (plus ``lut_config.grid``) into
    ``out_path``; with no space, only the grid. Returns the table; rows already in an
    existing table are kept (a killed build resumes)."""
    entries = grid_entries(space, lut_config.grid)
    if not entries:
        raise LutError("nothing to measure: give a space (an experiment CONFIG) or a non-empty grid")
    dtype = space.config.dtype if space is not None else (lut_config.grid.dtype or "float32")
    profiler = create_profiler(lut_config, dtype, op_options(space))
    fingerprint = profiler.fingerprint()
    out_path = Path(out_path)
    if out_path.exists():
        table = LookupTable.load(out_path)
        if not allow_other_device:
            table.check_compatible(fingerprint, f"this build ({lut_config.backend} on {lut_config.device})")
        if table.meta.get("op_options", op_options(space)) != op_options(space):
            raise DeviceMismatchError(
                f"{out_path}: measured with op_options {table.meta['op_options']}, the space has {op_options(space)}")
    else:
        table = LookupTable(meta={"fingerprint": fingerprint, "protocol": lut_config.protocol(),
                                  "created": now_iso(), "op_options": op_options(space)})
    entries = [e for e in entries if remeasure or e.key not in table]
    if not entries:  # a table that holds the space already: nothing to measure, nothing to show
        progress = False
    with as_progress(progress) as shown:
        task = shown.task(f"measuring {out_path.name}", total=len(entries))
        for entry in entries:
            task.update(description=f"measuring {entry_label(entry.key)}")
            if entry.shape is None:
                m = profiler.measure_backbone(space)
            else:
                m = profiler.measure_op(entry.shape)
            table.add(entry.key, m, protocol=fingerprint)
            table.save(out_path)
            task.update(advance=1)
        task.finish()
    if not out_path.exists():
        table.save(out_path)
    return table


def entry_label(key: str) -> str:
    """A table key shortened for a progress line: the op and its first shape fields."""
    parts = key.split("|")
    return " ".join([parts[0], "|".join(parts[1:5])]).strip()
