"""The grid of a lookup table: every OpShape a space's slots see (for every allowed
operator), the user's extra grid, and the backbone without temporal layers at the same input.

The backbone's row key names its diffusers config by digest and the input it ran on:
``backbone|<digest>|T8|H16|W16|L8|D32|B1|float32``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass

from core.errors import HwnasError
from lookup_tables.config import GridConfig
from search_spaces.shapes import OpShape, ShapeError
from search_spaces.space import SearchSpace, heads_for

BACKBONE = "backbone"
_BACKBONE_RE = re.compile(r"backbone\|([0-9a-f]+)\|T(\d+)\|H(\d+)\|W(\d+)\|L(\d+)\|D(\d+)\|B(\d+)\|(\w+)")


class GridError(HwnasError, ValueError):
    """A grid that asks for impossible shapes."""


def backbone_digest(space: SearchSpace) -> str:
    # diffusers' private keys (``_use_default_values``) come in a varying order: left out.
    config = {k: v for k, v in space.unet_config.items() if not k.startswith("_")}
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def backbone_key(space: SearchSpace) -> str:
    c = space.config
    return (f"{BACKBONE}|{backbone_digest(space)}|T{c.video.frames}|H{c.video.height}|W{c.video.width}"
            f"|L{c.text.tokens}|D{space.text_shape[2]}|B{c.batch}|{c.dtype}")


def parse_backbone_key(key: str) -> dict | None:
    m = _BACKBONE_RE.fullmatch(key)
    if not m:
        return None
    digest, t, h, w, l, d, b, dtype = m.groups()
    return {"digest": digest, "frames": int(t), "height": int(h), "width": int(w), "text_tokens": int(l),
            "text_dim": int(d), "batch": int(b), "dtype": dtype}


def user_grid(space: SearchSpace | None, grid: GridConfig | None) -> list[OpShape]:
    """The shapes of ``grid``; dimensions it leaves open follow ``space`` (or the defaults)."""
    if grid is None or grid.empty:
        return []
    ops = grid.ops if grid.ops is not None else (space.config.ops if space else tuple(_all_ops()))
    unknown = [op for op in ops if op not in _all_ops()]
    if unknown:
        raise GridError(f"lut.grid.ops: unknown operator {unknown[0]!r}; allowed: {', '.join(_all_ops())}")
    head_dim = grid.head_dim or (space.config.op_options.head_dim if space else 64)
    text_dim = grid.text_dim or (space.text_shape[2] if space else 64)
    batch = grid.batch or (space.config.batch if space else 1)
    dtype = grid.dtype or (space.config.dtype if space else "float32")
    out = []
    for op, c, t, h, w, l in itertools.product(ops, grid.channels, grid.frames, grid.height, grid.width,
                                               grid.text_tokens):
        try:
            out.append(OpShape(op, c, t, h, w, l, text_dim, heads_for(c, head_dim), batch, dtype))
        except ShapeError as exc:
            raise GridError(f"lut.grid: {exc}") from None
    return out


def _all_ops() -> list[str]:
    from search_spaces.ops import list_ops

    return list_ops()


@dataclass(frozen=True)
class GridEntry:
    key: str
    shape: OpShape | None  # None: the backbone


def grid_entries(space: SearchSpace | None, grid: GridConfig | None = None) -> list[GridEntry]:
    """Backbone first, then the space's shapes, then the user grid; no duplicates."""
    entries = [GridEntry(backbone_key(space), None)] if space is not None else []
    seen = {e.key for e in entries}
    for shape in (space.op_shapes() if space is not None else []) + user_grid(space, grid):
        if shape.key not in seen:
            seen.add(shape.key)
            entries.append(GridEntry(shape.key, shape))
    return entries
