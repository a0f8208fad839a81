"""OpShape: everything that changes a temporal operator's cost, and its canonical key."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from core.errors import HwnasError

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

_KEY_FIELDS = (
    ("op", "", str),
    ("channels", "C", int),
    ("frames", "T", int),
    ("height", "H", int),
    ("width", "W", int),
    ("text_tokens", "L", int),
    ("text_dim", "D", int),
    ("heads", "h", int),
    ("batch", "B", int),
    ("dtype", "", str),
)


class ShapeError(HwnasError, ValueError):
    """An OpShape with impossible dimensions or an unparsable key."""


@dataclass(frozen=True, order=True)
class OpShape:
    """The input an operator sees: ``(batch, frames, channels, height, width)`` video plus
    ``(text_tokens, text_dim)`` text conditioning, attention ``heads`` and the ``dtype``.

    ``key`` (e.g. ``self_attn1d|C320|T15|H32|W32|L77|D768|h5|B1|float16``) is the lookup
    table's row key.
    """

    op: str
    channels: int
    frames: int
    height: int
    width: int
    text_tokens: int
    text_dim: int
    heads: int = 1
    batch: int = 1
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("channels", "frames", "height", "width", "text_tokens", "text_dim", "heads", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ShapeError(f"OpShape.{name} must be a positive integer, got {value!r}")
        if self.channels % self.heads:
            raise ShapeError(f"OpShape: channels {self.channels} not divisible by heads {self.heads}")
        if self.dtype not in DTYPE_BYTES:
            raise ShapeError(f"OpShape.dtype {self.dtype!r}; allowed: {', '.join(DTYPE_BYTES)}")

    @property
    def key(self) -> str:
        parts = []
        for name, tag, _ in _KEY_FIELDS:
            parts.append(f"{tag}{getattr(self, name)}")
        return "|".join(parts)

    @classmethod
    def from_key(cls, key: str) -> "OpShape":
        parts = key.split("|")
        if len(parts) != len(_KEY_FIELDS):
            raise ShapeError(f"not an OpShape key: {key!r}")
        values = {}
        for part, (name, tag, conv) in zip(parts, _KEY_FIELDS):
            if tag:
                if not re.fullmatch(rf"{tag}\d+", part):
                    raise ShapeError(f"not an OpShape key: {key!r} (bad field {part!r})")
                part = part[len(tag):]
            values[name] = conv(part)
        return cls(**values)

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def video_shape(self) -> tuple[int, int, int, int, int]:
        return (self.batch, self.frames, self.channels, self.height, self.width)

    @property
    def text_shape(self) -> tuple[int, int, int]:
        return (self.batch, self.text_tokens, self.text_dim)

    @property
    def tokens(self) -> int:
        """Video tokens per sample, T·H·W."""
        return self.frames * self.height * self.width

    def replace(self, **changes) -> "OpShape":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
