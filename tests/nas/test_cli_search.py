"""Bad input to the search commands: one line on stderr, exit code 2, nothing lost."""
from __future__ import annotations

import json

import pytest
import yaml

from nas.campaign import Campaign
from nas.config import Experiment
from tests.nas.conftest import hwnas, small_config


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwnas: error:"), proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_budget_no_architecture_can_meet(tmp_path, tiny_config_path, work, small_lut):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut, budgets={"latency_ms": 1e-4})
    line = _one_line_error(hwnas("search", "run", cfg, "--out", tmp_path / "camp"),
                           "budgets.latency_ms", "cheapest", "'empty'")
    assert " ms per step and " in line  # the cheapest architecture's cost is quoted


def test_a_training_budget_that_cannot_pay_for_the_first_round(tmp_path, tiny_config_path, work, small_lut):
    import re

    # It used to end the campaign before any training, as "training budget spent", exit 0.
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut, search={"max_train_steps": 5})
    line = _one_line_error(hwnas("search", "run", cfg, "--out", tmp_path / "camp"),
                           "search.max_train_steps = 5 cannot pay for the first round")
    n, need = map(int, re.search(r"its (\d+) candidates train (\d+) steps", line).groups())
    assert n >= 2 and need == 3 * n  # three steps per candidate in the small config
    _one_line_error(hwnas("search", "run", cfg, "--dry-run"), f"give {need} or more")
    enough = small_config(tmp_path / "d.yaml", tiny_config_path, work, lut=small_lut, search={"max_train_steps": need})
    plan = json.loads(hwnas("search", "run", enough, "--dry-run", "--json").stdout)
    assert plan["problem"] is None and plan["candidates_per_round"][0] == n


def test_unreachable_ray_address(tmp_path, tiny_config_path, work, small_lut):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut)
    _one_line_error(hwnas("search", "run", cfg, "--out", tmp_path / "camp", "--ray-address", "127.0.0.1:9"),
                    "127.0.0.1:9", "unreachable")


def test_campaign_directory_of_another_config(tmp_path, tiny_config_path, work, small_lut):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut)
    camp = tmp_path / "camp"
    Campaign.create(camp, Experiment.load(cfg).to_dict())
    (camp / "checkpoints" / "r0.ref.pt").write_bytes(b"")  # it has finished a candidate
    before = (camp / "config.yaml").read_text()
    other = yaml.safe_load(cfg.read_text())
    other["seed"] = 7
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    _one_line_error(hwnas("search", "run", tmp_path / "other.yaml", "--out", camp), "another config", str(camp),
                    "--restart")
    assert (camp / "config.yaml").read_text() == before


def test_a_campaign_that_failed_before_its_first_candidate_blocks_nothing(tmp_path, tiny_config_path, work,
                                                                           small_lut):
    camp = tmp_path / "camp"
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut, budgets={"latency_ms": 1e-4})
    first = _one_line_error(hwnas("search", "run", cfg, "--out", camp), "budgets.latency_ms")
    assert "what would fit: budgets.latency_ms >= " in first
    resumed = _one_line_error(hwnas("search", "resume", camp), "frozen config", "search run CONFIG")
    # the user edits the budget and runs again, same --out: the unfinished campaign is replaced
    edited = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut,
                          budgets={"memory_mib": 1e-3})
    _one_line_error(hwnas("search", "run", edited, "--out", camp), "budgets.memory_mib", "memory_mib >= ")
    assert yaml.safe_load((camp / "config.yaml").read_text())["budgets"]["memory_mib"] == 1e-3
    assert "another config" not in resumed


def test_relative_budget_needs_the_backbone_row(tmp_path, tiny_config_path, work, small_lut):
    from lookup_tables import LookupTable
    from lookup_tables.grid import backbone_key
    from search_spaces.space import SearchSpace

    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut)
    space = SearchSpace(Experiment.load(cfg).space)
    table = LookupTable.load(small_lut)
    table.rows = table.rows.drop(backbone_key(space))
    table.save(tmp_path / "no_backbone.parquet")
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=tmp_path / "no_backbone.parquet",
                       budgets={"latency_over_backbone_pct": 5})
    _one_line_error(hwnas("search", "run", cfg, "--out", tmp_path / "camp"), "budgets.latency_over_backbone_pct",
                    "backbone")


def test_relative_budgets_resolve_against_the_tables_backbone(tmp_path, tiny_config_path, work, small_lut):
    from lookup_tables import LookupTable
    from nas.engine import TableCost, check_budgets, resolve_budgets
    from search_spaces.space import SearchSpace

    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut,
                       budgets={"latency_over_backbone_pct": 5, "memory_over_backbone_pct": 1})
    exp = Experiment.load(cfg)
    space = SearchSpace(exp.space)
    cost = TableCost(LookupTable.load(small_lut), space)
    empty = cost.prediction(space.empty)
    b = resolve_budgets(space, cost, exp.budgets)
    assert b.latency_ms_per_step == pytest.approx(1.05 * empty.latency_ms)
    assert b.memory_bytes == int(1.01 * empty.memory_bytes)
    check_budgets(space, cost, b, exp.budgets)  # the backbone alone always fits a relative budget
    with pytest.raises(ValueError, match="resolved"):
        exp.budgets.latency_ms_per_step  # unresolved relative budgets judge nothing


def test_evaluate_campaign_that_is_not_a_campaign(tmp_path, tiny_config_path):
    _one_line_error(hwnas("evaluate", tiny_config_path, "--arch", "empty", "--campaign", tmp_path),
                    "not a campaign directory")


def test_corrupt_trials_database_is_left_untouched(tmp_path, tiny_config_path, work, small_lut):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut)
    camp = tmp_path / "camp"
    Campaign.create(camp, Experiment.load(cfg).to_dict())
    garbage = b"this is not a database\x00" * 100
    (camp / "trials.db").write_bytes(garbage)
    _one_line_error(hwnas("search", "resume", camp), "trials.db", "corrupt")
    _one_line_error(hwnas("pareto", "show", camp, "--json"), "corrupt")
    assert (camp / "trials.db").read_bytes() == garbage


def test_not_a_campaign_and_bad_plot_suffix(tmp_path):
    _one_line_error(hwnas("search", "status", tmp_path), "not a campaign directory")
    _one_line_error(hwnas("pareto", "plot", tmp_path / "nowhere", "--out", tmp_path / "f.svg"), "no such campaign")


def test_unknown_strategy_names_the_allowed_ones(tmp_path, tiny_config_path, work, small_lut):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut, search={"strategy": "annealing"})
    _one_line_error(hwnas("search", "run", cfg, "--dry-run"), "annealing", "snapgen")


def test_dry_run_prices_prunes_and_plans_the_paper_setting():
    # The committed paper setting as it is: SD-1.5 at 15x64x64 FP16, iPhone budgets, analytic ANE.
    proc = hwnas("search", "run", "experiments/snapgen_v.yaml", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    plan = json.loads(proc.stdout)
    assert plan["problem"] is None and plan["space_size"] > 1e9 and plan["slots"] == 9
    assert 0 < plan["space_size_after_pruning"] < plan["space_size"]  # the coarse search prunes
    assert plan["empty"]["latency_ms"] < plan["budget_latency_ms_per_step"]
    assert plan["empty"]["memory_mib"] < plan["budget_memory_mib"]
    assert plan["candidates"] == sum(plan["candidates_per_round"]) > plan["rounds"] > 1
    # A1 trains the current model 20K steps before each evolution step (and once more before the last,
    # which finds nothing to add)
    assert plan["train_steps_between_rounds"] in (plan["rounds"] * 20000, (plan["rounds"] + 1) * 20000)
    assert plan["training_steps"] == plan["candidates"] * 20000 + plan["train_steps_between_rounds"]
    assert plan["gpu_hours"] == pytest.approx(plan["training_steps"] / 20000 * 8.0)
    assert plan["candidates_per_round"] == sorted(plan["candidates_per_round"], reverse=True)


def test_dry_run_of_cpu_training_states_no_paper_gpu_hours(tmp_path):
    """The paper's 8 GPU-hours per candidate price 20K steps on 8 A100s, not K steps on a CPU:
    the README's main job (train.device cpu) gets no GPU-hours unless its config states them."""
    plan = json.loads(hwnas("search", "run", "experiments/tiny.yaml", "--dry-run", "--json").stdout)
    assert plan["candidates"] > 0 and plan["gpu_hours"] is None and plan["gpu_hours_per_candidate"] is None
    cfg = yaml.safe_load(open("experiments/tiny.yaml"))
    cfg["search"]["gpu_hours_per_candidate"] = 0.01
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    stated = json.loads(hwnas("search", "run", tmp_path / "t.yaml", "--dry-run", "--json").stdout)
    assert stated["gpu_hours"] == pytest.approx(stated["training_steps"] / stated["steps_per_candidate"] * 0.01)
    # the final stage is priced apart, at its most: tiny.yaml's 8 + 3 architectures x 960 steps
    assert plan["rescore_architectures_at_most"] == 11 and plan["rescore_steps_at_most"] == 11 * 960
    assert stated["rescore_gpu_hours_at_most"] == pytest.approx(11 * 960 / stated["steps_per_candidate"] * 0.01)
