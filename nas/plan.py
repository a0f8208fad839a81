"""``hwnas search run CONFIG --dry-run``: the plan of a campaign and what it will cost, without
training anything. The space is built on the meta device and priced with the analytic
backend; the coarse search prunes it; the strategy simulates itself on the predicted costs alone
(``Strategy.simulate``: every added layer helps, the longest path an additive search can
take) to count the rounds, candidates and training steps. Budgets no architecture can
meet are reported as ``problem``. GPU-hours use ``search.gpu_hours_per_candidate`` where set,
else, for training on a GPU (``train.device: cuda``), the paper's 8 A100 GPU-hours per action
evaluation (K steps); training of the current model between rounds costs the same per step.
Training on a CPU with no stated figure has no GPU-hours (the paper's would mislead).
The final stage (``rescore``) is priced apart, at its most: the shortlist's largest size
times its steps, at the same cost per step.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from core.budgets import MIB, Budgets
from nas.config import Experiment
from nas.engine import BudgetError, TableCost, check_budgets, check_first_round, resolve_budgets
from nas.strategies import SearchState, create_strategy
from search_spaces.space import SearchSpace

PAPER_GPU_HOURS_PER_CANDIDATE = 8.0  # SnapGen-V: 20K iterations on 8 A100s ≈ 8 GPU-hours per action


def dry_run(exp: Experiment) -> dict:
    from lookup_tables import LutConfig, build_table
    from lookup_tables.prune import prune

    space = SearchSpace(exp.space)
    lut = exp.lut if exp.lut.backend == "analytic" else LutConfig(backend="analytic", device=exp.lut.device)
    with tempfile.TemporaryDirectory() as tmp:
        table = build_table(space, replace(lut, path=None), Path(tmp) / "analytic.parquet", progress=False)
    predict = TableCost(table, space)
    budgets = exp.budgets
    try:
        budgets = resolve_budgets(space, predict, exp.budgets)
        check_budgets(space, predict, budgets, exp.budgets)
        problem = None
    except BudgetError as exc:
        problem = str(exc)
    budgets = Budgets() if budgets.relative else budgets  # unresolvable: price without them
    pruning = prune(space, table, budgets)
    s = exp.search
    rounds = []
    if problem is None:
        state = SearchState(space, predict, budgets, pruning.allows, s.max_train_steps)
        strategy = create_strategy(s.strategy, s.options, exp.seed, exp.candidate_steps)
        rounds = strategy.simulate(state, s.max_rounds)
        try:
            check_first_round(exp, state)
        except BudgetError as exc:
            problem = str(exc)
    # candidates are what the strategy evaluates; training its current model between evolution
    # steps (SnapGen-V's A1, role "train") costs steps but is not a candidate
    evaluated = [[c for c in batch if c.role != "train"] for batch in rounds]
    per_round = [len(batch) for batch in evaluated if batch]
    candidates = sum(per_round)
    between = sum(c.steps for batch in rounds for c in batch if c.role == "train")
    steps = sum(c.steps for batch in rounds for c in batch)
    per_candidate = s.gpu_hours_per_candidate or (
        PAPER_GPU_HOURS_PER_CANDIDATE if exp.train.device.startswith("cuda") else None)
    r = exp.rescore  # the final stage: at most this many architectures, trained r.steps each
    rescore_steps = r.steps * r.max_architectures if r.enabled else 0
    empty, full = predict(space.empty), predict(space.full)
    return {
        "problem": problem, "name": exp.name, "strategy": s.strategy, "backend": f"analytic ({lut.device})",
        "slots": len(space.slots), "ops": list(space.config.ops), "space_size": space.size,
        "pruned_states": len(pruning.pruned), "space_size_after_pruning": pruning.size_after,
        "budget_latency_ms_per_step": budgets.latency_ms_per_step,
        "budget_memory_mib": budgets.memory_mib,
        "empty": {"latency_ms": empty.latency_ms, "memory_mib": empty.memory_bytes / MIB},
        "full": {"arch": str(space.full), "latency_ms": full.latency_ms, "memory_mib": full.memory_bytes / MIB},
        "rounds": len(per_round) or None, "candidates_per_round": per_round, "candidates": candidates,
        "steps_per_candidate": exp.candidate_steps, "train_steps_between_rounds": between, "training_steps": steps,
        "gpu_hours_per_candidate": per_candidate,
        "gpu_hours": None if per_candidate is None else steps / exp.candidate_steps * per_candidate,
        "rescore_architectures_at_most": r.max_architectures if r.enabled else None,
        "rescore_steps_at_most": rescore_steps or None,
        "rescore_gpu_hours_at_most": None if per_candidate is None or not rescore_steps else
        rescore_steps / exp.candidate_steps * per_candidate,
        "workers": s.workers,
    }
