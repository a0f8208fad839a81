"""The ask/tell base every strategy implements, and the records it exchanges with the engine.

A strategy never touches weights, workers or storage. It proposes :class:`Candidate` s
(an architecture, how many steps to train it, and which stored weights to start from),
the engine trains them and hands back :class:`Outcome` s (quality from the evaluator,
latency and memory from the lookup table). ``propose`` must be a pure function of the
strategy's state, so that a campaign resumed from ``state_dict()`` proposes exactly the
candidates the killed one would have.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from core.budgets import Budgets
from core.config import NoOptions, parse
from core.registry import Registry
from evaluators.runner import CandidateResult
from search_spaces.architecture import Architecture
from search_spaces.space import SearchSpace

STRATEGIES: Registry[type["Strategy"]] = Registry("strategy", "nas.strategies")
register_strategy = STRATEGIES.register


@dataclass(frozen=True)
class Cost:
    """Predicted cost of a whole network (backbone + temporal layers) from the lookup table."""

    latency_ms: float
    memory_bytes: float


@dataclass(frozen=True)
class Candidate:
    """One brief training run to make. ``id`` is unique in a campaign and the same after a
    resume; ``parent_weights`` names stored weights to start from (None: the frozen
    backbone with freshly inserted, identity temporal layers)."""

    id: str
    arch: Architecture
    steps: int
    seed: int
    role: str = "trial"  # trial | train | reference | child
    parent: Architecture | None = None
    parent_weights: str | None = None
    action: str | None = None
    keep_weights: bool = False  # the strategy may start later candidates from its weights
    # what the worker does: "train" (brief training + score), or a task of
    # evaluators.supernet.TASKS (e.g. "supernet": a MobileVD supernet segment) with its options
    task: str = "train"
    task_options: dict | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "arch": str(self.arch), "steps": self.steps, "seed": self.seed, "role": self.role,
                "parent": None if self.parent is None else str(self.parent),
                "parent_weights": self.parent_weights, "action": self.action, "keep_weights": self.keep_weights,
                "task": self.task, "task_options": self.task_options}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Candidate":
        return cls(d["id"], Architecture.parse(d["arch"]), d["steps"], d["seed"], d["role"],
                   None if d["parent"] is None else Architecture.parse(d["parent"]),
                   d["parent_weights"], d["action"], d["keep_weights"], d.get("task", "train"), d.get("task_options"))


@dataclass(frozen=True)
class Outcome:
    """A finished candidate: the evaluator's result as the worker returned it, plus the
    cost the lookup table predicts for its architecture."""

    candidate: Candidate
    result: CandidateResult
    cost: Cost

    @property
    def ok(self) -> bool:
        return self.result.status == "ok"

    @property
    def quality(self) -> float | None:
        return self.result.quality

    @property
    def latency_ms(self) -> float:
        return self.cost.latency_ms

    @property
    def memory_bytes(self) -> float:
        return self.cost.memory_bytes

    @property
    def reason(self) -> str:
        return self.result.reason or ""

    @property
    def breakdown(self) -> dict:
        return self.result.breakdown

    @property
    def seconds(self) -> float:
        return self.result.seconds


@dataclass
class SearchState:
    """What a strategy may consult when proposing: the space, the lookup table's prediction
    (``predict``), the coarse-search pruning (``allows``), the budgets and the training
    steps the campaign has left (None: unlimited)."""

    space: SearchSpace
    predict: Callable[[Architecture], Cost]
    budgets: Budgets
    allows: Callable[[Architecture], bool] = lambda arch: True
    steps_left: int | None = None

    def affordable(self, wanted: int, steps: int) -> int:
        """How many of ``wanted`` candidates of ``steps`` training steps the budget still pays for."""
        return wanted if self.steps_left is None else min(wanted, self.steps_left // steps)

    def fits(self, arch: Architecture) -> bool:
        cost = self.predict(arch)
        return self.allows(arch) and not self.budgets.violations(cost.latency_ms, cost.memory_bytes)


class Strategy:
    """Ask/tell search strategy. Subclasses set ``Options`` (a frozen dataclass parsed from
    ``search.options``, see ``core.config.PluginSection``) and implement ``propose``, ``update``, ``state_dict`` and
    ``load_state_dict``; ``done`` turns true when the strategy has nothing more to try."""

    name = ""
    Options: type = NoOptions

    def __init__(self, options: Any, seed: int, steps: int):
        self.options = parse(self.Options, options, "search.options")
        self.seed, self.steps = seed, steps
        self.done = False
        self.stop_reason = ""

    def propose(self, state: SearchState) -> list[Candidate]:
        raise NotImplementedError

    def update(self, outcomes: list[Outcome]) -> dict[str, dict]:
        """Take the outcomes of the last proposal; return per-candidate annotations (deltas,
        value scores, the decision) to store with the trials."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: Mapping) -> None:
        raise NotImplementedError

    def answer(self, state: SearchState, outcomes: list[Outcome]) -> Architecture | None:
        """The final answer: by default the best-quality evaluated architecture within budgets."""
        fitting = [o for o in outcomes if o.ok and state.fits(o.candidate.arch)]
        return max(fitting, key=lambda o: o.quality).candidate.arch if fitting else None

    def simulate(self, state: SearchState, max_rounds: int) -> list[list[Candidate]]:
        """The proposals this strategy would make from here if every added layer raised
        quality by one (the longest path an additive search can take), without training:
        the dry run's plan. Runs on a copy; this strategy is unchanged."""
        sim, steps_left, rounds = copy.deepcopy(self), state.steps_left, []
        for _ in range(max_rounds):
            batch = sim.propose(dataclasses.replace(state, steps_left=steps_left))
            if not batch:
                break
            rounds.append(batch)
            if steps_left is not None:
                steps_left -= sum(c.steps for c in batch)
            sim.update([Outcome(c, CandidateResult(str(c.arch), "ok", None, float(sum(l.count for _, l in c.arch.items()))),
                                state.predict(c.arch)) for c in batch])
        return rounds

    def last_decision(self) -> dict | None:
        """What the last update decided, for the round's event (None: nothing to report)."""
        return None

    def decision_gaps_ms(self, outcomes: list[Outcome]) -> dict[str, float]:
        """How far the decision ``update(outcomes)`` would take is from changing: per candidate
        id, the smallest change (ms) of that candidate's predicted latency that would change it.
        The engine measures what is less sure than this before the strategy decides
        (``lut.measure_unsure_gap``, ``lut.measure_actions_ms``). Empty: the decision does not
        rank on latency."""
        return {}

    def weight_keys(self) -> set[str]:
        """Stored weights later proposals may start from (the engine may drop the rest)."""
        return set()

    def _finish(self, reason: str) -> None:
        self.done, self.stop_reason = True, reason


def create_strategy(name: str, options: Any, seed: int, steps: int) -> Strategy:
    return STRATEGIES.get(name)(options, seed, steps)
