"""The tabulated benchmark's pool, successive halving inside A1, budget accounting."""
from __future__ import annotations

import pandas as pd
import pytest

from core.budgets import Budgets
from nas.strategies import SearchState, create_strategy
from nas.tabular import TabularBenchmark, TabularError, TabularPool, drive, snapgen_step
from nas.workers import Job
from search_spaces.architecture import Architecture


@pytest.fixture
def table(tmp_path, tiny_space):
    """Every architecture of the tiny space at one layer per slot, conv better than attention;
    quality at K/4 and K/2 a noisier, smaller version of the one at K."""
    import dataclasses

    from search_spaces.space import SearchSpace
    from tests.nas.conftest import analytic_cost, synthetic_quality

    space = SearchSpace(dataclasses.replace(tiny_space.config, max_layers=1))
    rows = []
    for arch in space:
        cost = analytic_cost(space, arch)
        for seed in (0, 1):
            q = synthetic_quality(arch, seed)
            rows.append({"arch": str(arch), "seed": seed, "status": "ok", "quality": q, "quality@2": 0.25 * q,
                         "quality@5": 0.5 * q, "steps": 10, "seconds": 10.0, "latency_ms": cost.latency_ms,
                         "memory_bytes": cost.memory_bytes})
    path = tmp_path / "t.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return space, TabularBenchmark.load(path)


def test_pool_answers_from_the_table_and_names_an_unknown_architecture(table):
    space, t = table
    arch = Architecture.parse("mid:conv1d:1")
    (job, res), = list(TabularPool(t).evaluate([Job("a", arch, 10, 1)]))
    assert res.status == "ok" and res.quality == t.quality(arch, 1) and res.seconds == 10.0
    (job, res), = list(TabularPool(t).evaluate([Job("a", arch, 5, 0)]))
    assert res.quality == t.rows(arch)[0].quality[5] and res.seconds == 5.0
    with pytest.raises(TabularError, match=r"holds no architecture 'mid:conv1d:2'"):
        list(TabularPool(t).evaluate([Job("b", Architecture.parse("mid:conv1d:2"), 10, 0)]))


def test_any_strategy_runs_against_the_table_in_seconds(table):
    space, t = table
    budgets = Budgets(latency_ms=20.0)
    for name, opts in [("random", {}), ("snapgen", {}), ("optuna", {"sampler": "tpe"})]:
        s = create_strategy(name, opts, 0, 10)
        outcomes, spent = drive(s, SearchState(space, t.predict, budgets), TabularPool(t), 100)
        assert outcomes and spent["steps"] <= 100 and spent["candidate_seconds"] > 0


def _one_step(space, t, budgets, arch, halving, seed=0):
    s = create_strategy("snapgen", {"start": str(arch), "halving": halving}, seed, 8)
    outcomes, spent = drive(s, SearchState(space, t.predict, budgets), TabularPool(t), None,
                            max_rounds=3 if halving else 1)
    return s, outcomes, spent


def test_halving_trains_the_better_half_further_and_saves_steps(table):
    space, t = table
    budgets = Budgets(latency_ms=1e6)
    full, _, spent_full = _one_step(space, t, budgets, Architecture(), False)
    half, outs, spent_half = _one_step(space, t, budgets, Architecture(), True)
    children = [o for o in outs if o.candidate.role == "child"]
    rungs = [[o for o in children if f".h{r}." in o.candidate.id] for r in range(3)]
    n = len(rungs[0])
    assert n == len(full.eligible) >= 4
    assert [o.candidate.steps for o in rungs[0]] == [2] * n  # K/4
    assert len(rungs[1]) == -(-n // 2) and len(rungs[2]) == -(-len(rungs[1]) // 2)
    assert all(o.candidate.task_options["total_steps"] == 8 for o in rungs[2])  # continued to K
    # the survivors are the better ones at the lower rung, continued from their own weights
    best0 = sorted(rungs[0], key=lambda o: o.quality, reverse=True)[:len(rungs[1])]
    assert {o.candidate.arch for o in rungs[1]} == {o.candidate.arch for o in best0}
    assert all(o.candidate.parent_weights.replace(".h0.", ".h1.") == o.candidate.id for o in rungs[1])
    assert half.decisions[0]["action"] == full.decisions[0]["action"]
    assert spent_half["steps"] < spent_full["steps"]


def test_halving_margin_decides_early_on_the_table_and_agrees(table):
    """The margin rule on the synthetic table (ΔQ without seed noise, so a small margin is
    clear): every start decides at the first rung, as full evaluation does, for a quarter of
    the steps; a margin wider than every gap leaves the schedule as it was."""
    space, t = table
    budgets = Budgets(latency_ms=1e6)
    for arch in [Architecture(), Architecture.parse("mid:conv1d:1"), Architecture.parse("down0:self_attn1d:1")]:
        full, spent_full, n, _ = snapgen_step(t, space, budgets, arch, 0, 8, None)
        early, spent_early, _, rung = snapgen_step(t, space, budgets, arch, 0, 8, {"halving_margin": 1e-6})
        wide, spent_wide, _, rung_wide = snapgen_step(t, space, budgets, arch, 0, 8, {"halving_margin": 10.0})
        assert n >= 2 and early == full == wide
        assert rung == 0 and spent_early == spent_full // 4  # (children + reference) x K/4
        assert rung_wide == 2 and spent_early < spent_wide < spent_full


def test_halving_is_off_by_default():
    from nas.strategies.snapgen import SnapgenOptions

    assert SnapgenOptions().halving is False


def test_budget_accounting_in_status_and_events_counts_work_once(tmp_path, tiny_config_path, work, small_lut):
    from nas.campaign import Campaign
    from nas.config import Experiment
    from nas.engine import Search
    from tests.nas.conftest import small_config
    from tests.nas.test_engine import FakePool, Killed

    exp = Experiment.load(small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut,
                                       search={"strategy": "random", "max_train_steps": 18, "workers": 0}))
    camp = Campaign.create(tmp_path / "camp", exp.to_dict())
    with pytest.raises(Killed):
        Search(camp, exp, pool=FakePool(kill_after=3)).run()
    Search(Campaign.open(camp.root), pool=FakePool()).run()
    budget = camp.status()["budget"]
    assert budget["training_steps"] == 18 and budget["candidates_trained"] == 6  # nothing counted twice
    assert budget["candidate_seconds"] == pytest.approx(6 * 0.01)
    assert budget["wall_s"] > 0 and budget["gpu_hours"] is None  # trained on the CPU
    rounds = [e for e in camp.events() if e["event"] == "round_finished"]
    cached = sum(e["cached_steps"] for e in camp.events() if e["event"] == "round_started")
    assert cached == 3  # the killed round's finished candidate, reloaded, not retrained
    assert sum(e["round_steps"] for e in rounds) == 18 - cached  # the round's own work, by this process
    assert sum(e["round_candidate_seconds"] for e in rounds) == pytest.approx(5 * 0.01)


def test_a_task_candidate_reaches_its_worker_function(monkeypatch):
    """The seam mobilevd's supernet uses: Candidate.task -> Job.task -> evaluators.supernet.TASKS."""
    from evaluators import supernet
    from evaluators.runner import CandidateResult
    from nas.workers import InlinePool

    seen = []

    def echo(runner, arch, parent_state, steps, seed, options):
        seen.append((str(arch), steps, seed, options))
        return CandidateResult(str(arch), "ok", None, 1.0, {"importance/x": 0.5})

    monkeypatch.setitem(supernet.TASKS, "echo", echo)
    pool = InlinePool(lambda: type("R", (), {"prepare": lambda self, progress=None: {},
                                             "run": lambda self, *a: pytest.fail("plain run called")})())
    with pool:
        (job, res), = list(pool.evaluate([Job("s0", Architecture(), 4, 7, None, task="echo", options={"n": 2})]))
    assert seen == [("empty", 4, 7, {"n": 2})] and res.breakdown == {"importance/x": 0.5}


def test_the_table_trains_exactly_as_the_search_does(tmp_path, tiny_config_path, work):
    """FidelityRunner (the table's rows) and CandidateRunner (a search's candidate) share one
    training loop: with per-operator learning rates and frame-correlated noise on, the
    quality at K is the same to the last digit, and the lower fidelities are scored on the way."""
    import dataclasses

    from evaluators import CandidateRunner
    from nas.config import Experiment
    from nas.tabular import FidelityRunner
    from tests.nas.conftest import small_config

    exp = Experiment.load(small_config(tmp_path / "c.yaml", tiny_config_path, work))
    train = dataclasses.replace(exp.train, steps=8, lr_scale={"self_attn1d": 5.0}, noise_correlation=0.5)
    arch = "down0:conv1d:1,mid:self_attn1d:1"
    args = (exp.space, exp.data, train, exp.evaluator, exp.search.workdir, exp.seed)
    search = CandidateRunner(*args).run(arch, seed=3)
    table = FidelityRunner(*args).run(arch, seed=3)
    assert search.status == table.status == "ok"
    assert table.quality == search.quality
    assert sorted(k for k in table.breakdown if k.startswith("quality@")) == ["quality@2", "quality@4", "quality@8"]
    assert table.breakdown["quality@8"] == search.quality
    # and the per-operator learning rate is really in that loop: without it the quality moves
    plain = FidelityRunner(*args[:2], dataclasses.replace(train, lr_scale={}), *args[3:]).run(arch, seed=3)
    assert plain.quality != table.quality
