"""``hwnas pareto show|plot``: the Pareto front of a campaign, as a table or a picture."""
from __future__ import annotations

import sys
from pathlib import Path

from nas.cli.common import CliError, emit_json


def register(sub) -> None:
    pareto = sub.add_parser("pareto", help="Pareto front of a campaign").add_subparsers(dest="action", required=True)
    p = pareto.add_parser("show", help="the front: architecture, quality, latency, memory, feasibility")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_show)
    p = pareto.add_parser("plot", help="plot the front (.html: plotly, .png: matplotlib)")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--out", required=True, help="FILE.html or FILE.png")
    p.set_defaults(func=run_plot)
    from nas.cli import gallery

    gallery.register(pareto)


def plot_campaign(campaign, front, out) -> Path:
    from nas.plots import plot_front

    exp = campaign.experiment()
    return plot_front(list(front.evaluated), front, front.budgets, out, f"{exp.name}: {exp.search.strategy}")


BREAKDOWN_ROWS = 3  # scores shown per front point; --json has them all


def print_front(front) -> None:
    from rich.console import Console
    from rich.table import Table

    data = front.to_dict()
    table = Table(title=f"Pareto front of {len(front.evaluated)} evaluated candidates")
    for col in ("architecture", "quality", "breakdown", "latency ms", "memory MiB", "feasible", "runs"):
        table.add_column(col, overflow="fold")
    cut = False
    for p in data["front"]:
        # one layer / one score per line keeps the table narrow
        items = list(p["breakdown"].items())
        brk = "\n".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:BREAKDOWN_ROWS])
        if len(items) > BREAKDOWN_ROWS:
            brk += f"\n(+{len(items) - BREAKDOWN_ROWS} more)"
            cut = True
        table.add_row(p["arch"].replace(",", ",\n"), f"{p['quality']:.5f}", brk, f"{p['latency_ms']:.3f}",
                      f"{p['memory_bytes'] / 2**20:.2f}", "yes" if p["feasible"] else "no", str(p["evaluations"]))
    console = Console(width=None if sys.stdout.isatty() else 120)  # rich's pipe default is 80
    console.print(table)
    if cut:
        console.print(f"breakdown: the first {BREAKDOWN_ROWS} scores of each point; --json has all of them")
    if any(p["evaluations"] > 1 for p in data["front"]):
        console.print("runs: evaluations of that architecture (e.g. a candidate, then the reference retrained from "
                      "it); the front keeps its best")
    ref, ideal = data["reference_point"], data["ideal_point"]
    console.print(f"hypervolume {data['hypervolume_normalised']:.1%} of the box between the ideal point (quality "
                  f"{ideal['quality']:.5f}, {ideal['latency_ms']:.3f} ms, {ideal['memory_bytes'] / 2**20:.2f} MiB: the "
                  f"best of each objective over all candidates) and the reference (quality {ref['quality']:.5f}, "
                  f"{ref['latency_ms']:.3f} ms, {ref['memory_bytes'] / 2**20:.2f} MiB); raw "
                  f"{data['hypervolume']:.6g} quality·ms·bytes")


def _finished_front(directory):
    """The campaign in ``directory`` and its front (at least one point)."""
    from nas.campaign import Campaign

    campaign = Campaign.open(directory)
    front = campaign.front()
    if not front.evaluated:
        raise CliError(f"{directory}: no candidate has finished yet")
    return campaign, front


def run_show(args) -> int:
    _, front = _finished_front(args.dir)
    emit_json(front.to_dict()) if args.json else print_front(front)
    return 0


def run_plot(args) -> int:
    campaign, front = _finished_front(args.dir)
    print(plot_campaign(campaign, front, args.out))
    return 0
