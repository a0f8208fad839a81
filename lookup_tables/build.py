"""Building a table: measure every grid entry the table does not hold yet, saving after each.

A killed build resumes where it stopped (rows already measured, whatever their status, are
skipped); building into an existing table of another device or dtype is refused.
"""
from __future__ import annotations

from pathlib import Path

from search_spaces.space import SearchSpace

from lookup_tables.config import LutConfig
from lookup_tables.errors import DeviceMismatchError, LutError
from lookup_tables.grid import grid_entries
from lookup_tables.profilers.base import create_profiler, now_iso
from lookup_tables.table import LookupTable


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
    with ProgressBar(progress, len(entries), out_path.name) as advance:
        for entry in entries:
            advance(entry.key)
            if entry.shape is None:
                m = profiler.measure_backbone(space)
            else:
                m = profiler.measure_op(entry.shape)
            table.add(entry.key, m, protocol=fingerprint)
            table.save(out_path)
    if not out_path.exists():
        table.save(out_path)
    return table


class ProgressBar:
    """A rich progress bar on stderr (or nothing); ``advance(label)`` before each entry."""

    def __init__(self, enabled: bool, total: int, title: str):
        self.enabled, self.total, self.title = enabled and total > 0, total, title

    def __enter__(self):
        if not self.enabled:
            return lambda label: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self._bar.__enter__()
        self._task = self._bar.add_task(f"measuring {self.title}", total=self.total)
        self._first = True

        def advance(label: str):
            if not self._first:
                self._bar.advance(self._task)
            self._first = False
            self._bar.update(self._task, description=label.split("|")[0] + " " + "|".join(label.split("|")[1:5]))

        return advance

    def __exit__(self, *exc):
        if self.enabled:
            if exc[0] is None:
                self._bar.advance(self._task)
            self._bar.__exit__(*exc)
        return False
