"""``mobilevd``: MobileVD's learned temporal-block pruning (METHOD.md §6) as an ask/tell strategy.

The seam: the supernet's training is a candidate like any other, with ``task="supernet"``
(``Candidate.task``/``task_options`` travel in the worker ``Job``; the worker calls
``evaluators.supernet.TASKS["supernet"]`` on its prepared runner instead of ``run``). One
such candidate is one *segment*: ``segment_steps`` of supernet training resumed from the
previous segment's state (weights, importance logits, AdamW moments: the stored weights
``parent_weights`` names), then a snapshot: the supernet pruned to the kept set its
importances chose before the segment, scored -- a trial like any other (its architecture
and the lookup table's cost). Its breakdown carries the importances after the segment,
from which the strategy picks the next kept set. After ``segments`` segments (or when
the training budget would not pay for another and the fine-tune), the last kept set is
fine-tuned ``finetune_steps`` from the supernet's weights (role ``finetune``) and the
strategy stops.

n (blocks sampled per step, and the most the kept set holds): the largest n for which the
n blocks of largest marginal latency and memory (lookup table) together still meet the
budgets, so no training step and no kept set can break them; an ``n`` given in the
options that breaks the memory budget during training is refused, naming the supernet's
predicted memory. The kept set: greedy by importance, one operator per slot, layers as a
prefix, every step within the budgets.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.budgets import MIB
from core.errors import ConfigError
from evaluators.supernet import Block, kept_architecture, supernet_blocks
from nas.strategies.base import Candidate, Outcome, SearchState, Strategy, register_strategy
from search_spaces.architecture import Architecture, Layer


@dataclass(frozen=True)
class MobilevdOptions:
    n: int | None = None  # blocks sampled per step; None: the largest the budgets allow
    segments: int = 3  # supernet segments (each a snapshot trial)
    segment_steps: int | None = None  # steps per segment (default K)
    finetune_steps: int | None = None  # the kept architecture's fine-tune (default K)
    temperature: float = 0.1  # q = sigmoid(logit / temperature)
    gate_lr: float = 1e-3  # importance logits
    weight_lr: float = 1e-4  # the supernet's temporal weights (well below gate_lr)
    c: float | None = None  # projection scale; None: n / Σq

    def __post_init__(self):
        if self.n is not None and self.n < 1:
            raise ValueError("n must be at least 1")
        if self.segments < 1:
            raise ValueError("segments must be at least 1")
        for name in ("segment_steps", "finetune_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.temperature <= 0 or self.gate_lr <= 0 or self.weight_lr <= 0:
            raise ValueError("temperature, gate_lr and weight_lr must be positive")


def _single(b: Block) -> Architecture:
    return Architecture({b.slot: Layer(b.op, b.index + 1)})


def _before(b: Block) -> Architecture:
    return Architecture({b.slot: Layer(b.op, b.index)}) if b.index else Architecture()


def marginal_costs(state: SearchState, blocks: list[Block]) -> list[tuple[float, float]]:
    """Each block's (latency ms, memory bytes) over the layer before it at its slot."""
    out = []
    for b in blocks:
        hi, lo = state.predict(_single(b)), state.predict(_before(b))
        out.append((hi.latency_ms - lo.latency_ms, hi.memory_bytes - lo.memory_bytes))
    return out


def worst_case(state: SearchState, blocks: list[Block], n: int) -> tuple[float, float]:
    """Latency and memory of the backbone plus the n blocks of largest marginal cost (each)."""
    base = state.predict(Architecture())
    costs = marginal_costs(state, blocks)
    lat = sorted((c[0] for c in costs), reverse=True)[:n]
    mem = sorted((c[1] for c in costs), reverse=True)[:n]
    return base.latency_ms + sum(lat), base.memory_bytes + sum(mem)


@register_strategy("mobilevd")
class MobilevdSearch(Strategy):
    Options = MobilevdOptions

    def __init__(self, options, seed, steps):
        super().__init__(options, seed, steps)
        self.phase = "supernet"  # supernet | finetune
        self.segment = 0
        self.n: int | None = None
        self.blocks: list[str] = []
        self.importance: list[float] = []
        self.weights: str | None = None  # the last segment's stored state
        self.history: list[dict] = []

    @property
    def segment_steps(self) -> int:
        return self.options.segment_steps or self.steps

    @property
    def finetune_steps(self) -> int:
        return self.options.finetune_steps or self.steps

    def _setup(self, state: SearchState) -> None:
        blocks = [b for b in supernet_blocks(state.space) if state.allows(_single(b))]
        if not blocks:
            raise ConfigError("search.strategy mobilevd: the coarse search left no temporal block to prune")
        b = state.budgets
        if self.options.n is not None:
            if self.options.n > len(blocks):
                raise ConfigError(f"search.options.n: {self.options.n} exceeds the supernet's {len(blocks)} blocks")
            lat, mem = worst_case(state, blocks, self.options.n)
            if b.memory_bytes is not None and mem > b.memory_bytes:
                fit = max((k for k in range(len(blocks) + 1) if worst_case(state, blocks, k)[1] <= b.memory_bytes),
                          default=0)
                raise ConfigError(
                    f"search.options.n: mobilevd's supernet ({len(blocks)} blocks: "
                    f"{', '.join(x.key for x in blocks)}) sampling n = {self.options.n} blocks per step is predicted "
                    f"to hold up to {mem / MIB:.2f} MiB during training, over the memory budget of "
                    f"{b.memory_bytes / MIB:.2f} MiB; n <= {fit} fits")
            n = self.options.n
        else:
            n = 0
            for k in range(1, len(blocks) + 1):
                lat, mem = worst_case(state, blocks, k)
                if b.violations(lat, mem):
                    break
                n = k
            if n == 0:
                lat, mem = worst_case(state, blocks, 1)
                raise ConfigError(
                    f"search.strategy mobilevd: no block of the supernet fits the budgets on its own (the costliest "
                    f"sampled block takes the network to {lat:.3f} ms and {mem / MIB:.2f} MiB); set search.options.n "
                    "or loosen the budgets")
        self.n, self.blocks = n, [x.key for x in blocks]
        self.importance = [0.5] * len(blocks)

    def kept(self, state: SearchState) -> Architecture:
        return kept_architecture([Block.parse(k) for k in self.blocks], self.importance, self.n, state.fits)

    def propose(self, state: SearchState) -> list[Candidate]:
        if self.done:
            return []
        if self.n is None:
            self._setup(state)
        left = state.steps_left
        seed = self.seed * 1_000_003 + self.segment
        if self.phase == "supernet" and left is not None and left < self.segment_steps + self.finetune_steps:
            self.phase = "finetune" if self.weights is not None else "supernet"
        arch = self.kept(state)
        if self.phase == "supernet":
            if left is not None and left < self.segment_steps:
                self._finish("training budget spent before the first supernet segment")
                return []
            opts = {"n": self.n, "temperature": self.options.temperature, "gate_lr": self.options.gate_lr,
                    "weight_lr": self.options.weight_lr, "c": self.options.c, "segment": self.segment, "run_seed": self.seed,
                    "blocks": list(self.blocks)}
            return [Candidate(f"s{self.segment}", arch, self.segment_steps, seed, "supernet", None, self.weights,
                              None, True, "supernet", opts)]
        if left is not None and left < self.finetune_steps:
            self._finish("training budget spent before the fine-tune")
            return []
        return [Candidate("finetune", arch, self.finetune_steps, seed, "finetune", None, self.weights)]

    def update(self, outcomes: list[Outcome]) -> dict[str, dict]:
        (o,) = outcomes
        if not o.ok:
            self._finish(f"{o.candidate.role} {o.candidate.id} failed: {o.reason}")
            return {}
        if o.candidate.role == "finetune":
            self.history.append({"finetune": str(o.candidate.arch), "quality": o.quality})
            self._finish(f"pruned to {o.candidate.arch} and fine-tuned")
            return {"kept": True}
        imp = [o.breakdown.get(f"importance/{k}") for k in self.blocks]
        if any(v is None for v in imp):
            self._finish(f"supernet segment {o.candidate.id} returned no importances")
            return {}
        self.importance = [float(v) for v in imp]
        self.weights = o.candidate.id
        self.history.append({"segment": self.segment, "snapshot": str(o.candidate.arch), "quality": o.quality,
                             "importance": dict(zip(self.blocks, self.importance))})
        self.segment += 1
        if self.segment >= self.options.segments:
            self.phase = "finetune"
        return {"importance": dict(zip(self.blocks, self.importance)), "n": self.n}

    def last_decision(self) -> dict | None:
        return self.history[-1] if self.history else None

    def weight_keys(self) -> set[str]:
        return {self.weights} if self.weights else set()

    def state_dict(self) -> dict:
        return {"phase": self.phase, "segment": self.segment, "n": self.n, "blocks": list(self.blocks),
                "importance": list(self.importance), "weights": self.weights, "history": list(self.history),
                "done": self.done, "stop_reason": self.stop_reason}

    def load_state_dict(self, state: Mapping) -> None:
        self.phase, self.segment, self.n = state["phase"], state["segment"], state["n"]
        self.blocks, self.importance = list(state["blocks"]), list(state["importance"])
        self.weights, self.history = state["weights"], list(state["history"])
        self.done, self.stop_reason = state["done"], state["stop_reason"]
