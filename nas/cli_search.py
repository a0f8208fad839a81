"""``hwnas search run|resume|status`` and ``hwnas pareto show|plot``: campaigns from the CLI.

``search run CONFIG`` creates (or, for the same config, continues) a campaign directory,
builds or loads the lookup table, prepares the runners (data, pre-trained backbone),
searches on a Ray pool with a progress display on stderr, and ends with the Pareto front
and the path of its plot. ``--dry-run`` prices and prunes the space and prints the plan.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from nas.cli_common import CliError, emit_json, load_experiment


def register(sub) -> None:
    search = sub.add_parser("search", help="run, resume and inspect search campaigns").add_subparsers(
        dest="action", required=True)
    p = search.add_parser("run", help="start a campaign (or continue one of the same config)")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--out", help="campaign directory (default: search.out, else runs/NAME)")
    p.add_argument("--ray-address", help="join this Ray cluster (default: search.ray_address, else a local one)")
    p.add_argument("--dry-run", action="store_true", help="price and prune the space, print the plan and its cost")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_search)
    p = search.add_parser("resume", help="continue a campaign (after a kill, too)")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--ray-address", help="join this Ray cluster")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_resume)
    p = search.add_parser("status", help="progress of a campaign")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_status)

    pareto = sub.add_parser("pareto", help="Pareto front of a campaign").add_subparsers(dest="action", required=True)
    p = pareto.add_parser("show", help="the front: architecture, quality, latency, memory, feasibility")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_pareto_show)
    p = pareto.add_parser("plot", help="plot the front (.html: plotly, .png: matplotlib)")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--out", required=True, help="FILE.html or FILE.png")
    p.set_defaults(func=run_pareto_plot)


# campaigns ----------------------------------------------------------------------------------
def _experiment_of(campaign):
    from nas.config import Experiment

    return Experiment.from_dict(campaign.config())


def run_search(args) -> int:
    exp = load_experiment(args.config)
    if args.dry_run:
        from nas.plan import dry_run

        from nas.engine import BudgetError

        plan = dry_run(exp)
        emit_json(plan) if args.json else print_plan(plan)
        if plan["problem"]:
            raise BudgetError(plan["problem"])
        return 0
    from nas.campaign import Campaign

    out = args.out or exp.search.out or f"runs/{exp.name}"
    campaign = Campaign.create(out, exp.to_dict())
    return _search(campaign, exp, args.ray_address, args.json)


def run_resume(args) -> int:
    from nas.campaign import Campaign

    campaign = Campaign.open(args.dir)
    return _search(campaign, _experiment_of(campaign), args.ray_address, args.json)


def _search(campaign, exp, ray_address, as_json: bool) -> int:
    from rich.console import Console

    from nas.engine import build_engine

    console = Console(stderr=True)
    campaign.study()  # a corrupt or unreachable storage fails before any work
    address = ray_address or exp.search.ray_address
    if address and exp.search.workers:
        from nas.workers import check_reachable

        check_reachable(address)
    t0 = time.time()
    with _Progress(console) as progress:
        engine = build_engine(campaign, exp, ray_address, progress=True, on_progress=progress.update)
        progress.start_search(exp.search.max_train_steps, engine.steps_used)
        engine.prepare(progress.pretrain)
        with engine.pool:
            reason = engine.run()
    campaign.event("stopped", reason=reason, wall_s=time.time() - t0)
    front = campaign_front(campaign, exp)
    plot = plot_campaign(campaign, exp, front, campaign.root / "front.html")
    if as_json:
        emit_json({"campaign": str(campaign.root), "stop_reason": reason, "wall_s": time.time() - t0,
                   "plot": str(plot), **front["json"]})
        return 0
    console.print(f"stopped: {reason} ({time.time() - t0:.0f} s)")
    print_front(front, exp)
    print(f"plot: {plot}")
    return 0


class _Progress:
    """Progress on stderr: training steps of the campaign, candidates of the running round."""

    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.steps = self.round = self.pretraining = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def pretrain(self, step: int, total: int, loss: float) -> None:
        if self.pretraining is None:
            self.pretraining = self.progress.add_task("backbone pre-training (once, cached)", total=total)
        self.progress.update(self.pretraining, completed=step, description=f"backbone pre-training, loss {loss:.4f}")

    def start_search(self, max_steps, used):
        self.steps = self.progress.add_task("training steps", total=max_steps, completed=used)

    def update(self, kind: str, info: dict) -> None:
        if kind == "round":
            if self.round is not None:
                self.progress.remove_task(self.round)
            self.round = self.progress.add_task(f"round {info['round']}", total=info["candidates"],
                                                completed=info["cached"])
        elif kind == "candidate":
            self.progress.advance(self.round)
            self.progress.advance(self.steps, info["steps"])
            q = "failed" if info["status"] != "ok" else f"{info['quality']:.5f}"
            self.progress.console.print(f"  {info['id']:>10} {info['arch']}: {q}")


def run_status(args) -> int:
    from nas.campaign import Campaign

    campaign = Campaign.open(args.dir)
    info = campaign_status(campaign)
    if args.json:
        emit_json(info)
        return 0
    for key, value in info.items():
        print(f"{key}: {value}")
    return 0


def campaign_status(campaign) -> dict:
    exp = _experiment_of(campaign)
    trials = campaign.trials()
    saved = campaign.load_state() or {}
    strategy = saved.get("strategy", {})
    stopped = [e for e in campaign.events() if e["event"] == "stopped"]
    return {"campaign": str(campaign.root), "name": exp.name, "strategy": exp.search.strategy,
            "storage": campaign.meta["storage"], "lut": campaign.meta.get("lut"),
            "rounds": saved.get("rounds", 0), "steps_used": saved.get("steps_used", 0),
            "max_train_steps": exp.search.max_train_steps,
            "trials": sum(t.state.name == "COMPLETE" for t in trials),
            "failed": sum(t.state.name == "FAIL" for t in trials),
            "current": strategy.get("current"), "done": strategy.get("done", False),
            "stop_reason": stopped[-1]["reason"] if stopped else strategy.get("stop_reason") or None}


# Pareto fronts ------------------------------------------------------------------------------
def campaign_points(campaign):
    from nas.pareto import Point

    return [Point(t.user_attrs["arch"], t.values[0], t.values[1], t.values[2], t.user_attrs.get("breakdown"))
            for t in campaign.trials() if t.state.name == "COMPLETE"]


def campaign_front(campaign, exp) -> dict:
    from nas.pareto import compute_front, reference_point

    points = campaign_points(campaign)
    r = exp.search.reference_point
    ref = reference_point(points, exp.budgets, r.quality, r.latency_ms, r.memory_bytes)
    front = compute_front(points, ref)
    return {"points": points, "front": front, "json": front.to_dict(exp.budgets)}


def plot_campaign(campaign, exp, front: dict, out) -> Path:
    from nas.plots import plot_front

    return plot_front(front["points"], front["front"], exp.budgets, out, f"{exp.name}: {exp.search.strategy}")


def print_front(front: dict, exp) -> None:
    from rich.console import Console
    from rich.table import Table

    data = front["json"]
    table = Table(title=f"Pareto front of {len(front['points'])} evaluated candidates")
    for col in ("architecture", "quality", "breakdown", "latency ms", "memory MiB", "feasible"):
        table.add_column(col, overflow="fold")
    for p in data["front"]:
        # one layer / one score per line keeps the table narrow; the full breakdown: --json
        brk = "\n".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in list(p["breakdown"].items())[:3])
        table.add_row(p["arch"].replace(",", ",\n"), f"{p['quality']:.5f}", brk, f"{p['latency_ms']:.3f}",
                      f"{p['memory_bytes'] / 2**20:.2f}", "yes" if p["feasible"] else "no")
    console = Console(width=None if sys.stdout.isatty() else 120)  # rich's pipe default is 80
    console.print(table)
    ref = data["reference_point"]
    console.print(f"hypervolume {data['hypervolume']:.6g} against reference quality {ref['quality']:.5f}, "
                  f"latency {ref['latency_ms']:.3f} ms, memory {ref['memory_bytes'] / 2**20:.2f} MiB")


def _finished_front(directory):
    """The campaign in ``directory``, its experiment and its front (at least one point)."""
    from nas.campaign import Campaign

    campaign = Campaign.open(directory)
    exp = _experiment_of(campaign)
    front = campaign_front(campaign, exp)
    if not front["points"]:
        raise CliError(f"{directory}: no candidate has finished yet")
    return campaign, exp, front


def run_pareto_show(args) -> int:
    _, exp, front = _finished_front(args.dir)
    emit_json(front["json"]) if args.json else print_front(front, exp)
    return 0


def run_pareto_plot(args) -> int:
    campaign, exp, front = _finished_front(args.dir)
    print(plot_campaign(campaign, exp, front, args.out))
    return 0


def print_plan(plan: dict) -> None:
    for key, value in plan.items():
        print(f"{key}: {value}", file=sys.stdout)
