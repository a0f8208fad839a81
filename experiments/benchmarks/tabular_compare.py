"""Strategies compared on the tabulated benchmark (issue 14): equal budgets, many seeds.

Every strategy runs against ``TabularPool`` (experiments/benchmarks/results/tabular_tiny.parquet,
built by build_tabular.py) with the same space, lookup-table costs, budgets (the tiny
experiment's: 8 % latency and 1.3 % memory over the backbone alone) and training budget
(``--candidates`` × K steps). A strategy's evaluated set is scored under the table's fixed
protocol (the seed-mean quality at K of each architecture it evaluated, whatever noisy seed
row it observed while searching): normalised hypervolume (against one reference point
for every run: the worst feasible quality in the table, the budgets; normalised by the box
up to the best feasible value of each objective), best feasible quality, and the share of
the table's true Pareto set (within the budgets) it evaluated.

Also measured: successive halving inside A1's evolution step -- for every feasible
architecture of the table as the current model and every seed, the action full
evaluation chooses vs the one halving chooses, and the training steps each spends.

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/tabular_compare.py --seeds 30 --candidates 10
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import RESULTS, machine, write

from core.budgets import Budgets
from core.errors import HwnasError
from nas.pareto import Point, compute_front
from nas.strategies import SearchState, create_strategy
from nas.tabular import TabularBenchmark, TabularPool, drive
from search_spaces.architecture import Architecture
from search_spaces.space import SearchSpace, SpaceConfig


def strategies(candidates: int) -> dict:
    pop = max(2, candidates // 3)  # NSGA-II: three generations fit the budget
    return {"snapgen": ("snapgen", {}), "snapgen_halving": ("snapgen", {"halving": True}),
            "random": ("random", {}),
            "nsga2": ("optuna", {"sampler": "nsga2", "sampler_options": {"population_size": pop}}),
            "tpe": ("optuna", {"sampler": "tpe"}), "gp": ("optuna", {"sampler": "gp"}),
            "mobilevd": ("mobilevd", {})}


def setup(table_path: Path, latency_pct: float | None = None, memory_pct: float | None = None):
    table = TabularBenchmark.load(table_path)
    protocol = json.loads(table_path.with_suffix(".json").read_text())
    space = SearchSpace(SpaceConfig.from_dict(protocol["experiment"]["space"]))
    b = protocol["experiment"]["budgets"]
    budgets = Budgets(latency_over_backbone_pct=latency_pct or b.get("latency_over_backbone_pct"),
                      memory_over_backbone_pct=memory_pct or b.get("memory_over_backbone_pct"),
                      ).resolve(*table.cost(Architecture()))
    return table, protocol, space, budgets


def score_run(table: TabularBenchmark, budgets: Budgets, outcomes, ref, box, true_front) -> dict:
    archs = {str(o.candidate.arch) for o in outcomes if o.ok}
    pts = [Point(a, table.quality(a), *table.cost(a)) for a in archs]
    feas = [p for p in pts if not budgets.violations(p.latency_ms, p.memory_bytes)]
    front = compute_front(feas, ref)
    true = {p.arch for p in true_front}
    return {"evaluated": len(archs), "hypervolume_normalised": front.hypervolume / box,
            "best_feasible_quality": max((p.quality for p in feas), default=None),
            "pareto_share": len(true & archs) / len(true)}


def spread(vals: list[float]) -> dict:
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return {}
    q = statistics.quantiles(vals, n=4) if len(vals) > 1 else [vals[0]] * 3
    return {"median": statistics.median(vals), "p25": q[0], "p75": q[2], "min": vals[0], "max": vals[-1]}


HALVING = {"eta2": {"halving_eta": 2}, "eta3": {"halving_eta": 3},
           "K/4-then-K, eta 4": {"halving_eta": 4, "halving_rungs": [0.25, 1.0]}}


def halving_agreement(table, space, budgets, steps: int, seeds: int, label: str) -> dict:
    """One evolution step from every feasible architecture: full evaluation vs halving."""
    same = total = informative = same_informative = 0
    steps_full = steps_halving = 0
    for arch in [Architecture.parse(a) for a in table.by_arch]:
        p = table.cost(arch)
        if budgets.violations(*p):
            continue
        for seed in range(seeds):
            chosen, spent = [], []
            for halving in (False, True):
                s = create_strategy("snapgen", {"start": str(arch), "halving": halving, **HALVING[label]}, seed,
                                    steps)
                state = SearchState(space, table.predict, budgets)
                rounds = len(s.rung_steps()) if halving else 1  # one evolution step, not the next one's first rung
                _, budget = drive(s, state, TabularPool(table), None, max_rounds=rounds)
                chosen.append(s.decisions[0]["action"] if s.decisions else None)
                spent.append(budget["steps"])
                if not halving:
                    n_eligible = sum(1 for v in s.eligible.values() if v)
            total += 1
            same += chosen[0] == chosen[1]
            steps_full += spent[0]
            steps_halving += spent[1]
            if n_eligible >= 2:
                informative += 1
                same_informative += chosen[0] == chosen[1]
    return {"schedule": label, "options": HALVING[label], "evolution_steps": total, "same_action": same / total if total else None,
            "evolution_steps_with_2plus_actions": informative,
            "same_action_2plus": same_informative / informative if informative else None,
            "steps_full": steps_full, "steps_halving": steps_halving,
            "steps_ratio": steps_halving / steps_full if steps_full else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", default=str(RESULTS / "tabular_tiny.parquet"))
    ap.add_argument("--supernet", default=str(RESULTS / "tabular_tiny_supernet.json"))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--candidates", type=int, default=10, help="training budget, in candidates of K steps")
    ap.add_argument("--strategies", default=None)
    ap.add_argument("--name", default="tabular_compare")
    ap.add_argument("--latency-pct", type=float, default=None, help="latency budget over the backbone (default: tiny.yaml's)")
    ap.add_argument("--memory-pct", type=float, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table, protocol, space, budgets = setup(Path(args.table), args.latency_pct, args.memory_pct)
    supernet = json.loads(Path(args.supernet).read_text()) if Path(args.supernet).is_file() else None
    k = table.steps
    feasible = [p for p in table.points() if not budgets.violations(p.latency_ms, p.memory_bytes)]
    true_front = table.true_front(budgets)
    ref = (min(p.quality for p in feasible), budgets.latency_ms_per_step, budgets.memory_bytes)
    ideal = (max(p.quality for p in feasible), min(p.latency_ms for p in feasible),
             min(p.memory_bytes for p in feasible))
    box = (ideal[0] - ref[0]) * (ref[1] - ideal[1]) * (ref[2] - ideal[2])
    true_hv = compute_front(true_front, ref).hypervolume / box
    result = {"machine": machine(), "args": vars(args), "table": Path(args.table).name,
              "protocol_command": protocol["command"], "K": k, "architectures": len(table),
              "feasible": len(feasible), "true_front": [p.arch for p in true_front],
              "true_front_hypervolume_normalised": true_hv,
              "best_feasible_quality_possible": ideal[0],
              "budgets": {"latency_ms": budgets.latency_ms_per_step, "memory_bytes": budgets.memory_bytes},
              "training_budget_steps": args.candidates * k, "runs": [], "summary": {}}
    chosen = strategies(args.candidates)
    names = args.strategies.split(",") if args.strategies else list(chosen)
    for label in names:
        name, options = chosen[label]
        if name == "mobilevd" and supernet is None:
            print("mobilevd: no tabulated supernet run; skipped", flush=True)
            continue
        if name == "mobilevd":
            options = {**options, "n": supernet["n"], "segments": len(supernet["runs"][0]),
                       "segment_steps": supernet["segment_steps"]}
        rows = []
        t0 = time.perf_counter()
        try:
            create_strategy(name, options, 0, k).propose(SearchState(space, table.predict, budgets))
        except HwnasError as exc:  # e.g. mobilevd's tabulated n breaking these budgets' memory
            print(f"{label}: {exc}", flush=True)
            result["summary"][label] = {"options": options, "error": str(exc)}
            continue
        for seed in range(args.seeds):
            s = create_strategy(name, options, seed, k)
            state = SearchState(space, table.predict, budgets)
            outcomes, budget = drive(s, state, TabularPool(table, supernet), args.candidates * k)
            row = {"strategy": label, "seed": seed, **budget,
                   **score_run(table, budgets, outcomes, ref, box, true_front)}
            rows.append(row)
        result["runs"] += rows
        result["summary"][label] = {
            "options": options, "seeds": len(rows),
            **{m: spread([r[m] for r in rows]) for m in
               ("hypervolume_normalised", "best_feasible_quality", "pareto_share", "evaluated", "steps",
                "candidate_seconds", "wall_s")}}
        sm = result["summary"][label]
        print(f"{label:16s} HV {sm['hypervolume_normalised']['median']:.3f} "
              f"[{sm['hypervolume_normalised']['p25']:.3f}, {sm['hypervolume_normalised']['p75']:.3f}]  "
              f"pareto {sm['pareto_share']['median']:.2f}  best {sm['best_feasible_quality']['median']:.5f}  "
              f"({time.perf_counter() - t0:.0f} s for {len(rows)} seeds)", flush=True)
        write(args.name, result)
    result["halving"] = [halving_agreement(table, space, budgets, k, args.seeds, label) for label in HALVING]
    for h in result["halving"]:
        print(f"halving {h['schedule']}: same action {h['same_action']:.3f} "
              f"(>=2 actions: {h['same_action_2plus']}) at {h['steps_ratio']:.3f} of the steps", flush=True)
    path = write(args.name, result)
    path.with_suffix(".md").write_text(markdown(result))  # beside the JSON ($OUT or results/)
    print(path)


def markdown(result: dict) -> str:
    lines = [f"Tabulated benchmark `{result['table']}`: {result['architectures']} architectures "
             f"({result['feasible']} within the budgets), K = {result['K']}; training budget "
             f"{result['training_budget_steps']} steps ({result['args']['candidates']} candidates of K) per run; "
             f"{result['args']['seeds']} seeds per strategy. Median [p25, p75] (min–max). True Pareto set: "
             f"{len(result['true_front'])} architectures, normalised hypervolume "
             f"{result['true_front_hypervolume_normalised']:.3f}; best feasible quality "
             f"{result['best_feasible_quality_possible']:.5f}.", "",
             "| strategy | normalised HV | best feasible quality | share of true Pareto set | evaluated | "
             "training steps | candidate-seconds |", "|---|---|---|---|---|---|---|"]
    for label, sm in result["summary"].items():
        if "error" in sm:
            lines.append(f"| {label} | not run: {sm['error']} | | | | | |")
            continue

        def f(m, fmt):
            s = sm[m]
            if not s:
                return "–"
            return (f"{s['median']:{fmt}} [{s['p25']:{fmt}}, {s['p75']:{fmt}}] "
                    f"({s['min']:{fmt}}–{s['max']:{fmt}})")
        lines.append(f"| {label} | {f('hypervolume_normalised', '.3f')} | {f('best_feasible_quality', '.5f')} | "
                     f"{f('pareto_share', '.2f')} | {sm['evaluated']['median']:g} | {sm['steps']['median']:g} | "
                     f"{sm['candidate_seconds']['median']:.0f} |")
    for h in result.get("halving", []):
        lines.append("")
        lines.append(f"Successive halving ({h['schedule']}: {h['options']}) in A1's evolution step, from every feasible architecture × "
                     f"every seed ({h['evolution_steps']} evolution steps): same action as full evaluation in "
                     f"{100 * h['same_action']:.1f} % ({h['evolution_steps_with_2plus_actions']} steps with ≥ 2 "
                     f"eligible actions: {100 * (h['same_action_2plus'] or 0):.1f} %), at "
                     f"{100 * h['steps_ratio']:.1f} % of the training steps.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
