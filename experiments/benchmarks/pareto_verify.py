"""Does the search's quality rank architectures the way the ground truth does? (issue 10, item 4)

Runs a campaign of the experiment (or takes one with ``--campaign``), then ``hwnas pareto
verify`` on it: the front's best and dominated architectures for contrast (≥ 8 in all when
the campaign has them) long-trained under the experiment's ``verify`` protocol on the
campaign's workers, scored by the strong evaluator, and the Spearman / Kendall correlation
of the search's quality with the verified one, with the pairs the search ordered wrongly.

    # the target run (issue 10: Spearman >= 0.8 over >= 8 architectures of the tiny experiment)
    PYTHONPATH=. .venv/bin/python experiments/benchmarks/pareto_verify.py --tag tiny
    # an existing campaign, the protocol edited (its verify section; the search is not changed)
    PYTHONPATH=. .venv/bin/python experiments/benchmarks/pareto_verify.py --tag tiny_m1 \\
        --campaign runs/tiny --verify steps=3000 logit_mean=1.0
    # a smoke run (minutes): a shrunken experiment and protocol, results outside results/
    PYTHONPATH=. .venv/bin/python experiments/benchmarks/pareto_verify.py --tag smoke --smoke \\
        --out-dir /tmp/pv

A rerun with the same protocol reuses what is verified (the campaign's verify record), so a
run cut short continues. Writes results/pareto_verify_TAG.json and .md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _machine import machine, write  # noqa: E402

from nas.campaign import Campaign  # noqa: E402
from nas.config import Experiment  # noqa: E402
from nas.verify import noise_note, run_verify  # noqa: E402


def smoke(cfg: dict) -> dict:
    """Minutes instead of hours: small data, K = 4, a short pre-training, a short protocol."""
    cfg = dict(cfg)
    cfg["data"] = {**cfg.get("data", {}), "videos": 96, "val_videos": 16}
    cfg["train"] = {**cfg.get("train", {}), "steps": 4, "pretrain": {"steps": 40, "batch": 8, "lr": 2e-3}}
    cfg["evaluator"] = {**cfg.get("evaluator", {}), "val_clips": 8}
    cfg["lut"] = {**cfg.get("lut", {}), "warmup": 1, "repeats": 3}
    cfg["search"] = {**cfg.get("search", {}), "max_train_steps": 4 * 26}
    cfg["verify"] = {**cfg.get("verify", {}), "steps": 6, "batch": 4,
                     "options": {"prompts": 16, "sample_steps": 2}}
    return cfg


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--verify {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def markdown(result: dict) -> str:
    out = result["verify"]
    p = out["protocol"]

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    smoke_note = " (SMOKE: shrunken, not a result)" if result["smoke"] else ""
    m = result["machine"]
    command = "PYTHONPATH=. .venv/bin/python experiments/benchmarks/pareto_verify.py " + " ".join(result["argv"])
    cached = sum(1 for pt in out["points"] if pt.get("cached"))
    searched = (f"search wall {result['search_wall_s']:.0f} s" if "search_wall_s" in result
                else "an existing campaign")
    setting = (f"Campaign `{result['campaign']}` ({result['trials']} trials, {searched}). Protocol `{p['sha256'][:12]}`: {p['steps']} steps x batch "
               f"{p['batch']}, lr {p['lr']:g}, t ~ logit-normal({p['logit_mean']:g}, {p['logit_std']:g}), "
               f"seeds {', '.join(map(str, p.get('seeds', [p['seed']])))}; scored by `{p['evaluator']}` (options {p['options']}); verified quality = "
               f"`{out['quality_key']}`. Verify wall {result['verify_wall_s']:.0f} s"
               + (f" ({cached} of {len(out['points'])} architectures read from the campaign's verify record, verified "
                  "by an earlier run of this command; each one's own seconds are in the table)." if cached else "."))
    beyond = out.get("misordered_beyond_noise")
    summary = (f"**Spearman {fmt(out['spearman'])}, Kendall {fmt(out['kendall'])}** over {out['n']} architectures; "
               f"{len(out['misordered'])} of {out['pairs']} pairs ordered wrongly by the search"
               + ("." if beyond is None else f", {len(beyond)} of them by more than twice the verified quality's "
                                             "standard error ("
                  + ("pooled between training seeds" if out.get("verified_se") == "seeds"
                     else "binomial, over the held-out captions") + ")."))
    stage = out.get("search_stage") or {"stage": "search", "steps": None}
    whose = (f"The search quality is the final stage's: each architecture re-scored after {stage['steps']} steps "
             "from the backbone under the search's training (`rescore`)." if stage["stage"] == "rescore" else
             "The search quality is each architecture's best brief-training trial"
             + (f" (K = {stage['steps']} steps)." if stage["steps"] else "."))
    brief = out.get("brief_trials")
    if brief:
        whose += (f" The same architectures by their best brief-training trial (K = {brief['steps']}): Spearman "
                  f"{fmt(brief['spearman'])}, Kendall {fmt(brief['kendall'])}, {len(brief['misordered'])} of "
                  f"{brief['pairs']} pairs wrong.")
    header = (f"| architecture | front | search quality | verified ({out['quality_key']}) | "
              f"{p['evaluator']} quality | seconds |")
    where = f"machine: {m['cpu']}, {m['cores']} cores, {m['date']}; load {m['loadavg_start']} -> {m.get('loadavg_end')}"
    lines = [f"# Search quality vs verified quality `{result['tag']}`{smoke_note}", "", where, "", "```", command,
             "```", "", setting, "", whose, "", summary, "", header, "|---|---|---|---|---|---|"]
    for pt in out["points"]:
        v = "failed: " + str(pt["reason"]) if pt["status"] != "ok" else f"{pt['verified_quality']:.4f}"
        if pt["status"] == "ok" and len(pt.get("verified_seeds") or []) > 1:
            v += " (" + ", ".join(f"{q:.3f}" for q in pt["verified_seeds"]) + ")"
        lines.append(f"| {pt['arch'] or 'empty'} | {'yes' if pt['on_front'] else ''} | {pt['search_quality']:.5f} "
                     f"| {v} | {fmt(pt['score'])} | {pt['seconds'] or 0:.0f} |")
    if out["misordered"]:
        lines += ["", "Pairs ordered wrongly (search: first above second; verified: the other way round):", ""]
        lines += [f"* {a or 'empty'} > {b or 'empty'}{noise_note(out, [a, b])}" for a, b in out["misordered"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True)
    ap.add_argument("--config", default=str(ROOT / "experiments" / "tiny.yaml"))
    ap.add_argument("--campaign", help="verify this campaign (default: run the config's into runs/pareto_verify_TAG)")
    ap.add_argument("--smoke", action="store_true", help="shrink the experiment and the protocol (a check, not a result)")
    ap.add_argument("--verify", nargs="*", default=[], metavar="KEY=VALUE",
                    help="set keys of the campaign's verify section (the protocol) before verifying")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--evaluator")
    ap.add_argument("--top", type=int)
    ap.add_argument("--contrast", type=int)
    ap.add_argument("--seeds", type=int, help="training seeds per architecture (default: the verify section's)")
    ap.add_argument("--ray-address")
    ap.add_argument("--out-dir", help="where the results go (default: experiments/benchmarks/results)")
    args = ap.parse_args()
    result = {"tag": args.tag, "argv": sys.argv[1:], "smoke": args.smoke, "machine": machine()}

    if args.campaign:
        camp = Campaign.open(args.campaign)
    else:
        from nas.engine import Search

        cfg = yaml.safe_load(Path(args.config).read_text())
        if args.smoke:
            cfg = smoke(cfg)
        exp = Experiment.from_dict(cfg)
        camp = Campaign.create(ROOT / "runs" / f"pareto_verify_{args.tag}", exp.to_dict())
        t0 = time.time()
        result["stop_reason"] = Search(camp, ray_address=args.ray_address).run()
        result["search_wall_s"] = time.time() - t0
        print(f"search: {result['stop_reason']} ({result['search_wall_s']:.0f} s)", flush=True)
    if args.verify:
        cfg = camp.config()
        cfg["verify"] = {**(cfg.get("verify") or {}), **parse_overrides(args.verify)}
        camp = Campaign.create(camp.root, Experiment.from_dict(cfg).to_dict())  # same search, new protocol
    result["campaign"] = str(camp.root)
    result["trials"] = len(camp.points("search"))
    result["rescored_trials"] = len(camp.points("rescore"))

    def shown(entry):
        what = f"{entry['verified_quality']:.4f}" if entry["status"] == "ok" else f"failed: {entry['reason']}"
        print(f"verified {entry['arch'] or 'empty'} seed {entry['seed']}: {what} ({entry['wall_s']:.0f} s)", flush=True)

    t0 = time.time()
    result["verify"] = run_verify(camp.root, args.steps, args.evaluator, args.top, args.contrast, args.ray_address,
                                  on_result=shown, seeds=args.seeds)
    result["verify_wall_s"] = time.time() - t0
    result["verify_section"] = camp.config().get("verify")
    path = write(f"pareto_verify_{args.tag}", result, args.out_dir)
    md = markdown(result)
    (path.parent / (path.stem + ".md")).write_text(md)
    print(md)
    print("wrote", path)


if __name__ == "__main__":
    main()
