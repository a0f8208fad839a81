"""Live campaigns re-scored under the tabulated protocol (issue 14, item 2).

A live campaign records the quality each candidate reached with its own training history
(snapgen's children start from weights trained along its lineage, a random trial from
the backbone), so two strategies' recorded numbers do not compare. Here each strategy
runs live -- ``hwnas search run`` on Ray workers, real training -- in the table's space,
with the table's experiment (data, backbone, K, quality, budgets) and the same training
budget as ``tabular_compare.py`` (``--candidates`` x K steps), the same options as there;
then the set of architectures it evaluated is scored by the table: the seed-mean quality
at K of each (``tabular_compare.score_archs``: normalised hypervolume, best feasible
quality, share of the true Pareto set). Beside it: where that live score falls among the
strategy's simulated runs on the table (``--compare``, the results of tabular_compare.py
on the same table), and what the campaign recorded itself (its own best quality and
front), for contrast only.

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/live_vs_table.py \\
        --table experiments/benchmarks/results/tabular_tiny8.parquet \\
        --compare experiments/benchmarks/results/tabular_compare_tiny8.json \\
        --strategies snapgen,random,gp --seeds 0 --name live_vs_table_tiny8

A campaign already in ``--runs`` (same config) is resumed, not rerun. Writes
results/NAME.json and .md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import RESULTS, machine, write
from tabular_compare import reference, score_archs, setup, strategies

from nas.campaign import Campaign
from nas.config import Experiment

ROOT = Path(__file__).resolve().parents[2]


def live_config(protocol: dict, seed: int, workdir: str, workers: int, **search) -> dict:
    """The table's experiment as a live campaign: this seed, these workers and data cache,
    its own storage, and the ``search`` keys given (strategy, options, budgets)."""
    cfg = json.loads(json.dumps(protocol["experiment"]))
    cfg["seed"] = seed
    cfg["search"] = {**cfg["search"], "workers": workers, "workdir": workdir, "out": None, "storage": None, **search}
    return Experiment.from_dict(cfg).to_dict()


def run_campaign(root: Path, config: dict) -> tuple[Campaign, str]:
    """Run the campaign in ``root`` (created from ``config``, or resumed: a finished one stops
    at once); the campaign and why it stopped."""
    from nas.engine import Search

    camp = Campaign.open(root) if (root / "campaign.json").is_file() else Campaign.create(root, config)
    return camp, Search(camp).run()


def row_matches(camp: Campaign, table) -> dict:
    """How many of the campaign's candidates recorded exactly the quality of one of the
    table's seed rows for their architecture (same training, same seed: same number)."""
    qualities = [(t.user_attrs["arch"], t.values[0]) for t in camp.trials() if t.values]
    same = sum(any(q == r.quality[r.steps] for r in table.rows(a)) for a, q in qualities)
    return {"candidates": len(qualities), "equal_to_a_table_row": same}


def percentile(value: float, sims: list[float]) -> float:
    """Share of the simulated runs at or below ``value`` (ties count half)."""
    below = sum(v < value for v in sims) + 0.5 * sum(v == value for v in sims)
    return below / len(sims)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(RESULTS / "tabular_tiny8.parquet"))
    ap.add_argument("--compare", default=str(RESULTS / "tabular_compare_tiny8.json"),
                    help="tabular_compare.py's results on the same table (the simulated runs)")
    ap.add_argument("--strategies", default="snapgen,random,gp")
    ap.add_argument("--seeds", default="0", help="comma-separated campaign seeds")
    ap.add_argument("--candidates", type=int, default=10, help="training budget, in candidates of K steps")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "tabular_work"),
                    help="data and pre-trained backbone cache (the table's, to skip pre-training)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "live_vs_table"), help="where the campaigns go")
    ap.add_argument("--name", default="live_vs_table")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table, protocol, space, budgets = setup(Path(args.table))
    ref, box, _, true_front = reference(table, budgets)
    sims = json.loads(Path(args.compare).read_text()) if args.compare and Path(args.compare).is_file() else None
    if sims is not None and sims.get("table") != Path(args.table).name:
        raise SystemExit(f"--compare {args.compare}: made on table {sims.get('table')}, not {Path(args.table).name}")
    k = table.steps
    chosen = strategies(args.candidates, 0.0)
    result = {"machine": machine(), "args": vars(args), "table": Path(args.table).name, "K": k,
              "training_budget_steps": args.candidates * k, "true_front": [p.arch for p in true_front],
              "command": "PYTHONPATH=. .venv/bin/python experiments/benchmarks/live_vs_table.py "
                         + " ".join(sys.argv[1:]), "campaigns": []}
    for label in args.strategies.split(","):
        if label not in chosen or label.startswith("snapgen_halving"):
            raise SystemExit(f"--strategies {label}: not one of {', '.join(k for k in chosen if 'halving' not in k)}")
        name, options = chosen[label]
        for seed in [int(s) for s in args.seeds.split(",")]:
            root = Path(args.runs) / f"{label}_s{seed}"
            camp, stop = run_campaign(root, live_config(protocol, seed, args.workdir, args.workers, strategy=name,
                                                        options=options, max_train_steps=args.candidates * k))
            wall = camp.budget_spent()["wall_s"]  # its own runs, so a rerun reports the same
            front = camp.front()
            archs = {p.arch for p in front.evaluated}
            missing = sorted(a for a in archs if a not in table)
            if missing:
                raise SystemExit(f"{root}: evaluated {missing[0] or 'empty'}, which the table does not hold")
            row = {"strategy": label, "seed": seed, "campaign": str(root), "stop_reason": stop, "wall_s": wall,
                   "budget": camp.budget_spent(),
                   **score_archs(table, budgets, archs, ref, box, true_front),
                   "recorded_best": max(front.evaluated, key=lambda p: p.quality).arch,
                   "recorded_front": sorted(p.arch for p in front.points),
                   "table_best_of_evaluated": max(archs, key=table.quality),
                   **row_matches(camp, table)}
            if sims is not None:
                runs = [r for r in sims["runs"] if r["strategy"] == label]
                if runs:
                    row["simulated_runs"] = len(runs)
                    for m in ("hypervolume_normalised", "pareto_share"):
                        row[f"{m}_percentile_among_simulated"] = percentile(row[m], [r[m] for r in runs])
            result["campaigns"].append(row)
            print(f"{label} seed {seed}: HV {row['hypervolume_normalised']:.3f} pareto {row['pareto_share']:.2f} "
                  f"best {row['best_feasible_quality']} ({row['evaluated']} archs, {wall:.0f} s, {stop})",
                  flush=True)
            write(args.name, result)
    path = write(args.name, result)
    path.with_suffix(".md").write_text(markdown(result, sims))
    print(path.with_suffix(".md").read_text())


def markdown(result: dict, sims: dict | None) -> str:
    m = result["machine"]
    lines = [f"# Live campaigns re-scored under the tabulated protocol (`{result['table']}`, K = {result['K']})", "",
             f"machine: {m['cpu']}, {m['cores']} cores, {m['date']}", "", "```", result["command"], "```", "",
             f"Each campaign ran live (Ray workers, real training) with a budget of "
             f"{result['training_budget_steps']} training steps; its evaluated architectures are scored by the "
             "table (seed-mean quality at K from the backbone), never by the qualities it recorded with its own "
             "training history. Percentile: where the live score falls among the same strategy's simulated runs "
             "on the table" + (f" ({sims['args']['seeds']} seeds, tabular_compare.py)." if sims else "."), "",
             "Equal to a table row: candidates whose recorded quality is exactly that of one of the table's seed "
             "rows for their architecture (a candidate trained from the backbone under a table seed).", "",
             "| strategy | seed | evaluated | equal to a table row | normalised HV (table) | "
             "HV percentile among simulated | share of true Pareto set | best feasible quality (table) | "
             "its recorded best | table's best of what it evaluated | training steps | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["campaigns"]:
        pct = r.get("hypervolume_normalised_percentile_among_simulated")
        best = r["best_feasible_quality"]
        lines.append(f"| {r['strategy']} | {r['seed']} | {r['evaluated']} | "
                     f"{r['equal_to_a_table_row']} of {r['candidates']} | {r['hypervolume_normalised']:.3f} | "
                     f"{'–' if pct is None else f'{100 * pct:.0f} %'} | {r['pareto_share']:.2f} | "
                     f"{'–' if best is None else f'{best:.5f}'} | {r['recorded_best'] or 'empty'} | "
                     f"{r['table_best_of_evaluated'] or 'empty'} | {r['budget'].get('training_steps')} | "
                     f"{r['wall_s']:.0f} |")
    if sims:
        lines += ["", "Simulated on the same table (tabular_compare.py), median [p25, p75] normalised HV: "
                  + "; ".join(f"{label} {sm['hypervolume_normalised']['median']:.3f} "
                              f"[{sm['hypervolume_normalised']['p25']:.3f}, {sm['hypervolume_normalised']['p75']:.3f}]"
                              for label, sm in sims["summary"].items()
                              if label in {r['strategy'] for r in result["campaigns"]} and "error" not in sm)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
