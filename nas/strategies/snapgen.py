"""``snapgen``: the latency-memory guided evolutionary search of SnapGen-V (Algorithm A1,
METHOD.md §3), as an ask/tell strategy.

A round is: (optionally) train the current model ``train_steps`` steps, then one
evolution step. At an evolution step every applicable action a (add or remove one
temporal layer of a type at a slot) is evaluated by training the child ``K`` steps from
the current weights; the current model trained equally long (same steps, same data
seed) is the reference, so ΔQ(a) = Q(child) − Q(reference). ΔLat(a) and ΔMem(a) are the
lookup table's prediction for the child minus that for the current model: a removal has
negative deltas (it saves) and usually a negative ΔQ (it loses quality).

* latency budget broken: apply the removal with the least ΔQ/ΔLat (quality lost per ms saved);
* else memory budget broken: the removal with the least ΔQ/ΔMem;
* else the addition with the best combination of ΔQ/ΔLat and ΔQ/ΔMem among those whose
  child keeps both budgets and gains more than ``min_gain``.

It stops (converges) when the budgets are met and no such addition exists. The choices
METHOD.md leaves open are the options below.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Mapping

from nas.strategies.base import Candidate, Outcome, SearchState, Strategy, register_strategy
from search_spaces.architecture import Action, Architecture


@dataclass(frozen=True)
class SnapgenOptions:
    start: str = "empty"  # the first current architecture (canonical string)
    train_steps: int = 0  # training of the current model between evolution steps
    # how the two ratios of an addition combine: average of their ranks among the candidates
    # ("rank"), of the ratios scaled by their largest magnitude ("normalized"), or one alone
    combine: Literal["rank", "normalized", "latency", "memory"] = "rank"
    latency_weight: float = 0.5  # weight of ΔQ/ΔLat against ΔQ/ΔMem in "rank" and "normalized"
    # |ΔLat| or |ΔMem| below epsilon: "clamp" divides by epsilon, "skip" leaves the action out
    epsilon_latency_ms: float = 1e-3
    epsilon_memory_bytes: float = 1024.0
    zero_delta: Literal["clamp", "skip"] = "clamp"
    min_gain: float = 0.0  # an addition must raise quality by more than this
    # "eligible": train only the actions the current branch may pick (removals while a budget
    # is broken, fitting additions otherwise); "all": every applicable action, as in A1
    evaluate: Literal["eligible", "all"] = "eligible"
    forbid_revisit: bool = True  # never return to an architecture that was current before
    # successive halving over an evolution step's actions: every child (and the reference)
    # trained K/4, the better ceil(n/halving_eta) by the branch's own criterion continued to
    # K/2, then to K, where the usual rule decides among the survivors. Off by default.
    halving: bool = False
    halving_eta: int = 2
    halving_rungs: tuple[float, ...] = (0.25, 0.5, 1.0)  # each rung's cumulative training, as a share of K
    # early decision at a rung below the last when the leader is clear of the noise: its ΔQ
    # lowered by the margin still ranks first against every other child's raised by it
    # (adding: and still gains more than min_gain), or, adding, no child's ΔQ raised by it
    # would gain (converged). In quality units: the seed noise of ΔQ at the first rung
    # (experiments/benchmarks/tabular_compare.py measures it on the table). None: never early.
    halving_margin: float | None = None

    def __post_init__(self):
        if self.train_steps < 0:
            raise ValueError("train_steps must be non-negative")
        if not 0.0 <= self.latency_weight <= 1.0:
            raise ValueError("latency_weight must lie in [0, 1]")
        if self.epsilon_latency_ms <= 0 or self.epsilon_memory_bytes <= 0:
            raise ValueError("epsilon_latency_ms and epsilon_memory_bytes must be positive")
        if self.halving_eta < 2:
            raise ValueError("halving_eta must be at least 2")
        if self.halving_margin is not None and self.halving_margin < 0:
            raise ValueError("halving_margin must be non-negative")
        r = self.halving_rungs
        if not r or r[-1] != 1.0 or any(not 0 <= a < b for a, b in zip((0.0,) + tuple(r[:-1]), r)):
            raise ValueError("halving_rungs must rise strictly from above 0 to 1.0")


def ratio(delta_quality: float, delta_cost: float, epsilon: float, kind: str) -> float | None:
    """ΔQ/ΔCost with |ΔCost| clamped to epsilon; below epsilon the sign is the action's own
    direction (+ for an addition, − for a removal). Whether such an action may be chosen at
    all is ``zero_delta``'s business (for an addition, ΔLat is the one checked)."""
    if abs(delta_cost) >= epsilon:
        return delta_quality / delta_cost
    return delta_quality / (epsilon if kind == "add" else -epsilon)


def _ranks(values: list[float]) -> list[float]:
    """Rank in [0, 1], 1 for the largest; ties share the mean rank."""
    if len(values) == 1:
        return [1.0]
    order = sorted(values)
    return [(order.index(v) + len(order) - 1 - order[::-1].index(v)) / 2 / (len(values) - 1) for v in values]


@register_strategy("snapgen")
class SnapgenSearch(Strategy):
    Options = SnapgenOptions

    def __init__(self, options, seed, steps):
        super().__init__(options, seed, steps)
        self.current = Architecture.parse(self.options.start)
        self.current_weights: str | None = None
        self.round = 0
        self.phase = "train" if self.options.train_steps else "evolve"
        self.visited = [str(self.current)]
        self.branch = ""  # add | latency | memory, fixed when an evolution step is proposed
        self.eligible: dict[str, bool] = {}
        self.decisions: list[dict] = []
        self.rung = 0  # successive halving: the rung of the running evolution step
        self.survivors: list[dict] = []  # {"id", "arch", "action", "eligible"} of the last rung, ref first

    # ask ------------------------------------------------------------------------------
    def propose(self, state: SearchState) -> list[Candidate]:
        if self.done:
            return []
        state.space.validate(self.current)
        seed = self.seed * 1_000_003 + 2 * self.round
        if self.phase == "train":
            batch = [Candidate(f"r{self.round}.train", self.current, self.options.train_steps, seed + 1, "train",
                               self.current, self.current_weights, None, True)]
        elif self.options.halving and self.rung > 0:
            batch = self._rung_candidates(seed)
        else:
            batch = self._evolution_candidates(state, seed)
            if not batch:
                return []
            if self.options.halving:
                k = self.rung_steps()[0]
                rename = lambda cid: cid.replace(f"r{self.round}.", f"r{self.round}.h0.")
                batch = [dataclasses.replace(c, id=rename(c.id), steps=k,
                                             task_options={"total_steps": k, "run_seed": c.seed}) for c in batch]
                self.eligible = {rename(cid): v for cid, v in self.eligible.items()}
        if state.steps_left is not None and sum(c.steps for c in batch) > state.steps_left:
            self._finish("training budget spent")
            return []
        return batch

    def _evolution_candidates(self, state: SearchState, seed: int) -> list[Candidate]:
        cost = state.predict(self.current)
        broken = state.budgets.violations(cost.latency_ms, cost.memory_bytes)
        self.branch = "latency" if "latency" in broken else "memory" if "memory" in broken else "add"
        wanted = "add" if self.branch == "add" else "remove"
        self.eligible = {}
        batch = [Candidate(f"r{self.round}.ref", self.current, self.steps, seed, "reference", self.current,
                           self.current_weights, None, True)]
        for i, action in enumerate(state.space.actions(self.current)):
            child = self.current.apply(action)
            if not state.allows(child) or (self.options.forbid_revisit and str(child) in self.visited):
                continue
            eligible = action.kind == wanted and (wanted == "remove" or state.fits(child))
            if not eligible and self.options.evaluate == "eligible":
                continue
            cid = f"r{self.round}.a{i}"
            self.eligible[cid] = eligible
            batch.append(Candidate(cid, child, self.steps, seed, "child", self.current, self.current_weights,
                                   str(action), True))
        if not any(self.eligible.values()):
            self._finish("converged: budgets met and no addition fits them" if self.branch == "add"
                         else f"{self.branch} budget broken and no removal is possible")
            return []
        return batch

    def rung_steps(self) -> list[int]:
        """Cumulative training of each rung (default K/4, K/2, K)."""
        return sorted({max(1, int(self.steps * f)) for f in self.options.halving_rungs})

    def _rung_candidates(self, seed: int) -> list[Candidate]:
        total = self.rung_steps()
        more = total[self.rung] - total[self.rung - 1]
        out = []
        for sv in self.survivors:  # continue each survivor from its last rung's weights, on new batches
            cid = sv["id"].replace(f".h{self.rung - 1}.", f".h{self.rung}.")
            role = "reference" if sv["action"] is None else "child"
            out.append(Candidate(cid, Architecture.parse(sv["arch"]), more, seed + 7919 * self.rung, role,
                                 self.current, sv["id"], sv["action"], True, "train",
                                 {"total_steps": total[self.rung], "run_seed": seed}))
            if role == "child":
                self.eligible[cid] = sv["eligible"]
        return out

    def _deltas(self, o: Outcome, ref: Outcome) -> dict:
        """ΔQ, ΔLat, ΔMem of a child against the reference, and its two A1 ratios."""
        kind = Action.parse(o.candidate.action).kind
        dq = o.quality - ref.quality
        dlat, dmem = o.latency_ms - ref.latency_ms, o.memory_bytes - ref.memory_bytes
        return {"delta_quality": dq, "delta_latency_ms": dlat, "delta_memory_bytes": dmem,
                "score_latency": ratio(dq, dlat, self.options.epsilon_latency_ms, kind),
                "score_memory": ratio(dq, dmem, self.options.epsilon_memory_bytes, kind)}

    def _rescored(self, item: tuple[Outcome, dict], dq: float | None = None,
                  dlat: float | None = None) -> tuple[Outcome, dict]:
        """A scored child with its ΔQ or ΔLat replaced and its two ratios recomputed."""
        o, note = item
        kind = Action.parse(o.candidate.action).kind
        dq = note["delta_quality"] if dq is None else dq
        dlat = note["delta_latency_ms"] if dlat is None else dlat
        return o, {**note, "delta_quality": dq, "delta_latency_ms": dlat,
                   "score_latency": ratio(dq, dlat, self.options.epsilon_latency_ms, kind),
                   "score_memory": ratio(dq, note["delta_memory_bytes"], self.options.epsilon_memory_bytes, kind)}

    def _halve(self, outcomes: list[Outcome]) -> dict[str, dict]:
        """After a rung below the last: keep the reference and the better share of the children."""
        ref = next(o for o in outcomes if o.candidate.role == "reference")
        if not ref.ok:
            self._finish(f"the reference run of {ref.candidate.arch} failed: {ref.reason}")
            return {}
        notes, scored = {}, []
        for o in outcomes:
            if o.candidate.role != "child" or not o.ok:
                continue
            note = {**self._deltas(o, ref), "rung": self.rung, "promoted": False}
            notes[o.candidate.id] = note
            if self.eligible.get(o.candidate.id):
                scored.append((o, note))
        if self.options.halving_margin is not None and self._clear(scored, self.options.halving_margin):
            return {**notes, **self._decide(outcomes)}  # decided at this rung
        ranked = self._rank(scored)
        keep = ranked[:max(1, -(-len(ranked) // self.options.halving_eta))]
        for o in keep:
            notes[o.candidate.id]["promoted"] = True
        self.survivors = [{"id": ref.candidate.id, "arch": str(ref.candidate.arch), "action": None, "eligible": False}]
        self.survivors += [{"id": o.candidate.id, "arch": str(o.candidate.arch), "action": o.candidate.action,
                            "eligible": True} for o in keep]
        self.rung += 1
        if not keep:  # nothing eligible survived: decide now (the rule finds no action)
            self.rung = len(self.rung_steps()) - 1
        return notes

    def _rank(self, scored: list[tuple[Outcome, dict]]) -> list[Outcome]:
        """The children best first by the branch's criterion (the order ``_choose`` picks from)."""
        if not scored:
            return []
        if self.branch in ("latency", "memory"):
            key = "score_latency" if self.branch == "latency" else "score_memory"
            return [o for o, _ in sorted(scored, key=lambda s: s[1][key])]
        values = self._combined(scored)
        order = sorted(range(len(scored)), key=lambda i: (values[i], scored[i][1]["delta_quality"]), reverse=True)
        return [scored[i][0] for i in order]

    def _combined(self, scored: list[tuple[Outcome, dict]]) -> list[float]:
        """An addition's one score from its two ratios, as ``combine`` says (higher is better)."""
        w, combine = self.options.latency_weight, self.options.combine
        lat = [n["score_latency"] for _, n in scored]
        mem = [n["score_memory"] for _, n in scored]
        if combine == "latency":
            return lat
        if combine == "memory":
            return mem
        if combine == "rank":
            return [w * a + (1 - w) * b for a, b in zip(_ranks(lat), _ranks(mem))]
        lmax, mmax = max(map(abs, lat)) or 1.0, max(map(abs, mem)) or 1.0
        return [w * a / lmax + (1 - w) * b / mmax for a, b in zip(lat, mem)]

    # tell -----------------------------------------------------------------------------
    def update(self, outcomes: list[Outcome]) -> dict[str, dict]:
        if self.phase == "train":
            (o,) = outcomes
            if not o.ok:
                self._finish(f"training the current model failed: {o.reason}")
                return {}
            self.current_weights, self.phase = o.candidate.id, "evolve"
            return {}
        if self.options.halving and self.rung < len(self.rung_steps()) - 1:
            return self._halve(outcomes)
        return self._decide(outcomes)

    def _clear(self, scored: list[tuple[Outcome, dict]], margin: float) -> bool:
        """Whether ``_decide`` may run now, at a rung below the last: the leader keeps first
        place with its ΔQ lowered by ``margin`` against any other child's raised by it (a
        higher ΔQ never worsens a child's place, in either branch), or, adding, no child
        could gain more than min_gain. Children that could not gain are left out. The chosen
        child's weights are then those of this rung's training."""
        gain = self.options.min_gain
        if self.branch == "add":
            scored = [s for s in scored if s[1]["delta_quality"] + margin > gain]
            if not scored:
                return True  # converged: nothing could gain
        if self.options.zero_delta == "skip":
            key = "delta_memory_bytes" if self.branch == "memory" else "delta_latency_ms"
            eps = self.options.epsilon_memory_bytes if self.branch == "memory" else self.options.epsilon_latency_ms
            scored = [s for s in scored if abs(s[1][key]) >= eps]
        if not scored:
            return False
        lead = self._rank(scored)[0]
        i = next(j for j, s in enumerate(scored) if s[0] is lead)
        worst = self._rescored(scored[i], dq=scored[i][1]["delta_quality"] - margin)
        if self.branch == "add" and worst[1]["delta_quality"] <= gain:
            return False
        for j, other in enumerate(scored):
            if j == i:
                continue
            trial = list(scored)
            trial[i], trial[j] = worst, self._rescored(other, dq=other[1]["delta_quality"] + margin)
            if self._rank(trial)[0] is not lead:
                return False
        return True

    def _decide(self, outcomes: list[Outcome]) -> dict[str, dict]:
        """A1's rule over the children of this evolution step (at its last rung, or earlier)."""
        decided_rung = self.rung
        self.rung, self.survivors = 0, []
        ref = next(o for o in outcomes if o.candidate.role == "reference")
        if not ref.ok:
            self._finish(f"the reference run of {ref.candidate.arch} failed: {ref.reason}")
            return {}
        notes, scored = self._scored(outcomes, ref)
        chosen = self._choose(scored)
        decision = {"round": self.round, "branch": self.branch, "from": str(self.current),
                    "reference_quality": ref.quality, "action": None}
        if self.options.halving:
            decision["rung"] = decided_rung
        if chosen is None:
            self._finish("converged: budgets met and no addition with positive gain fits them" if self.branch == "add"
                         else f"{self.branch} budget broken and every removal failed")
            self.current_weights = ref.candidate.id  # the current model, trained on
        else:
            notes[chosen.candidate.id]["chosen"] = True
            self.current, self.current_weights = chosen.candidate.arch, chosen.candidate.id
            self.visited.append(str(self.current))
            decision["action"] = chosen.candidate.action
            self.round += 1
            self.phase = "train" if self.options.train_steps else "evolve"
        decision["to"] = str(self.current)
        self.decisions.append(decision)
        return notes

    def _scored(self, outcomes: list[Outcome], ref: Outcome) -> tuple[dict[str, dict], list[tuple[Outcome, dict]]]:
        """Every finished child's note, and the children A1's rule chooses among."""
        notes, scored = {}, []
        for o in outcomes:
            if o.candidate.role != "child" or not o.ok:
                continue
            note = {**self._deltas(o, ref), "chosen": False}
            notes[o.candidate.id] = note
            tiny = (abs(note["delta_latency_ms"]) < self.options.epsilon_latency_ms if self.branch != "memory"
                    else abs(note["delta_memory_bytes"]) < self.options.epsilon_memory_bytes)
            if self.eligible.get(o.candidate.id) and not (tiny and self.options.zero_delta == "skip"):
                if self.branch != "add" or note["delta_quality"] > self.options.min_gain:
                    scored.append((o, note))
        return notes, scored

    def decision_gaps_ms(self, outcomes: list[Outcome]) -> dict[str, float]:
        """Per competing child, the smallest change of its ΔLat (ms, either sign) that changes
        which child leads the branch's ranking: found on a geometric grid from 1 ns up to twice
        the largest |ΔLat| plus 1 ms, then bisected to 0.1 %. Empty where latency does not rank
        (a training round, the memory branch, ``combine: memory``) or fewer than two compete."""
        if self.phase == "train" or self.branch == "memory" or (self.branch == "add" and
                                                                self.options.combine == "memory"):
            return {}
        ref = next((o for o in outcomes if o.candidate.role == "reference"), None)
        if ref is None or not ref.ok:
            return {}
        scored = self._scored(outcomes, ref)[1]
        if len(scored) < 2:
            return {}
        lead = self._rank(scored)[0]
        top = 2 * max(abs(n["delta_latency_ms"]) for _, n in scored) + 1.0
        grid = [1e-6 * 1.25 ** k for k in range(200) if 1e-6 * 1.25 ** k < top] + [top]
        gaps = {}
        for i, (o, _) in enumerate(scored):
            found = [d for d in (self._change_of_lead(scored, i, sign, lead, grid) for sign in (1.0, -1.0))
                     if d is not None]
            if found:
                gaps[o.candidate.id] = min(found)
        return gaps

    def _change_of_lead(self, scored: list[tuple[Outcome, dict]], i: int, sign: float, lead: Outcome,
                        grid: list[float]) -> float | None:
        """The smallest step (ms) of child ``i``'s ΔLat in direction ``sign`` that takes the lead
        from ``lead``: the first step of ``grid`` that does, bisected against the step before."""
        def changes(delta):
            trial = list(scored)
            trial[i] = self._rescored(scored[i], dlat=scored[i][1]["delta_latency_ms"] + sign * delta)
            return self._rank(trial)[0] is not lead

        hi = next((d for d in grid if changes(d)), None)
        if hi is None:
            return None
        lo = max((d for d in grid if d < hi), default=0.0)
        while hi - lo > 1e-3 * hi:
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if changes(mid) else (mid, hi)
        return hi

    def _choose(self, scored: list[tuple[Outcome, dict]]) -> Outcome | None:
        if not scored:
            return None
        if self.branch not in ("latency", "memory"):
            for (_, note), value in zip(scored, self._combined(scored)):
                note["score"] = value
        return self._rank(scored)[0]

    # state ----------------------------------------------------------------------------
    def answer(self, state: SearchState, outcomes: list[Outcome]) -> Architecture | None:
        return self.current if state.fits(self.current) else super().answer(state, outcomes)

    def last_decision(self) -> dict | None:
        return self.decisions[-1] if self.decisions else None

    def weight_keys(self) -> set[str]:
        keys = {sv["id"] for sv in self.survivors}  # a halving evolution step's runs to continue
        return keys | ({self.current_weights} if self.current_weights else set())

    def state_dict(self) -> dict:
        return {"current": str(self.current), "current_weights": self.current_weights, "round": self.round,
                "phase": self.phase, "visited": list(self.visited), "branch": self.branch,
                "eligible": dict(self.eligible), "decisions": list(self.decisions), "done": self.done,
                "stop_reason": self.stop_reason, "rung": self.rung, "survivors": list(self.survivors)}

    def load_state_dict(self, state: Mapping) -> None:
        self.current = Architecture.parse(state["current"])
        self.current_weights, self.round, self.phase = state["current_weights"], state["round"], state["phase"]
        self.visited, self.branch = list(state["visited"]), state["branch"]
        self.eligible, self.decisions = dict(state["eligible"]), list(state["decisions"])
        self.done, self.stop_reason = state["done"], state["stop_reason"]
        self.rung, self.survivors = state.get("rung", 0), list(state.get("survivors", []))
