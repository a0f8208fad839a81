"""``hwnas pareto show|plot|verify``: the Pareto front of a campaign, as a table or a picture,
and its check against the ground-truth protocol (``nas.verify``)."""
from __future__ import annotations

import sys
from pathlib import Path

from nas.cli.common import CliError, emit_json


def register(sub) -> None:
    pareto = sub.add_parser("pareto", help="Pareto front of a campaign").add_subparsers(dest="action", required=True)
    p = pareto.add_parser("show", help="the front: architecture, quality, latency, memory, feasibility")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--stage", choices=["final", "search", "rescore"], default="final",
                   help="whose front: final (the re-scored architectures once the rescore stage is complete, else "
                        "the search's), search (the brief-training trials), rescore (the final stage's so far)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_show)
    p = pareto.add_parser("plot", help="plot the front (.html: plotly, .png: matplotlib)")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--out", required=True, help="FILE.html or FILE.png")
    p.set_defaults(func=run_plot)
    p = pareto.add_parser("verify", help="long-train the front (and dominated ones for contrast) under the "
                                         "experiment's verify protocol; rank correlation with the search's quality")
    p.add_argument("dir", help="campaign directory")
    p.add_argument("--steps", type=int, help="training steps per architecture (default: verify.steps)")
    p.add_argument("--evaluator", help="the strong evaluator (default: verify.evaluator, prompt_suite)")
    p.add_argument("--top", type=int, help="front architectures, best search quality first (default: verify.top)")
    p.add_argument("--contrast", type=int, help="dominated architectures at least (default: verify.contrast)")
    p.add_argument("--seeds", type=int, help="training seeds per architecture; the verified quality is their mean "
                                             "(default: verify.seeds, 1)")
    p.add_argument("--ray-address", help="join this Ray cluster (default: search.ray_address, else as the search ran)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run_verify)
    from nas.cli import gallery

    gallery.register(pareto)


def plot_campaign(campaign, front, out) -> Path:
    from nas.plots import plot_front

    exp = campaign.experiment()
    stage = f" (re-scored after {exp.rescore.steps} steps)" if campaign.rescored() else ""
    return plot_front(list(front.evaluated), front, front.budgets, out, f"{exp.name}: {exp.search.strategy}{stage}")


BREAKDOWN_ROWS = 3  # scores shown per front point; --json has them all


def resolved_stage(campaign, stage: str = "final") -> str:
    """Whose front ``stage`` is: ``rescore`` (the final stage's trials) or ``search``."""
    return "rescore" if stage == "rescore" or (stage == "final" and campaign.rescored()) else "search"


def stage_note(campaign, stage: str = "final") -> str:
    """Which trials a front is of, in words."""
    rescore = campaign.experiment().rescore
    if resolved_stage(campaign, stage) == "rescore":
        return f"re-scored after {rescore.steps} training steps each (the final stage)"
    k = campaign.experiment().candidate_steps
    return f"brief training (K = {k} steps)" + (" (the final stage has not finished)"
                                                if stage == "final" and rescore.enabled else "")


def quality_formula(exp) -> str | None:
    """How a weighted evaluator's quality is made of its components' (the breakdown's
    ``NAME/quality`` entries), in words; None for a single evaluator."""
    if exp.evaluator.name != "weighted":
        return None
    parts = exp.evaluator.options.components
    terms = " + ".join(f"{c.weight:g} x {c.name}/quality" for c in parts)
    return f"quality = ({terms}) / {sum(c.weight for c in parts):g}"


def print_front(front, stage: str = "", formula: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    data = front.to_dict()
    title = f"Pareto front of {len(front.evaluated)} evaluated candidates"
    table = Table(title=title + (f", {stage}" if stage else ""))
    verified = sorted({ev for p in data["front"] for ev in p["verified"]})
    for col in ("architecture", "quality", "breakdown", "latency ms", "memory MiB", "feasible", "runs"):
        table.add_column(col, overflow="fold")
    for ev in verified:
        table.add_column(f"verified {ev}", overflow="fold")
    cut = False
    for p in data["front"]:
        # one layer / one score per line keeps the table narrow
        items = sorted(p["breakdown"].items(), key=lambda kv: not kv[0].endswith("/quality"))  # components first
        brk = "\n".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:BREAKDOWN_ROWS])
        if len(items) > BREAKDOWN_ROWS:
            brk += f"\n(+{len(items) - BREAKDOWN_ROWS} more)"
            cut = True
        table.add_row(p["arch"].replace(",", ",\n"), f"{p['quality']:.5f}", brk, f"{p['latency_ms']:.3f}",
                      f"{p['memory_bytes'] / 2**20:.2f}", "yes" if p["feasible"] else "no", str(p["evaluations"]),
                      *(_verified_cell(p["verified"].get(ev)) for ev in verified))
    console = Console(width=None if sys.stdout.isatty() else 120)  # rich's pipe default is 80
    console.print(table)
    if formula:
        console.print(formula)
    if cut:
        console.print(f"breakdown: each component's quality, then other scores up to {BREAKDOWN_ROWS}; "
                      "--json has all of them")
    if any(p["evaluations"] > 1 for p in data["front"]):
        console.print("runs: evaluations of that architecture (e.g. a candidate, then the reference retrained from "
                      "it); the front keeps its best")
    if verified:
        console.print("verified: the quality under the verify protocol (`hwnas pareto verify`), the breakdown entry "
                      "named, with the protocol's hash; blank: not verified")
    ref, ideal = data["reference_point"], data["ideal_point"]
    console.print(f"hypervolume {data['hypervolume_normalised']:.1%} of the box between the ideal point (quality "
                  f"{ideal['quality']:.5f}, {ideal['latency_ms']:.3f} ms, {ideal['memory_bytes'] / 2**20:.2f} MiB: the "
                  f"best of each objective over all candidates) and the reference (quality {ref['quality']:.5f}, "
                  f"{ref['latency_ms']:.3f} ms, {ref['memory_bytes'] / 2**20:.2f} MiB); raw "
                  f"{data['hypervolume']:.6g} quality·ms·bytes")


def _verified_cell(v: dict | None) -> str:
    if not v:
        return ""
    return f"{v.get('quality_key')}={v['quality']:.4g}\n({str(v.get('protocol', ''))[:8]})"


def _finished_front(directory, stage: str = "final"):
    """The campaign in ``directory`` and its ``stage``'s front (at least one point)."""
    from nas.campaign import Campaign

    campaign = Campaign.open(directory)
    front = campaign.front(stage)
    if not front.evaluated:
        if stage != "rescore":
            raise CliError(f"{directory}: no candidate has finished yet")
        steps = campaign.experiment().rescore.steps
        if steps is None:
            raise CliError(f"{directory}: the final stage is off (no rescore.steps in the campaign's config)")
        raise CliError(f"{directory}: no architecture of the final stage at rescore.steps {steps} has finished "
                       "yet (it runs once the strategy stops, on `hwnas search run` or `resume`)")
    return campaign, front


def run_show(args) -> int:
    campaign, front = _finished_front(args.dir, args.stage)
    if args.json:
        emit_json({"stage": resolved_stage(campaign, args.stage), **front.to_dict()})
    else:
        print_front(front, stage_note(campaign, args.stage), quality_formula(campaign.experiment()))
    return 0


def run_plot(args) -> int:
    campaign, front = _finished_front(args.dir)
    print(plot_campaign(campaign, front, args.out))
    return 0


def print_verify(out: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    key = out["quality_key"]
    seeds, sha = out["protocol"]["seeds"], out["protocol"]["sha256"][:8]
    table = Table(title=f"{len(out['points'])} architectures long-trained under protocol {sha} "
                        f"({out['protocol']['steps']} steps, seed{'s' if len(seeds) > 1 else ''} "
                        f"{', '.join(map(str, seeds))}), scored by {out['evaluator']}")
    stage = out.get("search_stage", {})
    searched = "search quality"
    if stage:
        searched += f" ({'re-scored, ' if stage['stage'] == 'rescore' else ''}{stage['steps']} steps)"
    for col in ("architecture", "front", searched, f"verified ({key})", f"{out['evaluator']} quality", "status"):
        table.add_column(col, overflow="fold")
    for p in out["points"]:
        status = "cached" if p["cached"] else p["status"]
        if p["status"] != "ok":
            status = f"{p['status']}: {p['reason']}"
        table.add_row(p["arch"] or "empty", "yes" if p["on_front"] else "", f"{p['search_quality']:.5f}",
                      "" if p["verified_quality"] is None else f"{p['verified_quality']:.4f}",
                      "" if p["score"] is None else f"{p['score']:.4f}", status)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    console.print(f"over {out['n']} verified architectures: Spearman {fmt(out['spearman'])}, "
                  f"Kendall {fmt(out['kendall'])}; {len(out['misordered'])} of {out['pairs']} pairs ordered wrongly "
                  "by the search" + (":" if out["misordered"] else ""))
    from nas.verify import noise_note

    beyond = out.get("misordered_beyond_noise")
    for a, b in out["misordered"]:
        console.print(f"  search: {a or 'empty'} above {b or 'empty'}; verified: the other way round"
                      f"{noise_note(out, [a, b])}")
    if beyond is not None:
        kind = "between seeds" if out["verified_se"] == "seeds" else "binomial, over the sampled captions"
        console.print(f"{len(beyond)} of the {len(out['misordered'])} wrong pairs differ by more than twice the "
                      f"verified quality's standard error ({kind})")
    brief = out.get("brief_trials")
    if brief:
        console.print(f"the same architectures by their brief-training qualities (K = {brief['steps']} steps, "
                      "before the final stage): "
                      f"Spearman {fmt(brief['spearman'])}, Kendall {fmt(brief['kendall'])}; "
                      f"{len(brief['misordered'])} of {brief['pairs']} pairs wrong")
    console.print(f"record: {out['record']}")


def run_verify(args) -> int:
    from core.progress import Progress
    from nas.cli.common import PretrainProgress
    from nas.verify import run_verify as verify

    if args.top is not None and args.top < 1:
        raise CliError(f"--top {args.top}: must be at least 1")
    with Progress(enabled=not args.json) as progress:
        def on_result(entry: dict) -> None:
            what = (f"{entry['verified_quality']:.4f} ({entry['seconds']:.0f} s)" if entry["status"] == "ok"
                    else f"failed: {entry['reason']}")
            progress.print(f"verified {entry['arch'] or 'empty'} (seed {entry['seed']}): {what}")

        out = verify(args.dir, args.steps, args.evaluator, args.top, args.contrast, args.ray_address,
                     on_result=on_result, pretrain_progress=PretrainProgress(progress), seeds=args.seeds)
    emit_json(out) if args.json else print_verify(out)
    return 0
