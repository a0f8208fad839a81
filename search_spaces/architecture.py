"""Architectures (slot -> operator, count) and the add/remove actions of SnapGen-V
Algorithm A1.

The canonical string lists the occupied slots in backbone order, ``slot:op:count`` joined
by commas (``down0:conv1d:2,mid:self_attn1d:1``); the backbone alone is ``empty``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterator, Literal, Mapping

from core.errors import ArchitectureError

EMPTY = "empty"
_SLOT_RE = re.compile(r"^(down|mid|up)(\d*)$")
_KIND_ORDER = {"down": 0, "mid": 1, "up": 2}


def slot_order(slot: str) -> tuple:
    """Backbone order: down blocks, mid, up blocks; other names after, alphabetically."""
    m = _SLOT_RE.match(slot)
    if m:
        return (0, _KIND_ORDER[m.group(1)], int(m.group(2) or 0), "")
    return (1, 0, 0, slot)


@dataclass(frozen=True, order=True)
class Layer:
    op: str
    count: int


@dataclass(frozen=True)
class Action:
    """Add (``+``) or remove (``-``) one temporal layer of type ``op`` at ``slot``."""

    kind: Literal["add", "remove"]
    slot: str
    op: str

    def __post_init__(self):
        if self.kind not in ("add", "remove"):
            raise ArchitectureError(f"action kind {self.kind!r}; allowed: add, remove")

    def __str__(self) -> str:
        return f"{'+' if self.kind == 'add' else '-'}{self.op}@{self.slot}"

    @classmethod
    def parse(cls, text: str) -> "Action":
        m = re.fullmatch(r"([+-])([A-Za-z0-9_]+)@([A-Za-z0-9_]+)", text.strip())
        if not m:
            raise ArchitectureError(f"not an action: {text!r} (expected +OP@SLOT or -OP@SLOT)")
        return cls("add" if m.group(1) == "+" else "remove", m.group(3), m.group(2))

    @property
    def inverse(self) -> "Action":
        return Action("remove" if self.kind == "add" else "add", self.slot, self.op)


class Architecture(Mapping[str, Layer]):
    """Immutable, hashable map slot -> Layer(op, count), one operator type per slot."""

    __slots__ = ("_layers", "_key")

    def __init__(self, layers: Mapping[str, Layer | tuple[str, int]] | None = None):
        items = {}
        for slot, layer in (layers or {}).items():
            if not isinstance(layer, Layer):
                op, count = layer
                layer = Layer(op, count)
            if not isinstance(slot, str) or not re.fullmatch(r"[A-Za-z0-9_]+", slot):
                raise ArchitectureError(f"bad slot name {slot!r}")
            if not isinstance(layer.op, str) or not re.fullmatch(r"[A-Za-z0-9_]+", layer.op):
                raise ArchitectureError(f"bad operator name {layer.op!r} at slot {slot}")
            if isinstance(layer.count, bool) or not isinstance(layer.count, int) or layer.count < 0:
                raise ArchitectureError(f"slot {slot}: count must be a non-negative integer, got {layer.count!r}")
            if layer.count:
                items[slot] = layer
        self._layers = {s: items[s] for s in sorted(items, key=slot_order)}
        self._key = ",".join(f"{s}:{l.op}:{l.count}" for s, l in self._layers.items()) or EMPTY

    # Mapping protocol -------------------------------------------------------------
    def __getitem__(self, slot: str) -> Layer:
        return self._layers[slot]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and other._key == self._key

    def __repr__(self) -> str:
        return f"Architecture({self._key!r})"

    def __str__(self) -> str:
        return self._key

    # Forms ------------------------------------------------------------------------
    @property
    def canonical(self) -> str:
        return self._key

    @property
    def total_layers(self) -> int:
        return sum(l.count for l in self._layers.values())

    def count(self, slot: str) -> int:
        layer = self._layers.get(slot)
        return layer.count if layer else 0

    def op_at(self, slot: str) -> str | None:
        layer = self._layers.get(slot)
        return layer.op if layer else None

    @classmethod
    def parse(cls, text: str) -> "Architecture":
        """Parse the canonical string (any slot order; ``empty`` or '' for no layer)."""
        text = text.strip()
        if text.startswith("{"):
            return cls.from_json(text)
        if text in ("", EMPTY):
            return cls()
        layers: dict[str, Layer] = {}
        for part in text.split(","):
            fields = part.strip().split(":")
            if len(fields) != 3 or not fields[2].strip().isdigit():
                raise ArchitectureError(
                    f"cannot parse {part.strip()!r} in architecture {text!r} (expected SLOT:OP:COUNT)")
            slot, op, count = fields[0].strip(), fields[1].strip(), int(fields[2])
            if slot in layers:
                raise ArchitectureError(
                    f"slot {slot} given twice in {text!r} (one operator type per slot)")
            layers[slot] = Layer(op, count)
        return cls(layers)

    def to_dict(self) -> dict:
        return {s: {"op": l.op, "count": l.count} for s, l in self._layers.items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Architecture":
        if not isinstance(data, Mapping):
            raise ArchitectureError(f"an architecture must be a mapping slot -> {{op, count}}, got {data!r}")
        layers = {}
        for slot, spec in data.items():
            if not isinstance(spec, Mapping) or set(spec) != {"op", "count"}:
                raise ArchitectureError(f"slot {slot}: expected {{'op': ..., 'count': ...}}, got {spec!r}")
            layers[slot] = Layer(spec["op"], spec["count"])
        return cls(layers)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"architecture JSON does not parse: {exc}") from None

    # Actions (SnapGen-V Algorithm A1) --------------------------------------------
    def apply(self, action: Action) -> "Architecture":
        layers = dict(self._layers)
        current = layers.get(action.slot)
        if action.kind == "add":
            if current is not None and current.op != action.op:
                raise ArchitectureError(
                    f"cannot add {action.op} at {action.slot}: it holds {current.op} (one operator type per slot)")
            layers[action.slot] = Layer(action.op, (current.count if current else 0) + 1)
        else:
            if current is None or current.op != action.op:
                raise ArchitectureError(f"cannot remove {action.op} at {action.slot}: no such layer there")
            layers[action.slot] = Layer(action.op, current.count - 1)
        return Architecture(layers)

    def diff(self, other: "Architecture") -> list[Action]:
        """Actions that turn ``self`` into ``other`` (removals first)."""
        out: list[Action] = []
        for slot in sorted(set(self) | set(other), key=slot_order):
            a, b = self._layers.get(slot), other._layers.get(slot)
            if a and (not b or a.op != b.op):
                out += [Action("remove", slot, a.op)] * a.count
                a = None
            have = a.count if a else 0
            if b:
                step = Action("add" if b.count > have else "remove", slot, b.op)
                out += [step] * abs(b.count - have)
        return sorted(out, key=lambda x: x.kind != "remove")

