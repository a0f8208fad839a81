"""Is the lineage the search trains along what misorders it? (issue 10, item 4)

``pareto verify`` compares the search's quality of each architecture with its verified one;
but a snapgen candidate is scored from weights trained along its lineage, so two
architectures' search qualities rest on unequal training. The tabulated benchmark
(build_tabular.py) scores every architecture of its subspace under ONE protocol, from the
backbone, at the search's K. This reads a ``pareto_verify`` result and a table and reports,
over the verified architectures the table holds, Spearman / Kendall of the verified quality
against (a) the search's quality and (b) the table's seed-mean quality at equal training.

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/verify_vs_table.py \\
        --verify results/pareto_verify_tiny_main2.json --table results/tabular_tiny8.parquet
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import RESULTS, machine, write  # noqa: E402

from nas.tabular import TabularBenchmark  # noqa: E402
from nas.verify import rank_agreement  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verify", default=str(RESULTS / "pareto_verify_tiny_main2.json"))
    ap.add_argument("--table", default=str(RESULTS / "tabular_tiny8.parquet"))
    ap.add_argument("--name", default="verify_vs_table_tiny8")
    args = ap.parse_args()
    points = [p for p in json.loads(Path(args.verify).read_text())["verify"]["points"] if p["status"] == "ok"]
    table = TabularBenchmark.load(args.table)
    held = [p for p in points if p["arch"] in table.by_arch]
    archs = [p["arch"] for p in held]
    verified = [p["verified_quality"] for p in held]
    search = [p["search_quality"] for p in held]
    tabled = [table.quality(a) for a in archs]  # the mean over seeds at K
    result = {"machine": machine(), "verify": args.verify, "table": args.table, "architectures": archs,
              "verified": verified, "search_quality": search, "table_quality": tabled,
              "left_out": [p["arch"] for p in points if p["arch"] not in table.by_arch],
              "search_vs_verified": rank_agreement(archs, search, verified),
              "table_vs_verified": rank_agreement(archs, tabled, verified)}
    print(write(args.name, result))
    for key in ("search_vs_verified", "table_vs_verified"):
        r = result[key]
        print(f"{key}: n {r['n']}, Spearman {r['spearman']}, Kendall {r['kendall']}, wrong pairs {r['misordered']}")
    print("left out (not in the table's subspace):", result["left_out"])


if __name__ == "__main__":
    main()
