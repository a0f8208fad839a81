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


def test_unreachable_ray_address(tmp_path, tiny_config_path, work, small_lut):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut)
    _one_line_error(hwnas("search", "run", cfg, "--out", tmp_path / "camp", "--ray-address", "127.0.0.1:9"),
                    "127.0.0.1:9", "unreachable")


def test_campaign_directory_of_another_config(tmp_path, tiny_config_path, work, small_lut):
    cfg = small_config(tmp_path / "c.yaml", tiny_config_path, work, lut=small_lut)
    camp = tmp_path / "camp"
    Campaign.create(camp, Experiment.load(cfg).to_dict())
    before = (camp / "config.yaml").read_text()
    other = yaml.safe_load(cfg.read_text())
    other["seed"] = 7
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    _one_line_error(hwnas("search", "run", tmp_path / "other.yaml", "--out", camp), "another config", str(camp))
    assert (camp / "config.yaml").read_text() == before


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
    assert plan["training_steps"] == (plan["candidates"] + plan["rounds"]) * 20000  # A1: train 20K between rounds
    assert plan["gpu_hours"] == pytest.approx(plan["training_steps"] / 20000 * 8.0)
    assert plan["candidates_per_round"] == sorted(plan["candidates_per_round"], reverse=True)
