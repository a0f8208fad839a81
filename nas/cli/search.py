"""``hwnas search run|resume|status``: campaigns from the command line.

``search run CONFIG`` creates (or, for the same config, continues) a campaign directory and
runs :class:`nas.engine.Search` on it with progress on stderr, then prints the Pareto
front and the path of its plot. ``--dry-run`` prices and prunes the space and prints the
plan (``nas.plan``).
"""
from __future__ import annotations

import sys
import time

from core.progress import Progress
from nas.cli.common import PretrainProgress, emit_json, load_experiment
from nas.cli.pareto import plot_campaign, print_front, quality_formula, resolved_stage, stage_note
from nas.engine import Observer


def register(sub) -> None:
    search = sub.add_parser("search", help="run, resume and inspect search campaigns").add_subparsers(
        dest="action", required=True)
    p = search.add_parser("run", help="start a campaign (or continue one of the same config)")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--out", help="campaign directory (default: search.out, else runs/NAME)")
    p.add_argument("--ray-address", help="join this Ray cluster (default: search.ray_address, else a local one)")
    p.add_argument("--dry-run", action="store_true", help="price and prune the space, print the plan and its cost")
    p.add_argument("--restart", action="store_true",
                   help="discard the campaign in --out (its trials too) and start this config afresh")
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


def run_search(args) -> int:
    exp = load_experiment(args.config)
    if args.dry_run:
        from nas.engine import BudgetError
        from nas.plan import dry_run

        plan = dry_run(exp)
        emit_json(plan) if args.json else print_plan(plan)
        if plan["problem"]:
            raise BudgetError(plan["problem"])
        return 0
    from nas.campaign import Campaign

    out = args.out or exp.search.out or f"runs/{exp.name}"
    campaign = Campaign.create(out, exp.to_dict(), restart=args.restart)
    return _search(campaign, args.ray_address, args.json)


def run_resume(args) -> int:
    from nas.campaign import Campaign
    from nas.engine import BudgetError

    campaign = Campaign.open(args.dir)
    try:
        return _search(campaign, args.ray_address, args.json)
    except BudgetError as exc:
        how = ("edit the experiment's budgets and run `hwnas search run CONFIG --out {d}` (this campaign finished "
               "no candidate, so it is replaced)" if not campaign.finished_candidates() else
               "edit the experiment's budgets and run `hwnas search run CONFIG --out {d} --restart`")
        raise BudgetError(f"{exc}; a campaign resumes with its frozen config: {how.format(d=args.dir)}") from None


class ProgressObserver(Observer):
    """The search's events as progress on stderr: training steps of the campaign, candidates
    of the running round, one line per finished candidate."""

    def __init__(self, shown: Progress):
        self.shown = shown
        self.pretrain = PretrainProgress(shown)
        self.steps = self.round = None

    def display(self):
        return self.shown

    def event(self, kind: str, fields: dict) -> None:
        if kind in ("started", "resumed"):
            self.steps = self.shown.task("training steps", total=fields["max_train_steps"],
                                         completed=fields["steps_used"])
        elif kind == "round_started":
            if self.round is not None:
                self.round.finish()
            self.round = self.shown.task(f"round {fields['round']}", total=len(fields["candidates"]),
                                         completed=len(fields["cached"]))
            self.steps.update(advance=fields["cached_steps"])
        elif kind == "candidate":
            self.round.update(advance=1)
            self.steps.update(advance=fields["steps"])
            q = "failed: " + (fields["reason"] or "") if fields["status"] != "ok" else f"{fields['quality']:.5f}"
            self.shown.print(f"  {fields['id']:>10} {fields['arch']}: {q}")
        elif kind == "rescore_started":
            if self.round is not None:
                self.round.finish()
            self.round = self.shown.task(f"final stage: {len(fields['archs'])} architectures x {fields['steps']} steps",
                                         total=len(fields["archs"]))
        elif kind == "rescored":
            self.round.update(advance=1)
            q = "failed: " + (fields["reason"] or "") if fields["status"] != "ok" else f"{fields['quality']:.5f}"
            self.shown.print(f"  rescored {fields['arch'] or 'empty'} ({fields['steps']} steps): {q}")
        elif kind == "round_finished":
            self.steps.update(completed=fields["steps_used"])  # what the campaign counts, after a resume too
            if fields.get("decision") and fields["decision"].get("action"):
                d = fields["decision"]
                self.shown.print(f"round {d['round']}: {d['branch']} {d['action']} -> {d['to']}")


def _search(campaign, ray_address, as_json: bool) -> int:
    from nas.engine import Search

    t0 = time.time()
    search = Search(campaign, ray_address=ray_address)
    with Progress() as shown:
        reason = search.run(ProgressObserver(shown))
    front = campaign.front()
    plot = plot_campaign(campaign, front, campaign.root / "front.html")
    if as_json:
        emit_json({"campaign": str(campaign.root), "stop_reason": reason, "wall_s": time.time() - t0,
                   "plot": str(plot), "stage": resolved_stage(campaign), **front.to_dict()})
        return 0
    print(f"stopped: {reason} ({time.time() - t0:.0f} s)", file=sys.stderr)
    print_front(front, stage_note(campaign), quality_formula(campaign.experiment()))
    print(f"plot: {plot}")
    return 0


def run_status(args) -> int:
    from nas.campaign import Campaign

    info = Campaign.open(args.dir).status()
    if args.json:
        emit_json(info)
        return 0
    for key, value in info.items():
        if key == "round_in_progress" and value:
            value = (f"round {value['round']}: {value['finished']} of {value['candidates']} candidates finished "
                     "(rounds, steps_used and trials count decided rounds)")
        if isinstance(value, dict):
            for k, v in value.items():
                if v is not None:
                    print(f"{key}.{k}: {round(v, 1) if isinstance(v, float) else v}")
        elif value is not None:
            print(f"{key}: {value}")
    return 0


def print_plan(plan: dict) -> None:
    for key, value in plan.items():
        if value is not None:
            print(f"{key}: {value}")
