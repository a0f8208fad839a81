"""``random``: uniform samples of the space, each trained K steps from the frozen backbone.

Only architectures the coarse search kept and that fit the budgets are drawn (rejection
sampling), never one twice; the baseline spends its training budget the same way the
other strategies do.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping

from nas.strategies.base import Candidate, Outcome, SearchState, Strategy, register_strategy


@dataclass(frozen=True)
class RandomOptions:
    batch: int = 2  # candidates per proposal (one per worker keeps them busy)
    max_draws: int = 2000  # rejection-sampling attempts before the space counts as exhausted

    def __post_init__(self):
        if self.batch < 1 or self.max_draws < 1:
            raise ValueError("batch and max_draws must be at least 1")


@register_strategy("random")
class RandomSearch(Strategy):
    Options = RandomOptions

    def __init__(self, options, seed, steps):
        super().__init__(options, seed, steps)
        self.seen: list[str] = []
        self.rng = random.Random(seed)

    def propose(self, state: SearchState) -> list[Candidate]:
        if self.done:
            return []
        n = state.affordable(self.options.batch, self.steps)
        seen, out = set(self.seen), []
        draws = 0
        while len(out) < n and draws < self.options.max_draws:
            draws += 1
            arch = state.space.sample(self.rng)
            if str(arch) in seen or not state.fits(arch):
                continue
            seen.add(str(arch))
            out.append(Candidate(f"t{len(self.seen) + len(out)}", arch, self.steps,
                                 self.seed * 100003 + len(self.seen) + len(out)))
        if not out:
            self._finish("training budget spent" if n == 0 else "no unseen architecture fits the budgets")
        return out

    def update(self, outcomes: list[Outcome]) -> dict[str, dict]:
        self.seen += [str(o.candidate.arch) for o in outcomes]
        return {}

    def state_dict(self) -> dict:
        return {"seen": list(self.seen), "rng": _rng_to_json(self.rng), "done": self.done,
                "stop_reason": self.stop_reason}

    def load_state_dict(self, state: Mapping) -> None:
        self.seen = list(state["seen"])
        self.rng.setstate(_rng_from_json(state["rng"]))
        self.done, self.stop_reason = state["done"], state["stop_reason"]


def _rng_to_json(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from_json(data) -> tuple:
    return (data[0], tuple(data[1]), data[2])


