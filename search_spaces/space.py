"""The search space: which temporal operators may go where, and how many (SnapGen-V §3.2).

Built from the ``space`` section of an experiment: the backbone, the video latent size
T×H×W, the text tokens L×D, the operators allowed per slot and the most layers per slot.
It enumerates the action set of Algorithm A1, samples and counts architectures.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterator, Literal, Mapping

import torch

from core.config import parse
from core.errors import ArchitectureError
from search_spaces.architecture import Action, Architecture, Layer, slot_order
from search_spaces.backbones import BackboneConfig, VideoUNet, build_unet, probe_slot_geometry
from search_spaces.ops import list_ops, op_class
from search_spaces.shapes import OpShape


def _check_ops(ops, where: str) -> None:
    known = list_ops()
    for op in ops:
        if op not in known:
            raise ValueError(f"{where}: unknown operator {op!r}; allowed: {', '.join(known)}")
    if len(set(ops)) != len(ops):
        raise ValueError(f"{where}: an operator is listed twice")


@dataclass(frozen=True)
class VideoConfig:
    """Latent video size: ``frames`` T, ``height`` H, ``width`` W."""

    frames: int
    height: int
    width: int

    def __post_init__(self):
        for name in ("frames", "height", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True)
class TextConfig:
    """Text conditioning: ``tokens`` L; its width D is the backbone's cross_attention_dim."""

    tokens: int = 8

    def __post_init__(self):
        if self.tokens < 1:
            raise ValueError("tokens must be at least 1")


@dataclass(frozen=True)
class SlotRule:
    ops: tuple[str, ...] | None = None
    max_layers: int | None = None

    def __post_init__(self):
        if self.ops is not None:
            _check_ops(self.ops, "ops")
        if self.max_layers is not None and self.max_layers < 0:
            raise ValueError("max_layers must be non-negative")


@dataclass(frozen=True)
class OpOptions:
    """Operator options: attention ``head_dim`` (heads = channels / head_dim), QK-norm, RoPE,
    and ``frame_embedding``: an absolute frame-position code added inside every temporal
    layer (AnimateDiff's motion modules), so a layer knows which frame it acts on."""

    head_dim: int = 64
    qk_norm: bool = True
    rope: bool = True
    frame_embedding: bool = False

    def __post_init__(self):
        if self.head_dim < 1:
            raise ValueError("head_dim must be at least 1")


@dataclass(frozen=True)
class SpaceConfig:
    backbone: BackboneConfig
    video: VideoConfig
    text: TextConfig = field(default_factory=TextConfig)
    batch: int = 1
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    ops: tuple[str, ...] = field(default_factory=lambda: tuple(list_ops()))  # default: every registered one
    max_layers: int = 2
    slots: tuple[str, ...] | None = None  # None: every down, mid and up block
    slot_overrides: dict[str, SlotRule] = field(default_factory=dict)
    op_options: OpOptions = field(default_factory=OpOptions)

    def __post_init__(self):
        _check_ops(self.ops, "ops")
        if self.max_layers < 1:
            raise ValueError("max_layers must be at least 1")
        if self.batch < 1:
            raise ValueError("batch must be at least 1")

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "space") -> "SpaceConfig":
        return parse(cls, data, where)


@dataclass(frozen=True)
class Slot:
    """A position in the backbone where temporal layers may go, with what they see there."""

    name: str
    channels: int
    frames: int
    height: int
    width: int
    text_tokens: int
    text_dim: int
    heads: int
    batch: int
    dtype: str
    ops: tuple[str, ...]
    max_layers: int

    def shape(self, op: str) -> OpShape:
        return OpShape(op, self.channels, self.frames, self.height, self.width, self.text_tokens,
                       self.text_dim, self.heads, self.batch, self.dtype)

    @property
    def states(self) -> int:
        """Choices at this slot: nothing, or 1..max_layers of one allowed operator."""
        return 1 + len(self.ops) * self.max_layers


def heads_for(channels: int, head_dim: int) -> int:
    """Attention heads of about ``head_dim`` channels that divide ``channels``."""
    heads = max(1, channels // head_dim)
    while channels % heads:
        heads -= 1
    return heads


class SearchSpace:
    def __init__(self, config: SpaceConfig):
        self.config = config
        self._meta_unet = build_unet(config.backbone, "meta")
        self.unet_config = dict(self._meta_unet.config)
        v, text = config.video, config.text
        geometry = probe_slot_geometry(self._meta_unet, v.frames, v.height, v.width, text.tokens, config.batch)
        names = list(config.slots) if config.slots is not None else list(geometry)
        for name in list(names) + list(config.slot_overrides):
            if name not in geometry:
                raise ArchitectureError(
                    f"space: slot {name!r} does not exist in this backbone; slots: {', '.join(geometry)}")
        text_dim = int(self.unet_config["cross_attention_dim"])
        slots = []
        for name in sorted(names, key=slot_order):
            g = geometry[name]
            rule = config.slot_overrides.get(name, SlotRule())
            max_layers = config.max_layers if rule.max_layers is None else rule.max_layers
            ops = config.ops if rule.ops is None else rule.ops
            if max_layers == 0 or not ops:
                continue
            slots.append(Slot(name, g.channels, v.frames, g.height, g.width, text.tokens, text_dim,
                              heads_for(g.channels, config.op_options.head_dim), config.batch, config.dtype,
                              tuple(ops), max_layers))
        self.slots: tuple[Slot, ...] = tuple(slots)
        self._by_name = {s.name: s for s in self.slots}
        self.geometry = geometry

    @classmethod
    def from_dict(cls, data: Mapping) -> "SearchSpace":
        return cls(SpaceConfig.from_dict(data))

    # Slots and shapes --------------------------------------------------------------
    def slot(self, name: str) -> Slot:
        try:
            return self._by_name[name]
        except KeyError:
            raise ArchitectureError(
                f"unknown slot {name!r}; slots of this space: {', '.join(self._by_name)}") from None

    @property
    def slot_names(self) -> list[str]:
        return [s.name for s in self.slots]

    def op_shapes(self) -> list[OpShape]:
        """Every (operator, shape) pair the space can place: the lookup table's grid."""
        return [s.shape(op) for s in self.slots for op in s.ops]

    @property
    def video_shape(self) -> tuple[int, int, int, int, int]:
        v = self.config.video
        return (self.config.batch, v.frames, int(self.unet_config["in_channels"]), v.height, v.width)

    @property
    def text_shape(self) -> tuple[int, int, int]:
        return (self.config.batch, self.config.text.tokens, int(self.unet_config["cross_attention_dim"]))

    # Architectures -----------------------------------------------------------------
    def validate(self, arch: Architecture) -> Architecture:
        known = list_ops()
        for slot_name, layer in arch.items():
            slot = self.slot(slot_name)
            if layer.op not in known:
                raise ArchitectureError(f"unknown operator {layer.op!r} at slot {slot_name}; allowed: {', '.join(known)}")
            if layer.op not in slot.ops:
                raise ArchitectureError(
                    f"operator {layer.op!r} is not allowed at slot {slot_name}; allowed: {', '.join(slot.ops)}")
            if layer.count > slot.max_layers:
                raise ArchitectureError(
                    f"slot {slot_name}: {layer.count} layers of {layer.op} exceed its maximum of {slot.max_layers}")
        return arch

    def parse(self, text: str) -> Architecture:
        """An architecture from its canonical string or JSON, or ``empty``/``full``; validated."""
        if text.strip() == "full":
            return self.full
        return self.validate(Architecture.parse(text))

    @property
    def empty(self) -> Architecture:
        return Architecture()

    @property
    def full(self) -> Architecture:
        return Architecture({s.name: Layer(s.ops[0], s.max_layers) for s in self.slots})

    @property
    def size(self) -> int:
        return math.prod(s.states for s in self.slots)

    def slot_states(self, slot: Slot) -> list[Layer | None]:
        return [None] + [Layer(op, n) for op in slot.ops for n in range(1, slot.max_layers + 1)]

    def sample(self, rng: random.Random) -> Architecture:
        """Uniform over the space (a uniform choice of state at each slot)."""
        layers = {}
        for slot in self.slots:
            state = rng.choice(self.slot_states(slot))
            if state is not None:
                layers[slot.name] = state
        return Architecture(layers)

    def __iter__(self) -> Iterator[Architecture]:
        """Every architecture, in a fixed order (only sensible for small spaces)."""
        def rec(i: int, layers: dict):
            if i == len(self.slots):
                yield Architecture(layers)
                return
            for state in self.slot_states(self.slots[i]):
                nxt = dict(layers)
                if state is not None:
                    nxt[self.slots[i].name] = state
                yield from rec(i + 1, nxt)
        return rec(0, {})

    def actions(self, arch: Architecture) -> list[Action]:
        """The applicable actions of Algorithm A1: add or remove one layer of a type at a slot."""
        self.validate(arch)
        out = []
        for slot in self.slots:
            layer = arch.get(slot.name)
            if layer is None:
                out += [Action("add", slot.name, op) for op in slot.ops]
                continue
            if layer.count < slot.max_layers:
                out.append(Action("add", slot.name, layer.op))
            out.append(Action("remove", slot.name, layer.op))
        return out

    # Models -------------------------------------------------------------------------
    def slot_shapes(self) -> dict[str, OpShape]:
        return {s.name: s.shape(s.ops[0]) for s in self.slots}

    def build(self, arch: Architecture, device: str | torch.device = "cpu", unet=None) -> VideoUNet:
        """The video UNet for ``arch``; ``unet`` reuses an already built 2D backbone."""
        self.validate(arch)
        if unet is None:
            unet = build_unet(self.config.backbone, device)
        opts = self.config.op_options
        return VideoUNet(unet, arch, self.slot_shapes(), {"qk_norm": opts.qk_norm, "rope": opts.rope,
                                                          "frame_embedding": opts.frame_embedding})

    def describe(self) -> dict:
        rng = random.Random(0)
        return {
            "slots": [{"name": s.name, "shape": s.shape(s.ops[0]).key.split("|", 1)[1], "ops": list(s.ops),
                       "max_layers": s.max_layers,
                       "op_cost": {op: vars(op_class(op).cost(s.shape(op))) for op in s.ops}}
                      for s in self.slots],
            "size": self.size,
            "examples": {"empty": str(self.empty), "full": str(self.full), "random": str(self.sample(rng))},
        }
