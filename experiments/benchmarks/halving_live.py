"""Successive halving in A1's evolution step, live (issue 14, item 4): does halving choose
the action full evaluation chooses when the candidates really train?

On the table (tabular_compare.py) a halving rung reads the quality an uninterrupted K-step
run had after K/4 and K/2 steps. Live, a survivor continues from its previous rung's
checkpoint. Here, for each parent architecture, two one-step campaigns of the table's
experiment (``hwnas`` engine, Ray workers, real training): snapgen starting at the parent
with full evaluation (one round) and with halving (its rungs, one round each), same seed;
then the action each chose, the training steps each spent, and what the table predicts for
both (the same parent and seed, ``nas.tabular.snapgen_step``).

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/halving_live.py \\
        --table experiments/benchmarks/results/tabular_tiny8.parquet --name halving_live_tiny8

Campaigns already in ``--runs`` are reused. Writes results/NAME.json and .md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import RESULTS, machine, write
from live_vs_table import live_config, run_campaign
from tabular_compare import setup

from nas.tabular import snapgen_step
from search_spaces.architecture import Architecture

ROOT = Path(__file__).resolve().parents[2]
PARENTS = "empty;down0:conv1d:1;up1:conv1d:1;mid:cross_attn1d:1;down0:conv1d:1,mid:cross_attn1d:1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(RESULTS / "tabular_tiny8.parquet"))
    ap.add_argument("--parents", default=PARENTS, help="';'-separated parent architectures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eta", type=int, default=2, help="halving_eta (rungs K/4, K/2, K)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "tabular_work"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "halving_live"))
    ap.add_argument("--name", default="halving_live")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table, protocol, space, budgets = setup(Path(args.table))
    k = table.steps
    halving = {"halving_eta": args.eta}
    result = {"machine": machine(), "table": Path(args.table).name, "K": k, "seed": args.seed, "halving": halving,
              "command": "PYTHONPATH=. .venv/bin/python experiments/benchmarks/halving_live.py "
                         + " ".join(sys.argv[1:]), "steps": []}
    for parent in args.parents.split(";"):
        parent = "" if parent == "empty" else str(Architecture.parse(parent))
        row = {"parent": parent}
        for label, opts in (("full", None), ("halving", halving)):
            root = Path(args.runs) / f"{label}_{parent.replace(':', '-').replace(',', '+') or 'empty'}_s{args.seed}"
            options = {"start": parent or "empty", "halving": opts is not None, **(opts or {})}
            rounds = len((opts or {}).get("halving_rungs", (0.25, 0.5, 1.0))) if opts is not None else 1
            camp, _ = run_campaign(root, live_config(protocol, args.seed, args.workdir, args.workers,
                                                     strategy="snapgen", options=options, max_train_steps=None,
                                                     max_rounds=rounds))  # one evolution step: a rung a round
            decisions = (camp.load_state() or {}).get("strategy", {}).get("decisions", [])
            spent = camp.budget_spent()
            row[label] = {"action": decisions[0].get("action") if decisions else None,
                          "decided": bool(decisions), "steps": spent["training_steps"],
                          "candidate_seconds": spent["candidate_seconds"], "campaign": str(root)}
            action, steps, eligible, _ = snapgen_step(table, space, budgets, Architecture.parse(parent), args.seed, k,
                                                      opts)
            row[label]["table_action"], row[label]["table_steps"] = action, steps
            if opts is None:
                row["eligible"] = eligible  # the actions full evaluation could pick
        row["same_action"] = row["full"]["action"] == row["halving"]["action"]
        result["steps"].append(row)
        print(f"{parent or 'empty'}: full {row['full']['action']} ({row['full']['steps']} steps), halving "
              f"{row['halving']['action']} ({row['halving']['steps']} steps); table: full "
              f"{row['full']['table_action']}, halving {row['halving']['table_action']}", flush=True)
        write(args.name, result)
    rows = result["steps"]
    result["same_action"] = sum(r["same_action"] for r in rows) / len(rows)
    result["steps_ratio"] = sum(r["halving"]["steps"] for r in rows) / sum(r["full"]["steps"] for r in rows)
    result["live_full_as_table"] = sum(r["full"]["action"] == r["full"]["table_action"] for r in rows) / len(rows)
    result["live_halving_as_table"] = (sum(r["halving"]["action"] == r["halving"]["table_action"] for r in rows)
                                       / len(rows))
    path = write(args.name, result)
    path.with_suffix(".md").write_text(markdown(result))
    print(path.with_suffix(".md").read_text())


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Successive halving live vs full evaluation (`{result['table']}`, K = {result['K']}, "
             f"seed {result['seed']}, {result['halving']})", "",
             f"machine: {m['cpu']}, {m['cores']} cores, {m['date']}", "", "```", result["command"], "```", "",
             f"Same action in {100 * result['same_action']:.0f} % of {len(result['steps'])} evolution steps at "
             f"{100 * result['steps_ratio']:.0f} % of full evaluation's training steps. The live step chose the "
             f"table's action: full evaluation {100 * result['live_full_as_table']:.0f} %, halving "
             f"{100 * result['live_halving_as_table']:.0f} %.", "",
             "| parent | eligible actions | full: action (steps) | halving: action (steps) | same | "
             "table: full / halving |", "|---|---|---|---|---|---|"]
    for r in result["steps"]:
        f, h = r["full"], r["halving"]
        lines.append(f"| {r['parent'] or 'empty'} | {r['eligible']} | {f['action']} ({f['steps']}) | "
                     f"{h['action']} ({h['steps']}) | {'yes' if r['same_action'] else 'no'} | "
                     f"{f['table_action']} / {h['table_action']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
