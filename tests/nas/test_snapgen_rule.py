"""Algorithm A1's decision rule (SnapGen-V App. A) on hand-made outcomes: each branch,
ties, ΔLat ≈ 0, the minimum gain. The strategy proposes on the real tiny space; the
outcomes' qualities and costs are chosen here so the right answer is known."""
from __future__ import annotations

import pytest

from core.budgets import Budgets
from nas.strategies import Cost, SearchState, create_strategy
from nas.strategies.snapgen import _ranks, ratio
from search_spaces.architecture import Action, Architecture
from tests.nas.conftest import outcome

BASE_MS, BASE_BYTES = 10.0, 1_000_000.0
LAYER_MS = {"conv1d": 1.0, "self_attn1d": 2.0, "cross_attn1d": 4.0}


def cost(arch: Architecture) -> Cost:
    ms = BASE_MS + sum(LAYER_MS[l.op] * l.count for _, l in arch.items())
    return Cost(ms, BASE_BYTES + 1000.0 * sum(l.count for _, l in arch.items()))  # 1000 B per layer


def state(space, latency_ms=None, memory_mib=None) -> SearchState:
    return SearchState(space, cost, Budgets(latency_ms=latency_ms, memory_mib=memory_mib))


def decide(space, st, start: str, gains: dict[str, float], **options):
    """One evolution step from ``start``: children gain ``gains[action]`` (default 0) over
    the reference; returns the strategy, its notes and the chosen action."""
    s = create_strategy("snapgen", {"start": start, **options}, seed=0, steps=10)
    batch = s.propose(st)
    ref_q = 0.5
    outs = [outcome(c, ref_q + (gains.get(c.action, 0.0) if c.role == "child" else 0.0), cost(c.arch))
            for c in batch]
    notes = s.update(outs)
    chosen = [c.action for c in batch if notes.get(c.id, {}).get("chosen")]
    return s, notes, (chosen[0] if chosen else None), batch


def test_ratio_signs_and_clamp():
    assert ratio(0.2, 2.0, 1e-3, "add") == pytest.approx(0.1)
    assert ratio(-0.2, -2.0, 1e-3, "remove") == pytest.approx(0.1)  # a removal loses quality, saves cost
    assert ratio(0.2, 0.0, 0.01, "add") == pytest.approx(20.0)  # clamped to +epsilon for an addition
    assert ratio(-0.2, 0.0, 0.01, "remove") == pytest.approx(20.0)  # -epsilon for a removal


def test_ranks_share_ties_and_order():
    assert _ranks([3.0]) == [1.0]
    assert _ranks([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]
    assert _ranks([1.0, 1.0, 2.0]) == [0.25, 0.25, 1.0]


def test_add_branch_picks_best_gain_per_cost(tiny_space):
    # conv1d at mid: +0.02 for 1 ms and 1000 B; cross_attn1d at mid: +0.01 for 4 ms and 1000 B
    _, notes, chosen, _ = decide(tiny_space, state(tiny_space, latency_ms=100.0), "empty",
                                 {"+conv1d@mid": 0.02, "+cross_attn1d@mid": 0.01})
    assert chosen == "+conv1d@mid"
    assert notes["r0.a3"]["delta_latency_ms"] == pytest.approx(1.0)


def test_add_branch_ignores_additions_that_break_a_budget(tiny_space):
    # 12.5 ms leaves room for conv (1 ms) and self-attention (2 ms) but not cross-attention (4 ms)
    _, notes, chosen, batch = decide(tiny_space, state(tiny_space, latency_ms=12.5), "empty",
                                     {"+cross_attn1d@down0": 1.0, "+self_attn1d@mid": 0.01})
    assert "+cross_attn1d@down0" not in {c.action for c in batch}  # eligible-only evaluation
    assert chosen == "+self_attn1d@mid"


def test_add_branch_min_gain_and_convergence(tiny_space):
    s, _, chosen, _ = decide(tiny_space, state(tiny_space, latency_ms=100.0), "empty",
                             {"+conv1d@mid": 0.004}, min_gain=0.005)
    assert chosen is None and s.done and "converged" in s.stop_reason


def test_latency_branch_removes_least_quality_per_ms(tiny_space):
    # over budget (10 + 1 + 2 = 13 > 12): remove conv (-0.01 per 1 ms) or attention (-0.01 per 2 ms)
    st = state(tiny_space, latency_ms=12.0)
    s, notes, chosen, batch = decide(tiny_space, st, "mid:conv1d:1,up1:self_attn1d:1",
                                     {"-conv1d@mid": -0.01, "-self_attn1d@up1": -0.01})
    assert {Action.parse(c.action).kind for c in batch if c.role == "child"} == {"remove"}
    assert s.branch == "latency"
    assert chosen == "-self_attn1d@up1"  # half the quality lost per ms saved


def test_memory_branch_when_latency_fits(tiny_space):
    st = state(tiny_space, latency_ms=100.0, memory_mib=(BASE_BYTES + 1500.0) / 2**20)
    s, _, chosen, _ = decide(tiny_space, st, "mid:conv1d:1,up1:self_attn1d:1",
                             {"-conv1d@mid": -0.02, "-self_attn1d@up1": -0.01})
    assert s.branch == "memory" and chosen == "-self_attn1d@up1"  # same memory saved, less quality lost


def test_rank_combination_tie_breaks_on_delta_quality(tiny_space):
    # conv wins ΔQ/ΔLat (0.02/ms vs 0.015/ms), attention ΔQ/ΔMem (same bytes, more gain):
    # equal mean ranks, so the larger ΔQ decides
    _, _, chosen, _ = decide(tiny_space, state(tiny_space, latency_ms=100.0), "empty",
                             {"+conv1d@mid": 0.02, "+self_attn1d@mid": 0.03})
    assert chosen == "+self_attn1d@mid"
    _, _, chosen, _ = decide(tiny_space, state(tiny_space, latency_ms=100.0), "empty",
                             {"+conv1d@mid": 0.02, "+self_attn1d@mid": 0.03}, latency_weight=0.9)
    assert chosen == "+conv1d@mid"


def test_ties_break_on_delta_quality(tiny_space):
    # two conv additions at the same cost: equal cost, the larger gain wins
    _, _, chosen, _ = decide(tiny_space, state(tiny_space, latency_ms=100.0), "empty",
                             {"+conv1d@down0": 0.01, "+conv1d@up1": 0.02}, combine="latency")
    assert chosen == "+conv1d@up1"


def test_zero_delta_latency_skip_leaves_the_action_out(tiny_space, monkeypatch):
    free = {"conv1d": 0.0, "self_attn1d": 2.0, "cross_attn1d": 4.0}
    monkeypatch.setattr(f"{__name__}.LAYER_MS", free)
    gains = {"+conv1d@mid": 0.001, "+self_attn1d@mid": 0.01}
    _, _, clamp, _ = decide(tiny_space, state(tiny_space, latency_ms=100.0), "empty", gains, combine="latency")
    _, _, skip, _ = decide(tiny_space, state(tiny_space, latency_ms=100.0), "empty", gains, combine="latency",
                           zero_delta="skip")
    assert clamp == "+conv1d@mid"  # 0.001 / epsilon beats 0.01 / 2 ms
    assert skip == "+self_attn1d@mid"


def test_simulate_plans_without_changing_the_strategy(tiny_space):
    s = create_strategy("snapgen", {}, seed=0, steps=10)
    before = s.state_dict()
    rounds = s.simulate(state(tiny_space, latency_ms=12.5), max_rounds=20)
    assert s.state_dict() == before
    assert len(rounds) >= 2 and all(b[0].role == "reference" for b in rounds)
    # it adds until nothing fits: 12.5 ms fits 2.5 ms of layers
    final = rounds[-1][0].arch
    assert cost(final).latency_ms <= 12.5


def halving_step(space, st, start: str, gains: dict[str, float], margin, rungs: int = 3, **options):
    """One evolution step with successive halving: every rung's children gain ``gains``;
    returns the strategy and the rung (round) count it took to decide."""
    s = create_strategy("snapgen", {"start": start, "halving": True, "halving_margin": margin, **options},
                        seed=0, steps=8)
    rounds = 0
    while not s.decisions and not s.done and rounds < rungs:
        batch = s.propose(st)
        s.update([outcome(c, 0.5 + (gains.get(c.action, 0.0) if c.role == "child" else 0.0), cost(c.arch))
                  for c in batch])
        rounds += 1
    return s, rounds


def test_halving_margin_decides_at_the_first_rung_when_the_leader_is_clear(tiny_space):
    st, gains = state(tiny_space, latency_ms=100.0), {"+conv1d@mid": 0.02}
    s, rounds = halving_step(tiny_space, st, "empty", gains, margin=0.005)
    assert rounds == 1 and s.decisions[0]["action"] == "+conv1d@mid" and s.decisions[0]["rung"] == 0
    assert s.current == Architecture.parse("mid:conv1d:1") and s.rung == 0 and not s.survivors
    # within the noise (0.02 - margin gains nothing): trained on to the next rungs
    s, rounds = halving_step(tiny_space, st, "empty", gains, margin=0.02)
    assert rounds == 3 and s.decisions[0]["action"] == "+conv1d@mid" and s.decisions[0]["rung"] == 2
    s, rounds = halving_step(tiny_space, st, "empty", gains, margin=None)  # the option off: never early
    assert rounds == 3 and s.decisions[0]["rung"] == 2


def test_halving_margin_runner_up_within_the_noise_keeps_training(tiny_space):
    # conv at mid vs conv at up1: same cost, gains 0.020 and 0.015; clear only when 2 margins < 0.005
    st, gains = state(tiny_space, latency_ms=100.0), {"+conv1d@mid": 0.020, "+conv1d@up1": 0.015}
    assert halving_step(tiny_space, st, "empty", gains, margin=0.002)[1] == 1
    s, rounds = halving_step(tiny_space, st, "empty", gains, margin=0.003)
    assert rounds == 3 and s.decisions[0]["action"] == "+conv1d@mid"


def test_halving_margin_converges_early_when_no_addition_could_gain(tiny_space):
    st = state(tiny_space, latency_ms=100.0)
    gains = {a: -0.01 for a in ("+conv1d@mid", "+conv1d@up1", "+conv1d@down0")}  # the rest: 0 gain
    s, rounds = halving_step(tiny_space, st, "empty", gains, margin=0.001, min_gain=0.002)
    assert rounds == 1 and s.done and "converged" in s.stop_reason and s.decisions[0]["action"] is None
    s, rounds = halving_step(tiny_space, st, "empty", gains, margin=0.003, min_gain=0.002)
    assert rounds == 3  # a zero-gain child raised by the margin could gain: not yet


def test_halving_margin_in_a_removal_branch(tiny_space):
    # 13 ms over 12: removing attention loses 0.005/ms, conv 0.01/ms; clear unless the margin
    # brings them level
    st = state(tiny_space, latency_ms=12.0)
    gains = {"-conv1d@mid": -0.01, "-self_attn1d@up1": -0.01}
    s, rounds = halving_step(tiny_space, st, "mid:conv1d:1,up1:self_attn1d:1", gains, margin=0.001)
    assert rounds == 1 and s.branch == "latency" and s.decisions[0]["action"] == "-self_attn1d@up1"
    s, rounds = halving_step(tiny_space, st, "mid:conv1d:1,up1:self_attn1d:1", gains, margin=0.01)
    # not clear at the first rung; the one survivor of the second is the removal to make
    assert rounds == 2 and s.decisions[0]["action"] == "-self_attn1d@up1" and s.decisions[0]["rung"] == 1


def test_halving_margin_must_be_non_negative():
    with pytest.raises(ValueError, match="halving_margin"):
        create_strategy("snapgen", {"halving": True, "halving_margin": -1.0}, seed=0, steps=8)


# how far a decision is from changing (the engine measures estimates less sure than this) ---------
def priced_step(space, st, start: str, gains: dict[str, float], shift: tuple[str, float] | None = None, **options):
    """One evolution step's strategy and outcomes, with ``shift`` = (action, ms) added to that
    child's predicted latency."""
    s = create_strategy("snapgen", {"start": start, **options}, seed=0, steps=10)
    batch = s.propose(st)
    outs = []
    for c in batch:
        base = cost(c.arch)
        extra = shift[1] if shift and c.action == shift[0] else 0.0
        q = 0.5 + (gains.get(c.action, 0.0) if c.role == "child" else 0.0)
        outs.append(outcome(c, q, Cost(base.latency_ms + extra, base.memory_bytes)))
    return s, outs


def chosen_action(s, outs):
    notes = s.update(outs)
    return next((o.candidate.action for o in outs if notes.get(o.candidate.id, {}).get("chosen")), None)


def test_decision_gap_is_the_latency_change_that_swaps_the_best_two_removals(tiny_space):
    # over budget: -self_attn1d@up1 loses 0.01 for 2 ms (0.005/ms, chosen), -cross_attn1d@mid 0.03
    # for 4 ms (0.0075/ms). The leader's ΔLat would have to shrink to 0.01/0.0075 ms (a change of
    # 2/3 ms) to lose first place; the runner-up's to grow to 6 ms (2 ms), or to cross zero (4 ms:
    # a removal priced as costing latency ranks first)
    st, start = state(tiny_space, latency_ms=15.0), "mid:cross_attn1d:1,up1:self_attn1d:1"
    gains = {"-cross_attn1d@mid": -0.03, "-self_attn1d@up1": -0.01}
    s, outs = priced_step(tiny_space, st, start, gains)
    gaps = s.decision_gaps_ms(outs)
    by_action = {o.candidate.action: gaps[o.candidate.id] for o in outs if o.candidate.id in gaps}
    assert by_action == pytest.approx({"-self_attn1d@up1": 2 / 3, "-cross_attn1d@mid": 2.0}, rel=2e-3)
    for ms, action in ((2 / 3 * 0.99, "-self_attn1d@up1"), (2 / 3 * 1.01, "-cross_attn1d@mid")):
        s, outs = priced_step(tiny_space, st, start, gains, shift=("-self_attn1d@up1", ms))
        assert chosen_action(s, outs) == action


@pytest.mark.parametrize("combine", ["rank", "latency", "normalized"])
def test_decision_gap_no_smaller_change_of_one_child_swaps_the_leader_and_the_gap_does(tiny_space, combine):
    import random

    st = state(tiny_space, latency_ms=100.0)
    rng = random.Random(combine)
    for _ in range(3):
        s, outs = priced_step(tiny_space, st, "empty", {})
        gains = {o.candidate.action: rng.uniform(0.001, 0.05) for o in outs if o.candidate.role == "child"}
        s, outs = priced_step(tiny_space, st, "empty", gains, combine=combine)
        gaps = {o.candidate.action: g for o in outs for cid, g in s.decision_gaps_ms(outs).items()
                if cid == o.candidate.id}
        leader = chosen_action(*priced_step(tiny_space, st, "empty", gains, combine=combine))
        for action, gap in gaps.items():  # each child's own gap
            swaps = set()
            for sign in (1, -1):
                for f in [k / 20 for k in range(1, 20)] + [0.99]:  # changes below it keep the leader
                    assert chosen_action(*priced_step(tiny_space, st, "empty", gains, (action, sign * f * gap),
                                                      combine=combine)) == leader
                swaps.add(chosen_action(*priced_step(tiny_space, st, "empty", gains, (action, sign * gap * 1.001),
                                                    combine=combine)))
            assert swaps - {leader}  # and a change of its size, one way or the other, swaps it
        assert gaps  # some change of one child swaps the leader


def test_no_decision_gap_where_latency_does_not_rank(tiny_space):
    st = state(tiny_space, latency_ms=100.0, memory_mib=(BASE_BYTES + 1500.0) / 2**20)
    start, gains = "mid:conv1d:1,up1:self_attn1d:1", {"-conv1d@mid": -0.02, "-self_attn1d@up1": -0.01}
    s, outs = priced_step(tiny_space, st, start, gains)
    assert s.branch == "memory" and s.decision_gaps_ms(outs) == {}
    s, outs = priced_step(tiny_space, state(tiny_space, latency_ms=100.0), "empty", {"+conv1d@mid": 0.01},
                          combine="memory")
    assert s.decision_gaps_ms(outs) == {}
    s, outs = priced_step(tiny_space, state(tiny_space, latency_ms=100.0), "empty", {"+conv1d@mid": 0.01})
    assert s.decision_gaps_ms(outs) == {}  # one addition gains: nothing to swap with
    s = create_strategy("snapgen", {"train_steps": 5}, seed=0, steps=10)
    batch = s.propose(state(tiny_space, latency_ms=100.0))
    assert s.decision_gaps_ms([outcome(c, 0.5, cost(c.arch)) for c in batch]) == {}  # a training round
