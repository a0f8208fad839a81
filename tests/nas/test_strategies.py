"""Contract tests over every registered strategy (timm's list_models pattern)."""
from __future__ import annotations

import json

import pytest

from core.errors import ConfigError, UnknownNameError
from nas.strategies import STRATEGIES, create_strategy

STEPS = 100
OPTIONS = {"snapgen": [{}, {"combine": "normalized"}, {"train_steps": 50}, {"halving": True},
                       {"halving": True, "halving_margin": 0.01}],
           "random": [{}], "optuna": [{"sampler": "nsga2"}, {"sampler": "tpe"}],
           "mobilevd": [{}, {"segments": 4, "n": 1}]}
CASES = [(name, opts) for name in STRATEGIES.names() for opts in OPTIONS.get(name, [{}])]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for n, o in CASES]


def test_every_strategy_has_contract_cases():
    assert set(OPTIONS) == set(STRATEGIES.names())


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_reproducible_with_a_seed(world, tiny_space, name, options):
    from tests.nas.conftest import World

    runs = []
    for _ in range(2):
        w = World(tiny_space)
        w.drive(create_strategy(name, options, seed=3, steps=STEPS))
        runs.append([(c.id, str(c.arch), c.seed, c.parent_weights) for c in w.proposed])
    assert runs[0] == runs[1] and len(runs[0]) >= 4
    other = World(tiny_space)
    other.drive(create_strategy(name, options, seed=4, steps=STEPS))
    if name not in ("snapgen", "mobilevd"):  # their paths follow the objective (mobilevd: the learned
        # importances); only their data seeds move
        assert [str(c.arch) for c in other.proposed] != [a for _, a, _, _ in runs[0]]
    assert [c.seed for c in other.proposed] != [s for _, _, s, _ in runs[0]]


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_state_round_trip_resumes_identically(world, tiny_space, name, options):
    from tests.nas.conftest import World

    full = World(tiny_space)
    full.drive(create_strategy(name, options, seed=1, steps=STEPS))
    part = World(tiny_space)
    first = create_strategy(name, options, seed=1, steps=STEPS)
    part.drive(first, max_rounds=2)
    used = sum(c.steps for c in part.proposed)
    state = json.loads(json.dumps(first.state_dict()))  # a checkpoint is JSON
    second = create_strategy(name, options, seed=1, steps=STEPS)
    second.load_state_dict(state)
    assert second.state_dict() == state
    part.drive(second, max_train_steps=3000 - used)
    assert [(c.id, str(c.arch), c.seed) for c in part.proposed] == [(c.id, str(c.arch), c.seed) for c in full.proposed]


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_never_an_invalid_architecture_and_budgets_respected(world, name, options):
    strategy = create_strategy(name, options, seed=0, steps=STEPS)
    outcomes = world.drive(strategy)
    assert outcomes
    for c in world.proposed:
        world.space.validate(c.arch)
        assert c.steps > 0
    assert sum(c.steps for c in world.proposed) <= 3000
    ids = [c.id for c in world.proposed]
    assert len(ids) == len(set(ids))
    answer = strategy.answer(world.state(), outcomes)
    assert answer is not None and world.state().fits(answer)
    assert answer.total_layers > 0  # the budgets leave room for temporal layers: it found some


def test_unknown_strategy_and_bad_options_name_the_key():
    with pytest.raises(UnknownNameError, match="allowed: .*snapgen"):
        create_strategy("annealing", {}, 0, STEPS)
    with pytest.raises(ConfigError, match="search.options.combine"):
        create_strategy("snapgen", {"combine": "max"}, 0, STEPS)
    with pytest.raises(ConfigError, match="search.options.sampler"):
        create_strategy("optuna", {"sampler": "cmaes"}, 0, STEPS)


def test_gp_sampler_proposes_reproducibly_within_budgets(tiny_space):
    """Optuna's GPSampler (LogEHVI, constraints from the trials), on a budget of 8 candidates:
    the contract cases' 30 would cost minutes of GP fitting on a shared CPU."""
    from tests.nas.conftest import World

    runs = []
    for _ in range(2):
        w = World(tiny_space)
        s = create_strategy("optuna", {"sampler": "gp", "sampler_options": {"n_startup_trials": 3}}, seed=2,
                            steps=STEPS)
        w.drive(s, max_train_steps=8 * STEPS)
        runs.append([str(c.arch) for c in w.proposed])
        for c in w.proposed:
            assert w.state().fits(c.arch)
    assert runs[0] == runs[1] and len(runs[0]) == 8 and len(set(runs[0])) == 8


def test_a_stuck_sampler_stops_after_max_repeats(tiny_space):
    """GPSampler where only the evaluated architecture fits: a rejected ask leaves its fit as it
    was, so it asks for the one infeasible architecture again and again; the search stops after
    max_repeats such asks instead of max_asks GP fits."""
    import dataclasses

    from core.budgets import Budgets
    from nas.strategies import SearchState
    from search_spaces.space import SearchSpace
    from tests.nas.conftest import analytic_cost, outcome

    space = SearchSpace(dataclasses.replace(tiny_space.config, slots=("mid",), ops=("conv1d",), max_layers=1))
    empty_ms = analytic_cost(space, space.parse("empty")).latency_ms
    state = SearchState(space, lambda a: analytic_cost(space, a), Budgets(latency_ms=empty_ms + 1e-6))
    s = create_strategy("optuna", {"sampler": "gp", "batch": 1, "max_repeats": 4,
                                   "sampler_options": {"n_startup_trials": 1}}, seed=0, steps=STEPS)
    (c,) = s.propose(state)
    assert str(c.arch) == "empty"
    s.update([outcome(c, 0.5, analytic_cost(space, c.arch))])
    assert s.propose(state) == [] and s.done
    assert s.stop_reason == "the sampler is stuck: it asked for mid:conv1d:1 (outside the budgets) 4 times in a row"
