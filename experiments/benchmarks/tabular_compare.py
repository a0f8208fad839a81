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
evaluation chooses vs the one halving chooses, and the training steps each spends, per
schedule (``HALVING``); the margin rule's ``halving_margin`` is z times the seed noise of
ΔQ at the first rung, measured here on the table (``delta_noise``). Note: z is chosen on
this same table.

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
from nas.tabular import Row, TabularBenchmark, TabularPool, drive, snapgen_step
from search_spaces.architecture import Architecture
from search_spaces.space import SearchSpace, SpaceConfig


def strategies(candidates: int, margin: float) -> dict:
    pop = max(2, candidates // 3)  # NSGA-II: three generations fit the budget
    return {"snapgen": ("snapgen", {}), "snapgen_halving": ("snapgen", {"halving": True}),
            "snapgen_halving_margin": ("snapgen", {"halving": True, "halving_margin": margin}),
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


def reference(table: TabularBenchmark, budgets: Budgets):
    """The hypervolume reference point of every run (the worst feasible quality in the table,
    the budgets), the normalising box (up to the best feasible value of each objective), the
    feasible points and the table's true Pareto set within the budgets."""
    feasible = [p for p in table.points() if not budgets.violations(p.latency_ms, p.memory_bytes)]
    ref = (min(p.quality for p in feasible), budgets.latency_ms_per_step, budgets.memory_bytes)
    ideal = (max(p.quality for p in feasible), min(p.latency_ms for p in feasible),
             min(p.memory_bytes for p in feasible))
    box = (ideal[0] - ref[0]) * (ref[1] - ideal[1]) * (ref[2] - ideal[2])
    return ref, box, feasible, table.true_front(budgets)


def score_archs(table: TabularBenchmark, budgets: Budgets, archs: set[str], ref, box, true_front) -> dict:
    """An evaluated set of architectures scored under the table's protocol (seed-mean quality)."""
    pts = [Point(a, table.quality(a), *table.cost(a)) for a in archs]
    feas = [p for p in pts if not budgets.violations(p.latency_ms, p.memory_bytes)]
    front = compute_front(feas, ref)
    true = {p.arch for p in true_front}
    return {"evaluated": len(archs), "hypervolume_normalised": front.hypervolume / box,
            "best_feasible_quality": max((p.quality for p in feas), default=None),
            "pareto_share": len(true & archs) / len(true)}


def score_run(table: TabularBenchmark, budgets: Budgets, outcomes, ref, box, true_front) -> dict:
    return score_archs(table, budgets, {str(o.candidate.arch) for o in outcomes if o.ok}, ref, box, true_front)


def spread(vals: list[float]) -> dict:
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return {}
    q = statistics.quantiles(vals, n=4) if len(vals) > 1 else [vals[0]] * 3
    return {"median": statistics.median(vals), "p25": q[0], "p75": q[2], "min": vals[0], "max": vals[-1]}


# Schedules of successive halving measured against full evaluation. "margin_z": the option
# halving_margin set to z times the seed noise of ΔQ at the first rung, measured on the table.
HALVING = {"eta2": {"halving_eta": 2}, "eta3": {"halving_eta": 3},
           "K/4-then-K, eta 4": {"halving_eta": 4, "halving_rungs": [0.25, 1.0]},
           "eta2, margin 1 sigma": {"halving_eta": 2, "margin_z": 1.0},
           "eta2, margin 2 sigma": {"halving_eta": 2, "margin_z": 2.0},
           "eta2, margin 3 sigma": {"halving_eta": 2, "margin_z": 3.0},
           "eta4, margin 1 sigma": {"halving_eta": 4, "margin_z": 1.0},
           "eta4, margin 2 sigma": {"halving_eta": 4, "margin_z": 2.0}}


MARGIN_Z = 2.0  # snapgen_halving_margin's halving_margin, in seed noises of ΔQ at the first rung


def delta_noise(table: TabularBenchmark, space) -> dict[int, float]:
    """The seed noise of ΔQ = Q(child) - Q(parent) (same seed row, as in an evolution step)
    at each tabulated fidelity: the root mean over every (architecture, one-action child) pair
    of the tabulated variance of ΔQ over seeds."""
    out = {}
    for f in sorted(next(iter(table.by_arch.values()))[0].quality):
        var, n = 0.0, 0
        for a in table.by_arch:
            arch = Architecture.parse(a)
            for action in space.actions(arch):
                child = str(arch.apply(action))
                if child not in table:
                    continue
                rows = len(table.rows(a))
                d = [table.quality(child, s, f) - table.quality(a, s, f) for s in range(rows)]
                if len(d) > 1:
                    var += statistics.variance(d)
                    n += 1
        out[f] = (var / n) ** 0.5 if n else 0.0
    return out


def seed_mean(table: TabularBenchmark) -> TabularBenchmark:
    """The table with one row per architecture: its seed-mean quality at every fidelity."""
    rows = []
    for a, rs in table.by_arch.items():
        fid = set.intersection(*(set(r.quality) for r in rs))
        rows.append(Row(a, 0, {f: table.quality(a, None, f) for f in fid}, rs[0].seconds, rs[0].steps,
                        rs[0].latency_ms, rs[0].memory_bytes))
    return TabularBenchmark(rows, table.name + " (seed mean)")


class EvolutionSteps:
    """One evolution step of ``snapgen`` on the table (``nas.tabular.snapgen_step``) from an
    architecture, with full evaluation (``options`` None) or a halving schedule, memoised:
    snapgen is deterministic but for the table row its step's data seed selects (seed mod
    rows), so each (architecture, row, schedule) is computed once."""

    def __init__(self, table: TabularBenchmark, space, budgets: Budgets, steps: int):
        self.table, self.space, self.budgets, self.steps = table, space, budgets, steps
        self.archs = [Architecture.parse(a) for a in table.by_arch if not budgets.violations(*table.cost(a))]
        self.rows = min(len(table.rows(a)) for a in self.archs)
        self.memo: dict = {}

    def row(self, arch, seed: int) -> int | None:
        """The table row the step from ``arch`` under ``seed`` reads (None: nothing to propose)."""
        first = create_strategy("snapgen", {"start": str(arch)}, seed, self.steps).propose(
            SearchState(self.space, self.table.predict, self.budgets))
        return first[0].seed % self.rows if first else None

    def __call__(self, arch, seed: int, options: dict | None = None):
        key = (str(arch), self.row(arch, seed), json.dumps(options, sort_keys=True))
        if key not in self.memo:
            self.memo[key] = snapgen_step(self.table, self.space, self.budgets, arch, seed, self.steps, options)
        return self.memo[key]


def full_reproducibility(evo: EvolutionSteps) -> dict:
    """How often full evaluation agrees with itself: one evolution step from every feasible
    architecture on each seed row (same action on all of them?), and each row's action
    against the one chosen on the seed-mean table (which contains that row, so it flatters).
    The ceiling any cheaper scheme's agreement with one row's full evaluation is measured under."""
    mean = seed_mean(evo.table)
    by_row, best = {}, {}
    for arch in evo.archs:
        best[str(arch)] = snapgen_step(mean, evo.space, evo.budgets, arch, 0, evo.steps, None)[0]
        for seed in range(4 * evo.rows):  # the strategy's seeds map onto the rows; find one seed per row
            row = evo.row(arch, seed)
            if row is not None and (str(arch), row) not in by_row:
                by_row[(str(arch), row)] = evo(arch, seed)[0]
    every = [str(a) for a in evo.archs if all((str(a), r) in by_row for r in range(evo.rows))]
    return {"architectures": len(evo.archs), "with_both_rows": len(every),
            "rows_agree": (sum(len({by_row[(a, r)] for r in range(evo.rows)}) == 1 for a in every) / len(every)
                           if every else None),
            "row_agrees_with_seed_mean": (sum(by_row[k] == best[k[0]] for k in by_row) / len(by_row)
                                          if by_row else None),
            "seed_mean_action": best}


def halving_agreement(evo: EvolutionSteps, seeds: int, label: str, noise: dict[int, float],
                      best: dict[str, str | None] | None = None) -> dict:
    """One evolution step from every feasible architecture, per seed: full evaluation vs halving."""
    opts = dict(HALVING[label])
    z = opts.pop("margin_z", None)
    first = min(noise)
    if z is not None:
        opts["halving_margin"] = z * noise[first]
    per_seed, early, same_mean = [], 0, 0
    same = total = informative = same_informative = steps_full = steps_halving = 0
    for seed in range(seeds):
        s_same = s_full = s_half = 0
        for arch in evo.archs:
            full, spent_full, n_eligible, _ = evo(arch, seed)
            half, spent_half, _, rung = evo(arch, seed, opts)
            total += 1
            same += full == half
            same_mean += best is not None and half == best[str(arch)]
            s_same += full == half
            s_full += spent_full
            s_half += spent_half
            early += rung is not None and rung < len(opts.get("halving_rungs", (0.25, 0.5, 1.0))) - 1
            if n_eligible >= 2:
                informative += 1
                same_informative += full == half
        steps_full += s_full
        steps_halving += s_half
        per_seed.append({"seed": seed, "same_action": s_same / len(evo.archs), "steps_ratio": s_half / s_full})
    return {"schedule": label, "options": opts, "margin_z": z, "evolution_steps": total,
            "same_action": same / total if total else None,
            "same_action_as_seed_mean": same_mean / total if total and best is not None else None,
            "evolution_steps_with_2plus_actions": informative,
            "same_action_2plus": same_informative / informative if informative else None,
            "decided_early": early / total if total else None,
            "steps_full": steps_full, "steps_halving": steps_halving,
            "steps_ratio": steps_halving / steps_full if steps_full else None,
            "per_seed": per_seed,
            "same_action_over_seeds": spread([p["same_action"] for p in per_seed]),
            "steps_ratio_over_seeds": spread([p["steps_ratio"] for p in per_seed])}


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
    ap.add_argument("--halving", default=None, help="';'-separated schedules of HALVING to measure (default all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table, protocol, space, budgets = setup(Path(args.table), args.latency_pct, args.memory_pct)
    supernet = json.loads(Path(args.supernet).read_text()) if Path(args.supernet).is_file() else None
    k = table.steps
    ref, box, feasible, true_front = reference(table, budgets)
    true_hv = compute_front(true_front, ref).hypervolume / box
    result = {"machine": machine(), "args": vars(args), "table": Path(args.table).name,
              "protocol_command": protocol["command"], "K": k, "architectures": len(table),
              "feasible": len(feasible), "true_front": [p.arch for p in true_front],
              "true_front_hypervolume_normalised": true_hv,
              "best_feasible_quality_possible": max(p.quality for p in feasible),
              "budgets": {"latency_ms": budgets.latency_ms_per_step, "memory_bytes": budgets.memory_bytes},
              "training_budget_steps": args.candidates * k, "runs": [], "summary": {}}
    noise = delta_noise(table, space)
    result["delta_quality_seed_noise"] = noise
    print("seed noise of dQ per fidelity:", {f: f"{v:.2e}" for f, v in noise.items()}, flush=True)
    chosen = strategies(args.candidates, MARGIN_Z * noise[min(noise)])
    names = [] if args.strategies == "none" else args.strategies.split(",") if args.strategies else list(chosen)
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
    result["halving"] = []
    evo = EvolutionSteps(table, space, budgets, k)
    repro = full_reproducibility(evo)
    result["full_evaluation_reproducibility"] = repro
    print(f"full evaluation: seed rows agree {repro['rows_agree']}, a row agrees with the seed mean "
          f"{repro['row_agrees_with_seed_mean']}", flush=True)
    for label in (args.halving.split(";") if args.halving else HALVING):
        h = halving_agreement(evo, args.seeds, label, noise, repro["seed_mean_action"])
        result["halving"].append(h)
        print(f"halving {h['schedule']}: same action {h['same_action']:.3f} "
              f"(as the seed mean's {h['same_action_as_seed_mean']:.3f}) "
              f"(>=2 actions: {h['same_action_2plus']}) at {h['steps_ratio']:.3f} of the steps, "
              f"decided early {h['decided_early']:.2f}", flush=True)
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
    if result.get("halving"):
        noise = result["delta_quality_seed_noise"]
        steps = result["halving"][0]["evolution_steps"]
        lines += ["", f"Successive halving in A1's evolution step vs full evaluation, one evolution step from every "
                  f"feasible architecture × every seed ({steps} evolution steps; "
                  f"{result['halving'][0]['evolution_steps_with_2plus_actions']} with ≥ 2 eligible actions). "
                  "Seed noise of ΔQ (child − parent, same seed row) at "
                  + ", ".join(f"{f} steps: {v:.2e}" for f, v in noise.items())
                  + ". Per seed: median (min–max) over seeds (the table has "
                  "two seed rows, so seeds of equal parity repeat)."]
        repro = result.get("full_evaluation_reproducibility")
        if repro:
            lines += ["", f"The ceiling: full evaluation itself chooses the same action on both seed rows in "
                      f"{100 * repro['rows_agree']:.1f} % of {repro['with_both_rows']} architectures, and one row's "
                      f"choice is the seed-mean table's in {100 * repro['row_agrees_with_seed_mean']:.1f} % (the mean "
                      "contains that row, so this flatters). 'As the seed mean': the halving schedule's action "
                      "against the one full evaluation chooses on the seed-mean table."]
        lines += ["", ("| schedule | options | same action | same action, ≥ 2 actions | as the seed mean | "
                       "decided early | share of training steps |"), "|---|---|---|---|---|---|---|"]
        for h in result["halving"]:
            a, r = h["same_action_over_seeds"], h["steps_ratio_over_seeds"]
            lines.append(f"| {h['schedule']} | `{h['options']}` | {100 * h['same_action']:.1f} % "
                         f"(per seed {100 * a['median']:.1f}, {100 * a['min']:.1f}–{100 * a['max']:.1f}) | "
                         f"{100 * (h['same_action_2plus'] or 0):.1f} % | "
                         + ("–" if h.get("same_action_as_seed_mean") is None
                            else f"{100 * h['same_action_as_seed_mean']:.1f} %")
                         + f" | {100 * h['decided_early']:.1f} % | "
                         f"{100 * h['steps_ratio']:.1f} % (per seed {100 * r['median']:.1f}, "
                         f"{100 * r['min']:.1f}–{100 * r['max']:.1f}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
