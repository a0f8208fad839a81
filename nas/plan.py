"""``hwnas search run CONFIG --dry-run``: the plan of a campaign and what it will cost, without
training anything. The space is built on the meta device and priced with the analytic
backend; the coarse search prunes it; the evolution is simulated on the predicted costs
alone, assuming every addition helps (the longest path Algorithm A1 can take), to count
the rounds and candidates. Budgets no architecture can meet are reported as ``problem``.
GPU-hours use the paper's 8 A100 GPU-hours per action
evaluation (K steps) unless ``search.gpu_hours_per_candidate`` says otherwise, and count the
training of the current model between rounds at the same rate per step.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from nas.config import Experiment
from nas.engine import BudgetError, TableCost, check_budgets
from search_spaces.budgets import MIB
from search_spaces.space import SearchSpace

PAPER_GPU_HOURS_PER_CANDIDATE = 8.0  # SnapGen-V: 20K iterations on 8 A100s ≈ 8 GPU-hours per action


def simulate_snapgen(space, predict, budgets, allows, max_rounds: int) -> list[int]:
    """Candidates (reference included) of each evolution step while additions fit, taking the
    cheapest fitting addition each time: an upper bound on the rounds of a real search."""
    arch, per_round = space.empty, []
    for _ in range(max_rounds):
        children = []
        for action in space.actions(arch):
            if action.kind != "add":
                continue
            child = arch.apply(action)
            cost = predict(child)
            if allows(child) and not budgets.violations(cost.latency_ms, cost.memory_bytes):
                children.append((cost.latency_ms, str(action), child))
        per_round.append(len(children) + 1)
        if not children:
            break
        arch = min(children)[2]
    return per_round


def dry_run(exp: Experiment) -> dict:
    from lookup_tables import LutConfig, build_table
    from lookup_tables.prune import prune

    space = SearchSpace(exp.space)
    lut = LutConfig(backend="analytic", device=exp.lut.device_spec or exp.lut.device) \
        if exp.lut.backend != "analytic" else exp.lut
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(space, replace(lut, path=None), Path(tmp) / "analytic.parquet", progress=False)
    predict = TableCost(table, space)
    try:
        check_budgets(space, predict, exp.budgets)
        problem = None
    except BudgetError as exc:
        problem = str(exc)
    pruning = prune(space, table, exp.budgets)
    s = exp.search
    per_round = simulate_snapgen(space, predict, exp.budgets, pruning.allows, s.max_rounds) \
        if s.strategy == "snapgen" and problem is None else []
    candidates = sum(per_round) if per_round else (s.max_train_steps or 0) // exp.candidate_steps
    if s.max_train_steps is not None:
        candidates = min(candidates, s.max_train_steps // exp.candidate_steps)
    per_candidate = s.gpu_hours_per_candidate or PAPER_GPU_HOURS_PER_CANDIDATE
    between = s.options.get("train_steps", 0) if s.strategy == "snapgen" else 0  # the current model, per round
    steps = candidates * exp.candidate_steps + len(per_round) * between
    empty, full = predict(space.empty), predict(space.full)
    return {
        "problem": problem, "name": exp.name, "strategy": s.strategy, "backend": f"analytic ({lut.device})",
        "slots": len(space.slots), "ops": list(space.config.ops), "space_size": space.size,
        "pruned_states": len(pruning.pruned), "space_size_after_pruning": pruning.size_after,
        "budget_latency_ms_per_step": exp.budgets.latency_ms_per_step,
        "budget_memory_mib": exp.budgets.memory_mib,
        "empty": {"latency_ms": empty.latency_ms, "memory_mib": empty.memory_bytes / MIB},
        "full": {"arch": str(space.full), "latency_ms": full.latency_ms, "memory_mib": full.memory_bytes / MIB},
        "rounds": len(per_round) or None, "candidates_per_round": per_round, "candidates": candidates,
        "steps_per_candidate": exp.candidate_steps, "train_steps_between_rounds": between, "training_steps": steps,
        "gpu_hours_per_candidate": per_candidate, "gpu_hours": steps / exp.candidate_steps * per_candidate,
        "workers": s.workers,
    }
