"""``hwnas space show``: slots, shapes, allowed operators and the size of a search space."""
from __future__ import annotations

from nas.cli.common import emit_json, load_space


def register(sub) -> None:
    show = sub.add_parser("space", help="inspect a search space").add_subparsers(dest="action", required=True)
    p = show.add_parser("show", help="slots, shapes, allowed ops, space size")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--lut", help="a lookup table: list the states it prunes under the config's budgets, and why")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_show)


def _pruning(args, space) -> dict | None:
    if not args.lut:
        return None
    from lookup_tables import LookupTable
    from lookup_tables.prune import prune
    from nas.cli.common import load_experiment
    from nas.engine import TableCost, resolve_budgets

    table = LookupTable.load(args.lut)
    budgets = resolve_budgets(space, TableCost(table, space), load_experiment(args.config).budgets)
    return prune(space, table, budgets).as_dict()


def run_show(args) -> int:
    space = load_space(args.config)
    info = space.describe()
    pruning = _pruning(args, space)
    if pruning is not None:
        info.update(pruning)
    if args.json:
        emit_json(info)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"search space of {args.config}")
    for col in ("slot", "C", "T×H×W", "L×D", "heads", "operators", "max layers"):
        table.add_column(col, overflow="fold")
    for s in space.slots:
        table.add_row(s.name, str(s.channels), f"{s.frames}×{s.height}×{s.width}", f"{s.text_tokens}×{s.text_dim}",
                      str(s.heads), ", ".join(s.ops), str(s.max_layers))
    console = Console()
    console.print(table)
    ops = sorted({op for s in space.slots for op in s.ops}, key=list(space.config.ops).index)
    costs = Table(title="GFLOPs of one layer at each slot (analytic; --json has params and activation bytes)")
    costs.add_column("slot")
    for op in ops:
        costs.add_column(op, overflow="fold")
    for s in info["slots"]:
        cells = [f"{c['flops'] / 1e9:.4g}" if (c := s["op_cost"].get(op)) else "-" for op in ops]
        costs.add_row(s["name"], *cells)
    console.print(costs)
    console.print(f"size: {info['size']:,} architectures")
    for name, arch in info["examples"].items():
        console.print(f"{name}: {arch}")
    if pruning is not None:
        if pruning["backbone"]:
            console.print(f"nothing fits: {pruning['backbone']}")
        console.print(f"pruned by {args.lut}: {len(pruning['pruned'])} states; "
                      f"size after pruning: {pruning['size_after']:,} architectures")
        for p in pruning["pruned"]:
            console.print(f"  {p['slot']}:{p['op']}:{p['count']}: {p['reason']}")
    return 0
